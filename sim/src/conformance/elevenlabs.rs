//! ElevenLabs TTS (providers.md §5): the HTTP body (§5.1), the WebSocket
//! messages both ways (§5.2), the error bodies.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use talky_actors::ports::{PortError, TtsEvent, TtsPort, TtsRequest};
use tokio_tungstenite::tungstenite::Message;

use super::{fixture, rename_key, same_shape, same_shape_except, set_value};
use crate::elevenlabs::{ElevenLabsSim, ElevenLabsSimConfig, SimMode};
use talky::config::Secret;
use talky::providers::breaker::CircuitBreaker;
use talky::providers::elevenlabs::wire::{Assembler, status_error, ws_message};
use talky::providers::elevenlabs::{ElevenLabs, ElevenLabsConfig, TtsMode};

/// The key the spec's init message carries (its placeholder, filled).
fn fixture_key() -> String {
    fixture!("elevenlabs/ws_init.json")["xi_api_key"]
        .as_str()
        .expect("xi_api_key")
        .to_owned()
}

async fn sim() -> crate::elevenlabs::ElevenLabsSimHandle {
    ElevenLabsSim::start(ElevenLabsSimConfig {
        api_key: fixture_key(),
        first_audio_latency: Duration::ZERO,
        ..ElevenLabsSimConfig::default()
    })
    .await
    .expect("sim")
}

#[test]
fn client_parses_the_server_fixtures() {
    let mut asm = Assembler::new(16_000);
    let mut out = Vec::new();
    let audio = fixture!("elevenlabs/ws_audio.json").to_string();
    assert_eq!(ws_message(&audio, &mut asm, &mut out), Ok(false));
    assert_eq!(
        out,
        vec![
            TtsEvent::Alignment(vec![(0, 0), (1, 3), (2, 7)]),
            TtsEvent::Audio(vec![0; 8]),
        ]
    );
    let mut out = Vec::new();
    let fin = fixture!("elevenlabs/ws_final.json").to_string();
    assert_eq!(ws_message(&fin, &mut asm, &mut out), Ok(true));
    assert!(out.is_empty());
    let err = fixture!("elevenlabs/ws_error.json").to_string();
    assert!(matches!(
        ws_message(&err, &mut asm, &mut out),
        Err(PortError::Rejected(m)) if m.contains("Invalid API key")
    ));
    let headers = reqwest::header::HeaderMap::new();
    let body = fixture!("elevenlabs/http_error.json").to_string();
    assert!(matches!(
        status_error(401, &headers, body.as_bytes()),
        PortError::Rejected(m) if m.contains("invalid_api_key") && m.contains("Invalid API key")
    ));
    let body = fixture!("elevenlabs/http_validation_error.json").to_string();
    assert!(matches!(
        status_error(422, &headers, body.as_bytes()),
        PortError::Rejected(m) if m.contains("Input should be a valid output format")
    ));
}

fn client(sim: &crate::elevenlabs::ElevenLabsSimHandle, mode: TtsMode) -> ElevenLabs {
    let mut cfg = ElevenLabsConfig::new(Secret::new(fixture_key()));
    cfg.base_url = sim.base_url();
    cfg.ws_base_url = sim.ws_base_url();
    cfg.mode = mode;
    cfg.key_in_first_message = true;
    cfg.output_format = "pcm_16000".into();
    ElevenLabs::new(
        cfg,
        Arc::new(CircuitBreaker::new(
            "elevenlabs",
            5,
            Duration::from_secs(30),
        )),
    )
    .expect("client")
}

/// What the real client sends, as the emulator received it, in both modes.
#[tokio::test]
async fn client_sends_the_spec_shapes() {
    let sim = sim().await;
    for mode in [TtsMode::Http, TtsMode::WebSocket] {
        let mut rx = client(&sim, mode)
            .synthesize(TtsRequest {
                text: "Hi, this is Sam from Acme.".into(),
                voice: "21m00Tcm4TlvDq8ikWAM".into(),
                language: "en-US".into(),
                sample_rate: 16_000,
            })
            .await
            .expect("synthesis starts");
        let drain = async {
            let mut done = false;
            while let Some(ev) = rx.recv().await {
                assert!(!matches!(ev, TtsEvent::Error(_)), "{ev:?}");
                done |= ev == TtsEvent::Done;
            }
            done
        };
        let done = tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .expect("ends");
        assert!(done, "{mode:?} ends with Done");
    }
    let reqs = sim.requests();
    let http = reqs.iter().find(|r| r.mode == SimMode::Http).expect("http");
    // The spec: "all body fields except `text` optional"; we send no
    // context, seed or normalisation choice.
    assert_eq!(
        same_shape_except(
            &fixture!("elevenlabs/http_body.json"),
            &http.messages[0],
            &[
                "/previous_text",
                "/next_text",
                "/seed",
                "/apply_text_normalization"
            ],
        ),
        Ok(())
    );
    let ws = reqs
        .iter()
        .find(|r| r.mode == SimMode::WebSocket)
        .expect("ws");
    let m = &ws.messages;
    assert!(m.len() >= 3, "{m:?}");
    assert_eq!(
        same_shape(&fixture!("elevenlabs/ws_init.json"), &m[0]),
        Ok(())
    );
    assert_eq!(m[0]["text"], " ");
    assert_eq!(
        same_shape(&fixture!("elevenlabs/ws_text.json"), &m[1]),
        Ok(())
    );
    assert!(m[1]["text"].as_str().is_some_and(|t| t.ends_with(' ')));
    assert_eq!(m.last(), Some(&fixture!("elevenlabs/ws_close.json")));
}

