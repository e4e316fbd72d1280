//! The ElevenLabs streaming TTS client (providers.md §5), in either of the
//! two wire modes:
//!
//! - HTTP ([`TtsMode::Http`]), `POST {base_url}/v1/text-to-speech/{voice_id}/stream
//!   ?output_format=pcm_<rate>` with the `xi-api-key` header; the chunked
//!   body is raw s16le PCM (§5.1).
//! - WebSocket ([`TtsMode::WebSocket`]), `{ws_base_url}/v1/text-to-speech/{voice_id}
//!   /stream-input?model_id=..&output_format=pcm_<rate>` (key in the
//!   `xi-api-key` upgrade header, or in the first message when
//!   [`ElevenLabsConfig::key_in_first_message`]); sends the init message
//!   (`" "`), the text with `flush: true`, then the close message
//!   (`{"text":""}`); reads base64 audio messages with alignment until
//!   `isFinal: true` (§5.2).
//!
//! [`TtsPort::synthesize`] returns once the first audio is ready, so every
//! failure up to then (HTTP status, timeout, nonsense) is its `Err`; after
//! that a failure is one [`TtsEvent::Error`] and the end of the stream.
//! Provider chunk boundaries are arbitrary, so an odd trailing byte is
//! carried to the next chunk: every [`TtsEvent::Audio`] holds whole
//! samples. [`TtsEvent::Alignment`] carries `(char index, ms)`: the index
//! of the character in the text as the provider spoke it (counted over
//! the whole synthesis) and its start in ms from the first audio sample.
//! Dropping the receiver cancels: the HTTP body is dropped (the connection
//! closes) or the socket is closed. No retries here: the caller decides.
//! Every synthesis asks the provider's [`CircuitBreaker`] first and reports
//! its outcome.

pub(crate) mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use talky_actors::ports::{
    PortError, PortResult, TTS_EVENT_CAPACITY, TtsEvent, TtsPort, TtsRequest,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::Secret;
use crate::providers::breaker::{BreakerGuard, CircuitBreaker};
pub use wire::{Assembler, VoiceSettings, pcm_rate};

/// ElevenLabs' REST base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.elevenlabs.io";
/// ElevenLabs' WebSocket base URL.
pub const DEFAULT_WS_BASE_URL: &str = "wss://api.elevenlabs.io";
/// The low-latency multilingual model (~75 ms model latency).
pub const DEFAULT_MODEL_ID: &str = "eleven_flash_v2_5";
/// Raw s16le mono at talky's native rate.
pub const DEFAULT_OUTPUT_FORMAT: &str = "pcm_16000";
/// Buffering schedule of the WebSocket mode (the service's default).
pub const DEFAULT_CHUNK_LENGTH_SCHEDULE: [u32; 4] = [120, 160, 250, 290];
/// TCP + TLS connect budget.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// From sending the request to the first audio.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence between two audio chunks.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The `pcm_*` rates of the service.
pub const PCM_RATES: [u32; 7] = [8000, 16000, 22050, 24000, 32000, 44100, 48000];
/// Longest error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest WebSocket message accepted.
const MAX_WS_MESSAGE: usize = 16 << 20;

/// Which of the two streaming APIs to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TtsMode {
    /// §5.1: one POST per sentence, raw PCM body.
    #[default]
    Http,
    /// §5.2: input streaming over a WebSocket, base64 audio + alignment.
    WebSocket,
}

/// Configuration of the client.
#[derive(Clone, Debug)]
pub struct ElevenLabsConfig {
    /// Scheme + host of the REST API, e.g. [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// Scheme + host of the WebSocket API, e.g. [`DEFAULT_WS_BASE_URL`].
    pub ws_base_url: String,
    /// `xi-api-key`.
    pub api_key: Secret,
    /// Model id.
    pub model_id: String,
    /// Format used when a request's `sample_rate` is 0; a request with a
    /// rate asks for `pcm_<rate>`. Must be a `pcm_*` format.
    pub output_format: String,
    /// Voice settings sent with every request.
    pub voice_settings: VoiceSettings,
    /// WebSocket mode: `generation_config.chunk_length_schedule`.
    pub chunk_length_schedule: Vec<u32>,
    /// HTTP mode: `optimize_streaming_latency` query (0..4), when set.
    pub optimize_streaming_latency: Option<u8>,
    /// WebSocket mode: send the key as `xi_api_key` in the init message
    /// instead of the upgrade header.
    pub key_in_first_message: bool,
    /// TCP (+TLS) connect budget.
    pub connect_timeout: Duration,
    /// From sending the request to the first audio.
    pub first_byte_timeout: Duration,
    /// Longest silence between audio chunks.
    pub idle_timeout: Duration,
    /// HTTP or WebSocket.
    pub mode: TtsMode,
}

