//! s16 little-endian bytes <-> `i16` samples (the L16 of every provider in
//! `specs/providers.md`; never byte-swapped), plus a level meter.

/// Decodes s16le bytes to samples. A trailing odd byte is ignored.
pub fn bytes_to_i16(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Encodes samples as s16le bytes.
pub fn i16_to_bytes(samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    extend_bytes(&mut out, samples);
    out
}

/// Appends samples as s16le bytes to `out`.
pub fn extend_bytes(out: &mut Vec<u8>, samples: &[i16]) {
    out.reserve(samples.len() * 2);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// RMS level in dBFS (0 dBFS = 32768); `f64::NEG_INFINITY` for digital
/// silence or an empty slice.
pub fn rms_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    if rms == 0.0 {
        f64::NEG_INFINITY
    } else {
        20.0 * (rms / 32768.0).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_round_trip() {
        let s = [0i16, 1, -1, i16::MAX, i16::MIN, 0x1234];
        let b = i16_to_bytes(&s);
        assert_eq!(&b[..6], &[0, 0, 1, 0, 0xFF, 0xFF]);
        assert_eq!(&b[10..], &[0x34, 0x12]);
        assert_eq!(bytes_to_i16(&b), s);
        let mut odd = b.clone();
        odd.push(7);
        assert_eq!(bytes_to_i16(&odd), s);
    }

    #[test]
    fn levels() {
        assert_eq!(rms_dbfs(&[0; 10]), f64::NEG_INFINITY);
        let full = [i16::MIN; 4];
        assert!(rms_dbfs(&full).abs() < 1e-9);
        let tenth = [3277i16, -3277];
        assert!((rms_dbfs(&tenth) + 20.0).abs() < 0.01);
    }
}
