//! A loopback ElevenLabs TTS emulator, wire-exact to providers.md §5:
//! `POST /v1/text-to-speech/{voice_id}/stream` (raw PCM, chunked) and the
//! `GET /v1/text-to-speech/{voice_id}/stream-input` WebSocket (init
//! message, text chunks, `flush`, `{"text":""}` close; base64 audio
//! messages with `alignment` / `normalizedAlignment`, then
//! `{"isFinal":true}` and close 1000).
//!
//! It is strict like the service: `xi-api-key` (header, or `xi_api_key` in
//! the first WebSocket message) is checked (401 `invalid_api_key`),
//! `output_format` must be one of the listed formats (else a 422
//! validation error); of those it synthesises the `pcm_*` formats whose
//! rate the codec supports (8, 16, 24, 32, 48 kHz), answering 400
//! `unsupported_output_format` for the others (mp3, ulaw, 22050, 44100).
//!
//! What it "says" is the in-band code of the simulated world: the text
//! through [`crate::codec::Encoder`] (via [`crate::speech`]) at the format's rate, streamed as s16le in
//! `chunk_ms` chunks at `speed` times real time after `first_audio_latency`.
//! WebSocket alignment gives each character's start (70 ms a symbol) and
//! duration relative to its chunk. Generation happens on `flush` and at the
//! close message (the chunk schedule is accepted, not simulated); trailing
//! whitespace of a generation is not spoken.
//!
//! Misbehaviour comes from [`ElevenLabsSimConfig`] knobs, changeable while
//! it runs through [`ElevenLabsSimHandle::update`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use warp::Filter;
use warp::http::{HeaderValue, Response, StatusCode};
use warp::ws::{Message, WebSocket};

use crate::codec::SYMBOL_MS;
pub use crate::llm::FailRule;
use crate::server::{Emulator, SimConfig, lock};
use crate::speech::{self, Chunk};

/// Every `output_format` the service lists (§5).
pub const OUTPUT_FORMATS: [&str; 23] = [
    "mp3_22050_32",
    "mp3_24000_48",
    "mp3_44100_32",
    "mp3_44100_64",
    "mp3_44100_96",
    "mp3_44100_128",
    "mp3_44100_192",
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_32000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
    "alaw_8000",
    "opus_48000_32",
    "opus_48000_64",
    "opus_48000_96",
    "opus_48000_128",
    "opus_48000_192",
    // Not in the public list but harmless to recognise.
    "pcm_12000",
    "pcm_36000",
];
/// The service's default format.
pub const DEFAULT_FORMAT: &str = "mp3_44100_128";

/// The emulator's knobs.
#[derive(Clone, Debug)]
pub struct ElevenLabsSimConfig {
    /// The only key accepted.
    pub api_key: String,
    /// Delay before the first audio of each generation.
    pub first_audio_latency: Duration,
    /// Audio per chunk.
    pub chunk_ms: u32,
    /// Make every chunk one byte longer (odd lengths: chunks split samples).
    pub odd_chunks: bool,
    /// Real-time factor of generation: 4.0 = four times faster than the
    /// audio plays; 0 (or less) = as fast as possible.
    pub speed: f64,
    /// Injected HTTP failures (also at the WebSocket upgrade).
    pub fail: Option<FailRule>,
    /// Abort the stream after this many audio chunks (HTTP: broken
    /// chunked body; WebSocket: socket dropped without a close frame).
    pub drop_after_chunks: Option<usize>,
    /// Accept requests and never answer (nor upgrade).
    pub half_open: bool,
    /// WebSocket: send a message with malformed base64 audio in place of
    /// this chunk (0-based).
    pub malformed_after_chunks: Option<usize>,
}

impl Default for ElevenLabsSimConfig {
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
            malformed_after_chunks: None,
        }
    }
}

/// Which API a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimMode {
    /// §5.1.
    Http,
    /// §5.2.
    WebSocket,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still running (or never answered).
    Pending,
    /// Answered with an error status (or closed with an error).
    Failed,
    /// All audio sent.
    Completed,
    /// The client went away before the end.
    ClientGone,
    /// The emulator dropped the connection (knob).
    Dropped,
}

