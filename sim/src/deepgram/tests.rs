use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use super::*;
use crate::codec::Encoder;
use talky::audio::pcm::i16_to_bytes;

const FULL_QUERY: &str = "model=nova-3&language=en&encoding=linear16&sample_rate=16000&channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000&vad_events=true";

async fn raw_connect(
    sim: &DeepgramSimHandle,
    query: &str,
    key: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tungstenite::Error,
> {
    let mut req = format!("{}/v1/listen?{query}", sim.base_url())
        .into_client_request()
        .unwrap();
    if let Some(k) = key {
        req.headers_mut()
            .insert("authorization", format!("Token {k}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn status(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("not an HTTP error: {other:?}"),
    }
}

#[tokio::test]
async fn handshake_checks_key_and_required_params() {
    let sim = DeepgramSim::start(DeepgramSimConfig::default())
        .await
        .unwrap();
    let key = sim.api_key();
    let e = raw_connect(&sim, FULL_QUERY, None).await.unwrap_err();
    assert_eq!(status(e), 401);
    let e = raw_connect(&sim, FULL_QUERY, Some("wrong"))
        .await
        .unwrap_err();
    assert_eq!(status(e), 401);
    for q in [
        "sample_rate=16000",
        "encoding=linear16",
        "encoding=linear16&sample_rate=abc",
        "encoding=linear16&sample_rate=44100",
        "encoding=mulaw&sample_rate=8000",
        "encoding=linear16&sample_rate=16000&utterance_end_ms=1000",
        "encoding=linear16&sample_rate=16000&channels=2",
        "",
    ] {
        let e = raw_connect(&sim, q, Some(&key)).await.unwrap_err();
        assert_eq!(status(e), 400, "{q}");
    }
    raw_connect(&sim, "encoding=linear16&sample_rate=8000", Some(&key))
        .await
        .expect("minimal query");
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 8);
    assert_eq!(statuses.last(), Some(&101));
}

#[tokio::test]
async fn unknown_text_message_closes_1008() {
    let sim = DeepgramSim::start(DeepgramSimConfig::default())
        .await
        .unwrap();
    let mut ws = raw_connect(&sim, FULL_QUERY, Some(&sim.api_key()))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"type":"Hello"}"#)).await.unwrap();
    let mut close = None;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Close(f) = m {
            close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
            break;
        }
    }
    assert_eq!(close, Some((1008, "DATA-0000".to_string())));
}

#[tokio::test]
async fn close_stream_flushes_sends_metadata_and_closes_1000() {
    let sim = DeepgramSim::start(DeepgramSimConfig::default())
        .await
        .unwrap();
    let mut ws = raw_connect(&sim, FULL_QUERY, Some(&sim.api_key()))
        .await
        .unwrap();
    let mut enc = Encoder::new(16_000);
    let pcm = enc.encode("ok then");
    for f in pcm.chunks(320) {
        ws.send(Message::binary(i16_to_bytes(f))).await.unwrap();
    }
    ws.send(Message::text(r#"{"type":"CloseStream"}"#))
        .await
        .unwrap();
    let mut texts = Vec::new();
    let mut close = None;
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Text(t) => texts.push(serde_json::from_str::<serde_json::Value>(&t).unwrap()),
            Message::Close(f) => {
                close = f.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(close, Some(1000));
    let fin = texts
        .iter()
        .find(|v| v["type"] == "Results" && v["is_final"] == true)
        .expect("a final");
    assert_eq!(fin["channel"]["alternatives"][0]["transcript"], "ok then");
    assert_eq!(
        fin["channel"]["alternatives"][0]["words"][1]["word"],
        "then"
    );
    let meta = texts.last().unwrap();
    assert_eq!(meta["type"], "Metadata");
    assert_eq!(meta["channels"], 1);
    assert_eq!(meta["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(texts[0]["type"], "SpeechStarted");
    let log = &sim.sessions()[0];
    assert_eq!(log.audio_bytes, (pcm.len() * 2) as u64);
    assert!(log.ended || log.close_sent.is_some());
}

#[test]
fn endpointer_speaks_deepgram() {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(FULL_QUERY).unwrap();
    let p = ListenParams::parse(&pairs).unwrap();
    assert_eq!(p.endpointing_ms, Some(300));
    assert_eq!(p.utterance_end_ms, Some(1000));
    let mut ep = Endpointer::new(p, 4, 300);
    let mut enc = Encoder::new(16_000);
    let mut pcm = enc.silence(100);
    pcm.extend(enc.encode("Good morning"));
    pcm.extend(enc.silence(1_500));
    let mut msgs = Vec::new();
    for f in pcm.chunks(320) {
        msgs.extend(ep.push(f));
    }
    let kinds: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"SpeechStarted"));
    assert_eq!(kinds.last(), Some(&"UtteranceEnd"));
    let finals: Vec<&serde_json::Value> = msgs
        .iter()
        .filter(|m| m["is_final"] == true && m["channel"]["alternatives"][0]["transcript"] != "")
        .collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0]["speech_final"], true);
    assert_eq!(finals[0]["from_finalize"], false);
    assert_eq!(
        finals[0]["channel"]["alternatives"][0]["transcript"],
        "Good morning"
    );
    let interims = msgs.iter().filter(|m| m["is_final"] == false).count();
    assert!(interims >= 3, "{interims}");
    // Final after ~300 ms of silence: start + duration ~ end of speech + 0.3 s.
    let end = finals[0]["start"].as_f64().unwrap() + finals[0]["duration"].as_f64().unwrap();
    let speech_end = 0.1 + 12.0 * 0.070;
    assert!((end - speech_end - 0.3).abs() < 0.08, "{end}");
    // Endpointing disabled: no speech_final, UtteranceEnd still finalises.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(
        "encoding=linear16&sample_rate=16000&interim_results=true&endpointing=false&utterance_end_ms=1000",
    )
    .unwrap();
    let mut ep = Endpointer::new(ListenParams::parse(&pairs).unwrap(), 4, 300);
    let mut msgs = Vec::new();
    for f in pcm.chunks(320) {
        msgs.extend(ep.push(f));
    }
    assert!(msgs.iter().all(|m| m["speech_final"] != true));
    assert!(msgs.iter().any(|m| m["type"] == "UtteranceEnd"));
    assert!(msgs.iter().all(|m| m["type"] != "SpeechStarted"));
}

#[tokio::test]
async fn silence_is_answered_with_empty_results() {
    let sim = DeepgramSim::start(DeepgramSimConfig::default())
        .await
        .unwrap();
    let mut ws = raw_connect(&sim, FULL_QUERY, Some(&sim.api_key()))
        .await
        .unwrap();
    let silence = vec![0u8; 640];
    for _ in 0..110 {
        ws.send(Message::binary(silence.clone())).await.unwrap();
    }
    let m = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "Results");
    assert_eq!(v["channel"]["alternatives"][0]["transcript"], "");
}
