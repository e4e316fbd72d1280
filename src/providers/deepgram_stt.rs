//! The Deepgram live streaming STT client (providers.md §3).
//!
//! [`DeepgramStt::open`] connects `{base_url}/v1/listen?...` with
//! `Authorization: Token <key>` and returns an [`SttSession`]: a bounded
//! PCM sender and a bounded event receiver. Two tasks serve a session:
//!
//! - the **writer** sends each PCM chunk as a binary frame, a text
//!   `{"type":"KeepAlive"}` after `keepalive_every` without audio, and, once
//!   the audio sender is dropped, `{"type":"Finalize"}` then
//!   `{"type":"CloseStream"}`;
//! - the **reader** turns the server's text messages into [`SttEvent`]s:
//!   `Results` become [`SttEvent::Final`] (`is_final`) or
//!   [`SttEvent::Interim`], empty transcripts are skipped, `SpeechStarted`
//!   and `UtteranceEnd` pass through, `Metadata` and `Warning` are ignored.
//!   A close frame other than the `1000` answering our `CloseStream`, a lost
//!   connection, malformed JSON, an oversized message or a server `Error`
//!   becomes one [`SttEvent::Error`], and the session ends.
//!
//! Half-open detection: the real service answers audio with `Results`
//! (empty ones in silence), so when audio (or `CloseStream`) was sent and
//! nothing at all came back for `idle_timeout`, the session fails with
//! [`PortError::Timeout`]. Keep-alives expect no answer: once the audio
//! stops long enough for a KeepAlive, the wait is forgotten.
//!
//! Handshake failures map to port errors by status: 401/403 and other 4xx
//! -> `Rejected`, 429 -> `RateLimited`, 5xx -> `Unavailable`; a connect
//! that takes longer than `connect_timeout` -> `Timeout`. Every open asks
//! the provider's [`CircuitBreaker`] first (a [`BreakerGuard`]); the
//! handshake outcome is reported to it (a handshake its caller gave up on
//! counts as a failure), and so is a session that later fails with
//! `Unavailable` or `Timeout` (a broken or stalled provider).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use talky_actors::ports::{
    PROVIDER_EVENT_CAPACITY, PortError, PortResult, STT_AUDIO_CAPACITY, SttConfig, SttEvent,
    SttPort, SttSession,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::Secret;
use crate::providers::breaker::{BreakerGuard, CircuitBreaker};
use crate::providers::build::{self, BuildError, WS_SCHEMES};
use crate::providers::observe;
use crate::providers::retry;

/// Deepgram's streaming host.
pub const DEEPGRAM_BASE_URL: &str = "wss://api.deepgram.com";
/// Model asked for.
pub const DEFAULT_MODEL: &str = "nova-3";
/// Silence (ms) after which the endpointer sets `speech_final`.
pub const DEFAULT_ENDPOINTING_MS: u32 = 300;
/// No finalised word for this long (ms) -> `UtteranceEnd`.
pub const DEFAULT_UTTERANCE_END_MS: u32 = 1000;
/// TCP + TLS + upgrade budget.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for any server message once audio is unanswered.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// KeepAlive period while no audio flows (the server drops after 10 s).
pub const DEFAULT_KEEPALIVE_EVERY: Duration = Duration::from_secs(4);
/// Largest server message accepted.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The KeepAlive control message.
pub const KEEPALIVE: &str = r#"{"type":"KeepAlive"}"#;
/// The Finalize control message.
pub const FINALIZE: &str = r#"{"type":"Finalize"}"#;
/// The CloseStream control message.
pub const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

/// Configuration of the Deepgram STT client.
#[derive(Clone, Debug)]
pub struct DeepgramSttConfig {
    /// `ws://` or `wss://` scheme + host, e.g. [`DEEPGRAM_BASE_URL`].
    pub base_url: String,
    /// The API key (`Authorization: Token <key>`).
    pub api_key: Secret,
    /// `model`.
    pub model: String,
    /// `endpointing` in ms.
    pub endpointing_ms: u32,
    /// `utterance_end_ms` (needs interim results).
    pub utterance_end_ms: u32,
    /// `interim_results`.
    pub interim_results: bool,
    /// `vad_events` (SpeechStarted).
    pub vad_events: bool,
    /// `smart_format`.
    pub smart_format: bool,
    /// TCP + TLS + upgrade budget.
    pub connect_timeout: Duration,
    /// Longest wait for a server message while audio is unanswered.
    pub idle_timeout: Duration,
    /// KeepAlive period without audio.
    pub keepalive_every: Duration,
}

