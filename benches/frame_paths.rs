//! Criterion micro-benchmarks of the per-frame paths of a call:
//! - caller frame in -> VAD -> STT sink (what the audio router does per
//!   20 ms frame),
//! - TTS chunk -> playout -> paced 20 ms frames out,
//! - LLM deltas -> sentence chunker,
//! - Twilio's media gateway, per 20 ms frame: callee μ-law (160 bytes,
//!   8 kHz) -> 640 bytes of 16 kHz PCM, agent PCM -> μ-law, each alone
//!   (the conversion) and with the Media Streams JSON + base64 text frame
//!   around it (what a Vonage call, binary PCM frames, does not pay).
//!
//! `cargo bench --bench frame_paths`; `cargo bench --bench frame_paths --
//! --test` runs each once (smoke).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use talky::providers::twilio::socket::{
    InboundAudio, Media, MediaBridge, OutboundAudio, Start, StreamEvent,
};
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

/// One 20 ms payload of the callee as Twilio sends it: the speech frame
/// in 8 kHz μ-law.
fn mulaw_frame() -> Vec<u8> {
    let mut out = Vec::new();
    OutboundAudio::new().push(&speech_frame(), &mut out);
    out.pop().unwrap_or_else(|| vec![0xff; 160])
}

/// Times one converter's `push` of `frame`, the payloads it completes
/// collected into a reused vector (as the gateway does).
fn bench_push(
    c: &mut Criterion,
    name: &str,
    frame: &[u8],
    mut push: impl FnMut(&[u8], &mut Vec<Vec<u8>>),
) {
    c.bench_function(name, |b| {
        let mut out = Vec::with_capacity(2);
        b.iter(|| {
            out.clear();
            push(black_box(frame), &mut out);
            black_box(out.len())
        })
    });
}

fn twilio_conversion(c: &mut Criterion) {
    let mulaw = mulaw_frame();
    assert_eq!(mulaw.len(), 160);
    let mut inbound = InboundAudio::new();
    bench_push(c, "twilio_mulaw160_8k_to_pcm640_16k", &mulaw, |f, out| {
        inbound.push(f, out)
    });
    let mut outbound = OutboundAudio::new();
    bench_push(
        c,
        "twilio_pcm640_16k_to_mulaw160_8k",
        &speech_frame(),
        |f, out| outbound.push(f, out),
    );
}

fn twilio_bridge() -> MediaBridge {
    let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",
      "start":{"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","accountSid":"AC0","callSid":"CA0",
      "tracks":["inbound"],"customParameters":{},
      "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
    let start: Start = match StreamEvent::parse(start) {
        Ok(StreamEvent::Start(s)) => s,
        other => panic!("the bench's start frame: {other:?}"),
    };
    MediaBridge::new(&start).expect("μ-law 8 kHz is supported")
}

fn twilio_messages(c: &mut Criterion) {
    let text = StreamEvent::Media(Media {
        sequence_number: Some(42),
        stream_sid: Some("MZ18ad3ab5a668481ce02b83e7395059f0".into()),
        track: Some("inbound".into()),
        chunk: Some(41),
        timestamp_ms: Some(820),
        payload: mulaw_frame(),
    })
    .to_text();
    let pcm = speech_frame();
    c.bench_function("twilio_media_message_in_to_pcm640", |b| {
        let mut bridge = twilio_bridge();
        b.iter(|| {
            let event = StreamEvent::parse(black_box(&text)).expect("media");
            black_box(bridge.inbound(event))
        })
    });
    c.bench_function("twilio_pcm640_to_media_message_out", |b| {
        let mut bridge = twilio_bridge();
        b.iter(|| {
            black_box(bridge.outbound(talky_actors::ports::MediaOut::Audio(black_box(pcm.clone()))))
        })
    });
}

criterion_group!(
    benches,
    frame_in_to_stt,
    tts_chunk_to_frames,
    chunker,
    twilio_conversion,
    twilio_messages
);
criterion_main!(benches);
