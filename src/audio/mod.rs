//! Audio helpers shared by the media path and the emulators: G.711 μ-law
//! ([`mulaw`]), 16 kHz <-> 8 kHz streaming resampling ([`resample`]) and
//! s16le byte <-> `i16` conversion ([`pcm`]). Facts follow
//! `specs/providers.md` §8.

pub mod mulaw;
pub mod pcm;
pub mod resample;
pub mod wav;
