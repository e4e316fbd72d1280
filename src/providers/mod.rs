//! Real provider clients. Each implements a port of `talky-actors` and is
//! proven against its wire-exact emulator in `crate::sim` on loopback.

pub mod aura;
pub mod breaker;
pub mod chain;
pub mod deepgram_stt;
pub mod elevenlabs;
pub mod openai;
pub mod vonage;
pub mod whisper;