impl DeepgramSttConfig {
    /// Defaults against the real service.
    pub fn new(api_key: Secret) -> Self {
        Self::with_base_url(DEEPGRAM_BASE_URL, api_key)
    }

    /// Defaults against `base_url` (an emulator).
    pub fn with_base_url(base_url: impl Into<String>, api_key: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            model: DEFAULT_MODEL.into(),
            endpointing_ms: DEFAULT_ENDPOINTING_MS,
            utterance_end_ms: DEFAULT_UTTERANCE_END_MS,
            interim_results: true,
            vad_events: true,
            smart_format: true,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keepalive_every: DEFAULT_KEEPALIVE_EVERY,
        }
    }
}

/// The Deepgram streaming STT client; cheap to clone.
#[derive(Clone, Debug)]
pub struct DeepgramStt {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: DeepgramSttConfig,
    base: String,
    auth: HeaderValue,
    breaker: Arc<CircuitBreaker>,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl DeepgramStt {
    /// A client for `cfg`, reporting to `breaker`.
    pub fn new(cfg: DeepgramSttConfig, breaker: Arc<CircuitBreaker>) -> Result<Self, BuildError> {
        let base = build::base_url("deepgram", "base_url", &cfg.base_url, &WS_SCHEMES, "ws(s)")?;
        let auth = build::key_header("deepgram", "Token ", &cfg.api_key)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                base,
                auth,
                breaker,
            }),
        })
    }

    /// The breaker this client reports to.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.inner.breaker
    }

    /// The URL a session with `stt` connects to.
    pub fn listen_url(&self, stt: &SttConfig) -> String {
        self.inner.listen_url(stt)
    }
}

/// The provider's name (logs, breaker, supervisor view).
pub const NAME: &str = "deepgram";

impl SttPort for DeepgramStt {
    fn provider_name(&self) -> &str {
        NAME
    }

    fn open(&self, cfg: SttConfig) -> impl Future<Output = PortResult<SttSession>> + Send {
        let inner = self.inner.clone();
        async move {
            let provider = inner.breaker.name().to_owned();
            observe::timed(&provider, "listen", inner.open(cfg)).await
        }
    }
}

