//! talky-sim: the simulated world around talky. Wire-exact emulators of the
//! providers on loopback, the in-band audio code ([`codec`]) through which
//! their text travels, the demo ([`demo`]) and the load driver
//! ([`loadtest`]). It depends on `talky`; `talky` never depends on it.

pub mod aura;
pub mod callee;
pub mod calls;
#[cfg(test)]
mod clients;
pub mod codec;
#[cfg(test)]
mod conformance;
pub mod deepgram;
pub mod demo;
pub mod elevenlabs;
pub mod llm;
pub mod loadtest;
pub mod persona;
pub mod process;
pub mod receiver;
pub mod server;
pub mod speech;
#[cfg(test)]
mod telephony_tests;
pub mod twilio;
pub mod vonage;
pub mod whisper;
