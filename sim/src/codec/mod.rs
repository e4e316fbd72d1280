//! The in-band code of the simulated world: text carried as tones in audio.
//!
//! Emulators cannot understand speech, so the simulated callee and the TTS
//! emulators turn text into audio with an [`Encoder`], and the STT emulator
//! and the callee's "ears" turn audio back into text with a [`Decoder`]
//! (design §4). talky's real audio path sits in between, so a dropped,
//! reordered, duplicated or corrupted frame shows up as wrong text.
//!
//! # The code
//!
//! - **Alphabet** (105 symbols): the 95 printable ASCII characters (space to
//!   `~`, case preserved, so decoded text compares equal to what an LLM
//!   wrote) plus `é è à ü ö ä ñ ç ø €`. [`normalize`] says what any other
//!   input becomes: whitespace becomes a space, typographic quotes and dashes
//!   their ASCII forms, `…` becomes `...`, anything else is skipped (never a
//!   panic). The decoder yields exactly `normalize(text)`.
//! - **Tones**: each symbol is a distinct pair of 2 of 15 tones,
//!   400, 600, ..., 3200 Hz (C(15,2) = 105), inside the 300-3400 Hz
//!   telephone band, so the code survives 8 kHz legs and G.711. The 200 Hz
//!   spacing equals the bin width of the decoder's 5 ms analysis blocks:
//!   every tone sits exactly on a bin, so steady tones are orthogonal and a
//!   Goertzel filter per tone separates them within one block.
//! - **Timing**: a symbol is 55 ms of its tone pair (1.5 ms raised-cosine
//!   ramps at both ends, no clicks) then 15 ms of silence: 70 ms a symbol,
//!   **14.3 characters a second**, within the 12-16 of speech. The gap makes
//!   repeated characters ("ll", "!!!") separate symbols. Every symbol
//!   carries its own gap, so `encode(a) ++ encode(b) == encode(a + b)`
//!   (streamed TTS chunks concatenate seamlessly).
//! - **Level**: each tone has amplitude 3000, so a symbol is about
//!   -21 dBFS RMS (peak 6000, -15 dBFS, far from clipping) and silence
//!   is digital zero: an energy VAD (-45 dBFS, 60 ms onset, 300 ms
//!   hangover) sees one talk spurt per utterance as long as utterances are
//!   separated by clearly more than 300 ms of [`Encoder::silence`] (say
//!   500 ms); the 15 ms gaps inside an utterance are far below the hangover.
//! - **Rates**: both ends work natively at any rate that is a multiple of
//!   200 Hz from 8 kHz up (8, 16, 24, 48 kHz); talky's legs use 16 kHz
//!   ([`SAMPLE_RATE`]) and 8 kHz. Audio encoded at one rate decodes at
//!   another after resampling (`talky::audio::resample`).
//!
//! # Decoding
//!
//! The decoder cuts the stream into 5 ms blocks aligned to the stream's
//! first sample (so chunking never matters), and per block computes the
//! energy and 15 Goertzel powers (no FFT). A block is a symbol block when
//! it is loud enough (RMS above about -42 dBFS, 20 dB under the code's
//! level), the two strongest tones hold most of its energy, the weaker of
//! the two is within 6 dB of the stronger and the third is far below both;
//! otherwise it is a non-symbol block. When a run of consecutive blocks of
//! one symbol ends (at a non-symbol or different block, or at
//! [`Decoder::flush`]), the character is emitted if the run lasted at least
//! 8 blocks (40 ms, most of the 55 ms tone). Hence a cut at any sample
//! (barge-in) decodes to a prefix of the text: a character is emitted only
//! once most of its tone was heard (more than 35 ms: seven full blocks and
//! most of an eighth), every character whose tone was heard in full is
//! emitted (as soon as the following block, or a flush, shows the tone has
//! ended), and no character is ever emitted from a tone that was not
//! played. Edge blocks (partly tone, or smeared by resampling filters) are
//! at worst non-symbol blocks or a one-block run, which never reaches 8.
//!
//! Events: [`Decoded::SpeechStart`] when a symbol run reaches 2 blocks
//! outside speech, [`Decoded::Char`] per character, and
//! [`Decoded::UtteranceEnd`] after 300 ms without a symbol block.
//!
//! Cost: decoding is 15 Goertzel recurrences per sample plus an energy
//! sum, about 5,000 multiply-adds per 20 ms frame at 16 kHz (about 1.5 µs
//! in release on the development machine, see `benches/codec.rs`).
//! Encoding reads two shared precomputed tone waveforms per symbol (about
//! 40 µs for a 52-character sentence, 3.6 s of audio).

mod alphabet;
mod decoder;
mod encoder;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use alphabet::normalize;
pub use decoder::{Decoded, Decoder};
pub use encoder::Encoder;

/// talky's native rate; the codec works natively at 8 kHz too (any multiple
/// of 200 Hz from 8 kHz up).
pub const SAMPLE_RATE: u32 = 16_000;
/// Length of a symbol's tone.
pub const TONE_MS: u32 = 55;
/// Silence after each symbol's tone.
pub const GAP_MS: u32 = 15;
/// One symbol, tone and gap: 70 ms, 14.3 characters a second.
pub const SYMBOL_MS: u32 = TONE_MS + GAP_MS;
/// Silence after which the decoder reports [`Decoded::UtteranceEnd`].
pub const UTTERANCE_END_MS: u32 = 300;
/// Amplitude of each of a symbol's two tones (pair RMS about -20.8 dBFS).
pub const TONE_AMPLITUDE: i16 = 3000;

/// Decoder analysis block length.
pub(crate) const BLOCK_MS: u32 = 5;

/// The duration of `n` symbols.
pub fn symbols_duration(n: usize) -> Duration {
    Duration::from_millis(u64::from(SYMBOL_MS) * n as u64)
}

/// Panics unless `rate` is a supported sample rate.
pub(crate) fn check_rate(rate: u32) {
    assert!(
        rate >= 8_000 && rate.is_multiple_of(alphabet::STEP_HZ),
        "codec sample rate {rate} Hz: need a multiple of 200 Hz, at least 8 kHz"
    );
}