/// One request the emulator received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP or WebSocket.
    pub mode: SimMode,
    /// The path's voice id.
    pub voice_id: String,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// `xi-api-key` header (or `xi_api_key` of the first message).
    pub api_key: Option<String>,
    /// HTTP: the body; WebSocket: every client message (JSON; `Null`
    /// when not JSON).
    pub messages: Vec<Value>,
    /// The text spoken.
    pub text: String,
    /// HTTP status answered (101 for an upgrade; 0 while unanswered).
    pub status: u16,
    /// Audio chunks sent.
    pub chunks_sent: usize,
    /// Audio chunks planned so far.
    pub chunks_total: usize,
    /// How it ended.
    pub outcome: Outcome,
}

type Shared = crate::server::Shared<ElevenLabsSimConfig, RecordedRequest, ()>;

impl SimConfig for ElevenLabsSimConfig {
    fn api_key(&self) -> &str {
        &self.api_key
    }
}

/// The emulator.
pub struct ElevenLabsSim;

/// A running emulator; stops when dropped or
/// [`stop`](crate::server::Emulator::stop)ped.
pub type ElevenLabsSimHandle = Emulator<ElevenLabsSimConfig, RecordedRequest, ()>;

impl ElevenLabsSim {
    /// Binds 127.0.0.1:0 and serves until the handle goes.
    pub async fn start(cfg: ElevenLabsSimConfig) -> std::io::Result<ElevenLabsSimHandle> {
        Self::start_on(cfg, 0).await
    }

    /// Binds 127.0.0.1:`port` (0: any free port) and serves until the
    /// handle goes.
    pub async fn start_on(
        cfg: ElevenLabsSimConfig,
        port: u16,
    ) -> std::io::Result<ElevenLabsSimHandle> {
        Emulator::start(port, cfg, (), routes).await
    }
}

/// The PCM (s16le) the emulator speaks for `text` at `rate`.
pub fn speech_pcm(text: &str, rate: u32) -> Vec<u8> {
    crate::speech::speech_pcm(text, rate)
}

type Reply = warp::reply::Response;

fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let s1 = shared.clone();
    let http = warp::post()
        .and(warp::path!("v1" / "text-to-speech" / String / "stream"))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(move |voice, query, headers, body| {
            handle_http(s1.clone(), voice, query, headers, body)
        });
    let ws = warp::get()
        .and(warp::path!(
            "v1" / "text-to-speech" / String / "stream-input"
        ))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::headers_cloned())
        .and(warp::ws())
        .then(move |voice, query, headers, ws| {
            handle_ws(shared.clone(), voice, query, headers, ws)
        });
    http.or(ws).unify()
}

