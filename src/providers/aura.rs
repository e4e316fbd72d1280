//! The Deepgram Aura TTS client (providers.md §6), the fallback of
//! ElevenLabs, in either wire mode:
//!
//! - REST ([`AuraMode::Rest`]): `POST {base_url}/v1/speak?model=..
//!   &encoding=linear16&sample_rate=..&container=none` with
//!   `Authorization: Token <key>` and `{"text":..}`; the streamed body is
//!   raw s16le PCM.
//! - WebSocket ([`AuraMode::WebSocket`]): `{ws(s) of base_url}/v1/speak?model=..
//!   &encoding=linear16&sample_rate=..`; sends `Speak` then `Flush`, reads
//!   binary audio frames until `Flushed`, then sends `Close`. `Metadata`,
//!   `Cleared` and `Warning` are noted and skipped; a close frame other than
//!   1000 becomes a typed error (1008 rejected, 1013 rate limited, 1002/
//!   1003/1007/1009 protocol, others unavailable).
//!
//! The voice is the request's when it is an Aura model id (`aura-...`),
//! else [`AuraConfig::model`]. [`TtsPort::synthesize`] returns once the
//! first audio is ready (failures up to then are its `Err`); later
//! failures are one [`TtsEvent::Error`]. Provider chunks are not sample
//! aligned, so an odd byte is carried over: every [`TtsEvent::Audio`]
//! holds whole samples. Timeouts: connect, first byte, idle between
//! chunks. Every synthesis asks the provider's [`CircuitBreaker`] and
//! reports its outcome. Dropping the receiver cancels.

mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
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
use crate::providers::elevenlabs::Assembler;
pub use wire::LINEAR16_RATES;

/// Deepgram's API host.
pub const DEEPGRAM_API_URL: &str = "https://api.deepgram.com";
/// The default Aura 2 voice.
pub const DEFAULT_MODEL: &str = "aura-2-thalia-en";
/// Rate used when a request asks for 0.
pub const DEFAULT_SAMPLE_RATE: u32 = 16_000;
/// TCP + TLS (+ upgrade) budget.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// From sending the text to the first audio.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence between two audio chunks.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest WebSocket message accepted.
const MAX_WS_MESSAGE: usize = 4 << 20;

/// Which API to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuraMode {
    /// §6.1: one POST per sentence, raw PCM body.
    #[default]
    Rest,
    /// §6.2: Speak / Flush over a WebSocket, binary audio frames.
    WebSocket,
}

/// Configuration of the client.
#[derive(Clone, Debug)]
pub struct AuraConfig {
    /// Scheme + host, http(s); the WebSocket mode uses the same host with
    /// ws(s).
    pub base_url: String,
    /// `Authorization: Token <key>`.
    pub api_key: Secret,
    /// The voice used when a request's is not an Aura model id.
    pub model: String,
    /// REST or WebSocket.
    pub mode: AuraMode,
    /// TCP (+TLS, + upgrade) budget.
    pub connect_timeout: Duration,
    /// From sending the text to the first audio.
    pub first_byte_timeout: Duration,
    /// Longest silence between audio chunks.
    pub idle_timeout: Duration,
}