impl ElevenLabsConfig {
    /// Defaults against the real service.
    pub fn new(api_key: Secret) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.into(),
            ws_base_url: DEFAULT_WS_BASE_URL.into(),
            api_key,
            model_id: DEFAULT_MODEL_ID.into(),
            output_format: DEFAULT_OUTPUT_FORMAT.into(),
            voice_settings: VoiceSettings::default(),
            chunk_length_schedule: DEFAULT_CHUNK_LENGTH_SCHEDULE.to_vec(),
            optimize_streaming_latency: None,
            key_in_first_message: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            mode: TtsMode::Http,
        }
    }
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ElevenLabsBuildError {
    /// The key cannot be a header value.
    #[error("elevenlabs: API key is not a valid header value")]
    BadKey,
    /// A base URL has the wrong scheme.
    #[error("elevenlabs: base URL {0:?} is not {1}")]
    BadUrl(String, &'static str),
    /// The configured output format is not `pcm_*` at a known rate.
    #[error("elevenlabs: output format {0:?} is not a pcm_* format")]
    BadFormat(String),
    /// reqwest refused the settings.
    #[error("elevenlabs: HTTP client: {0}")]
    Http(reqwest::Error),
}

/// The ElevenLabs TTS client; cheap to clone, shares its connection pool
/// and breaker.
#[derive(Clone, Debug)]
pub struct ElevenLabs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: ElevenLabsConfig,
    base: String,
    ws_base: String,
    key: HeaderValue,
    http: reqwest::Client,
    breaker: Arc<CircuitBreaker>,
}

impl ElevenLabs {
    /// A client for `cfg`, reporting to `breaker`.
    pub fn new(
        cfg: ElevenLabsConfig,
        breaker: Arc<CircuitBreaker>,
    ) -> Result<Self, ElevenLabsBuildError> {
        let base = cfg.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ElevenLabsBuildError::BadUrl(
                cfg.base_url.clone(),
                "http(s)",
            ));
        }
        let ws_base = cfg.ws_base_url.trim_end_matches('/').to_string();
        if !(ws_base.starts_with("ws://") || ws_base.starts_with("wss://")) {
            return Err(ElevenLabsBuildError::BadUrl(
                cfg.ws_base_url.clone(),
                "ws(s)",
            ));
        }
        if pcm_rate(&cfg.output_format).is_none() {
            return Err(ElevenLabsBuildError::BadFormat(cfg.output_format.clone()));
        }
        let mut key = HeaderValue::from_str(cfg.api_key.expose())
            .map_err(|_| ElevenLabsBuildError::BadKey)?;
        key.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(ElevenLabsBuildError::Http)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                base,
                ws_base,
                key,
                http,
                breaker,
            }),
        })
    }

    /// The breaker this client reports to.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.inner.breaker
    }

    /// The mode in use.
    pub fn mode(&self) -> TtsMode {
        self.inner.cfg.mode
    }
}

