//! The Groq Whisper batch STT client (providers.md §4), the fallback of the
//! live Deepgram STT.
//!
//! Whisper transcribes files, not streams, so a session cuts utterances
//! itself. Two tasks serve it:
//!
//! - the **cutter** runs every PCM chunk through our energy [`Vad`]: at
//!   speech start it reports [`SttEvent::SpeechStarted`] and starts the
//!   utterance with the last `pre_roll` of audio (the VAD confirms speech
//!   only after `min_speech`, the words began earlier); after
//!   `trailing_silence` of quiet the utterance is handed to the uploader.
//!   An utterance longer than `max_utterance` is cut there and uploaded
//!   with `speech_final: false`. Dropping the audio sender flushes an
//!   utterance in progress, then ends the session.
//! - the **uploader** wraps each utterance in the canonical 44-byte WAV
//!   header (§8.5) and POSTs it as `multipart/form-data` (`file` with
//!   filename and `audio/wav`, `model`, `language`, `response_format=json`,
//!   `temperature`) to `{base_url}/openai/v1/audio/transcriptions` with
//!   `Authorization: Bearer`; the trimmed transcript becomes
//!   [`SttEvent::Final`] (`speech_final: true` at a silence cut), an empty
//!   one nothing. Uploads are in order, one at a time.
//!
//! Every request has a connect and a whole-request timeout. 429, 5xx,
//! timeouts and broken connections are retried (up to `max_retries`),
//! waiting the provider's `Retry-After` (capped by `max_retry_wait`, a
//! longer one ends the retries) or an exponential backoff with jitter.
//! Every attempt asks the provider's [`CircuitBreaker`] and reports to it
//! (a 4xx or a malformed body counts as "the provider is up"). A failure
//! that is not retried, or retries run out, is one [`SttEvent::Error`] and
//! the end of the session.

pub mod wire;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use talky_actors::media::{Vad, VadConfig, VadEvent};
use talky_actors::ports::{
    PROVIDER_EVENT_CAPACITY, PortError, PortResult, STT_AUDIO_CAPACITY, SttConfig, SttEvent,
    SttPort, SttSession,
};
use tokio::sync::mpsc;

use crate::audio::wav;
use crate::config::Secret;
use crate::providers::breaker::CircuitBreaker;
use crate::providers::build::{self, BuildError};
use crate::providers::retry::{self, RetryPolicy};

/// Groq's API host (the path carries `/openai/v1`).
pub const GROQ_BASE_URL: &str = "https://api.groq.com";
/// Path of the transcription endpoint under the base URL.
pub const TRANSCRIPTIONS_PATH: &str = "/openai/v1/audio/transcriptions";
/// The fast Whisper model.
pub const DEFAULT_MODEL: &str = "whisper-large-v3-turbo";
/// Quiet audio that ends an utterance.
pub const DEFAULT_TRAILING_SILENCE: Duration = Duration::from_millis(500);
/// Audio before the VAD's speech start kept at the head of an utterance.
pub const DEFAULT_PRE_ROLL: Duration = Duration::from_millis(300);
/// Longest utterance uploaded at once (bounds the session's memory).
pub const DEFAULT_MAX_UTTERANCE: Duration = Duration::from_secs(30);
/// TCP + TLS connect budget.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Budget of one whole request (upload, transcription, answer).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of a retryable failure.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// First backoff step; doubled per retry, with jitter.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest wait before a retry.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// Utterances waiting for the uploader.
const UPLOAD_QUEUE: usize = 4;
/// Longest response body read.
const MAX_BODY: usize = 1 << 20;

/// Configuration of the Whisper client.
#[derive(Clone, Debug)]
pub struct WhisperConfig {
    /// Provider name for logs and metrics.
    pub name: String,
    /// Scheme + host, e.g. [`GROQ_BASE_URL`]; the path is
    /// [`TRANSCRIPTIONS_PATH`].
    pub base_url: String,
    /// Bearer key.
    pub api_key: Secret,
    /// `model`.
    pub model: String,
    /// `temperature` (0..1).
    pub temperature: f32,
    /// Loudness threshold and minimum speech of the utterance cutter; its
    /// `hangover` is the trailing silence that ends an utterance.
    pub vad: VadConfig,
    /// Audio kept before the VAD's speech start.
    pub pre_roll: Duration,
    /// Longest utterance uploaded at once.
    pub max_utterance: Duration,
    /// TCP (+TLS) connect budget.
    pub connect_timeout: Duration,
    /// Budget of one whole request.
    pub request_timeout: Duration,
    /// Retries of a retryable failure.
    pub max_retries: u32,
    /// First backoff step.
    pub backoff_base: Duration,
    /// Cap on any wait before a retry.
    pub max_retry_wait: Duration,
}

impl WhisperConfig {
    /// Defaults against Groq.
    pub fn new(api_key: Secret) -> Self {
        Self::with_base_url(GROQ_BASE_URL, api_key)
    }

