//! A loopback Deepgram live STT emulator, wire-exact to providers.md §3:
//! `GET /v1/listen?...` upgraded to a WebSocket, `Authorization: Token
//! <key>` (401 before the upgrade otherwise), `encoding` + `sample_rate`
//! required (400 otherwise), binary frames of s16le audio, the text
//! control messages `KeepAlive`, `Finalize` and `CloseStream` (any other
//! text message closes with 1008 `DATA-0000`), 10 s without audio or
//! KeepAlive closes with 1011 `NET-0001`.
//!
//! It really listens: the audio goes through the in-band
//! [`codec::Decoder`](crate::codec::Decoder) and an [`Endpointer`]
//! that works on stream time (samples received, not wall time), like a real
//! endpointer: `SpeechStarted` at a speech start (with `vad_events`),
//! interim `Results` every few characters or ~300 ms of speech (with
//! `interim_results`), a final `Results` with `speech_final: true` once
//! `endpointing` ms of audio passed after the last character (default 300
//! here, as the code's 15 ms symbol gaps would split words at Deepgram's
//! 10), `UtteranceEnd` `utterance_end_ms` after the last word, and an empty
//! final `Results` for every second of audio that produced nothing else
//! (the real service answers silence too). `Finalize` flushes pending text
//! as a final with `from_finalize: true`; `CloseStream` flushes, sends
//! `Metadata` and closes with 1000.
//!
//! Misbehaviour comes from [`DeepgramSimConfig`] knobs, changeable while it
//! runs through [`DeepgramSimHandle::update`].

mod endpointer;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sha2::Digest;
use talky::net::ws::{Message, WebSocket, Ws};
use warp::Filter;
use warp::Reply as _;
use warp::http::{Response, StatusCode};

use crate::server::{Emulator, SimConfig, lock};

pub use endpointer::{Endpointer, ListenParams};

/// Fail the next handshakes with a status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailHandshake {
    /// HTTP status answered instead of the upgrade (429, 500, 503, ...).
    pub status: u16,
    /// How many of the next (authorised) connects fail; decremented.
    pub next: u32,
}

/// The emulator's knobs.
#[derive(Clone, Debug)]
pub struct DeepgramSimConfig {
    /// The only key accepted (`Authorization: Token <key>`).
    pub api_key: String,
    /// Extra wall-clock delay before each final `Results`.
    pub final_latency: Duration,
    /// Injected handshake failures.
    pub fail_handshake: Option<FailHandshake>,
    /// Drop the TCP connection (no close frame) after this many audio frames.
    pub drop_after_frames: Option<u64>,
    /// Drop the TCP connection this long after the upgrade.
    pub drop_after: Option<Duration>,
    /// Accept the upgrade, read everything, never send or close.
    pub half_open: bool,
    /// Sleep this long after reading each frame (back-pressure).
    pub slow_reader: Option<Duration>,
    /// Send one non-JSON text message after this many audio frames.
    pub malformed_after_frames: Option<u64>,
    /// Interim every this many new characters.
    pub interim_every_chars: usize,
    /// Interim after this much speech audio (ms) without one.
    pub interim_every_ms: u32,
    /// No audio and no KeepAlive for this long -> close 1011 `NET-0001`.
    pub silence_timeout: Duration,
    /// Largest frame accepted from the client.
    pub max_frame_bytes: usize,
}

impl Default for DeepgramSimConfig {
    fn default() -> Self {
        Self {
            api_key: "sim-deepgram-key".into(),
            final_latency: Duration::ZERO,
            fail_handshake: None,
            drop_after_frames: None,
            drop_after: None,
            half_open: false,
            slow_reader: None,
            malformed_after_frames: None,
            interim_every_chars: 8,
            interim_every_ms: 300,
            silence_timeout: Duration::from_secs(10),
            max_frame_bytes: 1 << 20,
        }
    }
}

/// One handshake the emulator received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The query parameters, in order.
    pub query: Vec<(String, String)>,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// Status answered (101 on upgrade).
    pub status: u16,
}

/// What happened on one upgraded socket.
#[derive(Clone, Debug, Default)]
pub struct SessionLog {
    /// The query parameters of the handshake.
    pub query: Vec<(String, String)>,
    /// Binary audio frames received.
    pub audio_frames: u64,
    /// Audio bytes received.
    pub audio_bytes: u64,
    /// Text messages received (control messages), verbatim.
    pub received: Vec<String>,
    /// Text messages sent, verbatim.
    pub sent: Vec<String>,
    /// Close frame sent by the emulator.
    pub close_sent: Option<(u16, String)>,
    /// The socket is over.
    pub ended: bool,
}

