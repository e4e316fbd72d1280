//! A loopback Groq Whisper emulator, wire-exact to providers.md §4:
//! `POST /openai/v1/audio/transcriptions` (also `/v1/...` as OpenAI's),
//! `multipart/form-data` with a `file` part and text fields.
//!
//! Strict like the service, with the §7.4 error bodies: a missing or wrong
//! `Authorization: Bearer` is 401 `invalid_api_key`; a body that is not
//! multipart with a boundary, a missing `file` (or one without filename),
//! a file that is not a WAV of s16 mono PCM at 8 or 16 kHz, a bad
//! `language`, `response_format` or `temperature` is 400
//! `invalid_request_error`; a `model` outside [`MODELS`] is 404
//! `model_not_found`. What it hears is the in-band code
//! ([`crate::codec`]) decoded from the WAV's samples; it answers as
//! `json` (`{"text":" <heard>","x_groq":{..}}`, with Whisper's leading
//! space), `text` (plain text) or `verbose_json` (segments, duration).
//!
//! Knobs ([`WhisperSimConfig`], changeable while it runs): latency,
//! injected failures ([`FailRule`]: status, next N, after N, Retry-After),
//! half-open (accept and never answer), malformed (a 200 with a broken
//! JSON body).

pub(crate) mod multipart;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderValue, Response, StatusCode};

use crate::codec::Decoder;
pub use crate::llm::FailRule;
use crate::server::{Emulator, SimConfig, lock};
use talky::audio::{pcm, wav};

/// The models the service offers (§4).
pub const MODELS: [&str; 2] = ["whisper-large-v3", "whisper-large-v3-turbo"];
/// Largest file accepted (the free tier's 25 MB).
pub const MAX_FILE_BYTES: usize = 25 * 1024 * 1024;

/// The emulator's knobs.
#[derive(Clone, Debug)]
pub struct WhisperSimConfig {
    /// The only bearer key accepted.
    pub api_key: String,
    /// Delay before answering a valid request.
    pub latency: Duration,
    /// Injected HTTP failures (after authentication and validation).
    pub fail: Option<FailRule>,
    /// Accept requests and never answer.
    pub half_open: bool,
    /// Answer valid requests 200 with a broken JSON body.
    pub malformed: bool,
}

impl Default for WhisperSimConfig {
    fn default() -> Self {
        Self {
            api_key: "sim-key".into(),
            latency: Duration::ZERO,
            fail: None,
            half_open: false,
            malformed: false,
        }
    }
}

/// One request the emulator received.
#[derive(Clone, Debug, Default)]
pub struct RecordedRequest {
    /// URL path.
    pub path: String,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// The text fields of the form.
    pub fields: HashMap<String, String>,
    /// The `file` part's filename.
    pub file_name: Option<String>,
    /// The `file` part's content type.
    pub file_content_type: Option<String>,
    /// The `file` part's bytes.
    pub file: Vec<u8>,
    /// What it heard (valid requests).
    pub heard: Option<String>,
    /// The status answered (0 while unanswered).
    pub status: u16,
}

type Shared = crate::server::Shared<WhisperSimConfig, RecordedRequest, AtomicU64>;

impl SimConfig for WhisperSimConfig {
    fn api_key(&self) -> &str {
        &self.api_key
    }
}

/// The emulator.
pub struct WhisperSim;

/// A running emulator; stops when dropped or
/// [`stop`](crate::server::Emulator::stop)ped.
pub type WhisperSimHandle = Emulator<WhisperSimConfig, RecordedRequest, AtomicU64>;

impl WhisperSim {
    /// Binds 127.0.0.1:0 and serves until the handle goes.
    pub async fn start(cfg: WhisperSimConfig) -> std::io::Result<WhisperSimHandle> {
        Emulator::start(0, cfg, AtomicU64::new(1), routes).await
    }
}

type Reply = warp::reply::Response;

fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let path = warp::path!("openai" / "v1" / "audio" / "transcriptions")
        .or(warp::path!("v1" / "audio" / "transcriptions"))
        .unify();
    warp::post()
        .and(path)
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(
            MAX_FILE_BYTES as u64 + 64 * 1024,
        ))
        .and(warp::body::bytes())
        .then(move |full: warp::path::FullPath, headers, body| {
            handle(shared.clone(), full.as_str().to_string(), headers, body)
        })
}

/// A §7.4 error body.
fn error_reply(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
    json_reply(
        status,
        &json!({"error": {"message": message, "type": kind, "code": code, "param": null}}),
    )
}

fn invalid(message: &str) -> Reply {
    error_reply(400, message, "invalid_request_error", None)
}

