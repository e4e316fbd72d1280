//! The HTTP side: listener and public URL, request limits, tenants' rate
//! limits, the admin token, the providers' media sockets, logging.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

/// Default: a media socket with no audio frame for this long is closed and
/// its call ended (Vonage sends a frame every 20 ms, silence included).
pub const DEFAULT_MEDIA_IDLE_TIMEOUT_SECS: u64 = 10;
/// Default largest message on a media socket (bytes): a frame is 640, the
/// provider's JSON events a few hundred.
pub const DEFAULT_MEDIA_MAX_MESSAGE_BYTES: u64 = 8 * 1024;

/// Limits of the providers' media sockets.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Seconds without an audio frame before the socket is closed and the
    /// call ended.
    pub idle_timeout_secs: u64,
    /// Largest WebSocket message (and frame) accepted, bytes; bigger closes
    /// the socket (1009). With the 4 KiB buffers, what bounds a socket's
    /// memory.
    pub max_message_bytes: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: DEFAULT_MEDIA_IDLE_TIMEOUT_SECS,
            max_message_bytes: DEFAULT_MEDIA_MAX_MESSAGE_BYTES,
        }
    }
}

/// Default listen address: loopback, so a fresh install exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default JSON request body limit.
pub const DEFAULT_MAX_JSON_BODY_BYTES: u64 = 1024 * 1024;
/// Default time a request may take before it is answered with 503.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Default deadline for reading a request body (ms): a body that has not
/// fully arrived by then is answered 408.
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 60_000;
/// Default drain on SIGTERM: live calls get this long to end by themselves.
pub const DEFAULT_DRAIN_SECS: u64 = 30;

/// HTTP server settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server binds (`TALKY_LISTEN`).
    pub listen: String,
    /// URL at which providers reach this node (`TALKY_PUBLIC_URL`); goes
    /// into the NCCO and event URLs of the calls this node places. Defaults
    /// to `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest JSON body accepted (bytes); larger is a 413.
    pub max_json_body_bytes: u64,
    /// Whole-request deadline (ms); a handler past it answers 503.
    pub request_timeout_ms: u64,
    /// Deadline for a request body to arrive in full (ms), counted from
    /// the start of its read; past it the answer is 408 and the
    /// connection is closed (`TALKY_SERVER__BODY_READ_TIMEOUT_MS`).
    pub body_read_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long live calls may go on to their natural
    /// end before the rest are ended politely (seconds; 0: at once).
    pub drain_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            public_url: None,
            max_json_body_bytes: DEFAULT_MAX_JSON_BODY_BYTES,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            body_read_timeout_ms: DEFAULT_BODY_READ_TIMEOUT_MS,
            drain_secs: DEFAULT_DRAIN_SECS,
        }
    }
}

/// Default sustained requests per second of one API key.
pub const DEFAULT_API_RATE_PER_SECOND: f64 = 20.0;
/// Default burst of one API key's request bucket.
pub const DEFAULT_API_BURST: u32 = 40;

/// Request rate limits of tenants' API keys: a token bucket per key, in
/// this process's memory (each node counts on its own). The admin token
/// and the provider's callbacks are not limited.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Sustained requests per second of one key
    /// (`TALKY_API__RATE_PER_SECOND`); 0 turns the limit off.
    pub rate_per_second: f64,
    /// Requests one key may make at once after being idle
    /// (`TALKY_API__BURST`).
    pub burst: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            rate_per_second: DEFAULT_API_RATE_PER_SECOND,
            burst: DEFAULT_API_BURST,
        }
    }
}

/// Admin settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for `/api/v1/admin/*` (`TALKY_ADMIN_TOKEN`). Empty
    /// disables the admin API (tenants are then made with the CLI).
    pub token: Secret,
    /// File holding the token.
    pub token_file: Option<PathBuf>,
}

/// Default log filter (tracing-subscriber EnvFilter syntax).
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Logging settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Filter, e.g. `info,talky=debug`; `RUST_LOG` overrides it.
    pub filter: String,
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: DEFAULT_LOG_FILTER.into(),
            json: false,
        }
    }
}
