use std::sync::Arc;

use talky::config::Secret;

use std::time::Duration;

use talky_actors::ports::{PortError, SttConfig, SttEvent, SttPort, SttSession};
use tokio::sync::mpsc;

use crate::codec::Encoder;
use crate::deepgram::{DeepgramSim, DeepgramSimConfig, DeepgramSimHandle, FailHandshake};
use talky::audio::pcm::i16_to_bytes;
use talky::providers::breaker::{BreakerState, CircuitBreaker};
use talky::providers::deepgram_stt::*;

const RATE: u32 = 16_000;
/// 20 ms at 16 kHz.
const FRAME: usize = 320;

fn stt_cfg() -> SttConfig {
    SttConfig {
        language: "en-US".into(),
        sample_rate: RATE,
    }
}

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("deepgram", 5, Duration::from_secs(30)))
}

fn client_with(
    sim: &DeepgramSimHandle,
    breaker: Arc<CircuitBreaker>,
    tweak: impl FnOnce(&mut DeepgramSttConfig),
) -> DeepgramStt {
    let mut cfg = DeepgramSttConfig::with_base_url(sim.base_url(), Secret::new(sim.api_key()));
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.idle_timeout = Duration::from_secs(3);
    tweak(&mut cfg);
    DeepgramStt::new(cfg, breaker).expect("client")
}

fn client(sim: &DeepgramSimHandle) -> DeepgramStt {
    client_with(sim, breaker(), |_| {})
}

async fn sim_with(tweak: impl FnOnce(&mut DeepgramSimConfig)) -> DeepgramSimHandle {
    let mut cfg = DeepgramSimConfig::default();
    tweak(&mut cfg);
    DeepgramSim::start(cfg).await.expect("sim")
}

/// `silence_before` ms, then each text followed by its silence (ms).
fn speech(parts: &[(&str, u32)]) -> Vec<i16> {
    let mut enc = Encoder::new(RATE);
    let mut pcm = enc.silence(200);
    for (text, after) in parts {
        pcm.extend(enc.encode(text));
        pcm.extend(enc.silence(*after));
    }
    pcm
}

