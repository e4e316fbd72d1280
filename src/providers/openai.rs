//! The OpenAI-compatible chat completions client (providers.md §7): Groq,
//! OpenAI, or any compatible server, chosen by base URL.
//!
//! One call = `POST {base_url}/chat/completions` with `stream: true`; the
//! SSE body becomes [`LlmEvent`]s on a bounded channel. Until the first
//! event is ready the call may be retried (429, 5xx, timeouts, a broken
//! connection), honouring `Retry-After` up to a cap, else exponential
//! backoff with jitter; once an event has been handed over, a failure is an
//! [`LlmEvent::Error`] and never a retry. Every attempt asks the provider's
//! [`CircuitBreaker`] first and reports its outcome to it.

mod sse;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use talky_actors::ports::{
    ChatRequest, LlmEvent, LlmPort, PROVIDER_EVENT_CAPACITY, PortError, PortResult,
};
use tokio::sync::mpsc;

use crate::config::Secret;
use crate::providers::breaker::{BreakerGuard, CircuitBreaker};
use crate::providers::build::{self, BuildError};
use crate::providers::observe;
use crate::providers::retry::{self, RetryPolicy};
pub use sse::{SseParser, SseTooLong};
use wire::{BodySettings, StreamState};

/// Groq's OpenAI-compatible base URL.
pub const GROQ_BASE_URL: &str = "https://api.groq.com/openai/v1";
/// OpenAI's base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// TCP + TLS connect budget.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// From sending the request to the first body bytes.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(8);
/// Longest silence between two body chunks.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries before the first event (the official SDKs retry twice).
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// First backoff step; doubled per retry, with jitter.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest wait before a retry, whatever Retry-After says; a longer
/// Retry-After ends the retries with `RateLimited`.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// Sampling temperature.
pub const DEFAULT_TEMPERATURE: f32 = 0.4;
/// Output token cap of one reply.
pub const DEFAULT_MAX_TOKENS: u32 = 256;
/// Longest SSE line (or event) accepted.
pub const MAX_SSE_LINE: usize = 1 << 20;
/// Longest error (or non-streamed) body read.
const MAX_ERROR_BODY: usize = 1 << 20;

/// Configuration of one provider.
#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    /// Provider name for logs and metrics: "groq", "openai", ...
    pub name: String,
    /// Scheme + host + API prefix, e.g. [`GROQ_BASE_URL`]; no trailing `/`
    /// needed.
    pub base_url: String,
    /// Bearer key.
    pub api_key: Secret,
    /// Model to use instead of the request's.
    pub model_override: Option<String>,
    /// TCP (+TLS) connect budget.
    pub connect_timeout: Duration,
    /// From sending the request to the first body bytes.
    pub first_byte_timeout: Duration,
    /// Longest silence between body chunks.
    pub idle_timeout: Duration,
    /// Retries before the first event.
    pub max_retries: u32,
    /// First backoff step.
    pub backoff_base: Duration,
    /// Cap on any wait before a retry.
    pub max_retry_wait: Duration,
    /// Sampling temperature.
    pub temperature: f32,
    /// Output token cap.
    pub max_tokens: u32,
    /// Send `max_completion_tokens` (OpenAI) instead of `max_tokens`.
    pub use_max_completion_tokens: bool,
}

impl OpenAiConfig {
    /// Defaults for a provider at `base_url`.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>, api_key: Secret) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            api_key,
            model_override: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
            temperature: DEFAULT_TEMPERATURE,
            max_tokens: DEFAULT_MAX_TOKENS,
            use_max_completion_tokens: false,
        }
    }

    /// Groq defaults.
    pub fn groq(api_key: Secret) -> Self {
        Self::new("groq", GROQ_BASE_URL, api_key)
    }

    /// OpenAI defaults (`max_completion_tokens`).
    pub fn openai(api_key: Secret) -> Self {
        Self {
            use_max_completion_tokens: true,
            ..Self::new("openai", OPENAI_BASE_URL, api_key)
        }
    }
}

/// A chat completions client; cheap to clone, shares its connection pool
/// and breaker.
#[derive(Clone, Debug)]
pub struct OpenAiClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// [`LlmPort::provider_name`], worked out once.
    provider: String,
    cfg: OpenAiConfig,
    url: String,
    auth: HeaderValue,
    http: reqwest::Client,
    breaker: Arc<CircuitBreaker>,
}