impl SessionLog {
    /// The sent messages of a `type`, parsed.
    pub fn sent_of_type(&self, kind: &str) -> Vec<serde_json::Value> {
        self.sent
            .iter()
            .filter_map(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }

    /// How many received control messages were of `type`.
    pub fn received_count(&self, kind: &str) -> usize {
        self.received
            .iter()
            .filter_map(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .filter(|v| v["type"] == kind)
            .count()
    }
}

/// Every upgraded socket's log, kept beside the handshakes.
#[derive(Default)]
pub struct Sessions(Mutex<Vec<Arc<Mutex<SessionLog>>>>);

type Shared = crate::server::Shared<DeepgramSimConfig, RecordedRequest, Sessions>;

impl SimConfig for DeepgramSimConfig {
    const BASE_SCHEME: &'static str = "ws";
    fn api_key(&self) -> &str {
        &self.api_key
    }
}

/// The emulator.
pub struct DeepgramSim;

/// A running emulator; stops when dropped or
/// [`stop`](crate::server::Emulator::stop)ped.
pub type DeepgramSimHandle = Emulator<DeepgramSimConfig, RecordedRequest, Sessions>;

impl DeepgramSim {
    /// Binds 127.0.0.1:0 and serves until the handle goes.
    pub async fn start(cfg: DeepgramSimConfig) -> std::io::Result<DeepgramSimHandle> {
        Self::start_on(cfg, 0).await
    }

    /// Binds 127.0.0.1:`port` (0: any free port) and serves until the
    /// handle goes.
    pub async fn start_on(cfg: DeepgramSimConfig, port: u16) -> std::io::Result<DeepgramSimHandle> {
        Emulator::start(port, cfg, Sessions::default(), routes).await
    }
}

impl DeepgramSimHandle {
    /// Every upgraded socket so far.
    pub fn sessions(&self) -> Vec<SessionLog> {
        lock(&self.shared.extra.0)
            .iter()
            .map(|s| lock(s).clone())
            .collect()
    }
}

type Reply = warp::reply::Response;

fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::get()
        .and(warp::path!("v1" / "listen"))
        .and(query)
        .and(warp::header::headers_cloned())
        .and(talky::net::ws::ws())
        .then(
            move |query: String, headers: warp::http::HeaderMap, ws: Ws| {
                let shared = shared.clone();
                async move { handshake(shared, query, headers, ws) }
            },
        )
}

fn json_error(status: u16, code: &str, msg: &str) -> Reply {
    let body = json!({
        "err_code": code,
        "err_msg": msg,
        "request_id": uuid::Uuid::new_v4().to_string(),
    });
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        warp::http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn handshake(shared: Arc<Shared>, query: String, headers: warp::http::HeaderMap, ws: Ws) -> Reply {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&query).unwrap_or_default();
    let status_of = |reply: Reply| -> Reply {
        lock(&shared.log).push(RecordedRequest {
            query: pairs.clone(),
            authorization: authorization.clone(),
            status: reply.status().as_u16(),
        });
        reply
    };
    let cfg = {
        let mut g = lock(&shared.cfg);
        let cfg = g.clone();
        if authorization.as_deref() == Some(&format!("Token {}", cfg.api_key))
            && let Some(f) = g.fail_handshake.as_mut()
            && f.next > 0
        {
            f.next -= 1;
            let status = f.status;
            drop(g);
            return status_of(json_error(status, "INJECTED", "injected failure"));
        }
        cfg
    };
    if authorization.as_deref() != Some(&format!("Token {}", cfg.api_key)) {
        return status_of(json_error(401, "INVALID_AUTH", "Invalid credentials."));
    }
    let params = match ListenParams::parse(&pairs) {
        Ok(p) => p,
        Err(msg) => return status_of(json_error(400, "Bad Request", &msg)),
    };
    let log = Arc::new(Mutex::new(SessionLog {
        query: pairs.clone(),
        ..Default::default()
    }));
    lock(&shared.extra.0).push(log.clone());
    let shared2 = shared.clone();
    let reply = ws
        .max_frame_size(cfg.max_frame_bytes)
        .max_message_size(cfg.max_frame_bytes)
        .on_upgrade(move |socket| session(shared2, params, log, socket))
        .into_response();
    status_of(reply)
}

/// How a session loop ends.
enum End {
    /// Send this close frame.
    Close(u16, &'static str),
    /// Drop the connection without a close frame.
    Drop,
    /// The client went away.
    Gone,
}

async fn session(
    shared: Arc<Shared>,
    params: ListenParams,
    log: Arc<Mutex<SessionLog>>,
    socket: WebSocket,
) {
    let (mut tx, mut rx) = socket.split();
    let started = tokio::time::Instant::now();
    let cfg0 = lock(&shared.cfg).clone();
    let mut ep = Endpointer::new(params, cfg0.interim_every_chars, cfg0.interim_every_ms);
    let mut last_activity = tokio::time::Instant::now();
    let mut carry: Option<u8> = None;
    let mut sha = sha2::Sha256::new();
    let mut malformed_sent = false;
    let shutdown = shared.shutdown.clone();
    let end = loop {
        let cfg = lock(&shared.cfg).clone();
        let drop_at = cfg.drop_after.map(|d| started + d);
        let silence_at = last_activity + cfg.silence_timeout;
        let msg = tokio::select! {
            m = rx.next() => m,
            _ = tokio::time::sleep_until(silence_at), if !cfg.half_open => {
                break End::Close(1011, "NET-0001");
            }
            _ = async { match drop_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            } } => break End::Drop,
            _ = shutdown.wait() => break End::Drop,
        };
        let msg = match msg {
            None | Some(Err(_)) => break End::Gone,
            Some(Ok(m)) => m,
        };
        if let Some(d) = cfg.slow_reader {
            tokio::time::sleep(d).await;
        }
        let mut out: Vec<String> = Vec::new();
        let mut close: Option<End> = None;
        if msg.is_binary() {
            let bytes = msg.as_bytes();
            if bytes.is_empty() {
                // The deprecated way to close: like CloseStream.
                out.extend(ep.finalize(true).into_iter().map(|v| v.to_string()));
                out.push(metadata(&ep, &mut sha).to_string());
                close = Some(End::Close(1000, ""));
            } else {
                let frames = {
                    let mut l = lock(&log);
                    l.audio_frames += 1;
                    l.audio_bytes += bytes.len() as u64;
                    l.audio_frames
                };
                last_activity = tokio::time::Instant::now();
                sha.update(bytes);
                if cfg.drop_after_frames.is_some_and(|n| frames >= n) {
                    break End::Drop;
                }
                let mut buf = Vec::with_capacity(bytes.len() + 1);
                buf.extend(carry.take());
                buf.extend_from_slice(bytes);
                if buf.len() % 2 == 1 {
                    carry = buf.pop();
                }
                let pcm = talky::audio::pcm::bytes_to_i16(&buf);
                out.extend(ep.push(&pcm).into_iter().map(|v| v.to_string()));
                if !malformed_sent && cfg.malformed_after_frames.is_some_and(|n| frames >= n) {
                    malformed_sent = true;
                    out.push("{\"type\":\"Results\",\"channel\":{".into());
                }
            }
        } else if msg.is_text() {
            let text = msg.to_str().unwrap_or_default().to_string();
            lock(&log).received.push(text.clone());
            let kind = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string));
            match kind.as_deref() {
                Some("KeepAlive") => last_activity = tokio::time::Instant::now(),
                Some("Finalize") => {
                    last_activity = tokio::time::Instant::now();
                    out.extend(ep.finalize(true).into_iter().map(|v| v.to_string()));
                }
                Some("CloseStream") => {
                    out.extend(ep.finalize(false).into_iter().map(|v| v.to_string()));
                    out.push(metadata(&ep, &mut sha).to_string());
                    close = Some(End::Close(1000, ""));
                }
                _ => close = Some(End::Close(1008, "DATA-0000")),
            }
        } else if msg.is_close() {
            break End::Gone;
        }
        if cfg.half_open {
            continue;
        }
        for m in out {
            if !cfg.final_latency.is_zero() && m.contains("\"is_final\":true") {
                tokio::time::sleep(cfg.final_latency).await;
            }
            lock(&log).sent.push(m.clone());
            if tx.send(Message::text(m)).await.is_err() {
                break;
            }
        }
        if let Some(end) = close {
            break end;
        }
    };
    match end {
        End::Close(code, reason) => {
            lock(&log).close_sent = Some((code, reason.to_string()));
            let _ = tx.send(Message::close_with(code, reason)).await;
            // Wait (briefly) for the client's close reply.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(m)) = rx.next().await {
                    if m.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
        End::Drop | End::Gone => {}
    }
    lock(&log).ended = true;
}

fn metadata(ep: &Endpointer, sha: &mut sha2::Sha256) -> serde_json::Value {
    let digest = std::mem::take(sha).finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    json!({
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": uuid::Uuid::new_v4().to_string(),
        "sha256": hex,
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "duration": ep.duration_secs(),
        "channels": 1,
        "models": [endpointer::MODEL_UUID],
        "model_info": {
            endpointer::MODEL_UUID: {"name": "general-nova-3", "version": "2024-sim", "arch": "nova-3"}
        }
    })
}
