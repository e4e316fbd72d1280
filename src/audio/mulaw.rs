//! G.711 μ-law (PCMU), exactly the classic reference algorithm of
//! `specs/providers.md` §8.2: `BIAS = 0x84`, `CLIP = 32635`, silence byte
//! `0xFF` (decodes to 0).

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// The μ-law byte for silence.
pub const SILENCE: u8 = 0xFF;

/// Encodes one linear s16 sample to a μ-law byte.
pub fn encode_sample(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = (s >> 8) & 0x80;
    if sign != 0 {
        s = -s;
    }
    if s > CLIP {
        s = CLIP;
    }
    s += BIAS;
    let top = (s >> 7) as u32;
    let exp = if top == 0 {
        0
    } else {
        31 - top.leading_zeros()
    } as i32;
    let mant = (s >> (exp + 3)) & 0x0F;
    !((sign | (exp << 4) | mant) as u8)
}

/// Decodes one μ-law byte to a linear s16 sample.
pub fn decode_sample(byte: u8) -> i16 {
    DECODE_TABLE[byte as usize]
}

const fn decode_slow(byte: u8) -> i16 {
    let u = !byte as i32;
    let mut t = ((u & 0x0F) << 3) + BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
}

const DECODE_TABLE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_slow(i as u8);
        i += 1;
    }
    table
};

/// Encodes linear samples to μ-law bytes (one byte per sample).
pub fn encode(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| encode_sample(s)).collect()
}

/// Decodes μ-law bytes to linear samples (one sample per byte).
pub fn decode(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| decode_sample(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_extremes() {
        assert_eq!(encode_sample(0), SILENCE);
        assert_eq!(decode_sample(SILENCE), 0);
        assert_eq!(decode_sample(0x7F), 0);
        assert_eq!(decode_sample(0x00), -32124);
        assert_eq!(decode_sample(0x80), 32124);
        assert_eq!(encode_sample(i16::MAX), 0x80);
        assert_eq!(encode_sample(i16::MIN), 0x00);
    }

    #[test]
    fn every_byte_round_trips_except_negative_zero() {
        for b in 0..=255u8 {
            let back = encode_sample(decode_sample(b));
            if b == 0x7F {
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, b, "byte {b:#04x}");
            }
        }
    }

    #[test]
    fn quantisation_error_is_bounded() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let back = decode_sample(encode_sample(s));
            let err = (i32::from(back) - i32::from(s)).abs();
            let mag = i32::from(s).abs().min(CLIP);
            // Half a step of the segment, steps double per segment.
            let bound = (mag + BIAS) / 16 + 8;
            let clipped = i32::from(s).abs() > CLIP;
            assert!(clipped || err <= bound, "s={s} back={back} err={err}");
        }
    }

    #[test]
    fn slices() {
        let pcm = [0i16, 1000, -1000, 30000];
        let bytes = encode(&pcm);
        assert_eq!(bytes.len(), 4);
        let back = decode(&bytes);
        assert_eq!(back[0], 0);
        assert!((back[1] - 1000).abs() < 40);
        assert!((back[2] + 1000).abs() < 40);
    }
}
