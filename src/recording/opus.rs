//! Two independent mono Opus streams in one Ogg Opus stream (RFC 7845
//! channel mapping family 1: two streams, none coupled, channel 0 = stream
//! 0, channel 1 = stream 1). Joint stereo coding lets one side leak into
//! the other and, below about 128 kbit/s, smeared speech on one side while
//! the other talked; two mono streams keep the callee and the agent apart
//! at a fraction of the rate.
//!
//! A multistream packet is every stream's packet in order, all but the
//! last in self-delimiting framing (RFC 6716 Appendix B): the packet with
//! one extra length field after its header. Packets of code 0, 1 and 2
//! (what libopus makes for 20 ms frames) are supported; code 3 is refused.

/// Why a packet could not be framed or split.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    /// Empty, truncated or inconsistent packet.
    #[error("malformed Opus packet")]
    Malformed,
    /// A code 3 packet (arbitrary frame count), which we never produce.
    #[error("Opus packet code 3 is not supported")]
    Code3,
}

/// Appends a frame length (RFC 6716 §3.2.1): one byte below 252, else two.
fn push_len(n: usize, out: &mut Vec<u8>) -> Result<(), FramingError> {
    if n < 252 {
        out.push(n as u8);
    } else if n <= 1275 {
        let first = 252 + (n & 3);
        out.push(first as u8);
        out.push(((n - first) >> 2) as u8);
    } else {
        return Err(FramingError::Malformed);
    }
    Ok(())
}

/// Reads a frame length at `at`: (length, bytes used).
fn read_len(bytes: &[u8], at: usize) -> Result<(usize, usize), FramingError> {
    let b0 = *bytes.get(at).ok_or(FramingError::Malformed)? as usize;
    if b0 < 252 {
        return Ok((b0, 1));
    }
    let b1 = *bytes.get(at + 1).ok_or(FramingError::Malformed)? as usize;
    Ok((b0 + 4 * b1, 2))
}

/// Appends `packet` in self-delimiting framing.
pub fn push_self_delimited(packet: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
    let toc = *packet.first().ok_or(FramingError::Malformed)?;
    let body = packet.len() - 1;
    match toc & 3 {
        0 => {
            out.push(toc);
            push_len(body, out)?;
            out.extend_from_slice(&packet[1..]);
        }
        1 => {
            if !body.is_multiple_of(2) {
                return Err(FramingError::Malformed);
            }
            out.push(toc);
            push_len(body / 2, out)?;
            out.extend_from_slice(&packet[1..]);
        }
        2 => {
            let (len1, used) = read_len(packet, 1)?;
            let len2 = body
                .checked_sub(used + len1)
                .ok_or(FramingError::Malformed)?;
            out.extend_from_slice(&packet[..1 + used]);
            push_len(len2, out)?;
            out.extend_from_slice(&packet[1 + used..]);
        }
        _ => return Err(FramingError::Code3),
    }
    Ok(())
}

/// Splits a self-delimited packet off the front of `bytes`: (the packet
/// in normal framing, the rest).
pub fn split_self_delimited(bytes: &[u8]) -> Result<(Vec<u8>, &[u8]), FramingError> {
    let toc = *bytes.first().ok_or(FramingError::Malformed)?;
    let take = |from: usize, n: usize| bytes.get(from..from + n).ok_or(FramingError::Malformed);
    match toc & 3 {
        0 | 1 => {
            let (len, used) = read_len(bytes, 1)?;
            let frames = if toc & 3 == 0 { len } else { 2 * len };
            let mut packet = vec![toc];
            packet.extend_from_slice(take(1 + used, frames)?);
            Ok((packet, &bytes[1 + used + frames..]))
        }
        2 => {
            let (len1, used1) = read_len(bytes, 1)?;
            let (len2, used2) = read_len(bytes, 1 + used1)?;
            let mut packet = bytes[..1 + used1].to_vec();
            let start = 1 + used1 + used2;
            packet.extend_from_slice(take(start, len1 + len2)?);
            Ok((packet, &bytes[start + len1 + len2..]))
        }
        _ => Err(FramingError::Code3),
    }
}

/// The multistream packet of two mono packets.
pub fn pack_two(first: &[u8], second: &[u8]) -> Result<Vec<u8>, FramingError> {
    let mut out = Vec::with_capacity(first.len() + second.len() + 2);
    push_self_delimited(first, &mut out)?;
    out.extend_from_slice(second);
    Ok(out)
}

/// The two mono packets of a multistream packet.
pub fn unpack_two(packet: &[u8]) -> Result<(Vec<u8>, Vec<u8>), FramingError> {
    let (first, rest) = split_self_delimited(packet)?;
    if rest.is_empty() {
        return Err(FramingError::Malformed);
    }
    Ok((first, rest.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_rfc_6716() {
        for n in [0usize, 1, 251, 252, 253, 255, 256, 1000, 1275] {
            let mut out = Vec::new();
            push_len(n, &mut out).expect("len");
            assert_eq!(out.len(), if n < 252 { 1 } else { 2 });
            assert_eq!(read_len(&out, 0), Ok((n, out.len())));
        }
        assert!(push_len(1276, &mut Vec::new()).is_err());
    }

    #[test]
    fn every_code_round_trips() {
        let code0: Vec<u8> = [0x78u8].into_iter().chain(0..=255u8).chain(0..40).collect();
        let code1: Vec<u8> = [0x79u8].into_iter().chain([7u8; 60]).collect();
        // Code 2: first frame 3 bytes, second 5.
        let code2: Vec<u8> = vec![0x7a, 3, 1, 2, 3, 9, 9, 9, 9, 9];
        for packet in [&code0, &code1, &code2] {
            let other = vec![0x78, 42, 43];
            let both = pack_two(packet, &other).expect("pack");
            assert_eq!(
                both.len(),
                packet.len() + other.len() + if packet.len() > 252 { 2 } else { 1 }
            );
            assert_eq!(unpack_two(&both), Ok((packet.clone(), other)));
        }
        assert_eq!(pack_two(&[0x7b, 1], &[0x78]), Err(FramingError::Code3));
        assert_eq!(unpack_two(&[]), Err(FramingError::Malformed));
        assert_eq!(unpack_two(&[0x78, 200, 1]), Err(FramingError::Malformed));
        assert_eq!(
            unpack_two(&[0x78, 1, 5]),
            Err(FramingError::Malformed),
            "no second stream"
        );
    }
}
