//! The simulated world: wire-exact emulators of the providers on loopback,
//! and the in-band audio code ([`codec`]) through which their text travels.

pub mod aura;
pub mod codec;
pub mod deepgram;
pub mod elevenlabs;
pub mod llm;
pub mod process;
pub mod server;
pub mod speech;
pub mod vonage;
pub mod whisper;
