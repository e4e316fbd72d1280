//! The real client against the emulator on loopback.

use std::sync::Arc;
use std::time::Duration;

use talky::audio::wav;
use talky::config::Secret;
use talky::providers::breaker::CircuitBreaker;
use talky_actors::ports::{PortError, SttConfig, SttEvent, SttPort, SttSession};
use tokio::sync::mpsc;

use crate::codec::{Encoder, normalize};
use crate::whisper::{FailRule, WhisperSim, WhisperSimConfig, WhisperSimHandle};
use talky::audio::pcm::i16_to_bytes;
use talky::providers::breaker::BreakerState;
use talky::providers::whisper::*;

const RATE: u32 = 16_000;

async fn sim() -> WhisperSimHandle {
    WhisperSim::start(WhisperSimConfig::default())
        .await
        .unwrap()
}

fn breaker(threshold: u32, open_for: Duration) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("whisper", threshold, open_for))
}

fn config(sim: &WhisperSimHandle) -> WhisperConfig {
    let mut cfg = WhisperConfig::with_base_url(sim.base_url(), Secret::new(sim.api_key()));
    cfg.request_timeout = Duration::from_secs(3);
    cfg.backoff_base = Duration::from_millis(20);
    cfg
}

fn client(sim: &WhisperSimHandle) -> WhisperStt {
    WhisperStt::new(config(sim), breaker(5, Duration::from_secs(30))).unwrap()
}

fn stt() -> SttConfig {
    SttConfig {
        language: "en-US".into(),
        sample_rate: RATE,
    }
}

/// Speech of `text` at `rate` as s16le bytes.
fn speech(text: &str, rate: u32) -> Vec<u8> {
    i16_to_bytes(&Encoder::new(rate).encode(text))
}

fn silence(ms: u32, rate: u32) -> Vec<u8> {
    i16_to_bytes(&Encoder::new(rate).silence(ms))
}

/// Sends `pcm` as 20 ms frames.
async fn send(session: &SttSession, pcm: &[u8], rate: u32) {
    for f in pcm.chunks(rate as usize / 50 * 2) {
        session.audio.send(f.to_vec()).await.unwrap();
    }
}

async fn collect(mut events: mpsc::Receiver<SttEvent>) -> Vec<SttEvent> {
    let mut out = Vec::new();
    let all = async {
        while let Some(e) = events.recv().await {
            out.push(e);
        }
    };
    tokio::time::timeout(Duration::from_secs(15), all)
        .await
        .expect("session ended");
    out
}

fn final_of(text: &str, speech_final: bool) -> SttEvent {
    SttEvent::Final {
        text: normalize(text),
        speech_final,
    }
}