impl TtsPort for ElevenLabs {
    fn synthesize(
        &self,
        req: TtsRequest,
    ) -> impl Future<Output = PortResult<mpsc::Receiver<TtsEvent>>> + Send {
        let inner = self.inner.clone();
        async move { inner.synthesize(req).await }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open synthesis, HTTP body or socket.
enum Conn {
    Http(BoxStream<'static, reqwest::Result<Bytes>>),
    Ws(Box<Ws>),
}

impl Conn {
    /// Reads one body chunk or socket message; `Ok(true)` at the end.
    async fn step(&mut self, asm: &mut Assembler, out: &mut Vec<TtsEvent>) -> PortResult<bool> {
        match self {
            Conn::Http(body) => match body.next().await {
                None => Ok(true),
                Some(Ok(b)) => {
                    asm.audio(&b, out);
                    Ok(false)
                }
                Some(Err(e)) => Err(PortError::Unavailable(format!(
                    "elevenlabs: connection broken: {e}"
                ))),
            },
            Conn::Ws(ws) => loop {
                let msg = match ws.next().await {
                    None => {
                        return Err(PortError::Unavailable(
                            "elevenlabs: socket ended without isFinal".into(),
                        ));
                    }
                    Some(Err(e)) => {
                        return Err(PortError::Unavailable(format!(
                            "elevenlabs: socket broken: {e}"
                        )));
                    }
                    Some(Ok(m)) => m,
                };
                match msg {
                    Message::Text(t) => return wire::ws_message(t.as_str(), asm, out),
                    Message::Close(frame) => {
                        return match frame {
                            None => Ok(true),
                            Some(f) => wire::close_result(u16::from(f.code), f.reason.as_str()),
                        };
                    }
                    Message::Binary(_) => {
                        return Err(PortError::Protocol(
                            "elevenlabs: unexpected binary message".into(),
                        ));
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                }
            },
        }
    }

    /// Cancels: closes the socket politely (bounded), drops the body.
    async fn cancel(self) {
        if let Conn::Ws(mut ws) = self {
            let _ = tokio::time::timeout(Duration::from_millis(200), ws.close()).await;
        }
    }
}

impl Inner {
    async fn synthesize(self: Arc<Self>, req: TtsRequest) -> PortResult<mpsc::Receiver<TtsEvent>> {
        let format = if req.sample_rate == 0 {
            self.cfg.output_format.clone()
        } else if PCM_RATES.contains(&req.sample_rate) {
            format!("pcm_{}", req.sample_rate)
        } else {
            return Err(PortError::Rejected(format!(
                "elevenlabs: no pcm output at {} Hz",
                req.sample_rate
            )));
        };
        let rate = pcm_rate(&format).unwrap_or(16_000);
        if !self.breaker.allow(Instant::now()) {
            return Err(PortError::Unavailable("elevenlabs: circuit open".into()));
        }
        let mut guard = BreakerGuard::new(self.breaker.clone());
        let mut asm = Assembler::new(rate);
        let mut events = Vec::new();
        let started = match self.cfg.mode {
            TtsMode::Http => self.start_http(&req, &format).await,
            TtsMode::WebSocket => self.start_ws(&req, &format).await,
        };
        let (mut conn, deadline) = match started {
            Ok(c) => c,
            Err(e) => {
                guard.resolve(Some(&e));
                return Err(e);
            }
        };
        // Up to the first audio (or the end) within the first-byte budget.
        let mut done = false;
        while events.is_empty() && !done {
            match tokio::time::timeout_at(deadline, conn.step(&mut asm, &mut events)).await {
                Err(_) => {
                    let e = PortError::Timeout("elevenlabs: first byte".into());
                    guard.resolve(Some(&e));
                    conn.cancel().await;
                    return Err(e);
                }
                Ok(Err(e)) => {
                    guard.resolve(Some(&e));
                    conn.cancel().await;
                    return Err(e);
                }
                Ok(Ok(d)) => done = d,
            }
        }
        guard.produced_output = !events.is_empty();
        let (tx, rx) = mpsc::channel(TTS_EVENT_CAPACITY);
        tokio::spawn(self.clone().pump(conn, asm, events, done, tx, guard));
        Ok(rx)
    }

    /// Sends the POST; the body is the connection.
    async fn start_http(
        &self,
        req: &TtsRequest,
        format: &str,
    ) -> PortResult<(Conn, tokio::time::Instant)> {
        let deadline = tokio::time::Instant::now() + self.cfg.first_byte_timeout;
        let mut url = format!(
            "{}/v1/text-to-speech/{}/stream?output_format={}",
            self.base,
            wire::path_segment(&req.voice),
            format
        );
        if let Some(o) = self.cfg.optimize_streaming_latency {
            url.push_str(&format!("&optimize_streaming_latency={o}"));
        }
        let body = wire::http_body(req, &self.cfg);
        let send = self
            .http
            .post(&url)
            .header("xi-api-key", self.key.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_string())
            .send();
        let resp = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => return Err(PortError::Timeout("elevenlabs: first byte".into())),
            Ok(Err(e)) if e.is_timeout() => {
                return Err(PortError::Timeout(format!("elevenlabs: connect: {e}")));
            }
            Ok(Err(e)) => return Err(PortError::Unavailable(format!("elevenlabs: {e}"))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while body.len() < MAX_ERROR_BODY {
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(Some(Ok(b))) => body.extend_from_slice(&b),
                    _ => break,
                }
            }
            return Err(wire::status_error(status.as_u16(), &headers, &body));
        }
        Ok((Conn::Http(resp.bytes_stream().boxed()), deadline))
    }

    /// Opens the socket and sends init, text and close.
    async fn start_ws(
        &self,
        req: &TtsRequest,
        format: &str,
    ) -> PortResult<(Conn, tokio::time::Instant)> {
        let url = format!(
            "{}/v1/text-to-speech/{}/stream-input?model_id={}&output_format={}",
            self.ws_base,
            wire::path_segment(&req.voice),
            wire::query_value(&self.cfg.model_id),
            format
        );
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| PortError::Rejected(format!("elevenlabs: bad URL: {e}")))?;
        if !self.cfg.key_in_first_message {
            request.headers_mut().insert("xi-api-key", self.key.clone());
        }
        let ws_cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(crate::http::ws::READ_BUFFER_BYTES)
            .write_buffer_size(crate::http::ws::WRITE_BUFFER_BYTES)
            .max_message_size(Some(MAX_WS_MESSAGE));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_cfg), true);
        let budget = self.cfg.connect_timeout + self.cfg.first_byte_timeout;
        let (mut ws, _resp) = match tokio::time::timeout(budget, connect).await {
            Err(_) => {
                return Err(PortError::Timeout("elevenlabs: websocket handshake".into()));
            }
            Ok(Err(e)) => return Err(wire::handshake_error(e)),
            Ok(Ok(s)) => s,
        };
        let deadline = tokio::time::Instant::now() + self.cfg.first_byte_timeout;
        let key = self
            .cfg
            .key_in_first_message
            .then(|| self.cfg.api_key.expose());
        let msgs = [
            wire::ws_init(&self.cfg, key),
            wire::ws_text(&req.text),
            serde_json::json!({"text": ""}).to_string(),
        ];
        for m in msgs {
            match tokio::time::timeout_at(deadline, ws.send(Message::text(m))).await {
                Err(_) => return Err(PortError::Timeout("elevenlabs: first byte".into())),
                Ok(Err(e)) => {
                    return Err(PortError::Unavailable(format!(
                        "elevenlabs: socket broken: {e}"
                    )));
                }
                Ok(Ok(())) => {}
            }
        }
        Ok((Conn::Ws(Box::new(ws)), deadline))
    }

