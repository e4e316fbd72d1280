//! Criterion micro-benchmarks of the simulated world's in-band codec
//! (`talky_sim::codec`): decoding one 20 ms frame (what every emulated
//! ear pays per frame) and encoding one sentence, plus the audio helpers
//! on the same path (16k -> 8k -> 16k resampling and mu-law of a frame).
//!
//! `cargo bench -p talky-sim --bench codec`; `... -- --test` runs
//! each once (smoke).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use talky::audio::{mulaw, resample};
use talky_sim::codec::{Decoder, Encoder, SAMPLE_RATE};

const SENTENCE: &str = "Hello, this is Anna from Talky. Do you have a minute?";

fn decode_frame(c: &mut Criterion) {
    let mut enc = Encoder::new(SAMPLE_RATE);
    let mut pcm = enc.encode(SENTENCE);
    pcm.extend(enc.silence(400));
    let frames: Vec<&[i16]> = pcm.chunks_exact(320).collect();
    let mut dec = Decoder::new(SAMPLE_RATE);
    let mut i = 0;
    let mut out = Vec::new();
    c.bench_function("codec_decode_20ms_frame_16k", |b| {
        b.iter(|| {
            out.clear();
            dec.push_into(black_box(frames[i % frames.len()]), &mut out);
            i += 1;
            black_box(out.len())
        })
    });
    let mut enc8 = Encoder::new(8_000);
    let mut pcm8 = enc8.encode(SENTENCE);
    pcm8.extend(enc8.silence(400));
    let frames8: Vec<&[i16]> = pcm8.chunks_exact(160).collect();
    let mut dec8 = Decoder::new(8_000);
    let mut j = 0;
    c.bench_function("codec_decode_20ms_frame_8k", |b| {
        b.iter(|| {
            out.clear();
            dec8.push_into(black_box(frames8[j % frames8.len()]), &mut out);
            j += 1;
            black_box(out.len())
        })
    });
}

fn encode_sentence(c: &mut Criterion) {
    let mut enc = Encoder::new(SAMPLE_RATE);
    let mut out = Vec::new();
    c.bench_function("codec_encode_sentence_52_chars_16k", |b| {
        b.iter(|| {
            out.clear();
            enc.encode_into(black_box(SENTENCE), &mut out);
            black_box(out.len())
        })
    });
}

fn audio_helpers(c: &mut Criterion) {
    let frame = Encoder::new(SAMPLE_RATE).encode("ab")[..320].to_vec();
    let mut down = resample::Downsampler::new();
    let mut up = resample::Upsampler::new();
    let mut n8 = Vec::new();
    let mut n16 = Vec::new();
    c.bench_function("resample_16k_8k_16k_20ms_frame", |b| {
        b.iter(|| {
            n8.clear();
            n16.clear();
            down.process_into(black_box(&frame), &mut n8);
            up.process_into(&n8, &mut n16);
            black_box(n16.len())
        })
    });
    let frame8 = &frame[..160];
    c.bench_function("mulaw_encode_decode_20ms_frame", |b| {
        b.iter(|| black_box(mulaw::decode(&mulaw::encode(black_box(frame8)))))
    });
}

criterion_group!(benches, decode_frame, encode_sentence, audio_helpers);
criterion_main!(benches);