impl OpenAiClient {
    /// A client for `cfg`, reporting to `breaker`.
    pub fn new(cfg: OpenAiConfig, breaker: Arc<CircuitBreaker>) -> Result<Self, BuildError> {
        let build::BearerEndpoint { url, auth, http } = build::bearer_endpoint(
            &cfg.name,
            &cfg.base_url,
            "/chat/completions",
            &cfg.api_key,
            cfg.connect_timeout,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                provider: vendor(&cfg.base_url).unwrap_or(&cfg.name).to_string(),
                cfg,
                url,
                auth,
                http,
                breaker,
            }),
        })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.inner.cfg.name
    }

    /// The breaker this client reports to.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.inner.breaker
    }

    /// The base URL it posts to (to choose a `response_format`).
    pub fn base_url(&self) -> &str {
        &self.inner.cfg.base_url
    }

    /// One NON-streaming chat completion (providers.md §7.2): `body` is
    /// the request as built by the caller (messages, `response_format`,
    /// ...; `stream` is forced off and the configured model override and
    /// token cap applied), the answer is the first choice's
    /// `message.content`. One attempt under the breaker, send and body
    /// read together within `timeout`; no retry here (the caller has its
    /// own fallback and retry policy, e.g. post-call analysis).
    pub async fn complete(
        &self,
        mut body: serde_json::Value,
        max_tokens: u32,
        timeout: Duration,
    ) -> PortResult<String> {
        let inner = &self.inner;
        body["stream"] = serde_json::Value::Bool(false);
        if let Some(model) = &inner.cfg.model_override {
            body["model"] = serde_json::Value::String(model.clone());
        }
        let cap = if inner.cfg.use_max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[cap] = serde_json::json!(max_tokens);
        let bytes =
            Bytes::from(serde_json::to_vec(&body).map_err(|e| PortError::Protocol(e.to_string()))?);
        let Some(guard) = BreakerGuard::acquire(&inner.breaker) else {
            return Err(observe::circuit_open(&inner.cfg.name));
        };
        let once = async {
            tokio::time::timeout(timeout, inner.complete_once(bytes))
                .await
                .unwrap_or_else(|_| {
                    Err(PortError::Timeout(format!(
                        "{}: completion",
                        inner.cfg.name
                    )))
                })
        };
        let result = observe::timed(inner.breaker.name(), "complete", once).await;
        match &result {
            Ok(_) => guard.success(),
            Err(e) if retry::is_retryable(e) => guard.failure(),
            // The provider answered (a 4xx, or nonsense): it is up.
            Err(_) => guard.success(),
        }
        result
    }
}

/// Vendors of OpenAI-compatible APIs by the domain they serve from.
const VENDORS: &[(&str, &str)] = &[
    ("groq.com", "groq"),
    ("openai.com", "openai"),
    ("mistral.ai", "mistral"),
    ("together.xyz", "together"),
    ("deepseek.com", "deepseek"),
];

/// The vendor serving `base_url` as people name it (`https://api.groq.com/…`
/// is `groq`), known by its host's domain; `None` for another host (a
/// self-hosted model, an emulator).
pub fn vendor(base_url: &str) -> Option<&'static str> {
    let url = url::Url::parse(base_url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    VENDORS
        .iter()
        .find(|(domain, _)| host == *domain || host.ends_with(&format!(".{domain}")))
        .map(|(_, vendor)| *vendor)
}

impl LlmPort for OpenAiClient {
    /// The vendor of its URL when known (`groq`, `openai`), else the name
    /// it was configured under (`llm`, `llm_fallback`).
    fn provider_name(&self) -> &str {
        &self.inner.provider
    }

    fn stream(
        &self,
        req: ChatRequest,
    ) -> impl Future<Output = PortResult<mpsc::Receiver<LlmEvent>>> + Send {
        let inner = self.inner.clone();
        async move {
            let provider = inner.breaker.name().to_owned();
            observe::timed(&provider, "chat", inner.stream(req)).await
        }
    }
}

/// A response whose first events are ready.
struct Started {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
    state: StreamState,
    events: Vec<LlmEvent>,
}

