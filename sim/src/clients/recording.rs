//! Encoder round trips: a spool of two sides speaking the in-band code is
//! encoded, checked with `opusinfo`, decoded with libopus, and each
//! channel decodes to what its side said.

use std::path::{Path, PathBuf};

use talky_actors::ids::{CallId, TenantId};
use uuid::Uuid;

use crate::codec::{Decoder, Encoder};
use talky::recording::encode::{decode_file, encode_spool};
use talky::recording::spool::{Direction, SpoolHeader, encode_record};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("talky-rec-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn le(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Writes a spool: `callee` as a continuous 20 ms stream from 0, `agent`
/// sent in bursts of 10 frames (200 ms ahead) starting at `agent_at_ms`.
fn write_spool(path: &Path, callee: &[i16], agent: &[i16], agent_at_ms: u64) -> SpoolHeader {
    let header = SpoolHeader {
        sample_rate: 16_000,
        tenant: TenantId(Uuid::now_v7()),
        call: CallId(Uuid::now_v7()),
    };
    let mut bytes = header.to_bytes().to_vec();
    let callee_frames: Vec<&[i16]> = callee.chunks(320).collect();
    let agent_frames: Vec<&[i16]> = agent.chunks(320).collect();
    let mut sent_agent = 0usize;
    for (i, frame) in callee_frames.iter().enumerate() {
        let now_ms = i as u64 * 20;
        encode_record(Direction::Callee, now_ms * 1000, &le(frame), &mut bytes);
        // Keep the agent side up to 200 ms ahead of the clock, like playout.
        while now_ms >= agent_at_ms
            && sent_agent < agent_frames.len()
            && (sent_agent as u64) * 20 < now_ms - agent_at_ms + 200
        {
            encode_record(
                Direction::Agent,
                now_ms * 1000 + 500,
                &le(agent_frames[sent_agent]),
                &mut bytes,
            );
            sent_agent += 1;
        }
    }
    std::fs::write(path, bytes).expect("write spool");
    header
}

fn decode_text(pcm: &[i16]) -> String {
    let mut d = Decoder::new(16_000);
    d.push(pcm);
    d.flush();
    d.take_text()
}

fn opusinfo(path: &Path) -> String {
    let out = std::process::Command::new("opusinfo")
        .arg(path)
        .output()
        .expect("opusinfo (package opus-tools; scripts/services.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "opusinfo failed: {text}");
    assert!(
        !text.contains("WARNING") && !text.contains("ERROR"),
        "opusinfo complains: {text}"
    );
    text
}

#[test]
fn each_side_is_in_its_channel_and_survives_opus() {
    let dir = temp_dir();
    let mut enc = Encoder::new(16_000);
    let callee_text = "Yes, call me back at 5pm.";
    let agent_text = "Hello, this is Ada from talky!";
    // Callee: 0.3 s silence, the words, then silence while the agent talks.
    let mut callee = enc.silence(300);
    enc.encode_into(callee_text, &mut callee);
    let agent = enc.encode(agent_text);
    let agent_at_ms = (callee.len() as u64 / 16) + 500;
    callee.extend(enc.silence(500 + (agent.len() as u32 / 16) + 700));
    let spool = dir.join("a.spool");
    let header = write_spool(&spool, &callee, &agent, agent_at_ms);
    let out = dir.join("a.ogg");
    let encoded = encode_spool(&spool, &out).expect("encode");
    assert_eq!(encoded.header, header);
    assert_eq!(encoded.dropped, 0);
    let expected_ms = callee.len() as u64 / 16;
    assert_eq!(encoded.duration_ms, expected_ms);

    let info = opusinfo(&out);
    assert!(info.contains("Channels: 2"), "{info}");
    assert!(info.contains("Original sample rate: 16000"), "{info}");

    let decoded = decode_file(&out).expect("decode");
    assert_eq!((decoded.channels, decoded.input_rate), (2, 16_000));
    assert!(decoded.eos);
    assert_eq!(decoded.left.len(), callee.len(), "granule trims exactly");
    assert_eq!(
        decode_text(&decoded.left),
        callee_text,
        "callee on the left"
    );
    assert_eq!(
        decode_text(&decoded.right),
        agent_text,
        "agent on the right"
    );
    // The agent starts where it was sent, not at 0: the left channel is
    // silent there and the right one is not.
    let at = (agent_at_ms as usize + 100) * 16;
    let energy = |s: &[i16]| s.iter().map(|&x| i64::from(x).abs()).sum::<i64>();
    assert!(
        energy(&decoded.right[at..at + 1600]) > 100 * energy(&decoded.left[at..at + 1600]).max(1)
    );
    assert!(energy(&decoded.right[..(agent_at_ms as usize - 100) * 16]) < 16 * 1000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_spool_torn_by_a_crash_still_encodes_what_it_holds() {
    let dir = temp_dir();
    let mut enc = Encoder::new(16_000);
    let callee = enc.encode("crash");
    let spool = dir.join("b.spool");
    write_spool(&spool, &callee, &[], 0);
    let mut bytes = std::fs::read(&spool).expect("read");
    bytes.extend_from_slice(&[0, 1, 2]); // half a record header
    std::fs::write(&spool, bytes).expect("write");
    let out = dir.join("b.ogg");
    let encoded = encode_spool(&spool, &out).expect("encode");
    assert_eq!(encoded.chunks as usize, callee.len().div_ceil(320));
    opusinfo(&out);
    let decoded = decode_file(&out).expect("decode");
    assert_eq!(decode_text(&decoded.left), "crash");
    let leak = decoded.right.iter().map(|&s| s.abs()).max().unwrap_or(0);
    let peak = decoded.left.iter().map(|&s| s.abs()).max().unwrap_or(0);
    assert!(leak < 50, "agent silent, leak {leak} of {peak}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn both_sides_talking_at_once_stay_apart() {
    let dir = temp_dir();
    let mut enc = Encoder::new(16_000);
    let callee_text = "I would like a callback, hello all! ABCXYZ 0123456789 qwertyuiop";
    let agent_text = "Sure, I can do that! Lollipop llama; zebra QUIZ ~{}|";
    let mut callee = enc.encode(callee_text);
    callee.extend(enc.silence(300));
    let spool = dir.join("d.spool");
    write_spool(&spool, &callee, &enc.encode(agent_text), 100);
    let out = dir.join("d.ogg");
    encode_spool(&spool, &out).expect("encode");
    let decoded = decode_file(&out).expect("decode");
    assert_eq!(decode_text(&decoded.left), callee_text);
    assert_eq!(decode_text(&decoded.right), agent_text);
    let _ = std::fs::remove_dir_all(&dir);
}