fn json_reply(status: u16, body: &Value) -> Reply {
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

async fn handle(
    shared: Arc<Shared>,
    path: String,
    headers: warp::http::HeaderMap,
    body: Bytes,
) -> Reply {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (index, served) = {
        let mut log = lock(&shared.log);
        log.push(RecordedRequest {
            path,
            authorization: header("authorization"),
            content_type: header("content-type"),
            ..Default::default()
        });
        (log.len() - 1, log.len() as u64)
    };
    let cfg = lock(&shared.cfg).clone();
    if cfg.half_open {
        shared.shutdown.wait().await;
        return error_reply(503, "shutting down", "server_error", None);
    }
    let reply = match respond(&shared, &cfg, index, served, &body) {
        Ok(reply) => {
            shared.shutdown.pause(cfg.latency).await;
            reply
        }
        Err(reply) => *reply,
    };
    if let Some(r) = lock(&shared.log).get_mut(index) {
        r.status = reply.status().as_u16();
    }
    reply
}

fn respond(
    shared: &Shared,
    cfg: &WhisperSimConfig,
    index: usize,
    served: u64,
    body: &[u8],
) -> Result<Reply, Box<Reply>> {
    let (authorization, content_type) = {
        let log = lock(&shared.log);
        let r = log.get(index);
        (
            r.and_then(|r| r.authorization.clone()),
            r.and_then(|r| r.content_type.clone()),
        )
    };
    if authorization.as_deref() != Some(&format!("Bearer {}", cfg.api_key)) {
        return Err(Box::new(error_reply(
            401,
            "Invalid API Key",
            "invalid_request_error",
            Some("invalid_api_key"),
        )));
    }
    let Some(boundary) = content_type.as_deref().and_then(multipart::boundary) else {
        return Err(Box::new(invalid(
            "request Content-Type isn't multipart/form-data",
        )));
    };
    let parts = multipart::parse(body, &boundary)
        .map_err(|e| Box::new(invalid(&format!("could not parse multipart form: {e}"))))?;
    let mut fields = HashMap::new();
    let mut file = None;
    for p in parts {
        if p.name == "file" {
            file = Some(p);
        } else {
            fields.insert(p.name, String::from_utf8_lossy(&p.data).into_owned());
        }
    }
    if let Some(r) = lock(&shared.log).get_mut(index) {
        r.fields = fields.clone();
        if let Some(f) = &file {
            r.file_name = f.filename.clone();
            r.file_content_type = f.content_type.clone();
            r.file = f.data.clone();
        }
    }
    let Some(file) = file else {
        return Err(Box::new(invalid("file or url must be provided")));
    };
    if file.filename.as_deref().is_none_or(str::is_empty) {
        return Err(Box::new(invalid("file must have a filename")));
    }
    let Some(model) = fields.get("model") else {
        return Err(Box::new(invalid("property 'model' is missing")));
    };
    if !MODELS.contains(&model.as_str()) {
        return Err(Box::new(error_reply(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            Some("model_not_found"),
        )));
    }
    let format = fields
        .get("response_format")
        .map_or("json", String::as_str)
        .to_string();
    if !["json", "text", "verbose_json"].contains(&format.as_str()) {
        return Err(Box::new(invalid(
            "response_format must be one of json, text, verbose_json",
        )));
    }
    if let Some(l) = fields.get("language")
        && !(l.len() == 2 && l.chars().all(|c| c.is_ascii_lowercase()))
    {
        return Err(Box::new(invalid(&format!(
            "language '{l}' is not a valid ISO-639-1 code"
        ))));
    }
    if let Some(t) = fields.get("temperature")
        && !t
            .trim()
            .parse::<f64>()
            .is_ok_and(|t| (0.0..=1.0).contains(&t))
    {
        return Err(Box::new(invalid("temperature must be between 0 and 1")));
    }
    let Ok(w) = wav::parse(&file.data) else {
        return Err(Box::new(invalid(
            "could not process file - is it a valid media file?",
        )));
    };
    let f = w.format;
    if f.audio_format != 1
        || f.channels != 1
        || f.bits_per_sample != 16
        || !(f.sample_rate == 8_000 || f.sample_rate == 16_000)
    {
        return Err(Box::new(invalid(
            "sim: only s16 mono PCM WAV at 8000 or 16000 Hz is transcribed",
        )));
    }
    if let Some(reply) = injected_failure(shared, cfg, served) {
        return Err(Box::new(reply));
    }
    let mut decoder = Decoder::new(f.sample_rate);
    decoder.push(&pcm::bytes_to_i16(w.data));
    decoder.flush();
    let heard = decoder.take_text();
    if let Some(r) = lock(&shared.log).get_mut(index) {
        r.heard = Some(heard.clone());
    }
    let seq = shared.extra.fetch_add(1, Ordering::Relaxed);
    if cfg.malformed {
        let mut resp = Response::new("{\"text\": \" half".into());
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return Ok(resp);
    }
    // Whisper's transcripts start with a space.
    let text = if heard.is_empty() {
        String::new()
    } else {
        format!(" {heard}")
    };
    let duration = w.data.len() as f64 / 2.0 / f64::from(f.sample_rate);
    let x_groq = json!({"id": format!("req_sim{seq}")});
    Ok(match format.as_str() {
        "text" => {
            let mut resp = Response::new(text.into());
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
        "verbose_json" => json_reply(
            200,
            &json!({
                "task": "transcribe", "language": "english", "duration": duration, "text": text,
                "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text,
                              "tokens": [], "temperature": 0.0, "avg_logprob": -0.1,
                              "compression_ratio": 1.0, "no_speech_prob": 0.01}],
                "x_groq": x_groq,
            }),
        ),
        _ => json_reply(200, &json!({"text": text, "x_groq": x_groq})),
    })
}

fn injected_failure(shared: &Shared, cfg: &WhisperSimConfig, served: u64) -> Option<Reply> {
    let rule = cfg.fail.as_ref()?;
    if !FailRule::fires(&mut lock(&shared.cfg).fail, served) {
        return None;
    }
    let mut reply = match rule.status {
        429 => error_reply(
            429,
            "Rate limit reached for model `whisper-large-v3-turbo` on audio seconds per hour (ASPH): Limit 7200. Please try again later.",
            "audio_seconds",
            Some("rate_limit_exceeded"),
        ),
        500 => error_reply(500, "Internal Server Error", "internal_server_error", None),
        502 => error_reply(502, "Bad Gateway", "server_error", None),
        503 => error_reply(503, "Service Unavailable", "server_error", None),
        s => error_reply(s, "Injected failure", "invalid_request_error", None),
    };
    if let Some(ra) = &rule.retry_after
        && let Ok(v) = HeaderValue::from_str(ra)
    {
        reply.headers_mut().insert("retry-after", v);
    }
    Some(reply)
}

#[cfg(test)]
mod tests;
