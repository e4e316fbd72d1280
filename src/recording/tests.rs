//! The encoder's pure checks: an empty or broken spool, and the Ogg Opus
//! header packets. Round trips of speech (a spool of two sides speaking the
//! in-band code) live with the code in `talky-sim` (`clients/recording.rs`).

use std::path::PathBuf;

use talky_actors::ids::{CallId, TenantId};
use uuid::Uuid;

use super::encode::{self, decode_file, encode_spool};
use super::spool::SpoolHeader;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("talky-rec-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn an_empty_spool_makes_a_valid_file_and_junk_is_refused() {
    let dir = temp_dir();
    let spool = dir.join("c.spool");
    // A spool with its header and no record.
    let header = SpoolHeader {
        sample_rate: 16_000,
        tenant: TenantId(Uuid::now_v7()),
        call: CallId(Uuid::now_v7()),
    };
    std::fs::write(&spool, header.to_bytes()).expect("write spool");
    let out = dir.join("c.ogg");
    let encoded = encode_spool(&spool, &out).expect("encode");
    assert_eq!((encoded.chunks, encoded.duration_ms), (0, 0));
    assert!(decode_file(&out).expect("decode").left.is_empty());
    std::fs::write(&spool, b"not a spool").expect("write");
    assert!(matches!(
        encode_spool(&spool, &out),
        Err(encode::EncodeError::Spool(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ogg_header_packets_follow_rfc_7845() {
    let head = encode::opus_head(312, 16_000);
    assert_eq!(head.len(), 23);
    assert_eq!(&head[..8], b"OpusHead");
    assert_eq!(head[8], 1);
    assert_eq!(head[9], 2);
    assert_eq!(u16::from_le_bytes([head[10], head[11]]), 312);
    assert_eq!(
        u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
        16_000
    );
    assert_eq!(
        &head[18..],
        &[1, 2, 0, 0, 1],
        "family 1, two uncoupled streams"
    );
    let tags = encode::opus_tags("TITLE=x");
    assert_eq!(&tags[..8], b"OpusTags");
    assert_eq!(
        u32::from_le_bytes([tags[8], tags[9], tags[10], tags[11]]),
        5
    );
}
