//! The real client against the emulator on loopback.

use std::sync::Arc;
use std::time::Duration;

use talky::config::Secret;
use talky::providers::breaker::CircuitBreaker;
use talky_actors::ports::{PortError, TtsEvent, TtsPort, TtsRequest};

use super::{collect, decode};
use crate::codec::normalize;
use crate::elevenlabs::{
    ElevenLabsSim, ElevenLabsSimConfig, ElevenLabsSimHandle, FailRule, Outcome, SimMode,
};
use talky::providers::elevenlabs::*;

const TEXT: &str = "Hi, this is Sam from Acme. Do you have a minute?";
const MODES: [TtsMode; 2] = [TtsMode::Http, TtsMode::WebSocket];

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        "elevenlabs",
        5,
        Duration::from_secs(30),
    ))
}

fn config(sim: &ElevenLabsSimHandle, mode: TtsMode) -> ElevenLabsConfig {
    let mut cfg = ElevenLabsConfig::new(Secret::new(sim.api_key()));
    cfg.base_url = sim.base_url();
    cfg.ws_base_url = sim.ws_base_url();
    cfg.mode = mode;
    cfg.first_byte_timeout = Duration::from_secs(2);
    cfg.idle_timeout = Duration::from_secs(2);
    cfg
}

fn client(sim: &ElevenLabsSimHandle, mode: TtsMode) -> ElevenLabs {
    ElevenLabs::new(config(sim, mode), breaker()).unwrap()
}

fn req(text: &str) -> TtsRequest {
    TtsRequest {
        text: text.into(),
        voice: "21m00Tcm4TlvDq8ikWAM".into(),
        language: "en-US".into(),
        sample_rate: 16_000,
    }
}

async fn sim() -> ElevenLabsSimHandle {
    ElevenLabsSim::start(ElevenLabsSimConfig::default())
        .await
        .unwrap()
}

/// Waits until the emulator's last request has ended.
async fn last_outcome(sim: &ElevenLabsSimHandle) -> crate::elevenlabs::RecordedRequest {
    for _ in 0..300 {
        let r = sim.requests().pop().unwrap();
        if r.outcome != Outcome::Pending {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("request still pending: {:?}", sim.requests().pop());
}

#[tokio::test]
async fn http_mode_speaks_the_text_in_whole_samples() {
    let sim = sim().await;
    sim.update(|c| c.odd_chunks = true);
    let tts = client(&sim, TtsMode::Http);
    let c = collect(tts.synthesize(req(TEXT)).await.unwrap()).await;
    assert!(c.done, "{c:?}");
    assert!(c.error.is_none());
    assert!(c.audio.len() > 5);
    assert_eq!(decode(&c.audio, 16_000), normalize(TEXT));
    let r = last_outcome(&sim).await;
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.mode, SimMode::Http);
    assert_eq!(r.voice_id, "21m00Tcm4TlvDq8ikWAM");
    assert_eq!(r.query["output_format"], "pcm_16000");
    assert_eq!(r.api_key.as_deref(), Some("sim-key"));
    let body = &r.messages[0];
    assert_eq!(body["text"], TEXT);
    assert_eq!(body["model_id"], DEFAULT_MODEL_ID);
    assert_eq!(body["language_code"], "en");
    assert_eq!(body["voice_settings"]["similarity_boost"], 0.75);
}

#[tokio::test]
async fn websocket_mode_speaks_the_text_with_alignment() {
    let sim = sim().await;
    sim.update(|c| c.odd_chunks = true);
    let tts = client(&sim, TtsMode::WebSocket);
    let c = collect(tts.synthesize(req(TEXT)).await.unwrap()).await;
    assert!(c.done, "{c:?}");
    assert_eq!(decode(&c.audio, 16_000), normalize(TEXT));
    let n = normalize(TEXT).chars().count();
    assert_eq!(c.alignment.len(), n);
    for (i, (idx, ms)) in c.alignment.iter().enumerate() {
        assert_eq!(*idx, i);
        let want = i as i64 * i64::from(crate::codec::SYMBOL_MS);
        assert!((i64::from(*ms) - want).abs() <= 1, "char {i}: {ms} ms");
    }
    let r = last_outcome(&sim).await;
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.mode, SimMode::WebSocket);
    assert_eq!(r.query["model_id"], DEFAULT_MODEL_ID);
    assert_eq!(r.query["output_format"], "pcm_16000");
    assert_eq!(r.api_key.as_deref(), Some("sim-key"));
    assert_eq!(r.messages.len(), 3);
    assert_eq!(r.messages[0]["text"], " ");
    assert_eq!(
        r.messages[0]["generation_config"]["chunk_length_schedule"],
        serde_json::json!([120, 160, 250, 290])
    );
    assert!(r.messages[0].get("xi_api_key").is_none());
    assert_eq!(r.messages[1]["text"], format!("{TEXT} "));
    assert_eq!(r.messages[1]["flush"], true);
    assert_eq!(r.messages[2], serde_json::json!({"text": ""}));
}

