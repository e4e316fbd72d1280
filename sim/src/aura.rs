//! A loopback Deepgram Aura TTS emulator, wire-exact to providers.md §6:
//! `POST /v1/speak` (streamed audio) and the `GET /v1/speak` WebSocket
//! (`Speak`, `Flush`, `Clear`, `Close` in; binary audio, `Metadata` on
//! open, `Flushed` / `Cleared` out; close 1000 after `Close`).
//!
//! Strict like the service: `Authorization: Token <key>` (else 401
//! `INVALID_AUTH`), `model` an Aura id (`aura-...-xx`), `encoding` and
//! `sample_rate` one of the listed combinations (linear16 at 8/16/24/32/
//! 48 kHz, mulaw/alaw at 8/16 kHz; REST also mp3/opus/flac/aac), else a
//! 400 with Deepgram's `{"err_code","err_msg","request_id"}` body. It
//! synthesises linear16 (REST `container=wav`, its default for linear16,
//! prefixes the 44-byte header) and mulaw; the other encodings are a 400
//! "not synthesised". Over the socket a message that is not a known JSON
//! command closes 1008 `DATA-0000`; `inactivity` without a message closes
//! 1011 `NET-0001`.
//!
//! What it says is the in-band code ([`crate::speech`], shared with
//! the ElevenLabs emulator) at the requested rate, in `chunk_ms` chunks at
//! `speed` times real time after `first_audio_latency`. Knobs
//! ([`AuraSimConfig`]): latency, speed (slow), odd chunks, injected HTTP
//! failures ([`FailRule`], also at the upgrade), drop the connection after
//! N chunks, half-open, a malformed text message instead of `Flushed`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use warp::Filter;
use warp::http::{HeaderValue, Response, StatusCode};

pub use crate::llm::FailRule;
use crate::server::{Emulator, SimConfig, lock};
use crate::speech;

/// The emulator's knobs.
#[derive(Clone, Debug)]
pub struct AuraSimConfig {
    /// The only key accepted.
    pub api_key: String,
    /// Delay before the first audio of each generation.
    pub first_audio_latency: Duration,
    /// Audio per chunk.
    pub chunk_ms: u32,
    /// Make every chunk one byte longer (chunks split samples).
    pub odd_chunks: bool,
    /// Real-time factor of generation (below 1: slower than real time);
    /// 0 = as fast as possible.
    pub speed: f64,
    /// Injected HTTP failures (also at the WebSocket upgrade).
    pub fail: Option<FailRule>,
    /// Break the connection after this many audio chunks.
    pub drop_after_chunks: Option<usize>,
    /// Accept requests and never answer (nor upgrade).
    pub half_open: bool,
    /// WebSocket: send a malformed text message instead of `Flushed`.
    pub malformed: bool,
    /// WebSocket: close 1011 after this long without a client message.
    pub inactivity: Duration,
}

impl Default for AuraSimConfig {
    fn default() -> Self {
        Self {
            api_key: "sim-key".into(),
            first_audio_latency: Duration::from_millis(50),
            chunk_ms: 100,
            odd_chunks: false,
            speed: 8.0,
            fail: None,
            drop_after_chunks: None,
            half_open: false,
            malformed: false,
            inactivity: Duration::from_secs(10),
        }
    }
}

/// One request the emulator received.
#[derive(Clone, Debug, Default)]
pub struct RecordedRequest {
    /// True for the WebSocket API.
    pub websocket: bool,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// REST: the body; WebSocket: every client text message (JSON, `Null`
    /// when not JSON).
    pub messages: Vec<Value>,
    /// The text spoken.
    pub text: String,
    /// HTTP status answered (101 for an upgrade; 0 while unanswered).
    pub status: u16,
    /// Audio chunks sent.
    pub chunks_sent: usize,
    /// The session (or body) ended.
    pub finished: bool,
}

type Shared = crate::server::Shared<AuraSimConfig, RecordedRequest, ()>;

impl SimConfig for AuraSimConfig {
    fn api_key(&self) -> &str {
        &self.api_key
    }
}

/// The emulator.
pub struct AuraSim;

/// A running emulator; stops when dropped or
/// [`stop`](crate::server::Emulator::stop)ped.
pub type AuraSimHandle = Emulator<AuraSimConfig, RecordedRequest, ()>;

impl AuraSim {
    /// Binds 127.0.0.1:0 and serves until the handle goes.
    pub async fn start(cfg: AuraSimConfig) -> std::io::Result<AuraSimHandle> {
        Emulator::start(0, cfg, (), routes).await
    }
}

type Reply = warp::reply::Response;

fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let s1 = shared.clone();
    let rest = warp::post()
        .and(warp::path!("v1" / "speak"))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(1 << 20))
        .and(warp::body::bytes())
        .then(move |query, headers, body| handle_rest(s1.clone(), query, headers, body));
    let ws = warp::get()
        .and(warp::path!("v1" / "speak"))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::headers_cloned())
        .and(warp::ws())
        .then(move |query, headers, ws| socket::handle_ws(shared.clone(), query, headers, ws));
    rest.or(ws).unify()
}

fn err_reply(status: u16, code: &str, msg: &str) -> Reply {
    let body = json!({"err_code": code, "err_msg": msg,
                      "request_id": uuid::Uuid::new_v4().to_string()});
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// How the audio is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Linear16,
    Mulaw,
}

/// A valid request's audio settings.
#[derive(Clone, Copy, Debug)]
struct Format {
    encoding: Encoding,
    rate: u32,
    wav: bool,
}

fn valid_model(m: &str) -> bool {
    let Some(rest) = m.strip_prefix("aura-") else {
        return false;
    };
    let lang = rest.rsplit('-').next().unwrap_or_default();
    rest.contains('-') && lang.len() == 2 && lang.chars().all(|c| c.is_ascii_lowercase())
}

/// Checks the query: the audio format, or the error reply.
fn check_query(query: &HashMap<String, String>, websocket: bool) -> Result<Format, Box<Reply>> {
    let bad = |msg: String| Box::new(err_reply(400, "INVALID_QUERY_PARAMETER", &msg));
    let model = query.get("model").map_or("aura-asteria-en", String::as_str);
    if !valid_model(model) {
        return Err(bad(format!("Unsupported model: {model}")));
    }
    let encoding = query.get("encoding").map_or("linear16", String::as_str);
    let allowed: &[&str] = if websocket {
        &["linear16", "mulaw", "alaw"]
    } else {
        &["linear16", "mulaw", "alaw", "mp3", "opus", "flac", "aac"]
    };
    if !allowed.contains(&encoding) {
        return Err(bad(format!("Unsupported encoding: {encoding}")));
    }
    let default_rate = match (encoding, websocket) {
        ("linear16", _) => "24000",
        _ => "8000",
    };
    let rate: u32 = query
        .get("sample_rate")
        .map_or(default_rate, String::as_str)
        .parse()
        .map_err(|_| bad("sample_rate is not a number".into()))?;
    let rate_ok = match encoding {
        "linear16" => [8000, 16000, 24000, 32000, 48000].contains(&rate),
        "mulaw" | "alaw" => [8000, 16000].contains(&rate),
        _ => true,
    };
    if !rate_ok {
        return Err(bad(format!(
            "sample_rate {rate} is not supported with encoding {encoding}"
        )));
    }
    let container = query.get("container").map(String::as_str);
    if websocket && container.is_some_and(|c| c != "none") {
        return Err(bad("container is not supported over the WebSocket".into()));
    }
    let enc = match encoding {
        "linear16" => Encoding::Linear16,
        "mulaw" => Encoding::Mulaw,
        other => {
            return Err(bad(format!("sim: encoding {other} is not synthesised")));
        }
    };
    let wav = !websocket && enc == Encoding::Linear16 && container.unwrap_or("wav") == "wav";
    if container.is_some_and(|c| !["wav", "none"].contains(&c)) {
        return Err(bad("sim: only container wav or none is synthesised".into()));
    }
    Ok(Format {
        encoding: enc,
        rate,
        wav,
    })
}

fn injected_failure(shared: &Shared, cfg: &AuraSimConfig, served: u64) -> Option<Reply> {
    let rule = cfg.fail.as_ref()?;
    if !FailRule::fires(&mut lock(&shared.cfg).fail, served) {
        return None;
    }
    let mut reply = match rule.status {
        401 => err_reply(401, "INVALID_AUTH", "Invalid credentials."),
        429 => err_reply(
            429,
            "TOO_MANY_REQUESTS",
            "Too many requests. Please try again later",
        ),
        s @ 500..=599 => err_reply(s, "INTERNAL_SERVER_ERROR", "Internal server error"),
        s => err_reply(s, "BAD_REQUEST", "sim: injected failure"),
    };
    if let Some(ra) = &rule.retry_after
        && let Ok(v) = HeaderValue::from_str(ra)
    {
        reply.headers_mut().insert("retry-after", v);
    }
    Some(reply)
}