/// Sends `pcm` in 20 ms frames, one every `pace`.
async fn feed(audio: &mpsc::Sender<Vec<u8>>, pcm: &[i16], pace: Duration) {
    for frame in pcm.chunks(FRAME) {
        if audio.send(i16_to_bytes(frame)).await.is_err() {
            return;
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
}

/// Events until `stop` matches one (included), the channel closes, or 10 s.
async fn collect(
    events: &mut mpsc::Receiver<SttEvent>,
    stop: impl FnMut(&SttEvent) -> bool,
) -> Vec<SttEvent> {
    talky_actors::testing::recv_until(events, Duration::from_secs(10), stop).await
}

fn finals(evs: &[SttEvent]) -> Vec<(String, bool)> {
    evs.iter()
        .filter_map(|e| match e {
            SttEvent::Final { text, speech_final } => Some((text.clone(), *speech_final)),
            _ => None,
        })
        .collect()
}

fn is_error(e: &SttEvent) -> bool {
    matches!(e, SttEvent::Error(_))
}

const PACE: Duration = Duration::from_millis(5);

#[tokio::test]
async fn one_utterance_yields_speech_started_prefix_interims_final_then_utterance_end() {
    let sim = sim_with(|_| {}).await;
    let stt = client(&sim);
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let text = "Hello, is this Anna?";
    let pcm = speech(&[(text, 1300)]);
    let feeder = tokio::spawn(async move {
        feed(&audio, &pcm, PACE).await;
        audio
    });
    let evs = collect(&mut events, |e| {
        matches!(e, SttEvent::UtteranceEnd) || is_error(e)
    })
    .await;
    let _audio = feeder.await.unwrap();
    assert_eq!(evs.first(), Some(&SttEvent::SpeechStarted), "{evs:?}");
    assert_eq!(evs.last(), Some(&SttEvent::UtteranceEnd), "{evs:?}");
    let interims: Vec<&String> = evs
        .iter()
        .filter_map(|e| match e {
            SttEvent::Interim(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(interims.len() >= 2, "{evs:?}");
    for i in &interims {
        assert!(text.starts_with(i.as_str()), "interim {i:?} not a prefix");
    }
    assert_eq!(finals(&evs), vec![(text.to_string(), true)]);
    let final_at = evs
        .iter()
        .position(|e| matches!(e, SttEvent::Final { .. }))
        .unwrap();
    assert!(
        evs[..final_at]
            .iter()
            .all(|e| !matches!(e, SttEvent::UtteranceEnd))
    );
    let req = &sim.requests()[0];
    let q = |k: &str| {
        req.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(req.status, 101);
    assert_eq!(q("encoding").as_deref(), Some("linear16"));
    assert_eq!(q("sample_rate").as_deref(), Some("16000"));
    assert_eq!(q("language").as_deref(), Some("en-US"));
    assert_eq!(q("model").as_deref(), Some("nova-3"));
    assert_eq!(q("endpointing").as_deref(), Some("300"));
    assert_eq!(q("utterance_end_ms").as_deref(), Some("1000"));
    assert_eq!(q("vad_events").as_deref(), Some("true"));
    assert_eq!(q("interim_results").as_deref(), Some("true"));
    assert_eq!(
        req.authorization.as_deref(),
        Some(format!("Token {}", sim.api_key()).as_str())
    );
}

#[tokio::test]
async fn two_utterances_with_a_pause_give_two_finals() {
    let sim = sim_with(|_| {}).await;
    let stt = client(&sim);
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let pcm = speech(&[("Yes.", 600), ("Call me tomorrow.", 600)]);
    let feeder = tokio::spawn(async move {
        feed(&audio, &pcm, PACE).await;
        audio
    });
    let mut n = 0;
    let evs = collect(&mut events, |e| {
        if matches!(e, SttEvent::Final { .. }) {
            n += 1;
        }
        n == 2 || is_error(e)
    })
    .await;
    drop(feeder.await.unwrap());
    assert_eq!(
        finals(&evs),
        vec![
            ("Yes.".to_string(), true),
            ("Call me tomorrow.".to_string(), true)
        ]
    );
    let started = evs
        .iter()
        .filter(|e| matches!(e, SttEvent::SpeechStarted))
        .count();
    assert_eq!(started, 2, "{evs:?}");
}

#[tokio::test]
async fn dropping_audio_finalizes_pending_text_and_closes_cleanly() {
    let sim = sim_with(|_| {}).await;
    let stt = client(&sim);
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let pcm = speech(&[("Hello", 40)]);
    feed(&audio, &pcm, Duration::ZERO).await;
    drop(audio);
    let evs = collect(&mut events, |_| false).await;
    assert!(!evs.iter().any(is_error), "{evs:?}");
    assert_eq!(finals(&evs), vec![("Hello".to_string(), false)]);
    let log = &sim.sessions()[0];
    assert_eq!(log.received_count("Finalize"), 1);
    assert_eq!(log.received_count("CloseStream"), 1);
    let fin = log.sent_of_type("Results");
    assert!(fin.iter().any(|r| r["from_finalize"] == true));
    assert_eq!(log.sent_of_type("Metadata").len(), 1);
    assert_eq!(log.close_sent, Some((1000, String::new())));
    // The client answered the close: the emulator's socket ended promptly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.sessions()[0].ended);
    assert_eq!(log.audio_bytes, (pcm.len() * 2) as u64);
}

#[tokio::test]
async fn keepalive_is_sent_while_no_audio_flows() {
    let sim = sim_with(|_| {}).await;
    let stt = client_with(&sim, breaker(), |c| {
        c.keepalive_every = Duration::from_millis(100);
    });
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    feed(&audio, &speech(&[("Hi", 100)]), Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(550)).await;
    let n = sim.sessions()[0].received_count("KeepAlive");
    assert!((2..=8).contains(&n), "{n} keep-alives");
    drop(audio);
    let evs = collect(&mut events, |_| false).await;
    assert!(!evs.iter().any(is_error), "{evs:?}");
}

#[tokio::test]
async fn wrong_key_is_rejected_and_does_not_count_against_the_breaker() {
    let sim = sim_with(|_| {}).await;
    let b = Arc::new(CircuitBreaker::new("deepgram", 1, Duration::from_secs(30)));
    let stt = client_with(&sim, b.clone(), |c| c.api_key = Secret::new("nope"));
    let err = stt.open(stt_cfg()).await.unwrap_err();
    assert!(matches!(err, PortError::Rejected(_)), "{err:?}");
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(sim.requests()[0].status, 401);
}

#[tokio::test]
async fn handshake_503_is_unavailable_and_opens_the_breaker() {
    let sim = sim_with(|c| {
        c.fail_handshake = Some(FailHandshake {
            status: 503,
            next: 5,
        })
    })
    .await;
    let b = Arc::new(CircuitBreaker::new("deepgram", 2, Duration::from_secs(30)));
    let stt = client_with(&sim, b.clone(), |_| {});
    for _ in 0..2 {
        let err = stt.open(stt_cfg()).await.unwrap_err();
        assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    }
    assert_eq!(b.state(), BreakerState::Open);
    let err = stt.open(stt_cfg()).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Unavailable(m) if m.contains("circuit")),
        "{err:?}"
    );
    assert_eq!(sim.requests().len(), 2, "an open breaker sends nothing");
}

#[tokio::test]
async fn handshake_429_is_rate_limited() {
    let sim = sim_with(|c| {
        c.fail_handshake = Some(FailHandshake {
            status: 429,
            next: 1,
        })
    })
    .await;
    let stt = client(&sim);
    let err = stt.open(stt_cfg()).await.unwrap_err();
    assert!(matches!(err, PortError::RateLimited { .. }), "{err:?}");
    // The next connect goes through.
    stt.open(stt_cfg()).await.expect("second open");
}

#[tokio::test]
async fn socket_dropped_mid_utterance_is_an_error_event() {
    let sim = sim_with(|c| c.drop_after_frames = Some(20)).await;
    let b = Arc::new(CircuitBreaker::new("deepgram", 1, Duration::from_secs(30)));
    let stt = client_with(&sim, b.clone(), |_| {});
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let pcm = speech(&[("This sentence is cut short", 500)]);
    let feeder = tokio::spawn(async move {
        feed(&audio, &pcm, PACE).await;
        audio
    });
    let evs = collect(&mut events, is_error).await;
    assert!(
        matches!(evs.last(), Some(SttEvent::Error(PortError::Unavailable(_)))),
        "{evs:?}"
    );
    // Nothing after the error: the channel closes.
    let after = tokio::time::timeout(Duration::from_secs(2), events.recv()).await;
    assert_eq!(after, Ok(None));
    assert_eq!(b.state(), BreakerState::Open, "a broken session counts");
    drop(feeder.await.unwrap());
    assert_eq!(sim.sessions()[0].audio_frames, 20);
}

#[tokio::test]
async fn socket_dropped_after_a_while_is_an_error_event() {
    let sim = sim_with(|c| c.drop_after = Some(Duration::from_millis(150))).await;
    let stt = client(&sim);
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let evs = collect(&mut events, is_error).await;
    assert!(
        matches!(evs.last(), Some(SttEvent::Error(PortError::Unavailable(_)))),
        "{evs:?}"
    );
    drop(audio);
}

#[tokio::test]
async fn transcribes_at_8_khz() {
    let sim = sim_with(|_| {}).await;
    let stt = client(&sim);
    let cfg = SttConfig {
        language: "en".into(),
        sample_rate: 8_000,
    };
    let SttSession { audio, mut events } = stt.open(cfg).await.expect("open");
    let mut enc = Encoder::new(8_000);
    let mut pcm = enc.silence(100);
    pcm.extend(enc.encode("Eight kilohertz, fine."));
    pcm.extend(enc.silence(500));
    let feeder = tokio::spawn(async move {
        for f in pcm.chunks(160) {
            if audio.send(i16_to_bytes(f)).await.is_err() {
                break;
            }
        }
        audio
    });
    let evs = collect(&mut events, |e| {
        matches!(e, SttEvent::Final { .. }) || is_error(e)
    })
    .await;
    drop(feeder.await.unwrap());
    assert_eq!(
        finals(&evs),
        vec![("Eight kilohertz, fine.".to_string(), true)]
    );
    assert_eq!(
        sim.requests()[0].query[3],
        ("sample_rate".into(), "8000".into())
    );
}

#[tokio::test]
async fn half_open_server_times_out() {
    let sim = sim_with(|c| c.half_open = true).await;
    let stt = client_with(&sim, breaker(), |c| {
        c.idle_timeout = Duration::from_millis(300);
    });
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let started = std::time::Instant::now();
    feed(&audio, &speech(&[("Anyone there?", 200)]), PACE).await;
    let evs = collect(&mut events, is_error).await;
    assert!(
        matches!(evs.last(), Some(SttEvent::Error(PortError::Timeout(_)))),
        "{evs:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn server_silence_timeout_close_is_a_timeout() {
    let sim = sim_with(|c| c.silence_timeout = Duration::from_millis(200)).await;
    let stt = client_with(&sim, breaker(), |c| {
        c.keepalive_every = Duration::from_secs(5);
    });
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let evs = collect(&mut events, is_error).await;
    assert!(
        matches!(evs.last(), Some(SttEvent::Error(PortError::Timeout(m))) if m.contains("NET-0001")),
        "{evs:?}"
    );
    assert_eq!(
        sim.sessions()[0].close_sent,
        Some((1011, "NET-0001".into()))
    );
    drop(audio);
}

#[tokio::test]
async fn malformed_server_json_is_a_protocol_error() {
    let sim = sim_with(|c| c.malformed_after_frames = Some(5)).await;
    let stt = client(&sim);
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    feed(&audio, &speech(&[("Hello", 300)]), PACE).await;
    let evs = collect(&mut events, is_error).await;
    assert!(
        matches!(evs.last(), Some(SttEvent::Error(PortError::Protocol(_)))),
        "{evs:?}"
    );
}

#[tokio::test]
async fn slow_server_and_final_latency_still_transcribe() {
    let sim = sim_with(|c| {
        c.slow_reader = Some(Duration::from_millis(1));
        c.final_latency = Duration::from_millis(100);
    })
    .await;
    let stt = client(&sim);
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let pcm = speech(&[("Slow but sure.", 400)]);
    let feeder = tokio::spawn(async move {
        feed(&audio, &pcm, Duration::ZERO).await;
        audio
    });
    let evs = collect(&mut events, |e| {
        matches!(e, SttEvent::Final { .. }) || is_error(e)
    })
    .await;
    drop(feeder.await.unwrap());
    assert_eq!(finals(&evs), vec![("Slow but sure.".to_string(), true)]);
}
