//! The emulator's wire shapes, driven with raw HTTP and WebSocket clients.

use super::*;
use tokio_tungstenite::tungstenite;

async fn sim() -> ElevenLabsSimHandle {
    ElevenLabsSim::start(ElevenLabsSimConfig::default())
        .await
        .unwrap()
}

async fn post(sim: &ElevenLabsSimHandle, query: &str, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!(
            "{}/v1/text-to-speech/voice1/stream{query}",
            sim.base_url()
        ))
        .header("xi-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn http_errors_have_the_spec_shapes() {
    let sim = sim().await;
    let resp = post(
        &sim,
        "?output_format=pcm_16000",
        "bad",
        json!({"text": "Hi"}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["detail"]["status"], "invalid_api_key");

    let resp = post(
        &sim,
        "?output_format=pcm_11111",
        "sim-key",
        json!({"text": "Hi"}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["detail"][0]["loc"], json!(["query", "output_format"]));

    // The service's default (mp3) is valid but not synthesised here.
    let resp = post(&sim, "", "sim-key", json!({"text": "Hi"})).await;
    assert_eq!(resp.status(), 400);

    let resp = post(
        &sim,
        "?output_format=pcm_16000",
        "sim-key",
        json!({"txt": "Hi"}),
    )
    .await;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["detail"][0]["loc"], json!(["body", "text"]));

    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 429,
            retry_after: Some("2".into()),
            next: 0,
            after: Some(4),
        })
    });
    let resp = post(
        &sim,
        "?output_format=pcm_16000",
        "sim-key",
        json!({"text": "Hi"}),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["detail"]["status"], "too_many_concurrent_requests");
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 422, 400, 422, 429]);
}

#[tokio::test]
async fn http_stream_is_the_code_as_raw_pcm() {
    let sim = sim().await;
    sim.update(|c| c.speed = 0.0);
    let resp = post(
        &sim,
        "?output_format=pcm_16000",
        "sim-key",
        json!({"text": "Hello there"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.as_ref(), speech_pcm("Hello there", 16_000).as_slice());
}

#[test]
fn plan_chunks_and_aligns() {
    let cfg = ElevenLabsSimConfig {
        odd_chunks: true,
        ..Default::default()
    };
    let chunks = plan(&cfg, "abc", 16_000);
    let total: usize = chunks.iter().map(|c| c.bytes.len()).sum();
    assert_eq!(total, 3 * 70 * 32);
    assert!(chunks.iter().rev().skip(1).all(|c| c.bytes.len() == 3201));
    let starts: Vec<f64> = chunks
        .iter()
        .flat_map(|c| {
            let base = c.at.as_secs_f64() * 1000.0;
            c.chars.iter().map(move |(_, ms)| base + ms)
        })
        .collect();
    assert_eq!(starts.len(), 3);
    for (i, s) in starts.iter().enumerate() {
        assert!((s - 70.0 * i as f64).abs() < 0.01, "{starts:?}");
    }
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(sim: &ElevenLabsSimHandle, key: Option<&str>) -> Client {
    use tungstenite::client::IntoClientRequest;
    let mut r = format!(
        "{}/v1/text-to-speech/v/stream-input?model_id=eleven_flash_v2_5&output_format=pcm_16000",
        sim.ws_base_url()
    )
    .into_client_request()
    .unwrap();
    if let Some(k) = key {
        r.headers_mut().insert("xi-api-key", k.parse().unwrap());
    }
    tokio_tungstenite::connect_async(r).await.unwrap().0
}

async fn send(ws: &mut Client, v: Value) {
    ws.send(tungstenite::Message::text(v.to_string()))
        .await
        .unwrap();
}

/// Every text message until the close, and the close code.
async fn read_all(ws: &mut Client) -> (Vec<Value>, Option<u16>) {
    let mut out = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        match m {
            tungstenite::Message::Text(t) => out.push(serde_json::from_str(t.as_str()).unwrap()),
            tungstenite::Message::Close(f) => return (out, f.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
    (out, None)
}

#[tokio::test]
async fn websocket_messages_have_the_spec_shapes() {
    let sim = sim().await;
    let mut ws = connect(&sim, Some("sim-key")).await;
    send(
        &mut ws,
        json!({"text": " ", "voice_settings": {"stability": 0.5}}),
    )
    .await;
    send(&mut ws, json!({"text": "Hi "})).await;
    send(&mut ws, json!({"text": "there. "})).await;
    send(&mut ws, json!({"text": ""})).await;
    let (msgs, code) = read_all(&mut ws).await;
    assert_eq!(code, Some(1000));
    let (last, audio) = msgs.split_last().unwrap();
    assert_eq!(last, &json!({"isFinal": true}));
    let mut pcm = Vec::new();
    let mut chars = String::new();
    for m in audio {
        pcm.extend(
            base64::engine::general_purpose::STANDARD
                .decode(m["audio"].as_str().unwrap())
                .unwrap(),
        );
        assert!(m["isFinal"].is_null());
        if m["alignment"].is_object() {
            let a = &m["alignment"];
            let n = a["chars"].as_array().unwrap().len();
            assert_eq!(a["charStartTimesMs"].as_array().unwrap().len(), n);
            assert_eq!(a["charsDurationsMs"].as_array().unwrap().len(), n);
            assert_eq!(m["normalizedAlignment"], *a);
            for c in a["chars"].as_array().unwrap() {
                chars.push_str(c.as_str().unwrap());
            }
        }
    }
    assert_eq!(chars, "Hi there.");
    assert_eq!(pcm, speech_pcm("Hi there.", 16_000));
    assert_eq!(sim.requests()[0].text, "Hi there.");
}

#[tokio::test]
async fn websocket_checks_key_and_first_message() {
    let sim = sim().await;
    // A wrong header key is refused at the upgrade.
    use tungstenite::client::IntoClientRequest;
    let mut r = format!(
        "{}/v1/text-to-speech/v/stream-input?output_format=pcm_16000",
        sim.ws_base_url()
    )
    .into_client_request()
    .unwrap();
    r.headers_mut().insert("xi-api-key", "bad".parse().unwrap());
    match tokio_tungstenite::connect_async(r).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("{other:?}"),
    }
    // No header: the key must come in the first message.
    let mut ws = connect(&sim, None).await;
    send(&mut ws, json!({"text": " ", "xi_api_key": "bad"})).await;
    let (msgs, code) = read_all(&mut ws).await;
    assert_eq!(code, Some(1008));
    assert_eq!(msgs[0]["error"], "invalid_api_key");
    // The first message must be a single space.
    let mut ws = connect(&sim, Some("sim-key")).await;
    send(&mut ws, json!({"text": "Hello"})).await;
    let (msgs, code) = read_all(&mut ws).await;
    assert_eq!(code, Some(1008));
    assert_eq!(msgs[0]["error"], "invalid_message");
}
