//! The emulator on the wire, with hand-built requests.

use super::*;
use crate::codec::Encoder;

fn wav16(text: &str) -> Vec<u8> {
    wav::wrap_pcm(
        16_000,
        &pcm::i16_to_bytes(&Encoder::new(16_000).encode(text)),
    )
}

async fn post(
    sim: &WhisperSimHandle,
    key: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Option<String>, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/openai/v1/audio/transcriptions", sim.base_url()))
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, ct, resp.text().await.unwrap())
}

/// A `multipart/form-data` body with boundary `BND`, written here by hand
/// (RFC 7578, as the spec's §4 request), not with the client's writer.
fn form(file: Option<(&str, &[u8])>, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some((name, data)) = file {
        out.extend_from_slice(
            format!(
                "--BND\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in fields {
        out.extend_from_slice(
            format!("--BND\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(b"--BND--\r\n");
    out
}

const MP: &str = "multipart/form-data; boundary=BND";

fn error_of(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap();
    assert!(v["error"]["message"].is_string(), "{body}");
    assert!(v["error"]["type"].is_string(), "{body}");
    v["error"].clone()
}

#[tokio::test]
async fn each_response_format() {
    let sim = WhisperSim::start(WhisperSimConfig::default())
        .await
        .unwrap();
    let audio = wav16("Hello, is this Anna?");
    let model = ("model", "whisper-large-v3");
    let (s, ct, body) = post(
        &sim,
        Some("sim-key"),
        MP,
        form(Some(("a.wav", &audio)), &[model]),
    )
    .await;
    assert_eq!((s, ct.as_deref()), (200, Some("application/json")));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["text"], " Hello, is this Anna?");
    assert!(v["x_groq"]["id"].as_str().unwrap().starts_with("req_"));

    let (s, ct, body) = post(
        &sim,
        Some("sim-key"),
        MP,
        form(
            Some(("a.wav", &audio)),
            &[model, ("response_format", "text")],
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert!(ct.unwrap().starts_with("text/plain"));
    assert_eq!(body, " Hello, is this Anna?");

    let (s, _, body) = post(
        &sim,
        Some("sim-key"),
        MP,
        form(
            Some(("a.wav", &audio)),
            &[
                model,
                ("response_format", "verbose_json"),
                ("language", "en"),
            ],
        ),
    )
    .await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["task"], "transcribe");
    assert_eq!(v["segments"][0]["text"], " Hello, is this Anna?");
    assert!(v["duration"].as_f64().unwrap() > 1.0);
    assert_eq!(
        sim.requests()[2].heard.as_deref(),
        Some("Hello, is this Anna?")
    );
}

#[tokio::test]
async fn strict_about_auth_shape_and_audio() {
    let sim = WhisperSim::start(WhisperSimConfig::default())
        .await
        .unwrap();
    let audio = wav16("hi");
    let ok_form = || {
        form(
            Some(("a.wav", &audio)),
            &[("model", "whisper-large-v3-turbo")],
        )
    };
    let (s, _, body) = post(&sim, None, MP, ok_form()).await;
    assert_eq!(s, 401);
    assert_eq!(error_of(&body)["code"], "invalid_api_key");
    let (s, _, _) = post(&sim, Some("nope"), MP, ok_form()).await;
    assert_eq!(s, 401);
    let (s, _, body) = post(&sim, Some("sim-key"), "application/json", b"{}".to_vec()).await;
    assert_eq!(s, 400);
    assert_eq!(error_of(&body)["type"], "invalid_request_error");

    let mut stereo = audio.clone();
    stereo[22] = 2;
    let mut mulaw = audio.clone();
    mulaw[20] = 7;
    let wrong_rate = wav::wrap_pcm(24_000, &[0; 480]);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (form(None, &[("model", "whisper-large-v3")]), 400),
        (form(Some(("a.wav", &audio)), &[]), 400),
        (
            form(
                Some(("a.wav", &audio)),
                &[("model", "distil-whisper-large-v3-en")],
            ),
            404,
        ),
        (
            form(
                Some(("a.wav", &audio)),
                &[("model", "whisper-large-v3"), ("response_format", "srt")],
            ),
            400,
        ),
        (
            form(
                Some(("a.wav", &audio)),
                &[("model", "whisper-large-v3"), ("language", "english")],
            ),
            400,
        ),
        (
            form(
                Some(("a.wav", &audio)),
                &[("model", "whisper-large-v3"), ("temperature", "2")],
            ),
            400,
        ),
        (
            form(
                Some(("a.wav", b"not audio")),
                &[("model", "whisper-large-v3")],
            ),
            400,
        ),
        (
            form(Some(("a.wav", &stereo)), &[("model", "whisper-large-v3")]),
            400,
        ),
        (
            form(Some(("a.wav", &mulaw)), &[("model", "whisper-large-v3")]),
            400,
        ),
        (
            form(
                Some(("a.wav", &wrong_rate)),
                &[("model", "whisper-large-v3")],
            ),
            400,
        ),
        (
            form(Some(("", &audio)), &[("model", "whisper-large-v3")]),
            400,
        ),
        (b"--BND\r\ngarbage".to_vec(), 400),
    ];
    for (i, (body, want)) in cases.into_iter().enumerate() {
        let (s, _, text) = post(&sim, Some("sim-key"), MP, body).await;
        assert_eq!(s, want, "case {i}: {text}");
        error_of(&text);
    }
}

#[tokio::test]
async fn injected_failures_count_and_carry_retry_after() {
    let sim = WhisperSim::start(WhisperSimConfig::default())
        .await
        .unwrap();
    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 429,
            retry_after: Some("3".into()),
            next: 0,
            after: Some(1),
        })
    });
    let audio = wav16("a");
    let f = || form(Some(("a.wav", &audio)), &[("model", "whisper-large-v3")]);
    assert_eq!(post(&sim, Some("sim-key"), MP, f()).await.0, 200);
    let resp = reqwest::Client::new()
        .post(format!("{}/openai/v1/audio/transcriptions", sim.base_url()))
        .header("content-type", MP)
        .header("authorization", "Bearer sim-key")
        .body(f())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let body = resp.text().await.unwrap();
    assert_eq!(error_of(&body)["code"], "rate_limit_exceeded");
}