/// Auth, query and injected failures; records the request.
fn precheck(
    shared: &Shared,
    query: &HashMap<String, String>,
    headers: &warp::http::HeaderMap,
    websocket: bool,
) -> (usize, AuraSimConfig, Result<Format, Box<Reply>>) {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (index, served) = {
        let mut log = lock(&shared.log);
        log.push(RecordedRequest {
            websocket,
            query: query.clone(),
            authorization: authorization.clone(),
            ..Default::default()
        });
        (log.len() - 1, log.len() as u64)
    };
    let cfg = lock(&shared.cfg).clone();
    let result = (|| {
        if authorization.as_deref() != Some(&format!("Token {}", cfg.api_key)) {
            return Err(Box::new(err_reply(
                401,
                "INVALID_AUTH",
                "Invalid credentials.",
            )));
        }
        let format = check_query(query, websocket)?;
        if let Some(r) = injected_failure(shared, &cfg, served) {
            return Err(Box::new(r));
        }
        Ok(format)
    })();
    (index, cfg, result)
}

/// The bytes of one chunk in the wire encoding.
fn encode(format: Format, pcm: Vec<u8>) -> Vec<u8> {
    match format.encoding {
        Encoding::Linear16 => pcm,
        Encoding::Mulaw => talky::audio::mulaw::encode(&talky::audio::pcm::bytes_to_i16(&pcm)),
    }
}

async fn handle_rest(
    shared: Arc<Shared>,
    query: HashMap<String, String>,
    headers: warp::http::HeaderMap,
    body: Bytes,
) -> Reply {
    let (index, cfg, checked) = precheck(&shared, &query, &headers, false);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.log_mut(index, |r| r.messages.push(parsed.clone()));
    if cfg.half_open {
        shared.wait_shutdown().await;
        return err_reply(503, "SHUTTING_DOWN", "sim: shutting down");
    }
    let reply = checked.and_then(|format| {
        let json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().starts_with("application/json"));
        let text = parsed
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !json || text.trim().is_empty() {
            return Err(Box::new(err_reply(
                400,
                "INVALID_REQUEST_BODY",
                "The request body must be JSON with a non-empty 'text'.",
            )));
        }
        Ok(stream_rest(&shared, &cfg, index, text, format))
    });
    let reply = reply.unwrap_or_else(|r| *r);
    let status = reply.status().as_u16();
    shared.log_mut(index, |r| {
        r.status = status;
        r.finished |= status != 200;
    });
    reply
}

/// A body stream fed by a channel (Send + Sync, as warp wants).
struct ChanStream(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_util::Stream for ChanStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn stream_rest(
    shared: &Arc<Shared>,
    cfg: &AuraSimConfig,
    index: usize,
    text: &str,
    format: Format,
) -> Reply {
    use warp::Reply as _;
    let chunks = speech::plan(text, format.rate, cfg.chunk_ms, cfg.odd_chunks);
    let spoken = crate::codec::normalize(text);
    let chars = spoken.chars().count();
    shared.log_mut(index, |r| r.text = spoken);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let shared = shared.clone();
    let cfg = cfg.clone();
    let total: usize = chunks.iter().map(|c| c.bytes.len()).sum();
    tokio::spawn(async move {
        let t0 = tokio::time::Instant::now();
        if format.wav {
            let h = talky::audio::wav::header(format.rate, total);
            if tx.send(Ok(Bytes::copy_from_slice(&h))).await.is_err() {
                return;
            }
        }
        for (n, c) in chunks.into_iter().enumerate() {
            if cfg.drop_after_chunks == Some(n) {
                if !shared.pause(Duration::from_millis(50)).await {
                    return;
                }
                let _ = tx
                    .send(Err(std::io::Error::other("sim: connection dropped")))
                    .await;
                shared.log_mut(index, |r| r.finished = true);
                return;
            }
            let due = speech::due(cfg.first_audio_latency, cfg.speed, t0, c.at);
            if !shared
                .pause(due.saturating_duration_since(tokio::time::Instant::now()))
                .await
            {
                return;
            }
            if tx
                .send(Ok(Bytes::from(encode(format, c.bytes))))
                .await
                .is_err()
            {
                break;
            }
            shared.log_mut(index, |r| r.chunks_sent += 1);
        }
        shared.log_mut(index, |r| r.finished = true);
    });
    let mut resp = warp::reply::stream(ChanStream(rx)).into_response();
    let h = resp.headers_mut();
    let ct = match (format.encoding, format.wav) {
        (_, true) => "audio/wav",
        (Encoding::Linear16, false) => "application/octet-stream",
        (Encoding::Mulaw, false) => "audio/basic",
    };
    h.insert("content-type", HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("dg-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&chars.to_string()) {
        h.insert("dg-char-count", v);
    }
    resp
}

mod socket;
#[cfg(test)]
mod tests;