/// The emulator, sent the spec's messages verbatim, read off the wire.
#[tokio::test]
async fn emulator_accepts_the_spec_messages_and_answers_in_shape() {
    let sim = sim().await;
    let url = format!(
        "{}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream-input?model_id=eleven_flash_v2_5&output_format=pcm_16000",
        sim.ws_base_url()
    );
    // No key header: the init message's `xi_api_key` authenticates.
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connect in time")
    .expect("upgrade");
    let (mut tx, mut rx) = ws.split();
    for fix in [
        fixture!("elevenlabs/ws_init.json"),
        fixture!("elevenlabs/ws_text.json"),
        fixture!("elevenlabs/ws_close.json"),
    ] {
        tx.send(Message::text(fix.to_string())).await.expect("send");
    }
    let read = async {
        let mut got = Vec::new();
        let mut close = None;
        while let Some(Ok(m)) = rx.next().await {
            match m {
                Message::Text(t) => {
                    got.push(serde_json::from_str::<Value>(t.as_str()).expect("JSON"))
                }
                Message::Close(f) => {
                    close = f.map(|f| u16::from(f.code));
                    break;
                }
                _ => {}
            }
        }
        (got, close)
    };
    let (got, close) = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("ends");
    assert_eq!(close, Some(1000));
    let audio = got
        .iter()
        .find(|v| v["alignment"].is_object())
        .expect("an audio message with alignment");
    let fix = fixture!("elevenlabs/ws_audio.json");
    assert_eq!(same_shape(&fix, audio), Ok(()), "{audio}");
    assert_eq!(
        same_shape(
            &fixture!("elevenlabs/ws_final.json"),
            got.last().expect("last")
        ),
        Ok(())
    );
    // The client takes what the emulator sent.
    let mut asm = Assembler::new(16_000);
    let mut out = Vec::new();
    for v in &got {
        assert!(
            ws_message(&v.to_string(), &mut asm, &mut out).is_ok(),
            "{v}"
        );
    }
    // The check can fail.
    assert!(
        same_shape(
            &rename_key(&fix, "/alignment/charsDurationsMs", "charDurationsMs"),
            audio
        )
        .is_err()
    );
    assert!(same_shape(&set_value(&fix, "/audio", json!(["AAAA"])), audio).is_err());

    // A wrong key in the init message: the spec's error message shape.
    let url = format!(
        "{}/v1/text-to-speech/v/stream-input?model_id=eleven_flash_v2_5&output_format=pcm_16000",
        sim.ws_base_url()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let bad = set_value(
        &fixture!("elevenlabs/ws_init.json"),
        "/xi_api_key",
        json!("wrong"),
    );
    ws.send(Message::text(bad.to_string())).await.expect("send");
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("answer")
        .expect("message")
        .expect("ok");
    let v: Value = serde_json::from_str(first.to_text().expect("text")).expect("JSON");
    assert_eq!(
        same_shape(&fixture!("elevenlabs/ws_error.json"), &v),
        Ok(()),
        "{v}"
    );
}

#[tokio::test]
async fn emulator_http_accepts_the_spec_body_and_errors_in_shape() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let post = |format: &str, key: &str| {
        http.post(format!(
            "{}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream?output_format={format}&optimize_streaming_latency=0",
            sim.base_url()
        ))
        .header("xi-api-key", key)
        .json(&fixture!("elevenlabs/http_body.json"))
        .timeout(Duration::from_secs(10))
        .send()
    };
    let ok = post("pcm_16000", &fixture_key()).await.expect("POST");
    assert_eq!(ok.status().as_u16(), 200);
    let audio = ok.bytes().await.expect("body");
    assert!(!audio.is_empty() && audio.len() % 2 == 0);
    let r = post("pcm_16000", "wrong").await.expect("POST");
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.expect("JSON");
    assert_eq!(
        same_shape(&fixture!("elevenlabs/http_error.json"), &v),
        Ok(()),
        "{v}"
    );
    let r = post("bogus_1", &fixture_key()).await.expect("POST");
    assert_eq!(r.status().as_u16(), 422);
    let v: Value = r.json().await.expect("JSON");
    let fix = fixture!("elevenlabs/http_validation_error.json");
    assert_eq!(same_shape(&fix, &v), Ok(()), "{v}");
    assert!(same_shape(&rename_key(&fix, "/detail/0/msg", "message"), &v).is_err());
}
