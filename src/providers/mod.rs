//! Real provider clients. Each implements a port of `talky-actors` and is
//! proven against its wire-exact emulator in `crate::sim` on loopback.
//!
//! What they share: `build` (the one [`BuildError`], URL and key checks,
//! the one reqwest client builder), `retry` (retry policy, backoff,
//! Retry-After), `breaker` (every attempt a `BreakerGuard`), and
//! `tts_stream` (the connection and pump of a streamed synthesis, under
//! ElevenLabs and Aura).

pub mod aura;
pub mod breaker;
pub mod build;
pub mod chain;
pub mod deepgram_stt;
pub mod elevenlabs;
pub mod observe;
pub mod openai;
pub mod retry;
pub mod telephony;
pub mod telephony_chain;
pub(crate) mod tts_stream;
pub mod twilio;
pub mod vonage;
pub mod whisper;

pub use build::BuildError;

#[cfg(test)]
mod probe_tests;
#[cfg(test)]
pub(crate) mod rest_stub;