    /// Hands the events over, then streams the rest.
    async fn pump(
        self: Arc<Self>,
        mut conn: Conn,
        mut asm: Assembler,
        mut events: Vec<TtsEvent>,
        mut done: bool,
        tx: mpsc::Sender<TtsEvent>,
        mut guard: BreakerGuard,
    ) {
        loop {
            for ev in events.drain(..) {
                guard.produced_output = true;
                if tx.send(ev).await.is_err() {
                    // The receiver is gone: the caller cancelled.
                    guard.resolve(None);
                    conn.cancel().await;
                    return;
                }
            }
            if done {
                asm.finish();
                guard.resolve(None);
                let _ = tx.send(TtsEvent::Done).await;
                if let Conn::Ws(ws) = &mut conn {
                    // Let the server's close frame arrive (bounded).
                    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close()).await;
                }
                return;
            }
            let step = tokio::select! {
                _ = tx.closed() => {
                    guard.resolve(None);
                    conn.cancel().await;
                    return;
                }
                r = tokio::time::timeout(self.cfg.idle_timeout, conn.step(&mut asm, &mut events)) => r,
            };
            match step {
                Ok(Ok(d)) => done = d,
                Ok(Err(e)) => {
                    self.fail(e, events, tx, guard, conn).await;
                    return;
                }
                Err(_) => {
                    let e = PortError::Timeout("elevenlabs: idle between chunks".into());
                    self.fail(e, events, tx, guard, conn).await;
                    return;
                }
            }
        }
    }

    async fn fail(
        &self,
        e: PortError,
        events: Vec<TtsEvent>,
        tx: mpsc::Sender<TtsEvent>,
        guard: BreakerGuard,
        conn: Conn,
    ) {
        tracing::debug!(error = %e, "elevenlabs stream failed");
        guard.resolve(Some(&e));
        // Audio decoded before the failure still goes out first.
        for ev in events {
            if tx.send(ev).await.is_err() {
                conn.cancel().await;
                return;
            }
        }
        let _ = tx.send(TtsEvent::Error(e)).await;
        conn.cancel().await;
    }
}

#[cfg(test)]
mod tests;
