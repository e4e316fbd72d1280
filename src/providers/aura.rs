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
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use talky_actors::ports::{PortError, PortResult, TtsEvent, TtsPort, TtsRequest};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::Secret;
use crate::providers::breaker::{BreakerGuard, CircuitBreaker};
use crate::providers::build::{self, BuildError, HTTP_SCHEMES, HttpClient};
use crate::providers::elevenlabs::Assembler;
use crate::providers::observe;
use crate::providers::tts_stream::{self, Conn, TtsWire};
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
    pub fn new(cfg: AuraConfig, breaker: Arc<CircuitBreaker>) -> Result<Self, BuildError> {
        let base = build::base_url("aura", "base_url", &cfg.base_url, &HTTP_SCHEMES, "http(s)")?;
        // The WebSocket mode: the same host, ws(s).
        let ws_base = format!("ws{}", base.strip_prefix("http").unwrap_or(&base));
        let auth = build::key_header("aura", "Token ", &cfg.api_key)?;
        let http = HttpClient::new("aura", cfg.connect_timeout)
            .streaming()
            .build()?;
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

/// The provider's name (logs, breaker, supervisor view).
pub const NAME: &str = "aura";

impl TtsPort for AuraTts {
    fn provider_name(&self) -> &str {
        NAME
    }

    fn synthesize(
        &self,
        req: TtsRequest,
    ) -> impl Future<Output = PortResult<mpsc::Receiver<TtsEvent>>> + Send {
        let this = self.clone();
        async move {
            let model = this.model_for(&req);
            let provider = this.inner.breaker.name().to_owned();
            observe::timed(
                &provider,
                "synthesize",
                this.inner.clone().synthesize(req, model),
            )
            .await
        }
    }
}

/// Aura's speak socket (§6.2): binary audio frames until `Flushed`.
pub(crate) struct Wire;

impl TtsWire for Wire {
    const NAME: &'static str = "aura";
    const ENDED_EARLY: &'static str = "aura: socket ended before Flushed";
    const CLOSE_MESSAGE: Option<&'static str> = Some(r#"{"type":"Close"}"#);

    fn text(text: &str, _: &mut Assembler, _: &mut Vec<TtsEvent>) -> PortResult<Option<bool>> {
        Ok(match wire::server_message(text)? {
            wire::ServerMessage::Flushed => Some(true),
            wire::ServerMessage::Other(what) => {
                tracing::debug!(message = %what, "aura message");
                None
            }
        })
    }

    fn binary(data: &[u8], asm: &mut Assembler, out: &mut Vec<TtsEvent>) -> PortResult<bool> {
        asm.audio(data, out);
        Ok(false)
    }

    fn close_result(code: u16, reason: &str) -> PortResult<bool> {
        wire::close_result(code, reason)
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
        let Some(guard) = BreakerGuard::acquire(&self.breaker) else {
            return Err(observe::circuit_open("aura"));
        };
        let started = match self.cfg.mode {
            AuraMode::Rest => self.start_rest(&req.text, &model, rate).await,
            AuraMode::WebSocket => self.start_ws(&req.text, &model, rate).await,
        };
        tts_stream::stream(started, rate, self.cfg.idle_timeout, guard).await
    }

    async fn start_rest(
        &self,
        text: &str,
        model: &str,
        rate: u32,
    ) -> PortResult<(Conn<Wire>, tokio::time::Instant)> {
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
            .body(serde_json::json!({ "text": text }).to_string());
        tts_stream::start_http(send, self.cfg.first_byte_timeout, wire::status_error).await
    }

    async fn start_ws(
        &self,
        text: &str,
        model: &str,
        rate: u32,
    ) -> PortResult<(Conn<Wire>, tokio::time::Instant)> {
        let url = format!(
            "{}/v1/speak?{}",
            self.ws_base,
            wire::speak_query(model, rate, false)
        );
        let ws_cfg = WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_MESSAGE))
            .max_frame_size(Some(MAX_WS_MESSAGE));
        let messages = vec![
            serde_json::json!({"type": "Speak", "text": text}).to_string(),
            r#"{"type":"Flush"}"#.to_string(),
        ];
        tts_stream::start_ws(
            &url,
            vec![("authorization", self.auth.clone())],
            ws_cfg,
            self.cfg.connect_timeout,
            self.cfg.first_byte_timeout,
            messages,
            wire::handshake_error,
        )
        .await
    }
}

#[cfg(test)]
mod tests;
