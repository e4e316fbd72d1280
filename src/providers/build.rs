//! Building a provider client: the one error every constructor returns,
//! the checks they share, and the one way an HTTP client is made.

use std::time::Duration;

use reqwest::header::HeaderValue;

use crate::config::Secret;
use crate::providers::vonage::JwtError;

/// A provider client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting holds a value the client cannot use (a URL of the wrong
    /// scheme, an unknown audio format).
    #[error("{provider}: {setting} {value:?} is not {expected}")]
    BadSetting {
        /// The provider ("deepgram", "elevenlabs", an LLM's name, ...).
        provider: String,
        /// The setting, as the config names it.
        setting: &'static str,
        /// What it holds.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// The API key cannot be sent as a header value.
    #[error("{provider}: API key is not a valid header value")]
    BadKey {
        /// The provider.
        provider: String,
    },
    /// No key is configured at all.
    #[error("{provider}: no {what}")]
    NoKey {
        /// The provider.
        provider: String,
        /// What is missing, naming the settings that may hold it.
        what: &'static str,
    },
    /// The key (or what signs with it) is unusable.
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// reqwest refused the HTTP client's settings.
    #[error("{provider}: HTTP client: {source}")]
    Http {
        /// The provider.
        provider: String,
        /// reqwest's reason.
        source: reqwest::Error,
    },
}

/// `url` without trailing `/`, if it starts with one of `schemes`; else the
/// [`BuildError::BadSetting`] naming `setting` and `expected`.
pub(crate) fn base_url(
    provider: &str,
    setting: &'static str,
    url: &str,
    schemes: &[&str],
    expected: &'static str,
) -> Result<String, BuildError> {
    let base = url.trim_end_matches('/');
    if schemes.iter().any(|s| base.starts_with(s)) {
        Ok(base.to_string())
    } else {
        Err(BuildError::BadSetting {
            provider: provider.into(),
            setting,
            value: url.into(),
            expected,
        })
    }
}

/// `http://` or `https://`.
pub(crate) const HTTP_SCHEMES: [&str; 2] = ["http://", "https://"];
/// `ws://` or `wss://`.
pub(crate) const WS_SCHEMES: [&str; 2] = ["ws://", "wss://"];

/// The header value `{prefix}{key}` (e.g. `Token `, `Bearer `, or none),
/// marked sensitive so it never shows in logs.
pub(crate) fn key_header(
    provider: &str,
    prefix: &str,
    key: &Secret,
) -> Result<HeaderValue, BuildError> {
    let mut v = HeaderValue::from_str(&format!("{prefix}{}", key.expose())).map_err(|_| {
        BuildError::BadKey {
            provider: provider.into(),
        }
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// An OpenAI-compatible endpoint: its URL, bearer header and client.
pub(crate) struct BearerEndpoint {
    /// `{base_url}{path}`.
    pub(crate) url: String,
    /// `Bearer <key>`, sensitive.
    pub(crate) auth: HeaderValue,
    /// A streaming client.
    pub(crate) http: reqwest::Client,
}

/// The endpoint `path` of `provider` at `base_url` (http(s)) with `key`.
pub(crate) fn bearer_endpoint(
    provider: &str,
    base_url: &str,
    path: &str,
    key: &Secret,
    connect_timeout: Duration,
) -> Result<BearerEndpoint, BuildError> {
    let base = self::base_url(provider, "base_url", base_url, &HTTP_SCHEMES, "http(s)")?;
    Ok(BearerEndpoint {
        url: format!("{base}{path}"),
        auth: key_header(provider, "Bearer ", key)?,
        http: HttpClient::new(provider, connect_timeout)
            .streaming()
            .build()?,
    })
}

/// How long an idle pooled connection of a streaming client is kept.
pub const STREAMING_POOL_IDLE: Duration = Duration::from_secs(60);
/// The `User-Agent` of the REST clients that send one.
pub const USER_AGENT: &str = concat!("talky/", env!("CARGO_PKG_VERSION"));

/// The settings of one provider's HTTP client. TLS is rustls with the
/// webpki roots (the crate's reqwest features) for every client.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    provider: String,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    streaming: bool,
    user_agent: bool,
}

impl HttpClient {
    /// A client of `provider` whose connects take at most `connect_timeout`.
    pub(crate) fn new(provider: &str, connect_timeout: Duration) -> Self {
        Self {
            provider: provider.into(),
            connect_timeout,
            request_timeout: None,
            streaming: false,
            user_agent: false,
        }
    }

    /// For latency-bound streams (LLM, TTS, STT uploads): no Nagle delay,
    /// idle pooled connections kept [`STREAMING_POOL_IDLE`]. The client
    /// times its own phases (first byte, idle), so no whole-request budget.
    pub(crate) fn streaming(mut self) -> Self {
        self.streaming = true;
        self
    }

    /// Every request ends within `d`, connect to last body byte.
    pub(crate) fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// Sends [`USER_AGENT`].
    pub(crate) fn user_agent(mut self) -> Self {
        self.user_agent = true;
        self
    }

    /// The reqwest client.
    pub(crate) fn build(self) -> Result<reqwest::Client, BuildError> {
        let mut b = reqwest::Client::builder().connect_timeout(self.connect_timeout);
        if self.streaming {
            b = b.tcp_nodelay(true).pool_idle_timeout(STREAMING_POOL_IDLE);
        }
        if let Some(d) = self.request_timeout {
            b = b.timeout(d);
        }
        if self.user_agent {
            b = b.user_agent(USER_AGENT);
        }
        b.build().map_err(|source| BuildError::Http {
            provider: self.provider,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keys_and_messages() {
        assert_eq!(
            base_url("x", "base_url", "https://h/", &HTTP_SCHEMES, "http(s)").unwrap(),
            "https://h"
        );
        assert_eq!(
            base_url("x", "base_url", "wss://h", &WS_SCHEMES, "ws(s)").unwrap(),
            "wss://h"
        );
        let e = base_url("deepgram", "base_url", "http://h", &WS_SCHEMES, "ws(s)").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"deepgram: base_url "http://h" is not ws(s)"#
        );
        let v = key_header("aura", "Token ", &Secret::new("k")).unwrap();
        assert_eq!(v.to_str().unwrap(), "Token k");
        assert!(v.is_sensitive());
        let e = key_header("aura", "Token ", &Secret::new("a\nb")).unwrap_err();
        assert_eq!(e.to_string(), "aura: API key is not a valid header value");
        assert!(!format!("{e:?}").contains("a\nb"));
        let e = BuildError::NoKey {
            provider: "vonage".into(),
            what: "private key (private_key or private_key_file)",
        };
        assert_eq!(
            e.to_string(),
            "vonage: no private key (private_key or private_key_file)"
        );
    }

    #[test]
    fn http_clients_build_with_each_setting() {
        let d = Duration::from_secs(1);
        for c in [
            HttpClient::new("x", d),
            HttpClient::new("x", d).streaming(),
            HttpClient::new("x", d).request_timeout(d).user_agent(),
        ] {
            c.build().expect("client");
        }
    }
}
