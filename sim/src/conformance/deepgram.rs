//! Deepgram live STT (providers.md §3): server messages (§3.2) and client
//! control messages (§3.3).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use talky_actors::ports::{PortError, SttConfig, SttEvent, SttPort};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{fixture, rename_key, same_shape, set_value};
use crate::codec::Encoder;
use crate::deepgram::{DeepgramSim, DeepgramSimConfig};
use talky::audio::pcm::i16_to_bytes;
use talky::config::Secret;
use talky::providers::breaker::CircuitBreaker;
use talky::providers::deepgram_stt::{
    CLOSE_STREAM, DeepgramStt, DeepgramSttConfig, FINALIZE, KEEPALIVE, parse_server_message,
};

const RATE: u32 = 16_000;

fn text(v: &Value) -> String {
    v.to_string()
}

#[test]
fn client_parses_every_server_fixture() {
    let results = fixture!("deepgram/results.json");
    assert_eq!(
        parse_server_message(&text(&results)),
        Ok(Some(SttEvent::Final {
            text: "hello is this anna".into(),
            speech_final: true,
        }))
    );
    let interim = set_value(
        &set_value(&results, "/is_final", json!(false)),
        "/speech_final",
        json!(false),
    );
    assert_eq!(
        parse_server_message(&text(&interim)),
        Ok(Some(SttEvent::Interim("hello is this anna".into())))
    );
    assert_eq!(
        parse_server_message(&text(&fixture!("deepgram/speech_started.json"))),
        Ok(Some(SttEvent::SpeechStarted))
    );
    assert_eq!(
        parse_server_message(&text(&fixture!("deepgram/utterance_end.json"))),
        Ok(Some(SttEvent::UtteranceEnd))
    );
    assert_eq!(
        parse_server_message(&text(&fixture!("deepgram/metadata.json"))),
        Ok(None)
    );
    match parse_server_message(&text(&fixture!("deepgram/error.json"))) {
        Err(PortError::Unavailable(m)) => {
            assert!(
                m.contains("Failed to process audio") && m.contains("DATA-0000"),
                "{m}"
            )
        }
        other => panic!("Error message gave {other:?}"),
    }
}

#[test]
fn client_control_messages_are_the_spec_messages() {
    for (ours, fix) in [
        (KEEPALIVE, fixture!("deepgram/keepalive.json")),
        (FINALIZE, fixture!("deepgram/finalize.json")),
        (CLOSE_STREAM, fixture!("deepgram/close_stream.json")),
    ] {
        let ours: Value = serde_json::from_str(ours).expect("JSON");
        assert_eq!(same_shape(&fix, &ours), Ok(()));
        assert_eq!(ours, fix);
    }
}

fn frames(pcm: &[i16]) -> Vec<Vec<u8>> {
    pcm.chunks(320)
        .map(|c| {
            let mut f = c.to_vec();
            f.resize(320, 0);
            i16_to_bytes(&f)
        })
        .collect()
}

