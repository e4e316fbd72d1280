//! The real client against the emulator on loopback, in both modes.

use std::sync::Arc;
use std::time::Duration;

use talky::config::Secret;
use talky::providers::breaker::CircuitBreaker;
use talky_actors::ports::{PortError, TtsPort, TtsRequest};

use super::{collect, decode};
use crate::aura::{AuraSim, AuraSimConfig, AuraSimHandle, FailRule};
use crate::codec::normalize;
use talky::providers::aura::*;
use talky::providers::breaker::BreakerState;

const TEXT: &str = "Sure, one moment please.";
const MODES: [AuraMode; 2] = [AuraMode::Rest, AuraMode::WebSocket];

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("aura", 5, Duration::from_secs(30)))
}

fn config(sim: &AuraSimHandle, mode: AuraMode) -> AuraConfig {
    let mut cfg = AuraConfig::new(Secret::new(sim.api_key()));
    cfg.base_url = sim.base_url();
    cfg.mode = mode;
    cfg.first_byte_timeout = Duration::from_secs(2);
    cfg.idle_timeout = Duration::from_secs(2);
    cfg
}

fn client(sim: &AuraSimHandle, mode: AuraMode) -> AuraTts {
    AuraTts::new(config(sim, mode), breaker()).unwrap()
}

fn req(text: &str, voice: &str, rate: u32) -> TtsRequest {
    TtsRequest {
        text: text.into(),
        voice: voice.into(),
        language: "en-US".into(),
        sample_rate: rate,
    }
}

async fn sim() -> AuraSimHandle {
    AuraSim::start(AuraSimConfig::default()).await.unwrap()
}

async fn wait_finished(sim: &AuraSimHandle) -> crate::aura::RecordedRequest {
    for _ in 0..300 {
        let r = sim.requests().pop().unwrap();
        if r.finished {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("request still running");
}

#[tokio::test]
async fn both_modes_speak_the_text_in_whole_samples() {
    let sim = sim().await;
    sim.update(|c| c.odd_chunks = true);
    for mode in MODES {
        for rate in [16_000, 8_000] {
            let tts = client(&sim, mode);
            let c = collect(
                tts.synthesize(req(TEXT, "aura-2-orion-en", rate))
                    .await
                    .unwrap(),
            )
            .await;
            assert!(c.done && c.error.is_none(), "{mode:?} {c:?}");
            assert_eq!(
                decode(&c.audio, rate),
                normalize(TEXT),
                "{mode:?} at {rate}"
            );
            let r = wait_finished(&sim).await;
            assert_eq!(r.websocket, mode == AuraMode::WebSocket);
            assert_eq!(r.query["model"], "aura-2-orion-en");
            assert_eq!(r.query["encoding"], "linear16");
            assert_eq!(r.query["sample_rate"], rate.to_string());
            assert_eq!(r.authorization.as_deref(), Some("Token sim-key"));
            if mode == AuraMode::Rest {
                assert_eq!(r.query["container"], "none");
                assert_eq!(r.messages[0]["text"], TEXT);
            } else {
                assert!(!r.query.contains_key("container"));
                let types: Vec<&str> = r
                    .messages
                    .iter()
                    .filter_map(|m| m["type"].as_str())
                    .collect();
                assert_eq!(types, vec!["Speak", "Flush", "Close"]);
            }
        }
    }
    // A voice that is not an Aura id falls back to the configured model.
    let tts = client(&sim, AuraMode::Rest);
    collect(
        tts.synthesize(req("x", "21m00Tcm4TlvDq8ikWAM", 16_000))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wait_finished(&sim).await.query["model"], DEFAULT_MODEL);
}

#[tokio::test]
async fn auth_and_bad_requests_are_rejections() {
    let sim = sim().await;
    for mode in MODES {
        let mut cfg = config(&sim, mode);
        cfg.api_key = Secret::new("wrong");
        let tts = AuraTts::new(cfg, breaker()).unwrap();
        let e = tts.synthesize(req(TEXT, "", 16_000)).await.unwrap_err();
        assert!(
            matches!(&e, PortError::Rejected(m) if m.contains("401")),
            "{mode:?} {e}"
        );
        let mut cfg = config(&sim, mode);
        cfg.model = "nova-3".into();
        let tts = AuraTts::new(cfg, breaker()).unwrap();
        let e = tts.synthesize(req(TEXT, "", 16_000)).await.unwrap_err();
        assert!(
            matches!(&e, PortError::Rejected(m) if m.contains("400")),
            "{mode:?} {e}"
        );
    }
    let e = client(&sim, AuraMode::Rest)
        .synthesize(req(TEXT, "", 22_050))
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::Rejected(_)));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_typed() {
    let sim = sim().await;
    for mode in MODES {
        sim.update(|c| {
            c.fail = Some(FailRule {
                status: 429,
                retry_after: Some("2".into()),
                next: 1,
                after: None,
            })
        });
        let e = client(&sim, mode)
            .synthesize(req(TEXT, "", 16_000))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            PortError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            },
            "{mode:?}"
        );
        // Then it works again.
        let c = collect(
            client(&sim, mode)
                .synthesize(req("ok", "", 16_000))
                .await
                .unwrap(),
        )
        .await;
        assert!(c.done);
        sim.update(|c| {
            c.fail = Some(FailRule {
                status: 503,
                retry_after: None,
                next: 1,
                after: None,
            })
        });
        let e = client(&sim, mode)
            .synthesize(req(TEXT, "", 16_000))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PortError::Unavailable(m) if m.contains("503")),
            "{mode:?} {e}"
        );
    }
}

