//! The emulator's strictness on the wire, with hand-built requests.

use super::*;
use futures_util::{SinkExt, StreamExt};

async fn post(sim: &AuraSimHandle, query: &str, key: Option<&str>, body: &str) -> (u16, Vec<u8>) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/speak?{query}", sim.base_url()))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        req = req.header("authorization", format!("Token {k}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn strict_about_auth_model_and_formats() {
    let sim = AuraSim::start(AuraSimConfig::default()).await.unwrap();
    let body = r#"{"text":"hi"}"#;
    let q = "model=aura-2-thalia-en&encoding=linear16&sample_rate=16000&container=none";
    let (s, b) = post(&sim, q, None, body).await;
    assert_eq!(s, 401);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["err_code"], "INVALID_AUTH");
    assert!(v["request_id"].is_string());
    assert_eq!(post(&sim, q, Some("bad"), body).await.0, 401);
    for bad in [
        "model=nova-3&encoding=linear16",
        "model=aura-2-thalia-en&encoding=pcm",
        "model=aura-2-thalia-en&encoding=linear16&sample_rate=44100",
        "model=aura-2-thalia-en&encoding=mulaw&sample_rate=24000",
        "model=aura-2-thalia-en&encoding=mp3",
        "model=aura-2-thalia-en&encoding=linear16&container=ogg",
    ] {
        let (s, b) = post(&sim, bad, Some("sim-key"), body).await;
        assert_eq!(s, 400, "{bad}");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(v["err_msg"].is_string());
    }
    assert_eq!(post(&sim, q, Some("sim-key"), "{}").await.0, 400);
    // Defaults: linear16 at 24 kHz in a WAV container.
    let (s, b) = post(&sim, "model=aura-asteria-en", Some("sim-key"), body).await;
    assert_eq!(s, 200);
    let w = talky::audio::wav::parse(&b).unwrap();
    assert_eq!(w.format.sample_rate, 24_000);
    let mut d = crate::codec::Decoder::new(24_000);
    d.push(&talky::audio::pcm::bytes_to_i16(w.data));
    d.flush();
    assert_eq!(d.take_text(), "hi");
    // mulaw at 8 kHz decodes too.
    let (s, b) = post(
        &sim,
        "model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000&container=none",
        Some("sim-key"),
        body,
    )
    .await;
    assert_eq!(s, 200);
    let mut d = crate::codec::Decoder::new(8_000);
    d.push(&talky::audio::mulaw::decode(&b));
    d.flush();
    assert_eq!(d.take_text(), "hi");
}

#[tokio::test]
async fn socket_speaks_clears_and_refuses_nonsense() {
    use tokio_tungstenite::tungstenite::Message as M;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let sim = AuraSim::start(AuraSimConfig::default()).await.unwrap();
    let url = format!(
        "ws://{}/v1/speak?model=aura-2-thalia-en&encoding=linear16&sample_rate=16000",
        sim.addr
    );
    let connect = || {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", "Token sim-key".parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    let (mut ws, _) = connect().await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    let v: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "Metadata");
    ws.send(M::text(r#"{"type":"Speak","text":"dropped"}"#))
        .await
        .unwrap();
    ws.send(M::text(r#"{"type":"Clear"}"#)).await.unwrap();
    let v: Value =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "Cleared");
    ws.send(M::text(r#"{"type":"Speak","text":"ok"}"#))
        .await
        .unwrap();
    ws.send(M::text(r#"{"type":"Flush"}"#)).await.unwrap();
    let mut pcm = Vec::new();
    loop {
        match ws.next().await.unwrap().unwrap() {
            M::Binary(b) => pcm.extend_from_slice(&b),
            M::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "Flushed");
                assert_eq!(v["sequence_id"], 0);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let mut d = crate::codec::Decoder::new(16_000);
    d.push(&talky::audio::pcm::bytes_to_i16(&pcm));
    d.flush();
    assert_eq!(d.take_text(), "ok");
    ws.send(M::text(r#"{"type":"Close"}"#)).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        M::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("{other:?}"),
    }
    // Nonsense closes 1008.
    let (mut ws, _) = connect().await.unwrap();
    let _meta = ws.next().await;
    ws.send(M::text("hello")).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        M::Close(Some(f)) => assert_eq!(u16::from(f.code), 1008),
        other => panic!("{other:?}"),
    }
    // Inactivity closes 1011.
    sim.update(|c| c.inactivity = Duration::from_millis(100));
    let (mut ws, _) = connect().await.unwrap();
    let _meta = ws.next().await;
    match ws.next().await.unwrap().unwrap() {
        M::Close(Some(f)) => assert_eq!(u16::from(f.code), 1011),
        other => panic!("{other:?}"),
    }
}