/// The emulator, driven with the spec's control messages verbatim, read
/// off the wire: every server message has its fixture's shape.
#[tokio::test]
async fn emulator_messages_on_the_wire_have_the_spec_shape() {
    let sim = DeepgramSim::start(DeepgramSimConfig::default())
        .await
        .expect("sim");
    let url = format!(
        "{}/v1/listen?model=nova-3&language=en-US&encoding=linear16&sample_rate=16000&channels=1\
         &interim_results=true&endpointing=300&utterance_end_ms=1000&vad_events=true",
        sim.base_url()
    );
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Token {}", sim.api_key()).parse().expect("header"),
    );
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("connect in time")
    .expect("upgrade");
    let (mut tx, mut rx) = ws.split();
    let mut enc = Encoder::new(RATE);
    let mut first = enc.silence(200);
    first.extend(enc.encode("hello is this anna"));
    first.extend(enc.silence(1500));
    let mut second = enc.encode("yes");
    second.extend(enc.silence(40));
    let sender = async {
        for f in frames(&first) {
            tx.send(Message::binary(f)).await.expect("send");
        }
        tx.send(Message::text(
            fixture!("deepgram/keepalive.json").to_string(),
        ))
        .await
        .expect("send");
        for f in frames(&second) {
            tx.send(Message::binary(f)).await.expect("send");
        }
        for fix in [
            fixture!("deepgram/finalize.json"),
            fixture!("deepgram/close_stream.json"),
        ] {
            tx.send(Message::text(fix.to_string())).await.expect("send");
        }
        tx
    };
    let reader = async {
        let mut got: Vec<Value> = Vec::new();
        let mut close = None;
        while let Some(Ok(m)) = rx.next().await {
            match m {
                Message::Text(t) => {
                    // The client takes every message the emulator sends.
                    assert!(parse_server_message(t.as_str()).is_ok(), "{t}");
                    got.push(serde_json::from_str(t.as_str()).expect("JSON"));
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
    let (_tx, (got, close)) = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join(sender, reader),
    )
    .await
    .expect("session ends");
    assert_eq!(close, Some(1000), "the spec's messages are accepted");
    let find = |pred: &dyn Fn(&Value) -> bool, what: &str| -> Value {
        got.iter()
            .find(|v| pred(v))
            .cloned()
            .unwrap_or_else(|| panic!("no {what} among {got:?}"))
    };
    let spoken = |v: &Value| {
        v["type"] == "Results"
            && v["channel"]["alternatives"][0]["transcript"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
    };
    let results = fixture!("deepgram/results.json");
    for (what, v) in [
        (
            "final",
            find(&|v| spoken(v) && v["speech_final"] == true, "speech_final"),
        ),
        (
            "interim",
            find(&|v| spoken(v) && v["is_final"] == false, "interim"),
        ),
        (
            "finalize",
            find(
                &|v| spoken(v) && v["from_finalize"] == true,
                "from_finalize",
            ),
        ),
    ] {
        assert_eq!(same_shape(&results, &v), Ok(()), "{what}: {v}");
    }
    for (kind, fix) in [
        ("SpeechStarted", fixture!("deepgram/speech_started.json")),
        ("UtteranceEnd", fixture!("deepgram/utterance_end.json")),
        ("Metadata", fixture!("deepgram/metadata.json")),
    ] {
        let v = find(&|v| v["type"] == kind, kind);
        assert_eq!(same_shape(&fix, &v), Ok(()), "{kind}: {v}");
    }
    assert_eq!(
        got.last().map(|v| v["type"].clone()),
        Some(json!("Metadata"))
    );

    // The check can fail.
    let real = find(&|v| spoken(v) && v["speech_final"] == true, "speech_final");
    assert!(same_shape(&rename_key(&results, "/speech_final", "speechFinal"), &real).is_err());
    assert!(same_shape(&set_value(&results, "/start", json!("5.99")), &real).is_err());
    assert!(
        same_shape(
            &rename_key(
                &results,
                "/channel/alternatives/0/words/0/punctuated_word",
                "pword"
            ),
            &real
        )
        .is_err()
    );
}

/// What the real client sends (captured by the emulator): the spec's
/// query parameters and control messages.
#[tokio::test]
async fn client_sends_the_spec_query_and_control_messages() {
    let sim = DeepgramSim::start(DeepgramSimConfig::default())
        .await
        .expect("sim");
    let mut cfg = DeepgramSttConfig::with_base_url(sim.base_url(), Secret::new(sim.api_key()));
    cfg.keepalive_every = Duration::from_millis(100);
    cfg.connect_timeout = Duration::from_secs(2);
    let client = DeepgramStt::new(
        cfg,
        Arc::new(CircuitBreaker::new("deepgram", 5, Duration::from_secs(30))),
    )
    .expect("client");
    let mut session = client
        .open(SttConfig {
            language: "en-US".into(),
            sample_rate: RATE,
        })
        .await
        .expect("open");
    let mut enc = Encoder::new(RATE);
    let mut pcm = enc.encode("hello");
    pcm.extend(enc.silence(600));
    for f in frames(&pcm) {
        session.audio.send(f).await.expect("audio");
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    drop(session.audio);
    let drain = async { while session.events.recv().await.is_some() {} };
    tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("session ends");
    let query = &sim.requests()[0].query;
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(q("encoding"), Some("linear16"));
    assert_eq!(q("sample_rate"), Some("16000"));
    assert_eq!(q("interim_results"), Some("true"));
    assert_eq!(q("vad_events"), Some("true"));
    assert_eq!(q("channels"), Some("1"));
    for k in ["model", "language", "endpointing", "utterance_end_ms"] {
        assert!(
            q(k).is_some_and(|v| !v.is_empty()),
            "{k} missing from {query:?}"
        );
    }
    let log = &sim.sessions()[0];
    let received: Vec<Value> = log
        .received
        .iter()
        .map(|t| serde_json::from_str(t).expect("client text is JSON"))
        .collect();
    for fix in [
        fixture!("deepgram/keepalive.json"),
        fixture!("deepgram/finalize.json"),
        fixture!("deepgram/close_stream.json"),
    ] {
        let sent = received
            .iter()
            .find(|v| v["type"] == fix["type"])
            .unwrap_or_else(|| panic!("the client sent no {fix} ({received:?})"));
        assert_eq!(same_shape(&fix, sent), Ok(()));
    }
    assert_eq!(log.close_sent, Some((1000, String::new())));
}