    /// Defaults against `base_url` (an emulator).
    pub fn with_base_url(base_url: impl Into<String>, api_key: Secret) -> Self {
        Self {
            name: "whisper".into(),
            base_url: base_url.into(),
            api_key,
            model: DEFAULT_MODEL.into(),
            temperature: 0.0,
            vad: VadConfig {
                hangover: DEFAULT_TRAILING_SILENCE,
                ..VadConfig::default()
            },
            pre_roll: DEFAULT_PRE_ROLL,
            max_utterance: DEFAULT_MAX_UTTERANCE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
        }
    }
}

/// The Whisper batch STT client; cheap to clone, shares its connection
/// pool and breaker.
#[derive(Clone, Debug)]
pub struct WhisperStt {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: WhisperConfig,
    url: String,
    auth: HeaderValue,
    http: reqwest::Client,
    breaker: Arc<CircuitBreaker>,
}

impl WhisperStt {
    /// A client for `cfg`, reporting to `breaker`.
    pub fn new(cfg: WhisperConfig, breaker: Arc<CircuitBreaker>) -> Result<Self, BuildError> {
        let build::BearerEndpoint { url, auth, http } = build::bearer_endpoint(
            &cfg.name,
            &cfg.base_url,
            TRANSCRIPTIONS_PATH,
            &cfg.api_key,
            cfg.connect_timeout,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                url,
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

    /// Transcribes one utterance of s16le mono PCM at `sample_rate` (with
    /// retries); the trimmed transcript.
    pub async fn transcribe(
        &self,
        pcm: &[u8],
        sample_rate: u32,
        language: &str,
    ) -> PortResult<String> {
        self.inner
            .transcribe(pcm, sample_rate, wire::language_code(language).as_deref())
            .await
    }
}

/// The provider's name (logs, breaker, supervisor view).
pub const NAME: &str = "whisper";

impl SttPort for WhisperStt {
    fn provider_name(&self) -> &str {
        NAME
    }

    fn open(&self, cfg: SttConfig) -> impl Future<Output = PortResult<SttSession>> + Send {
        let inner = self.inner.clone();
        async move { inner.open(cfg) }
    }
}

/// One cut utterance.
struct Utterance {
    pcm: Vec<u8>,
    speech_final: bool,
}

/// Bytes of s16 mono audio lasting `d` at `rate`.
fn bytes_in(d: Duration, rate: u32) -> usize {
    (d.as_secs_f64() * f64::from(rate)) as usize * 2
}

impl Inner {
    fn open(self: Arc<Self>, stt: SttConfig) -> PortResult<SttSession> {
        if stt.sample_rate == 0 {
            return Err(PortError::Rejected("whisper: sample rate 0".into()));
        }
        let (audio_tx, audio_rx) = mpsc::channel(STT_AUDIO_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(PROVIDER_EVENT_CAPACITY);
        let (utt_tx, utt_rx) = mpsc::channel(UPLOAD_QUEUE);
        tokio::spawn(cutter(
            self.cfg.clone(),
            stt.sample_rate,
            audio_rx,
            utt_tx,
            events_tx.clone(),
        ));
        let language = wire::language_code(&stt.language);
        tokio::spawn(self.uploader(stt.sample_rate, language, utt_rx, events_tx));
        Ok(SttSession {
            audio: audio_tx,
            events: events_rx,
        })
    }

    async fn uploader(
        self: Arc<Self>,
        rate: u32,
        language: Option<String>,
        mut utterances: mpsc::Receiver<Utterance>,
        events: mpsc::Sender<SttEvent>,
    ) {
        while let Some(u) = utterances.recv().await {
            if events.is_closed() {
                return;
            }
            match self.transcribe(&u.pcm, rate, language.as_deref()).await {
                Ok(text) if text.is_empty() => {}
                Ok(text) => {
                    let ev = SttEvent::Final {
                        text,
                        speech_final: u.speech_final,
                    };
                    if events.send(ev).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(provider = %self.cfg.name, error = %e, "whisper upload failed");
                    let _ = events.send(SttEvent::Error(e)).await;
                    // Dropping the queue stops the cutter: the session is over.
                    return;
                }
            }
        }
    }

    async fn transcribe(
        &self,
        pcm: &[u8],
        rate: u32,
        language: Option<&str>,
    ) -> PortResult<String> {
        let file = wav::wrap_pcm(rate, pcm);
        let boundary = wire::boundary(&file);
        let temperature = format!(
            "{}",
            (self.cfg.temperature.clamp(0.0, 1.0) * 100.0).round() / 100.0
        );
        let mut fields = vec![wire::Field {
            name: "model",
            value: &self.cfg.model,
        }];
        if let Some(l) = language {
            fields.push(wire::Field {
                name: "language",
                value: l,
            });
        }
        fields.push(wire::Field {
            name: "response_format",
            value: "json",
        });
        fields.push(wire::Field {
            name: "temperature",
            value: &temperature,
        });
        let body = Bytes::from(wire::multipart(
            &boundary,
            "utterance.wav",
            "audio/wav",
            &file,
            &fields,
        ));
        let content_type =
            HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}"))
                .map_err(|_| PortError::Protocol("whisper: bad boundary".into()))?;
        let c = &self.cfg;
        let policy = RetryPolicy::new(c.max_retries, c.backoff_base, c.max_retry_wait);
        let retried =
            retry::with_retries(&policy, &self.breaker, &self.cfg.name, "whisper", || {
                self.attempt(body.clone(), content_type.clone())
            });
        let (text, guard) =
            crate::providers::observe::timed(self.breaker.name(), "transcribe", retried).await?;
        guard.success();
        Ok(text)
    }

    /// One request, bounded by the whole-request timeout.
    async fn attempt(&self, body: Bytes, content_type: HeaderValue) -> PortResult<String> {
        let name = &self.cfg.name;
        let run = async {
            let resp = self
                .http
                .post(&self.url)
                .header(AUTHORIZATION, self.auth.clone())
                .header(CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .map_err(|e| transport_error(name, &e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let mut data = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| transport_error(name, &e))?;
                if data.len() + chunk.len() > MAX_BODY {
                    return Err(PortError::Protocol(format!("{name}: response too large")));
                }
                data.extend_from_slice(&chunk);
            }
            if !status.is_success() {
                let e = crate::providers::openai::wire::status_error(
                    status.as_u16(),
                    &headers,
                    &data,
                    SystemTime::now(),
                );
                return Err(prefixed(name, e));
            }
            let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            wire::transcript(ct, &data)
        };
        match tokio::time::timeout(self.cfg.request_timeout, run).await {
            Err(_) => Err(PortError::Timeout(format!(
                "{name}: no answer within {:?}",
                self.cfg.request_timeout
            ))),
            Ok(r) => r,
        }
    }
}

/// Names the provider in an error's text.
fn prefixed(name: &str, e: PortError) -> PortError {
    match e {
        PortError::Rejected(m) => PortError::Rejected(format!("{name}: {m}")),
        PortError::Unavailable(m) => PortError::Unavailable(format!("{name}: {m}")),
        PortError::Timeout(m) => PortError::Timeout(format!("{name}: {m}")),
        PortError::Protocol(m) => PortError::Protocol(format!("{name}: {m}")),
        PortError::Unknown(m) => PortError::Unknown(format!("{name}: {m}")),
        e @ PortError::RateLimited { .. } => e,
    }
}

fn transport_error(name: &str, e: &reqwest::Error) -> PortError {
    if e.is_timeout() {
        PortError::Timeout(format!("{name}: connect"))
    } else if e.is_connect() {
        PortError::Unavailable(format!("{name}: connect: {e}"))
    } else {
        PortError::Unavailable(format!("{name}: connection broken: {e}"))
    }
}

/// Cuts the audio into utterances with the VAD.
async fn cutter(
    cfg: WhisperConfig,
    rate: u32,
    mut audio: mpsc::Receiver<Vec<u8>>,
    utterances: mpsc::Sender<Utterance>,
    events: mpsc::Sender<SttEvent>,
) {
    let mut vad = Vad::new(cfg.vad, rate);
    let pre_roll_bytes = bytes_in(cfg.pre_roll, rate);
    let max_bytes = bytes_in(cfg.max_utterance, rate).max(2);
    let mut pre: VecDeque<Vec<u8>> = VecDeque::new();
    let mut pre_len = 0usize;
    let mut utt: Vec<u8> = Vec::new();
    let mut in_speech = false;
    loop {
        let frame = tokio::select! {
            f = audio.recv() => f,
            // The uploader ended (an error): nothing will be transcribed.
            _ = utterances.closed() => return,
        };
        let Some(frame) = frame else {
            if in_speech && !utt.is_empty() {
                let _ = utterances
                    .send(Utterance {
                        pcm: utt,
                        speech_final: true,
                    })
                    .await;
            }
            return;
        };
        let ev = vad.push_frame(&frame);
        if in_speech {
            utt.extend_from_slice(&frame);
        } else {
            pre_len += frame.len();
            pre.push_back(frame);
            while pre_len > pre_roll_bytes && pre.len() > 1 {
                pre_len -= pre.pop_front().map_or(0, |f| f.len());
            }
        }
        match ev {
            Some(VadEvent::SpeechStart) => {
                in_speech = true;
                utt = pre.drain(..).flatten().collect();
                pre_len = 0;
                if events.send(SttEvent::SpeechStarted).await.is_err() {
                    return;
                }
            }
            Some(VadEvent::SpeechEnd { .. }) => {
                in_speech = false;
                let pcm = std::mem::take(&mut utt);
                let u = Utterance {
                    pcm,
                    speech_final: true,
                };
                if utterances.send(u).await.is_err() {
                    return;
                }
            }
            None => {}
        }
        if in_speech && utt.len() >= max_bytes {
            let u = Utterance {
                pcm: std::mem::take(&mut utt),
                speech_final: false,
            };
            if utterances.send(u).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