/// Shared by a session's tasks: when audio (or CloseStream) was first sent
/// without any server message since.
#[derive(Debug, Default)]
struct Shared {
    unanswered_since: Mutex<Option<Instant>>,
    closing: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn sent(&self) {
        let mut g = self
            .unanswered_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(Instant::now());
        }
    }

    fn received(&self) {
        *self
            .unanswered_since
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn unanswered_since(&self) -> Option<Instant> {
        *self
            .unanswered_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn listen_url(&self, stt: &SttConfig) -> String {
        let c = &self.cfg;
        let params: Vec<(&str, String)> = vec![
            ("model", c.model.clone()),
            ("language", stt.language.clone()),
            ("encoding", "linear16".into()),
            ("sample_rate", stt.sample_rate.to_string()),
            ("channels", "1".into()),
            ("interim_results", c.interim_results.to_string()),
            ("endpointing", c.endpointing_ms.to_string()),
            ("utterance_end_ms", c.utterance_end_ms.to_string()),
            ("vad_events", c.vad_events.to_string()),
            ("smart_format", c.smart_format.to_string()),
        ];
        let params: Vec<_> = params
            .into_iter()
            .filter(|(k, _)| *k != "utterance_end_ms" || c.interim_results)
            .collect();
        let query = serde_urlencoded::to_string(&params).unwrap_or_default();
        format!("{}/v1/listen?{query}", self.base)
    }

    async fn open(self: Arc<Self>, stt: SttConfig) -> PortResult<SttSession> {
        let Some(guard) = BreakerGuard::acquire(&self.breaker) else {
            return Err(observe::circuit_open("deepgram"));
        };
        // Dropped here unresolved (the caller gave up on the handshake), the
        // guard counts a failure: a half-open probe is never left in flight.
        match self.connect(&stt).await {
            Ok(ws) => {
                guard.success();
                let (audio_tx, audio_rx) = mpsc::channel(STT_AUDIO_CAPACITY);
                let (events_tx, events_rx) = mpsc::channel(PROVIDER_EVENT_CAPACITY);
                let (sink, stream) = ws.split();
                let shared = Arc::new(Shared::default());
                let (done_tx, done_rx) = oneshot::channel();
                tokio::spawn(writer(
                    sink,
                    audio_rx,
                    shared.clone(),
                    self.cfg.keepalive_every,
                    done_rx,
                ));
                tokio::spawn(self.clone().reader(stream, events_tx, shared, done_tx));
                Ok(SttSession {
                    audio: audio_tx,
                    events: events_rx,
                })
            }
            Err(e) => {
                // A refusal (4xx) or nonsense: the provider is up.
                guard.resolve(Some(&e));
                Err(e)
            }
        }
    }

    async fn connect(&self, stt: &SttConfig) -> PortResult<Ws> {
        let url = self.listen_url(stt);
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| PortError::Rejected(format!("deepgram: bad URL: {e}")))?;
        req.headers_mut().insert("authorization", self.auth.clone());
        let config = WebSocketConfig::default()
            .read_buffer_size(crate::net::ws::READ_BUFFER_BYTES)
            .write_buffer_size(crate::net::ws::WRITE_BUFFER_BYTES)
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connect = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
        match tokio::time::timeout(self.cfg.connect_timeout, connect).await {
            Err(_) => Err(PortError::Timeout("deepgram: connect".into())),
            Ok(Ok((ws, _resp))) => Ok(ws),
            Ok(Err(e)) => Err(handshake_error(e)),
        }
    }

    async fn reader(
        self: Arc<Self>,
        mut stream: SplitStream<Ws>,
        events: mpsc::Sender<SttEvent>,
        shared: Arc<Shared>,
        _done: oneshot::Sender<()>,
    ) {
        let tick =
            (self.cfg.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut got_close = false;
        let outcome: Result<(), PortError> = loop {
            let next = match tokio::time::timeout(tick, stream.next()).await {
                Err(_) => {
                    if let Some(since) = shared.unanswered_since()
                        && since.elapsed() >= self.cfg.idle_timeout
                    {
                        break Err(PortError::Timeout(format!(
                            "deepgram: nothing received for {:?}",
                            self.cfg.idle_timeout
                        )));
                    }
                    if events.is_closed() {
                        break Ok(());
                    }
                    continue;
                }
                Ok(n) => n,
            };
            let msg = match next {
                None => {
                    break Err(PortError::Unavailable(
                        "deepgram: connection lost without close".into(),
                    ));
                }
                Some(Err(e)) => break Err(stream_error(e)),
                Some(Ok(m)) => m,
            };
            shared.received();
            let text = match msg {
                Message::Text(t) => t,
                Message::Binary(_) => {
                    break Err(PortError::Protocol(
                        "deepgram: unexpected binary message".into(),
                    ));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    let closing = shared.closing.load(std::sync::atomic::Ordering::SeqCst);
                    got_close = true;
                    break close_outcome(code, &reason, closing);
                }
            };
            match parse_server_message(text.as_str()) {
                Ok(Some(ev)) => {
                    if events.send(ev).await.is_err() {
                        break Ok(());
                    }
                }
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = outcome {
            tracing::debug!(error = %e, "deepgram STT session failed");
            observe::error(self.breaker.name(), "listen", &e);
            if matches!(e, PortError::Unavailable(_) | PortError::Timeout(_)) {
                self.breaker.on_failure(Instant::now());
            }
            let _ = events.send(SttEvent::Error(e)).await;
        }
        drop(events);
        if got_close {
            // Let the close handshake finish (our reply goes out while the
            // stream is polled to its end), briefly.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
        }
    }
}

/// Sends audio, keep-alives, and Finalize + CloseStream once the audio
/// sender is gone; stops early when the reader ends.
async fn writer(
    mut sink: SplitSink<Ws, Message>,
    mut audio: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
    keepalive_every: Duration,
    mut done: oneshot::Receiver<()>,
) {
    let mut last_sent = tokio::time::Instant::now();
    // One timer for the session, not one per frame: when it fires it
    // checks whether audio went out meanwhile.
    let keepalive = tokio::time::sleep_until(last_sent + keepalive_every);
    tokio::pin!(keepalive);
    loop {
        tokio::select! {
            _ = &mut done => return,
            chunk = audio.recv() => match chunk {
                Some(first) => {
                    // Whatever queued up meanwhile goes out in one write.
                    let mut next = Some(first);
                    while let Some(pcm) = next.take() {
                        // An empty binary frame means "close" to the server.
                        if !pcm.is_empty() {
                            shared.sent();
                            if sink.feed(Message::Binary(pcm.into())).await.is_err() {
                                return;
                            }
                        }
                        next = audio.try_recv().ok();
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                }
                None => {
                    if sink.send(Message::text(FINALIZE)).await.is_err() {
                        return;
                    }
                    shared.closing.store(true, std::sync::atomic::Ordering::SeqCst);
                    shared.sent();
                    let _ = sink.send(Message::text(CLOSE_STREAM)).await;
                    // Keep the sink until the reader ends, so the close
                    // handshake can complete.
                    let _ = done.await;
                    return;
                }
            },
            () = &mut keepalive => {
                let due = last_sent + keepalive_every;
                if tokio::time::Instant::now() < due {
                    keepalive.as_mut().reset(due);
                    continue;
                }
                // Audio stopped: what was sent may legitimately stay
                // unanswered (less than a result's worth).
                shared.received();
                if sink.send(Message::text(KEEPALIVE)).await.is_err() {
                    return;
                }
                last_sent = tokio::time::Instant::now();
                keepalive.as_mut().reset(last_sent + keepalive_every);
            }
        }
    }
}

/// What a close frame means for the session.
fn close_outcome(code: u16, reason: &str, closing: bool) -> Result<(), PortError> {
    match code {
        1000 if closing => Ok(()),
        1000 | 1001 | 1005 => Err(PortError::Unavailable(format!(
            "deepgram: closed by server ({code} {reason})"
        ))),
        1008 | 1003 | 1007 => Err(PortError::Protocol(format!(
            "deepgram: closed {code}: {reason}"
        ))),
        1011 if reason.contains("NET-0001") => Err(PortError::Timeout(format!(
            "deepgram: closed {code}: {reason}"
        ))),
        _ => Err(PortError::Unavailable(format!(
            "deepgram: closed {code}: {reason}"
        ))),
    }
}

fn handshake_error(e: tungstenite::Error) -> PortError {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned())
                .unwrap_or_default();
            match status {
                429 => PortError::RateLimited {
                    retry_after: retry::retry_after_header(resp.headers(), SystemTime::now()),
                },
                400..=499 => PortError::Rejected(format!("deepgram: handshake {status}: {body}")),
                _ => PortError::Unavailable(format!("deepgram: handshake {status}: {body}")),
            }
        }
        tungstenite::Error::Io(e) => PortError::Unavailable(format!("deepgram: connect: {e}")),
        tungstenite::Error::Tls(e) => PortError::Unavailable(format!("deepgram: TLS: {e}")),
        tungstenite::Error::Url(e) => PortError::Rejected(format!("deepgram: URL: {e}")),
        other => PortError::Protocol(format!("deepgram: handshake: {other}")),
    }
}

fn stream_error(e: tungstenite::Error) -> PortError {
    match e {
        tungstenite::Error::Capacity(e) => {
            PortError::Protocol(format!("deepgram: message too large: {e}"))
        }
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        )
        | tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed => {
            PortError::Unavailable("deepgram: connection lost without close".into())
        }
        tungstenite::Error::Io(e) => PortError::Unavailable(format!("deepgram: connection: {e}")),
        tungstenite::Error::Utf8(e) => PortError::Protocol(format!("deepgram: bad UTF-8: {e}")),
        other => PortError::Protocol(format!("deepgram: {other}")),
    }
}