#[tokio::test]
async fn websocket_key_in_first_message() {
    let sim = sim().await;
    let mut cfg = config(&sim, TtsMode::WebSocket);
    cfg.key_in_first_message = true;
    let tts = ElevenLabs::new(cfg.clone(), breaker()).unwrap();
    let c = collect(tts.synthesize(req("Okay.")).await.unwrap()).await;
    assert!(c.done);
    assert_eq!(decode(&c.audio, 16_000), "Okay.");
    let r = last_outcome(&sim).await;
    assert_eq!(r.messages[0]["xi_api_key"], "sim-key");
    assert_eq!(r.api_key.as_deref(), Some("sim-key"));

    cfg.api_key = Secret::new("wrong");
    let tts = ElevenLabs::new(cfg, breaker()).unwrap();
    let err = tts.synthesize(req("Okay.")).await.unwrap_err();
    assert!(matches!(err, PortError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn eight_khz_is_asked_for_and_decodes() {
    let sim = sim().await;
    for mode in MODES {
        let tts = client(&sim, mode);
        let mut r = req(TEXT);
        r.sample_rate = 8000;
        let c = collect(tts.synthesize(r).await.unwrap()).await;
        assert!(c.done);
        assert_eq!(decode(&c.audio, 8000), normalize(TEXT), "{mode:?}");
        assert_eq!(last_outcome(&sim).await.query["output_format"], "pcm_8000");
    }
    let tts = client(&sim, TtsMode::Http);
    let mut r = req(TEXT);
    r.sample_rate = 11_025;
    assert!(matches!(
        tts.synthesize(r).await.unwrap_err(),
        PortError::Rejected(_)
    ));
}

#[tokio::test]
async fn first_audio_latency_is_observed() {
    let sim = sim().await;
    sim.update(|c| c.first_audio_latency = Duration::from_millis(300));
    for mode in MODES {
        let tts = client(&sim, mode);
        let t0 = std::time::Instant::now();
        let mut rx = tts.synthesize(req("Hello.")).await.unwrap();
        let first = rx.recv().await.unwrap();
        assert!(
            matches!(first, TtsEvent::Audio(_) | TtsEvent::Alignment(_)),
            "{first:?}"
        );
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(300), "{mode:?}: {took:?}");
        assert!(took < Duration::from_secs(2), "{mode:?}: {took:?}");
    }
}

#[tokio::test]
async fn bad_key_is_rejected() {
    let sim = sim().await;
    for mode in MODES {
        let mut cfg = config(&sim, mode);
        cfg.api_key = Secret::new("nope");
        let tts = ElevenLabs::new(cfg, breaker()).unwrap();
        let err = tts.synthesize(req(TEXT)).await.unwrap_err();
        assert!(
            matches!(&err, PortError::Rejected(m) if m.contains("invalid_api_key")),
            "{mode:?}: {err:?}"
        );
        assert_eq!(last_outcome(&sim).await.status, 401);
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_map() {
    let sim = sim().await;
    for mode in MODES {
        let tts = client(&sim, mode);
        sim.update(|c| {
            c.fail = Some(FailRule {
                status: 429,
                retry_after: Some("3".into()),
                next: 1,
                after: None,
            })
        });
        let err = tts.synthesize(req(TEXT)).await.unwrap_err();
        assert_eq!(
            err,
            PortError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            },
            "{mode:?}"
        );
        sim.update(|c| {
            c.fail = Some(FailRule {
                status: 500,
                next: 1,
                ..Default::default()
            })
        });
        let err = tts.synthesize(req(TEXT)).await.unwrap_err();
        assert!(
            matches!(err, PortError::Unavailable(_)),
            "{mode:?}: {err:?}"
        );
        // The rule is spent: the next request goes through.
        let c = collect(tts.synthesize(req("Fine.")).await.unwrap()).await;
        assert!(c.done);
    }
}

#[tokio::test]
async fn half_open_server_times_out_at_first_byte() {
    let sim = sim().await;
    sim.update(|c| c.half_open = true);
    for mode in MODES {
        let mut cfg = config(&sim, mode);
        cfg.first_byte_timeout = Duration::from_millis(300);
        cfg.connect_timeout = Duration::from_millis(200);
        let tts = ElevenLabs::new(cfg, breaker()).unwrap();
        let t0 = std::time::Instant::now();
        let err = tts.synthesize(req(TEXT)).await.unwrap_err();
        assert!(matches!(err, PortError::Timeout(_)), "{mode:?}: {err:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn dropped_connection_mid_stream_is_an_error_event() {
    let sim = sim().await;
    sim.update(|c| c.drop_after_chunks = Some(3));
    for mode in MODES {
        let tts = client(&sim, mode);
        let c = collect(tts.synthesize(req(TEXT)).await.unwrap()).await;
        assert!(!c.done, "{mode:?}");
        assert!(!c.audio.is_empty(), "{mode:?}");
        assert!(
            matches!(c.error, Some(PortError::Unavailable(_))),
            "{mode:?}: {:?}",
            c.error
        );
        assert_eq!(last_outcome(&sim).await.outcome, Outcome::Dropped);
    }
}

#[tokio::test]
async fn malformed_base64_is_a_protocol_error() {
    let sim = sim().await;
    sim.update(|c| c.malformed_after_chunks = Some(2));
    let tts = client(&sim, TtsMode::WebSocket);
    let c = collect(tts.synthesize(req(TEXT)).await.unwrap()).await;
    assert!(!c.audio.is_empty());
    assert!(
        matches!(c.error, Some(PortError::Protocol(_))),
        "{:?}",
        c.error
    );
    // Before any audio: the call itself fails.
    sim.update(|c| c.malformed_after_chunks = Some(0));
    let err = tts.synthesize(req(TEXT)).await.unwrap_err();
    assert!(matches!(err, PortError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_stream() {
    let sim = sim().await;
    // About 3.4 s of audio at real time: the client leaves long before.
    sim.update(|c| c.speed = 1.0);
    for mode in MODES {
        let tts = client(&sim, mode);
        let mut rx = tts.synthesize(req(TEXT)).await.unwrap();
        let _ = rx.recv().await.unwrap();
        drop(rx);
        let r = last_outcome(&sim).await;
        assert_eq!(r.outcome, Outcome::ClientGone, "{mode:?}: {r:?}");
        assert!(r.chunks_sent < r.chunks_total, "{mode:?}: {r:?}");
    }
}

#[tokio::test]
async fn breaker_opens_after_failures_and_refuses() {
    let sim = sim().await;
    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 500,
            next: 1,
            ..Default::default()
        })
    });
    let b = Arc::new(CircuitBreaker::new(
        "elevenlabs",
        1,
        Duration::from_secs(60),
    ));
    let tts = ElevenLabs::new(config(&sim, TtsMode::Http), b.clone()).unwrap();
    assert!(matches!(
        tts.synthesize(req(TEXT)).await.unwrap_err(),
        PortError::Unavailable(_)
    ));
    let n = sim.request_count();
    let err = tts.synthesize(req(TEXT)).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Unavailable(m) if m.contains("circuit")),
        "{err:?}"
    );
    assert_eq!(sim.request_count(), n);
}