impl Inner {
    async fn stream(self: Arc<Self>, req: ChatRequest) -> PortResult<mpsc::Receiver<LlmEvent>> {
        let settings = BodySettings {
            model_override: self.cfg.model_override.as_deref(),
            temperature: self.cfg.temperature,
            max_tokens: self.cfg.max_tokens,
            use_max_completion_tokens: self.cfg.use_max_completion_tokens,
        };
        let body = wire::request_body(&req, &settings)?;
        let body =
            Bytes::from(serde_json::to_vec(&body).map_err(|e| PortError::Protocol(e.to_string()))?);
        let c = &self.cfg;
        let policy = RetryPolicy::new(c.max_retries, c.backoff_base, c.max_retry_wait);
        let (started, guard) =
            retry::with_retries(&policy, &self.breaker, &self.cfg.name, "LLM", || {
                self.attempt(body.clone())
            })
            .await?;
        let (tx, rx) = mpsc::channel(PROVIDER_EVENT_CAPACITY);
        tokio::spawn(self.clone().pump(started, tx, guard));
        Ok(rx)
    }

    /// One non-streamed request read whole: the first choice's content.
    async fn complete_once(&self, body: Bytes) -> PortResult<String> {
        let resp = self
            .http
            .post(&self.url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = self.read_body_capped(resp).await;
        if !status.is_success() {
            return Err(wire::status_error(
                status.as_u16(),
                &headers,
                &body,
                SystemTime::now(),
            ));
        }
        wire::completion_content(&body)
    }

    /// One request, up to its first events (or its end).
    async fn attempt(&self, body: Bytes) -> PortResult<Started> {
        let deadline = tokio::time::Instant::now() + self.cfg.first_byte_timeout;
        let send = self
            .http
            .post(&self.url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("accept", HeaderValue::from_static("text/event-stream"))
            .body(body)
            .send();
        let resp = match tokio::time::timeout_at(deadline, send).await {
            Err(_) => return Err(PortError::Timeout("first byte".into())),
            Ok(Err(e)) => return Err(self.transport_error(&e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = self.read_body_capped(resp).await;
            return Err(wire::status_error(
                status.as_u16(),
                &headers,
                &body,
                SystemTime::now(),
            ));
        }
        let is_json = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if is_json {
            // A server that ignored `stream: true`: take the whole answer.
            let body = self.read_body_capped(resp).await;
            let events = wire::completion_events(&body)?;
            let mut state = StreamState::default();
            state.on_data("[DONE]", &mut Vec::new())?;
            return Ok(Started {
                body: futures_util::stream::empty().boxed(),
                parser: SseParser::new(MAX_SSE_LINE),
                state,
                events,
            });
        }
        let mut started = Started {
            body: resp.bytes_stream().boxed(),
            parser: SseParser::new(MAX_SSE_LINE),
            state: StreamState::default(),
            events: Vec::new(),
        };
        let mut first = true;
        while started.events.is_empty() && !started.state.is_done() {
            let next = if first {
                tokio::time::timeout_at(deadline, started.body.next()).await
            } else {
                tokio::time::timeout(self.cfg.idle_timeout, started.body.next()).await
            };
            first = false;
            let Some(chunk) = self.read_step(next, "first byte")? else {
                let mut events = Vec::new();
                finish_body(&mut started.parser, &mut started.state, &mut events)?;
                started.events = events;
                break;
            };
            feed(
                &mut started.parser,
                &mut started.state,
                &chunk,
                &mut started.events,
            )?;
        }
        Ok(started)
    }

    /// Interprets one read of the body: `None` at its end.
    fn read_step(
        &self,
        next: Result<Option<reqwest::Result<Bytes>>, tokio::time::error::Elapsed>,
        what: &str,
    ) -> PortResult<Option<Bytes>> {
        match next {
            Err(_) => Err(PortError::Timeout(what.into())),
            Ok(None) => Ok(None),
            Ok(Some(Err(e))) => Err(self.transport_error(&e)),
            Ok(Some(Ok(b))) => Ok(Some(b)),
        }
    }

    /// Hands the first events over, then streams the rest.
    async fn pump(
        self: Arc<Self>,
        started: Started,
        tx: mpsc::Sender<LlmEvent>,
        mut guard: BreakerGuard,
    ) {
        let Started {
            mut body,
            mut parser,
            mut state,
            events,
        } = started;
        let mut events = events;
        loop {
            for ev in events.drain(..) {
                guard.produced_output = true;
                if tx.send(ev).await.is_err() {
                    // The receiver is gone: the caller cancelled.
                    return;
                }
            }
            if state.is_done() {
                guard.success();
                return;
            }
            let next = tokio::time::timeout(self.cfg.idle_timeout, body.next()).await;
            let step = self
                .read_step(next, "idle between chunks")
                .and_then(|chunk| match chunk {
                    Some(chunk) => feed(&mut parser, &mut state, &chunk, &mut events),
                    None => finish_body(&mut parser, &mut state, &mut events),
                });
            if let Err(e) = step {
                // Events parsed before the failure still go out first.
                for ev in events.drain(..) {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                tracing::debug!(provider = %self.cfg.name, error = %e, "LLM stream failed");
                observe::error(self.breaker.name(), "chat", &e);
                guard.resolve(Some(&e));
                let _ = tx.send(LlmEvent::Error(e)).await;
                return;
            }
        }
    }

    async fn read_body_capped(&self, resp: reqwest::Response) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = resp.bytes_stream();
        while out.len() < MAX_ERROR_BODY {
            match tokio::time::timeout(self.cfg.idle_timeout, body.next()).await {
                Ok(Some(Ok(b))) => {
                    let take = b.len().min(MAX_ERROR_BODY - out.len());
                    out.extend_from_slice(&b[..take]);
                }
                _ => break,
            }
        }
        out
    }

    fn transport_error(&self, e: &reqwest::Error) -> PortError {
        let name = &self.cfg.name;
        if e.is_timeout() {
            PortError::Timeout(format!("{name}: connect"))
        } else if e.is_connect() {
            PortError::Unavailable(format!("{name}: connect: {e}"))
        } else {
            PortError::Unavailable(format!("{name}: connection broken: {e}"))
        }
    }
}

fn feed(
    parser: &mut SseParser,
    state: &mut StreamState,
    chunk: &[u8],
    out: &mut Vec<LlmEvent>,
) -> PortResult<()> {
    let datas = parser
        .push(chunk)
        .map_err(|e| PortError::Protocol(e.to_string()))?;
    for d in datas {
        state.on_data(&d, out)?;
        if state.is_done() {
            break;
        }
    }
    Ok(())
}

/// The body ended: without `[DONE]` the stream failed.
fn finish_body(
    parser: &mut SseParser,
    state: &mut StreamState,
    out: &mut Vec<LlmEvent>,
) -> PortResult<()> {
    if let Some(d) = parser
        .finish()
        .map_err(|e| PortError::Protocol(e.to_string()))?
    {
        state.on_data(&d, out)?;
    }
    if state.is_done() {
        Ok(())
    } else {
        Err(PortError::Unavailable("stream ended without [DONE]".into()))
    }
}

#[cfg(test)]
mod vendor_tests {
    use super::*;

    #[test]
    fn vendors_are_named_by_their_domain_and_other_hosts_by_the_config() {
        assert_eq!(vendor(GROQ_BASE_URL), Some("groq"));
        assert_eq!(vendor(OPENAI_BASE_URL), Some("openai"));
        assert_eq!(vendor("https://API.Mistral.ai/v1"), Some("mistral"));
        assert_eq!(vendor("http://127.0.0.1:8080/v1"), None);
        assert_eq!(
            vendor("https://notgroq.com/v1"),
            None,
            "a suffix is not the domain"
        );
        assert_eq!(vendor("not a url"), None);
        let breaker = Arc::new(CircuitBreaker::new("llm", 5, Duration::from_secs(1)));
        let named = |cfg| OpenAiClient::new(cfg, breaker.clone()).expect("client");
        let groq = named(OpenAiConfig::groq(Secret::new("k")));
        assert_eq!(groq.provider_name(), "groq");
        let local = named(OpenAiConfig::new(
            "llm_fallback",
            "http://127.0.0.1:9/v1",
            Secret::new("k"),
        ));
        assert_eq!(local.provider_name(), "llm_fallback");
        assert_eq!(local.name(), "llm_fallback", "the configured name stays");
    }
}
