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

pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use talky_actors::ports::{PortError, PortResult, TtsEvent, TtsPort, TtsRequest};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::Secret;
use crate::providers::breaker::{BreakerGuard, CircuitBreaker};
use crate::providers::build::{self, BuildError, HTTP_SCHEMES, HttpClient, WS_SCHEMES};
use crate::providers::observe;
use crate::providers::tts_stream::{self, Conn, TtsWire};
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
    pub fn new(cfg: ElevenLabsConfig, breaker: Arc<CircuitBreaker>) -> Result<Self, BuildError> {
        const NAME: &str = "elevenlabs";
        let base = build::base_url(NAME, "base_url", &cfg.base_url, &HTTP_SCHEMES, "http(s)")?;
        let ws_base = build::base_url(NAME, "ws_base_url", &cfg.ws_base_url, &WS_SCHEMES, "ws(s)")?;
        if pcm_rate(&cfg.output_format).is_none() {
            return Err(BuildError::BadSetting {
                provider: NAME.into(),
                setting: "output_format",
                value: cfg.output_format.clone(),
                expected: "a pcm_* format",
            });
        }
        let key = build::key_header(NAME, "", &cfg.api_key)?;
        let http = HttpClient::new(NAME, cfg.connect_timeout)
            .streaming()
            .build()?;
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

/// The provider's name (logs, breaker, supervisor view).
pub const NAME: &str = "elevenlabs";

impl TtsPort for ElevenLabs {
    fn provider_name(&self) -> &str {
        NAME
    }

    fn synthesize(
        &self,
        req: TtsRequest,
    ) -> impl Future<Output = PortResult<mpsc::Receiver<TtsEvent>>> + Send {
        let inner = self.inner.clone();
        async move {
            let provider = inner.breaker.name().to_owned();
            observe::timed(&provider, "synthesize", inner.synthesize(req)).await
        }
    }
}

/// ElevenLabs' stream-input socket (§5.2): JSON messages of base64 audio
/// with alignment, until `isFinal`.
pub(crate) struct Wire;

impl TtsWire for Wire {
    const NAME: &'static str = "elevenlabs";
    const ENDED_EARLY: &'static str = "elevenlabs: socket ended without isFinal";
    const CLOSE_MESSAGE: Option<&'static str> = None;

    fn text(text: &str, asm: &mut Assembler, out: &mut Vec<TtsEvent>) -> PortResult<Option<bool>> {
        wire::ws_message(text, asm, out).map(Some)
    }

    fn binary(_: &[u8], _: &mut Assembler, _: &mut Vec<TtsEvent>) -> PortResult<bool> {
        Err(PortError::Protocol(
            "elevenlabs: unexpected binary message".into(),
        ))
    }

    fn close_result(code: u16, reason: &str) -> PortResult<bool> {
        wire::close_result(code, reason)
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
        let Some(guard) = BreakerGuard::acquire(&self.breaker) else {
            return Err(observe::circuit_open("elevenlabs"));
        };
        let started = match self.cfg.mode {
            TtsMode::Http => self.start_http(&req, &format).await,
            TtsMode::WebSocket => self.start_ws(&req, &format).await,
        };
        tts_stream::stream(started, rate, self.cfg.idle_timeout, guard).await
    }

    /// Sends the POST; the body is the connection.
    async fn start_http(
        &self,
        req: &TtsRequest,
        format: &str,
    ) -> PortResult<(Conn<Wire>, tokio::time::Instant)> {
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
            .body(body.to_string());
        tts_stream::start_http(send, self.cfg.first_byte_timeout, wire::status_error).await
    }

    /// Opens the socket and sends init, text and close.
    async fn start_ws(
        &self,
        req: &TtsRequest,
        format: &str,
    ) -> PortResult<(Conn<Wire>, tokio::time::Instant)> {
        let url = format!(
            "{}/v1/text-to-speech/{}/stream-input?model_id={}&output_format={}",
            self.ws_base,
            wire::path_segment(&req.voice),
            wire::query_value(&self.cfg.model_id),
            format
        );
        let mut headers = Vec::new();
        if !self.cfg.key_in_first_message {
            headers.push(("xi-api-key", self.key.clone()));
        }
        let ws_cfg = WebSocketConfig::default()
            .read_buffer_size(crate::net::ws::READ_BUFFER_BYTES)
            .write_buffer_size(crate::net::ws::WRITE_BUFFER_BYTES)
            .max_message_size(Some(MAX_WS_MESSAGE));
        let key = self
            .cfg
            .key_in_first_message
            .then(|| self.cfg.api_key.expose());
        let messages = vec![
            wire::ws_init(&self.cfg, key),
            wire::ws_text(&req.text),
            serde_json::json!({"text": ""}).to_string(),
        ];
        tts_stream::start_ws(
            &url,
            headers,
            ws_cfg,
            self.cfg.connect_timeout + self.cfg.first_byte_timeout,
            self.cfg.first_byte_timeout,
            messages,
            wire::handshake_error,
        )
        .await
    }
}

#[cfg(test)]
mod tests;