fn json_reply(status: u16, body: &Value) -> Reply {
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

fn detail_reply(status: u16, code: &str, message: &str) -> Reply {
    json_reply(
        status,
        &json!({"detail": {"status": code, "message": message}}),
    )
}

fn validation_reply(loc: &[&str], msg: &str, kind: &str) -> Reply {
    json_reply(
        422,
        &json!({"detail": [{"loc": loc, "msg": msg, "type": kind}]}),
    )
}

fn header_key(headers: &warp::http::HeaderMap) -> Option<String> {
    headers
        .get("xi-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The rate of a format the emulator can speak, or the error reply.
fn check_format(query: &HashMap<String, String>) -> Result<u32, Box<Reply>> {
    let format = query
        .get("output_format")
        .map_or(DEFAULT_FORMAT, String::as_str);
    if !OUTPUT_FORMATS.contains(&format) {
        return Err(Box::new(validation_reply(
            &["query", "output_format"],
            &format!("Input should be one of {}", OUTPUT_FORMATS[..21].join(", ")),
            "enum",
        )));
    }
    match format
        .strip_prefix("pcm_")
        .and_then(|r| r.parse::<u32>().ok())
    {
        Some(rate) if rate >= 8000 && rate % 200 == 0 => Ok(rate),
        _ => Err(Box::new(detail_reply(
            400,
            "unsupported_output_format",
            &format!(
                "sim: output format {format} is not synthesised; use pcm_8000/16000/24000/32000/48000"
            ),
        ))),
    }
}

/// The injected failure for this request, if any.
fn injected_failure(shared: &Shared, cfg: &ElevenLabsSimConfig, served: u64) -> Option<Reply> {
    let rule = cfg.fail.as_ref()?;
    if !FailRule::fires(&mut lock(&shared.cfg).fail, served) {
        return None;
    }
    let mut reply = match rule.status {
        401 => detail_reply(401, "invalid_api_key", "Invalid API key"),
        429 => detail_reply(
            429,
            "too_many_concurrent_requests",
            "Too many concurrent requests for your subscription; limit is 2.",
        ),
        500 => detail_reply(500, "internal_server_error", "Internal server error"),
        503 => detail_reply(503, "system_busy", "The system is busy, try again later."),
        s => detail_reply(s, "injected_failure", "sim: injected failure"),
    };
    if let Some(ra) = &rule.retry_after
        && let Ok(v) = HeaderValue::from_str(ra)
    {
        reply.headers_mut().insert("retry-after", v);
    }
    Some(reply)
}

fn record(
    shared: &Shared,
    mode: SimMode,
    voice_id: String,
    query: HashMap<String, String>,
    api_key: Option<String>,
) -> (usize, u64) {
    let mut log = lock(&shared.log);
    log.push(RecordedRequest {
        mode,
        voice_id,
        query,
        api_key,
        messages: Vec::new(),
        text: String::new(),
        status: 0,
        chunks_sent: 0,
        chunks_total: 0,
        outcome: Outcome::Pending,
    });
    (log.len() - 1, log.len() as u64)
}

/// Pre-stream checks common to both APIs: an error reply ends the request.
fn precheck(
    shared: &Shared,
    cfg: &ElevenLabsSimConfig,
    key: Option<&str>,
    query: &HashMap<String, String>,
    served: u64,
) -> Result<u32, Box<Reply>> {
    if let Some(k) = key
        && k != cfg.api_key
    {
        return Err(Box::new(detail_reply(
            401,
            "invalid_api_key",
            "Invalid API key",
        )));
    }
    let rate = check_format(query)?;
    if let Some(r) = injected_failure(shared, cfg, served) {
        return Err(Box::new(r));
    }
    Ok(rate)
}

async fn handle_http(
    shared: Arc<Shared>,
    voice: String,
    query: HashMap<String, String>,
    headers: warp::http::HeaderMap,
    body: Bytes,
) -> Reply {
    let key = header_key(&headers);
    let (index, served) = record(&shared, SimMode::Http, voice, query.clone(), key.clone());
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.log_mut(index, |r| r.messages.push(parsed.clone()));
    let cfg = lock(&shared.cfg).clone();
    if cfg.half_open {
        shared.wait_shutdown().await;
        return detail_reply(503, "shutting_down", "sim: shutting down");
    }
    let reply = (|| {
        let rate = precheck(
            &shared,
            &cfg,
            Some(key.as_deref().unwrap_or_default()),
            &query,
            served,
        )?;
        let Some(text) = parsed.get("text").and_then(Value::as_str) else {
            return Err(Box::new(validation_reply(
                &["body", "text"],
                "Field required",
                "missing",
            )));
        };
        Ok(stream_http(&shared, &cfg, index, text, rate))
    })();
    let reply = reply.unwrap_or_else(|r| *r);
    let status = reply.status().as_u16();
    shared.log_mut(index, |r| {
        r.status = status;
        if status != 200 {
            r.outcome = Outcome::Failed;
        }
    });
    reply
}

/// Splits the speech of `text` into chunks with their alignment.
fn plan(cfg: &ElevenLabsSimConfig, text: &str, rate: u32) -> Vec<Chunk> {
    speech::plan(text, rate, cfg.chunk_ms, cfg.odd_chunks)
}

/// When chunk `at` of a generation started at `t0` goes out.
fn due(cfg: &ElevenLabsSimConfig, t0: tokio::time::Instant, at: Duration) -> tokio::time::Instant {
    speech::due(cfg.first_audio_latency, cfg.speed, t0, at)
}

/// A body stream fed by a channel (Send + Sync, as warp wants).
struct ChanStream(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_util::Stream for ChanStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn stream_http(
    shared: &Arc<Shared>,
    cfg: &ElevenLabsSimConfig,
    index: usize,
    text: &str,
    rate: u32,
) -> Reply {
    use warp::Reply as _;
    let chunks = plan(cfg, text, rate);
    let spoken = crate::codec::normalize(text);
    shared.log_mut(index, |r| {
        r.text = spoken;
        r.chunks_total = chunks.len();
    });
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let shared = shared.clone();
    let cfg = cfg.clone();
    tokio::spawn(async move {
        let t0 = tokio::time::Instant::now();
        for (n, c) in chunks.into_iter().enumerate() {
            if cfg.drop_after_chunks == Some(n) {
                // Let the chunks already sent reach the wire first.
                if !shared.pause(Duration::from_millis(50)).await {
                    return;
                }
                let _ = tx
                    .send(Err(std::io::Error::other("sim: connection dropped")))
                    .await;
                shared.log_mut(index, |r| r.outcome = Outcome::Dropped);
                return;
            }
            let wait = due(&cfg, t0, c.at).saturating_duration_since(tokio::time::Instant::now());
            if !shared.pause(wait).await {
                return;
            }
            if tx.send(Ok(Bytes::from(c.bytes))).await.is_err() {
                shared.log_mut(index, |r| r.outcome = Outcome::ClientGone);
                return;
            }
            shared.log_mut(index, |r| r.chunks_sent += 1);
        }
        // Dropping the sender ends the body.
        drop(tx);
        shared.log_mut(index, |r| {
            if r.outcome == Outcome::Pending {
                r.outcome = Outcome::Completed;
            }
        });
    });
    let mut resp = warp::reply::stream(ChanStream(rx)).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

async fn handle_ws(
    shared: Arc<Shared>,
    voice: String,
    query: HashMap<String, String>,
    headers: warp::http::HeaderMap,
    ws: warp::ws::Ws,
) -> Reply {
    use warp::Reply as _;
    let key = header_key(&headers);
    let (index, served) = record(
        &shared,
        SimMode::WebSocket,
        voice,
        query.clone(),
        key.clone(),
    );
    let cfg = lock(&shared.cfg).clone();
    if cfg.half_open {
        shared.wait_shutdown().await;
        return detail_reply(503, "shutting_down", "sim: shutting down");
    }
    match precheck(&shared, &cfg, key.as_deref(), &query, served) {
        Err(reply) => {
            let status = reply.status().as_u16();
            shared.log_mut(index, |r| {
                r.status = status;
                r.outcome = Outcome::Failed;
            });
            *reply
        }
        Ok(rate) => {
            shared.log_mut(index, |r| r.status = 101);
            let inactivity = query
                .get("inactivity_timeout")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(20)
                .clamp(1, 180);
            let header_ok = key.is_some();
            ws.on_upgrade(move |socket| async move {
                let mut session = Session {
                    shared,
                    index,
                    rate,
                    socket,
                    sent: 0,
                };
                let outcome = session
                    .run(header_ok, Duration::from_secs(inactivity))
                    .await;
                session.shared.log_mut(index, |r| r.outcome = outcome);
            })
            .into_response()
        }
    }
}

/// One WebSocket stream-input session.
struct Session {
    shared: Arc<Shared>,
    index: usize,
    rate: u32,
    socket: WebSocket,
    /// Audio chunks sent over the session.
    sent: usize,
}

/// Why a session stopped early.
enum Stop {
    ClientGone,
    Dropped,
    Failed,
}

impl Session {
    async fn run(&mut self, header_ok: bool, inactivity: Duration) -> Outcome {
        match self.serve(header_ok, inactivity).await {
            Ok(()) => Outcome::Completed,
            Err(Stop::ClientGone) => Outcome::ClientGone,
            Err(Stop::Dropped) => Outcome::Dropped,
            Err(Stop::Failed) => Outcome::Failed,
        }
    }

    async fn send(&mut self, v: Value) -> Result<(), Stop> {
        self.socket
            .send(Message::text(v.to_string()))
            .await
            .map_err(|_| Stop::ClientGone)
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let _ = self.socket.send(Message::close_with(code, reason)).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), SinkExt::close(&mut self.socket))
            .await;
    }

    /// An error message then a close with `code`.
    async fn fail(&mut self, code: u16, error: &'static str, message: &str) -> Stop {
        let _ = self
            .send(json!({"message": message, "error": error, "code": code}))
            .await;
        self.close(code, error).await;
        Stop::Failed
    }

    /// The next client message as JSON; `None` when the client left.
    async fn next_message(&mut self, inactivity: Duration) -> Result<Value, Stop> {
        loop {
            let msg = tokio::select! {
                m = tokio::time::timeout(inactivity, self.socket.next()) => m,
                _ = self.shared.wait_shutdown() => return Err(Stop::ClientGone),
            };
            let msg = match msg {
                Err(_) => {
                    return Err(self
                        .fail(
                            1008,
                            "input_timeout_exceeded",
                            "Have not received new text for the inactivity timeout",
                        )
                        .await);
                }
                Ok(None) | Ok(Some(Err(_))) => return Err(Stop::ClientGone),
                Ok(Some(Ok(m))) => m,
            };
            if msg.is_close() {
                return Err(Stop::ClientGone);
            }
            if msg.is_ping() || msg.is_pong() {
                continue;
            }
            let v: Value = msg
                .to_str()
                .ok()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            self.shared
                .log_mut(self.index, |r| r.messages.push(v.clone()));
            if !v["text"].is_string() {
                return Err(self
                    .fail(
                        1008,
                        "invalid_message",
                        "every message must be a JSON object with a string 'text'",
                    )
                    .await);
            }
            return Ok(v);
        }
    }

    async fn serve(&mut self, header_ok: bool, inactivity: Duration) -> Result<(), Stop> {
        let init = self.next_message(inactivity).await?;
        if !header_ok {
            let key = init["xi_api_key"].as_str().map(str::to_string);
            self.shared.log_mut(self.index, |r| r.api_key = key.clone());
            let expected = lock(&self.shared.cfg).api_key.clone();
            if key.as_deref() != Some(expected.as_str()) {
                return Err(self.fail(1008, "invalid_api_key", "Invalid API key").await);
            }
        }
        if init["text"] != " " {
            return Err(self
                .fail(
                    1008,
                    "invalid_message",
                    "the first message must have text ' ' (a single space)",
                )
                .await);
        }
        let mut buffer = String::new();
        loop {
            let m = self.next_message(inactivity).await?;
            let text = m["text"].as_str().unwrap_or_default();
            let end = text.is_empty();
            buffer.push_str(text);
            if end || m["flush"] == true || m["try_trigger_generation"] == true {
                let spoken = std::mem::take(&mut buffer);
                self.generate(spoken.trim_end()).await?;
            }
            if end {
                self.send(json!({"isFinal": true})).await?;
                self.close(1000, "").await;
                return Ok(());
            }
        }
    }

    async fn generate(&mut self, text: &str) -> Result<(), Stop> {
        let cfg = lock(&self.shared.cfg).clone();
        let chunks = plan(&cfg, text, self.rate);
        let spoken = crate::codec::normalize(text);
        self.shared.log_mut(self.index, |r| {
            r.text.push_str(&spoken);
            r.chunks_total += chunks.len();
        });
        let t0 = tokio::time::Instant::now();
        let sym = f64::from(SYMBOL_MS);
        for c in chunks {
            if cfg.drop_after_chunks == Some(self.sent) {
                return Err(Stop::Dropped);
            }
            let wait = due(&cfg, t0, c.at).saturating_duration_since(tokio::time::Instant::now());
            if !self.shared.pause(wait).await {
                return Err(Stop::ClientGone);
            }
            let audio = if cfg.malformed_after_chunks == Some(self.sent) {
                "@@ not base64 @@".to_string()
            } else {
                base64::engine::general_purpose::STANDARD.encode(&c.bytes)
            };
            let alignment = if c.chars.is_empty() {
                Value::Null
            } else {
                json!({
                    "chars": c.chars.iter().map(|(ch, _)| ch.to_string()).collect::<Vec<_>>(),
                    "charStartTimesMs": c.chars.iter().map(|(_, ms)| ms.round() as u64).collect::<Vec<_>>(),
                    "charsDurationsMs": c.chars.iter().map(|_| sym as u64).collect::<Vec<_>>(),
                })
            };
            self.send(json!({"audio": audio, "isFinal": null,
                             "normalizedAlignment": alignment, "alignment": alignment}))
                .await?;
            self.sent += 1;
            self.shared.log_mut(self.index, |r| r.chunks_sent += 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