impl AuraConfig {
    /// Defaults against Deepgram.
    pub fn new(api_key: Secret) -> Self {
        Self {
            base_url: DEEPGRAM_API_URL.into(),
            api_key,
            model: DEFAULT_MODEL.into(),
            mode: AuraMode::Rest,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuraBuildError {
    /// The key cannot be a header value.
    #[error("aura: API key is not a valid header value")]
    BadKey,
    /// The base URL is not http(s).
    #[error("aura: base URL {0:?} is not http(s)")]
    BadUrl(String),
    /// reqwest refused the settings.
    #[error("aura: HTTP client: {0}")]
    Http(reqwest::Error),
}

/// The Aura TTS client; cheap to clone, shares its pool and breaker.
#[derive(Clone, Debug)]
pub struct AuraTts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: AuraConfig,
    base: String,
    ws_base: String,
    auth: HeaderValue,
    http: reqwest::Client,
    breaker: Arc<CircuitBreaker>,
}

impl AuraTts {
    /// A client for `cfg`, reporting to `breaker`.
    pub fn new(cfg: AuraConfig, breaker: Arc<CircuitBreaker>) -> Result<Self, AuraBuildError> {
        let base = cfg.base_url.trim_end_matches('/').to_string();
        let ws_base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            return Err(AuraBuildError::BadUrl(cfg.base_url.clone()));
        };
        let mut auth = HeaderValue::from_str(&format!("Token {}", cfg.api_key.expose()))
            .map_err(|_| AuraBuildError::BadKey)?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(AuraBuildError::Http)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                base,
                ws_base,
                auth,
                http,
                breaker,
            }),
        })
    }

    /// The breaker this client reports to.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.inner.breaker
    }

    /// The model a request is spoken with.
    pub fn model_for(&self, req: &TtsRequest) -> String {
        if req.voice.starts_with("aura-") {
            req.voice.clone()
        } else {
            self.inner.cfg.model.clone()
        }
    }
}