/// One server text message as an event: `Ok(None)` for messages that carry
/// nothing for the call (Metadata, Warning, empty transcripts, unknown
/// types); `Err` for malformed JSON or a server `Error`.
pub fn parse_server_message(text: &str) -> PortResult<Option<SttEvent>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| PortError::Protocol(format!("deepgram: malformed message: {e}")))?;
    let Some(kind) = v.get("type").and_then(Value::as_str) else {
        return Err(PortError::Protocol(
            "deepgram: message without a type".into(),
        ));
    };
    match kind {
        "Results" => {
            let transcript = v
                .pointer("/channel/alternatives/0/transcript")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    PortError::Protocol("deepgram: Results without a transcript".into())
                })?;
            let text = transcript.trim();
            if text.is_empty() {
                return Ok(None);
            }
            let is_final = v.get("is_final").and_then(Value::as_bool).unwrap_or(false);
            let speech_final = v
                .get("speech_final")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(Some(if is_final {
                SttEvent::Final {
                    text: text.to_string(),
                    speech_final,
                }
            } else {
                SttEvent::Interim(text.to_string())
            }))
        }
        "SpeechStarted" => Ok(Some(SttEvent::SpeechStarted)),
        "UtteranceEnd" => Ok(Some(SttEvent::UtteranceEnd)),
        "Error" => {
            let what = ["description", "message", "variant"]
                .iter()
                .filter_map(|k| v.get(*k).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(": ");
            Err(PortError::Unavailable(format!("deepgram: error: {what}")))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests;
