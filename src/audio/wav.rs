//! WAV (RIFF) for batch speech-to-text (providers.md §8.5): the canonical
//! 44-byte header of s16 mono PCM we upload to Whisper, and a reader that
//! walks the chunks (skipping `LIST`, `fact`, ...) as the emulators must.

/// Length of the canonical PCM header.
pub const HEADER_LEN: usize = 44;

/// The canonical 44-byte header for `data_len` bytes of s16le mono PCM at
/// `sample_rate`. Sizes that overflow `u32` saturate (a 2 GB utterance is
/// not something we send).
pub fn header(sample_rate: u32, data_len: usize) -> [u8; HEADER_LEN] {
    let data = u32::try_from(data_len).unwrap_or(u32::MAX - 36);
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&sample_rate.saturating_mul(2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// A whole WAV file of s16le mono PCM: header then data.
pub fn wrap_pcm(sample_rate: u32, pcm: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + pcm.len());
    out.extend_from_slice(&header(sample_rate, pcm.len()));
    out.extend_from_slice(pcm);
    out
}

/// The `fmt ` facts of a WAV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavFormat {
    /// 1 = PCM, 3 = float, 6 = A-law, 7 = mu-law.
    pub audio_format: u16,
    /// Channels.
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
}

/// Why a file is not a WAV we can read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// No `RIFF....WAVE` at the start.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// No (or a short) `fmt ` chunk.
    #[error("missing or short fmt chunk")]
    NoFormat,
    /// No `data` chunk.
    #[error("missing data chunk")]
    NoData,
}

/// A parsed WAV: its format and the bytes of its `data` chunk (clipped to
/// the file when the header claims more, as streaming writers do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wav<'a> {
    /// The `fmt ` chunk.
    pub format: WavFormat,
    /// The samples.
    pub data: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a WAV file by walking its chunks.
pub fn parse(file: &[u8]) -> Result<Wav<'_>, WavError> {
    if file.len() < 12 || &file[0..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut at = 12usize;
    let mut format = None;
    while at + 8 <= file.len() {
        let id = &file[at..at + 4];
        let len = u32_at(file, at + 4).unwrap_or(0) as usize;
        let body = at + 8;
        let end = body.saturating_add(len).min(file.len());
        if id == b"fmt " {
            let b = &file[body..end];
            if b.len() < 16 {
                return Err(WavError::NoFormat);
            }
            format = Some(WavFormat {
                audio_format: u16_at(b, 0).unwrap_or(0),
                channels: u16_at(b, 2).unwrap_or(0),
                sample_rate: u32_at(b, 4).unwrap_or(0),
                bits_per_sample: u16_at(b, 14).unwrap_or(0),
            });
        } else if id == b"data" {
            let format = format.ok_or(WavError::NoFormat)?;
            return Ok(Wav {
                format,
                data: &file[body..end],
            });
        }
        // Chunks are padded to an even length.
        at = end.saturating_add(len & 1);
        if end >= file.len() {
            break;
        }
    }
    Err(if format.is_none() {
        WavError::NoFormat
    } else {
        WavError::NoData
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_the_spec_table() {
        let h = header(16_000, 640);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32_at(&h, 4), Some(36 + 640));
        assert_eq!(&h[8..16], b"WAVEfmt ");
        assert_eq!(u32_at(&h, 16), Some(16));
        assert_eq!(u16_at(&h, 20), Some(1));
        assert_eq!(u16_at(&h, 22), Some(1));
        assert_eq!(u32_at(&h, 24), Some(16_000));
        assert_eq!(u32_at(&h, 28), Some(32_000));
        assert_eq!(u16_at(&h, 32), Some(2));
        assert_eq!(u16_at(&h, 34), Some(16));
        assert_eq!(&h[36..40], b"data");
        assert_eq!(u32_at(&h, 40), Some(640));
    }

    #[test]
    fn parse_round_trips_and_skips_unknown_chunks() {
        let pcm: Vec<u8> = (0..100u8).collect();
        let file = wrap_pcm(8_000, &pcm);
        let w = parse(&file).unwrap();
        assert_eq!(w.format.sample_rate, 8_000);
        assert_eq!(w.format.channels, 1);
        assert_eq!(w.format.bits_per_sample, 16);
        assert_eq!(w.data, &pcm[..]);

        // A LIST chunk (odd length, padded) between fmt and data.
        let mut f2 = file[..36].to_vec();
        f2.extend_from_slice(b"LIST");
        f2.extend_from_slice(&3u32.to_le_bytes());
        f2.extend_from_slice(b"abc\0");
        f2.extend_from_slice(&file[36..]);
        assert_eq!(parse(&f2).unwrap().data, &pcm[..]);

        // A streaming writer's unknown length is clipped to the file.
        let mut f3 = file.clone();
        f3[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&f3).unwrap().data, &pcm[..]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse(b""), Err(WavError::NotWave));
        assert_eq!(parse(b"RIFF\0\0\0\0WAVX"), Err(WavError::NotWave));
        assert_eq!(parse(b"RIFF\0\0\0\0WAVE"), Err(WavError::NoFormat));
        let file = wrap_pcm(16_000, &[]);
        assert_eq!(parse(&file[..36]), Err(WavError::NoData));
        let mut short = file[..20].to_vec();
        short[16..20].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(parse(&short), Err(WavError::NoFormat));
        for n in 0..file.len() {
            let _ = parse(&file[..n]);
        }
    }
}