impl TtsPort for AuraTts {
    fn synthesize(
        &self,
        req: TtsRequest,
    ) -> impl Future<Output = PortResult<mpsc::Receiver<TtsEvent>>> + Send {
        let this = self.clone();
        async move {
            let model = this.model_for(&req);
            this.inner.clone().synthesize(req, model).await
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum Conn {
    Http(BoxStream<'static, reqwest::Result<Bytes>>),
    Ws(Box<Ws>),
}

impl Conn {
    /// Reads one chunk or message; `Ok(true)` at the end.
    async fn step(&mut self, asm: &mut Assembler, out: &mut Vec<TtsEvent>) -> PortResult<bool> {
        match self {
            Conn::Http(body) => match body.next().await {
                None => Ok(true),
                Some(Ok(b)) => {
                    asm.audio(&b, out);
                    Ok(false)
                }
                Some(Err(e)) => Err(PortError::Unavailable(format!(
                    "aura: connection broken: {e}"
                ))),
            },
            Conn::Ws(ws) => loop {
                let msg = match ws.next().await {
                    None => {
                        return Err(PortError::Unavailable(
                            "aura: socket ended before Flushed".into(),
                        ));
                    }
                    Some(Err(e)) => {
                        return Err(PortError::Unavailable(format!("aura: socket broken: {e}")));
                    }
                    Some(Ok(m)) => m,
                };
                match msg {
                    Message::Binary(b) => {
                        asm.audio(&b, out);
                        return Ok(false);
                    }
                    Message::Text(t) => match wire::server_message(t.as_str())? {
                        wire::ServerMessage::Flushed => return Ok(true),
                        wire::ServerMessage::Other(what) => {
                            tracing::debug!(message = %what, "aura message");
                        }
                    },
                    Message::Close(frame) => {
                        return match frame {
                            None => Ok(true),
                            Some(f) => wire::close_result(u16::from(f.code), f.reason.as_str()),
                        };
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            },
        }
    }

    /// Ends politely (bounded): `Close` then the close handshake.
    async fn close(self) {
        if let Conn::Ws(mut ws) = self {
            let _ = tokio::time::timeout(Duration::from_millis(200), async {
                let _ = ws.send(Message::text(r#"{"type":"Close"}"#)).await;
                let _ = ws.close().await;
            })
            .await;
        }
    }
}

impl Inner {
    async fn synthesize(
        self: Arc<Self>,
        req: TtsRequest,
        model: String,
    ) -> PortResult<mpsc::Receiver<TtsEvent>> {
        let rate = if req.sample_rate == 0 {
            DEFAULT_SAMPLE_RATE
        } else {
            req.sample_rate
        };
        if !LINEAR16_RATES.contains(&rate) {
            return Err(PortError::Rejected(format!(
                "aura: no linear16 output at {rate} Hz"
            )));
        }
        if !self.breaker.allow(Instant::now()) {
            return Err(PortError::Unavailable("aura: circuit open".into()));
        }
        let mut guard = BreakerGuard::new(self.breaker.clone());
        let started = match self.cfg.mode {
            AuraMode::Rest => self.start_rest(&req.text, &model, rate).await,
            AuraMode::WebSocket => self.start_ws(&req.text, &model, rate).await,
        };
        let (mut conn, deadline) = match started {
            Ok(c) => c,
            Err(e) => {
                guard.resolve(Some(&e));
                return Err(e);
            }
        };
        let mut asm = Assembler::new(rate);
        let mut events = Vec::new();
        let mut done = false;
        while events.is_empty() && !done {
            match tokio::time::timeout_at(deadline, conn.step(&mut asm, &mut events)).await {
                Err(_) => {
                    let e = PortError::Timeout("aura: first byte".into());
                    guard.resolve(Some(&e));
                    conn.close().await;
                    return Err(e);
                }
                Ok(Err(e)) => {
                    guard.resolve(Some(&e));
                    conn.close().await;
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

    async fn start_rest(
        &self,
        text: &str,
        model: &str,
        rate: u32,
    ) -> PortResult<(Conn, tokio::time::Instant)> {
        let deadline = tokio::time::Instant::now() + self.cfg.first_byte_timeout;
        let url = format!(
            "{}/v1/speak?{}",
            self.base,
            wire::speak_query(model, rate, true)
        );
        let send = self
            .http
            .post(&url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(serde_json::json!({ "text": text }).to_string())
            .send();
        let resp = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => return Err(PortError::Timeout("aura: first byte".into())),
            Ok(Err(e)) if e.is_timeout() => {
                return Err(PortError::Timeout(format!("aura: connect: {e}")));
            }
            Ok(Err(e)) => return Err(PortError::Unavailable(format!("aura: {e}"))),
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

    async fn start_ws(
        &self,
        text: &str,
        model: &str,
        rate: u32,
    ) -> PortResult<(Conn, tokio::time::Instant)> {
        let url = format!(
            "{}/v1/speak?{}",
            self.ws_base,
            wire::speak_query(model, rate, false)
        );
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| PortError::Rejected(format!("aura: bad URL: {e}")))?;
        request
            .headers_mut()
            .insert("authorization", self.auth.clone());
        let ws_cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_MESSAGE))
            .max_frame_size(Some(MAX_WS_MESSAGE));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_cfg), true);
        let (mut ws, _resp) = match tokio::time::timeout(self.cfg.connect_timeout, connect).await {
            Err(_) => return Err(PortError::Timeout("aura: websocket handshake".into())),
            Ok(Err(e)) => return Err(wire::handshake_error(e)),
            Ok(Ok(s)) => s,
        };
        let deadline = tokio::time::Instant::now() + self.cfg.first_byte_timeout;
        let msgs = [
            serde_json::json!({"type": "Speak", "text": text}).to_string(),
            r#"{"type":"Flush"}"#.to_string(),
        ];
        for m in msgs {
            match tokio::time::timeout_at(deadline, ws.send(Message::text(m))).await {
                Err(_) => return Err(PortError::Timeout("aura: first byte".into())),
                Ok(Err(e)) => {
                    return Err(PortError::Unavailable(format!("aura: socket broken: {e}")));
                }
                Ok(Ok(())) => {}
            }
        }
        Ok((Conn::Ws(Box::new(ws)), deadline))
    }

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
                    guard.resolve(None);
                    conn.close().await;
                    return;
                }
            }
            if done {
                asm.finish();
                guard.resolve(None);
                let _ = tx.send(TtsEvent::Done).await;
                conn.close().await;
                return;
            }
            let step = tokio::select! {
                _ = tx.closed() => {
                    guard.resolve(None);
                    conn.close().await;
                    return;
                }
                r = tokio::time::timeout(self.cfg.idle_timeout, conn.step(&mut asm, &mut events)) => r,
            };
            let err = match step {
                Ok(Ok(d)) => {
                    done = d;
                    continue;
                }
                Ok(Err(e)) => e,
                Err(_) => PortError::Timeout("aura: idle between chunks".into()),
            };
            tracing::debug!(error = %err, "aura stream failed");
            guard.resolve(Some(&err));
            for ev in events.drain(..) {
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
            let _ = tx.send(TtsEvent::Error(err)).await;
            conn.close().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests;
