//! What the TTS emulators "say": text through the in-band code
//! ([`crate::codec::Encoder`]) at the requested rate, cut into paced
//! audio chunks with each character's start. Shared by `sim::elevenlabs`
//! and `sim::aura` so both speak exactly the same way.

use std::time::Duration;

use crate::codec::{Encoder, SYMBOL_MS, normalize};

/// The PCM (s16le) spoken for `text` at `rate`.
pub fn speech_pcm(text: &str, rate: u32) -> Vec<u8> {
    talky::audio::pcm::i16_to_bytes(&Encoder::new(rate).encode(text))
}

/// One planned audio chunk.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// s16le PCM.
    pub bytes: Vec<u8>,
    /// Start within the generation's audio.
    pub at: Duration,
    /// (char, start ms relative to the chunk).
    pub chars: Vec<(char, f64)>,
}

/// Splits the speech of `text` at `rate` into chunks of `chunk_ms` (one
/// byte longer each with `odd_chunks`, so chunks split samples), with the
/// alignment of the characters that start in each.
pub fn plan(text: &str, rate: u32, chunk_ms: u32, odd_chunks: bool) -> Vec<Chunk> {
    let spoken = normalize(text);
    let pcm = speech_pcm(&spoken, rate);
    let sym_bytes = rate as usize * SYMBOL_MS as usize / 1000 * 2;
    let mut size = (rate as usize * chunk_ms.max(1) as usize / 1000 * 2).max(2);
    if odd_chunks {
        size += 1;
    }
    let byte_ms = |b: usize| b as f64 / 2.0 * 1000.0 / f64::from(rate);
    let chars: Vec<char> = spoken.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut next_char = 0;
    while start < pcm.len() {
        let end = (start + size).min(pcm.len());
        let mut cs = Vec::new();
        while next_char < chars.len() && next_char * sym_bytes < end {
            cs.push((chars[next_char], byte_ms(next_char * sym_bytes - start)));
            next_char += 1;
        }
        out.push(Chunk {
            bytes: pcm[start..end].to_vec(),
            at: Duration::from_secs_f64(byte_ms(start) / 1000.0),
            chars: cs,
        });
        start = end;
    }
    out
}

/// When a chunk starting `at` into a generation begun at `t0` goes out:
/// after `first_audio_latency`, at `speed` times real time (0 or less:
/// as fast as possible).
pub fn due(
    first_audio_latency: Duration,
    speed: f64,
    t0: tokio::time::Instant,
    at: Duration,
) -> tokio::time::Instant {
    let lead = if speed > 0.0 {
        at.div_f64(speed)
    } else {
        Duration::ZERO
    };
    t0 + first_audio_latency + lead
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_speech_and_align_every_char() {
        for odd in [false, true] {
            let chunks = plan("Hi there", 16_000, 100, odd);
            let all: Vec<u8> = chunks.iter().flat_map(|c| c.bytes.clone()).collect();
            assert_eq!(all, speech_pcm("Hi there", 16_000));
            let chars: String = chunks
                .iter()
                .flat_map(|c| c.chars.iter().map(|(ch, _)| *ch))
                .collect();
            assert_eq!(chars, "Hi there");
            let step = if odd { 3201.0 } else { 3200.0 } / 2.0 / 16.0;
            assert!((chunks[1].at.as_secs_f64() * 1000.0 - step).abs() < 0.01);
        }
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            due(
                Duration::from_millis(50),
                2.0,
                t0,
                Duration::from_millis(100)
            ),
            t0 + Duration::from_millis(100)
        );
        assert_eq!(due(Duration::ZERO, 0.0, t0, Duration::from_secs(9)), t0);
    }
}