#[tokio::test]
async fn dropped_connection_after_audio_is_an_error_event() {
    let sim = sim().await;
    sim.update(|c| c.drop_after_chunks = Some(3));
    for mode in MODES {
        let c = collect(
            client(&sim, mode)
                .synthesize(req(TEXT, "", 16_000))
                .await
                .unwrap(),
        )
        .await;
        assert!(!c.done, "{mode:?}");
        assert!(
            matches!(c.error, Some(PortError::Unavailable(_))),
            "{mode:?} {c:?}"
        );
        assert_eq!(c.audio.len(), 3, "{mode:?}");
    }
}

#[tokio::test]
async fn malformed_message_is_a_protocol_error() {
    let sim = sim().await;
    sim.update(|c| c.malformed = true);
    let c = collect(
        client(&sim, AuraMode::WebSocket)
            .synthesize(req("hi", "", 16_000))
            .await
            .unwrap(),
    )
    .await;
    assert!(matches!(c.error, Some(PortError::Protocol(_))), "{c:?}");
}

#[tokio::test]
async fn half_open_and_slow_are_timeouts() {
    let sim = sim().await;
    sim.update(|c| c.half_open = true);
    for mode in MODES {
        let mut cfg = config(&sim, mode);
        cfg.first_byte_timeout = Duration::from_millis(300);
        cfg.connect_timeout = Duration::from_millis(300);
        let tts = AuraTts::new(cfg, breaker()).unwrap();
        let t0 = std::time::Instant::now();
        let e = tts.synthesize(req(TEXT, "", 16_000)).await.unwrap_err();
        assert!(matches!(e, PortError::Timeout(_)), "{mode:?} {e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
    // Slower than the idle budget between chunks.
    sim.update(|c| {
        c.half_open = false;
        c.speed = 0.5;
        c.first_audio_latency = Duration::ZERO;
    });
    for mode in MODES {
        let mut cfg = config(&sim, mode);
        cfg.idle_timeout = Duration::from_millis(100);
        let tts = AuraTts::new(cfg, breaker()).unwrap();
        let c = collect(tts.synthesize(req(TEXT, "", 16_000)).await.unwrap()).await;
        assert!(
            matches!(c.error, Some(PortError::Timeout(_))),
            "{mode:?} {c:?}"
        );
    }
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
    let b = Arc::new(CircuitBreaker::new("aura", 2, Duration::from_millis(300)));
    let tts = AuraTts::new(config(&sim, AuraMode::Rest), b.clone()).unwrap();
    for _ in 0..2 {
        assert!(tts.synthesize(req("x", "", 16_000)).await.is_err());
    }
    assert_eq!(b.state(), BreakerState::Open);
    let e = tts.synthesize(req("x", "", 16_000)).await.unwrap_err();
    assert!(
        matches!(&e, PortError::Unavailable(m) if m.contains("circuit open")),
        "{e}"
    );
    assert_eq!(sim.request_count(), 2);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let c = collect(tts.synthesize(req("x", "", 16_000)).await.unwrap()).await;
    assert!(c.done);
    assert_eq!(b.state(), BreakerState::Closed);
}
