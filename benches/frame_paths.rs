//! Criterion micro-benchmarks of the per-frame paths of a call:
//! - caller frame in -> VAD -> STT sink (what the audio router does per
//!   20 ms frame),
//! - TTS chunk -> playout -> paced 20 ms frames out,
//! - LLM deltas -> sentence chunker.
//!
//! `cargo bench --bench frame_paths`; `cargo bench --bench frame_paths --
//! --test` runs each once (smoke).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use talky_actors::media::{Playout, PlayoutConfig, SegmentId, SentenceChunker, Vad, VadConfig};
use tokio::sync::mpsc;

fn speech_frame() -> Vec<u8> {
    (0..320)
        .flat_map(|i| {
            let v =
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin()) as i16;
            v.to_le_bytes()
        })
        .collect()
}

fn frame_in_to_stt(c: &mut Criterion) {
    let frame = speech_frame();
    let mut vad = Vad::new(VadConfig::default(), 16_000);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(100);
    c.bench_function("frame_in_to_stt_sink", |b| {
        b.iter(|| {
            let event = vad.push_frame(black_box(&frame));
            let _ = tx.try_send(frame.clone());
            let _ = rx.try_recv();
            black_box(event)
        })
    });
}

fn tts_chunk_to_frames(c: &mut Criterion) {
    // Steady state: a 100 ms TTS chunk arrives, five 20 ms polls send it.
    let chunk = vec![0x10u8; 3200];
    c.bench_function("tts_chunk_to_paced_frames_100ms", |b| {
        let mut playout = Playout::new(PlayoutConfig::new(16_000));
        let mut now = Instant::now();
        let mut segment = 0u64;
        b.iter(|| {
            segment += 1;
            let id = SegmentId(segment);
            playout.begin_segment(id, "twelve chars");
            let _ = playout.push_audio(id, black_box(&chunk));
            playout.end_segment(id);
            let mut sent = 0;
            for _ in 0..5 {
                sent += playout.poll(now).len();
                now += Duration::from_millis(20);
            }
            if segment.is_multiple_of(100) {
                // Close the turn now and then so the record stays small.
                black_box(playout.clear(now));
            }
            black_box(sent)
        })
    });
}

fn chunker(c: &mut Criterion) {
    let reply = "Sure, I can help with that. Our basic plan costs ten dollars a month, \
                 and the premium plan adds support for twenty. Would you like me to send \
                 you the details by email today?";
    let deltas: Vec<String> = reply.split_inclusive(' ').map(str::to_string).collect();
    c.bench_function("chunker_40_token_reply", |b| {
        b.iter(|| {
            let mut chunker = SentenceChunker::new();
            let mut n = 0;
            for d in &deltas {
                n += chunker.push(black_box(d)).len();
            }
            n + usize::from(chunker.flush().is_some())
        })
    });
}

criterion_group!(benches, frame_in_to_stt, tts_chunk_to_frames, chunker);
criterion_main!(benches);
