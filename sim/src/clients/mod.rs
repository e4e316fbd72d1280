//! The product's clients against their emulators, on loopback: every
//! provider client of `talky::providers` driven through its public API
//! (every error path and knob), and the recorder's round trips of speech
//! in the in-band code. The client's pure checks (parsers, settings) stay
//! beside the client in `talky`.

mod aura;
mod chain;
mod deepgram_stt;
mod elevenlabs;
mod openai;
mod recording;
mod whisper;