#[tokio::test]
async fn utterances_are_cut_by_silence_and_transcribed() {
    let sim = sim().await;
    let stt_client = client(&sim);
    for rate in [16_000, 8_000] {
        let session = stt_client
            .open(SttConfig {
                language: "en-US".into(),
                sample_rate: rate,
            })
            .await
            .unwrap();
        let mut audio = silence(400, rate);
        audio.extend(speech("Hello, is this Anna?", rate));
        audio.extend(silence(800, rate));
        audio.extend(speech("Yes it is.", rate));
        audio.extend(silence(700, rate));
        send(&session, &audio, rate).await;
        let SttSession { audio, events } = session;
        drop(audio);
        let evs = collect(events).await;
        // SpeechStarted is immediate, a Final waits for its upload: the
        // next utterance may start before the last one's Final.
        assert_eq!(evs[0], SttEvent::SpeechStarted, "at {rate} Hz");
        let starts = evs
            .iter()
            .filter(|e| **e == SttEvent::SpeechStarted)
            .count();
        let finals: Vec<_> = evs
            .iter()
            .filter(|e| matches!(e, SttEvent::Final { .. }))
            .cloned()
            .collect();
        assert_eq!(starts, 2, "at {rate} Hz: {evs:?}");
        assert_eq!(
            finals,
            vec![
                final_of("Hello, is this Anna?", true),
                final_of("Yes it is.", true)
            ],
            "at {rate} Hz"
        );
    }
    let reqs = sim.requests();
    assert_eq!(reqs.len(), 4);
    let r = &reqs[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.path, "/openai/v1/audio/transcriptions");
    assert_eq!(r.authorization.as_deref(), Some("Bearer sim-key"));
    assert!(
        r.content_type
            .as_deref()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    assert_eq!(r.fields["model"], DEFAULT_MODEL);
    assert_eq!(r.fields["language"], "en");
    assert_eq!(r.fields["response_format"], "json");
    assert_eq!(r.fields["temperature"], "0");
    assert_eq!(r.file_name.as_deref(), Some("utterance.wav"));
    assert_eq!(r.file_content_type.as_deref(), Some("audio/wav"));
    assert_eq!(&r.file[..4], b"RIFF");
    let w = wav::parse(&r.file).unwrap();
    assert_eq!(w.format.sample_rate, 16_000);
    assert_eq!(r.file.len(), wav::HEADER_LEN + w.data.len());
    assert_eq!(wav::parse(&reqs[2].file).unwrap().format.sample_rate, 8_000);
}

#[tokio::test]
async fn dropping_the_sender_flushes_the_utterance_in_progress() {
    let sim = sim().await;
    let session = client(&sim).open(stt()).await.unwrap();
    let mut audio = silence(200, RATE);
    audio.extend(speech("cut short", RATE));
    send(&session, &audio, RATE).await;
    let SttSession { audio, events } = session;
    drop(audio);
    assert_eq!(
        collect(events).await,
        vec![SttEvent::SpeechStarted, final_of("cut short", true)]
    );
}

#[tokio::test]
async fn noise_without_words_emits_no_final() {
    let sim = sim().await;
    let session = client(&sim).open(stt()).await.unwrap();
    // A loud single tone: speech to the VAD, no symbol to the decoder.
    let tone: Vec<i16> = (0..RATE / 2)
        .map(|i| (8000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 16000.0).sin()) as i16)
        .collect();
    let mut audio = i16_to_bytes(&tone);
    audio.extend(silence(700, RATE));
    send(&session, &audio, RATE).await;
    let SttSession { audio, events } = session;
    drop(audio);
    assert_eq!(collect(events).await, vec![SttEvent::SpeechStarted]);
    assert_eq!(sim.requests()[0].heard.as_deref(), Some(""));
}

#[tokio::test]
async fn a_long_utterance_is_cut_at_the_cap() {
    let sim = sim().await;
    let mut cfg = config(&sim);
    cfg.max_utterance = Duration::from_millis(1500);
    let c = WhisperStt::new(cfg, breaker(5, Duration::from_secs(30))).unwrap();
    let session = c.open(stt()).await.unwrap();
    let text = "one two three four five six seven eight nine ten";
    let mut audio = speech(text, RATE);
    audio.extend(silence(700, RATE));
    send(&session, &audio, RATE).await;
    let SttSession { audio, events } = session;
    drop(audio);
    let evs = collect(events).await;
    let finals: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            SttEvent::Final { speech_final, .. } => Some(*speech_final),
            _ => None,
        })
        .collect();
    assert!(finals.len() >= 2, "{evs:?}");
    assert!(!finals[0]);
    assert!(*finals.last().unwrap());
}

#[tokio::test]
async fn auth_and_validation_errors_are_rejections_without_retry() {
    let sim = sim().await;
    let mut cfg = config(&sim);
    cfg.api_key = Secret::new("wrong");
    let c = WhisperStt::new(cfg, breaker(5, Duration::from_secs(30))).unwrap();
    let pcm = speech("hi", RATE);
    let e = c.transcribe(&pcm, RATE, "en").await.unwrap_err();
    assert!(
        matches!(&e, PortError::Rejected(m) if m.contains("401")),
        "{e}"
    );
    assert_eq!(sim.request_count(), 1);

    let mut cfg = config(&sim);
    cfg.model = "distil-whisper-large-v3-en".into();
    let c = WhisperStt::new(cfg, breaker(5, Duration::from_secs(30))).unwrap();
    let e = c.transcribe(&pcm, RATE, "en").await.unwrap_err();
    assert!(
        matches!(&e, PortError::Rejected(m) if m.contains("404")),
        "{e}"
    );
    // A rate the emulator does not take is its 400.
    let e = client(&sim)
        .transcribe(&speech("hi", 24_000), 24_000, "en")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PortError::Rejected(m) if m.contains("400")),
        "{e}"
    );
    assert_eq!(sim.request_count(), 3);

    // Through a session: one Error event, then the end.
    let mut cfg = config(&sim);
    cfg.api_key = Secret::new("wrong");
    let c = WhisperStt::new(cfg, breaker(5, Duration::from_secs(30))).unwrap();
    let session = c.open(stt()).await.unwrap();
    let mut audio = speech("hello", RATE);
    audio.extend(silence(700, RATE));
    send(&session, &audio, RATE).await;
    let evs = collect(session.events).await;
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert!(matches!(evs[1], SttEvent::Error(PortError::Rejected(_))));
}

#[tokio::test]
async fn rate_limit_waits_retry_after_then_succeeds() {
    let sim = sim().await;
    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 429,
            retry_after: Some("1".into()),
            next: 1,
            after: None,
        })
    });
    let t0 = std::time::Instant::now();
    let text = client(&sim)
        .transcribe(&speech("again", RATE), RATE, "en")
        .await
        .unwrap();
    assert_eq!(text, "again");
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200]);
    // A Retry-After beyond the cap ends the retries at once.
    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 429,
            retry_after: Some("60".into()),
            next: 1,
            after: None,
        })
    });
    let e = client(&sim)
        .transcribe(&speech("again", RATE), RATE, "en")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        PortError::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let sim = sim().await;
    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 503,
            retry_after: None,
            next: 10,
            after: None,
        })
    });
    let e = client(&sim)
        .transcribe(&speech("x", RATE), RATE, "en")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PortError::Unavailable(m) if m.contains("503")),
        "{e}"
    );
    assert_eq!(sim.request_count(), 1 + DEFAULT_MAX_RETRIES as usize);
    // Two failures then success: retried through.
    sim.update(|c| c.fail.as_mut().unwrap().next = 2);
    let text = client(&sim)
        .transcribe(&speech("x", RATE), RATE, "en")
        .await
        .unwrap();
    assert_eq!(text, "x");
}

#[tokio::test]
async fn malformed_body_is_a_protocol_error() {
    let sim = sim().await;
    sim.update(|c| c.malformed = true);
    let e = client(&sim)
        .transcribe(&speech("x", RATE), RATE, "en")
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::Protocol(_)), "{e}");
    assert_eq!(sim.request_count(), 1);
}

#[tokio::test]
async fn half_open_times_out() {
    let sim = sim().await;
    sim.update(|c| c.half_open = true);
    let mut cfg = config(&sim);
    cfg.request_timeout = Duration::from_millis(300);
    cfg.max_retries = 1;
    let c = WhisperStt::new(cfg, breaker(5, Duration::from_secs(30))).unwrap();
    let t0 = std::time::Instant::now();
    let e = c
        .transcribe(&speech("x", RATE), RATE, "en")
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(sim.request_count(), 2);
    // A dead port (nothing listening) is Unavailable, not a hang.
    let mut cfg = WhisperConfig::with_base_url("http://127.0.0.1:9", Secret::new("k"));
    cfg.max_retries = 0;
    let c = WhisperStt::new(cfg, breaker(5, Duration::from_secs(30))).unwrap();
    let e = c.transcribe(b"\0\0", RATE, "en").await.unwrap_err();
    assert!(matches!(e, PortError::Unavailable(_)), "{e}");
}

#[tokio::test]
async fn breaker_opens_after_failures_and_a_good_probe_closes_it() {
    let sim = sim().await;
    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 500,
            retry_after: None,
            next: 2,
            after: None,
        })
    });
    let mut cfg = config(&sim);
    cfg.max_retries = 0;
    let b = breaker(2, Duration::from_millis(300));
    let c = WhisperStt::new(cfg, b.clone()).unwrap();
    let pcm = speech("probe", RATE);
    for _ in 0..2 {
        let e = c.transcribe(&pcm, RATE, "en").await.unwrap_err();
        assert!(matches!(e, PortError::Unavailable(_)), "{e}");
    }
    assert_eq!(b.state(), BreakerState::Open);
    let e = c.transcribe(&pcm, RATE, "en").await.unwrap_err();
    assert!(
        matches!(&e, PortError::Unavailable(m) if m.contains("circuit open")),
        "{e}"
    );
    assert_eq!(sim.request_count(), 2, "refused without a request");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(c.transcribe(&pcm, RATE, "en").await.unwrap(), "probe");
    assert_eq!(b.state(), BreakerState::Closed);
}
