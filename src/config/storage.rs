//! PostgreSQL and Redis.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

/// Default size of the PostgreSQL connection pool of the REST API.
pub const DEFAULT_DB_POOL_SIZE: u32 = 16;
/// Default size of the live calls' own PostgreSQL pool.
pub const DEFAULT_DB_LIVE_POOL_SIZE: u32 = 8;
/// Default wait for a pooled connection (ms).
pub const DEFAULT_DB_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default per-statement limit (ms), set on every pooled connection.
pub const DEFAULT_DB_STATEMENT_TIMEOUT_MS: u64 = 30_000;

/// PostgreSQL settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL (`DATABASE_URL`); may carry a password, so a secret.
    pub url: Secret,
    /// File holding the URL, for secret stores that mount files.
    pub url_file: Option<PathBuf>,
    /// Size of the REST API's pool (tenants' requests, uploads).
    pub pool_size: u32,
    /// Size of the live calls' own pool (`TALKY_DATABASE__LIVE_POOL_SIZE`):
    /// call, dial and campaign stores, the reconciler, the provider's
    /// webhooks and the media socket. Tenants' API load cannot take these
    /// connections.
    pub live_pool_size: u32,
    /// Wait for a pooled connection before failing (ms).
    pub connect_timeout_ms: u64,
    /// Server-side statement timeout (ms).
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            url_file: None,
            pool_size: DEFAULT_DB_POOL_SIZE,
            live_pool_size: DEFAULT_DB_LIVE_POOL_SIZE,
            connect_timeout_ms: DEFAULT_DB_CONNECT_TIMEOUT_MS,
            statement_timeout_ms: DEFAULT_DB_STATEMENT_TIMEOUT_MS,
        }
    }
}

/// Default Redis URL: the local server `make` starts.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";
/// Default size of the Redis pool.
pub const DEFAULT_REDIS_POOL_SIZE: u32 = 16;
/// Default limit for connecting to Redis and for one command (ms).
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 2_000;

/// Redis settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Connection URL (`REDIS_URL`); may carry a password, so a secret.
    pub url: Secret,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// Pool size.
    pub pool_size: u32,
    /// Connect and command timeout (ms).
    pub timeout_ms: u64,
    /// Share CPS tokens, call slots and campaign leases with other nodes
    /// through Redis, and tell them of campaign commands and settings
    /// changes served here (pub/sub); off: this process is the whole
    /// cluster (in memory).
    pub cluster: bool,
    /// This node's id in leases and on its calls (unset: hostname and
    /// process id).
    pub node_id: Option<String>,
    /// Prefix of every key talky writes.
    pub key_prefix: String,
    /// Life of a campaign lease its node stops renewing (ms).
    pub lease_ttl_ms: u64,
    /// Life of a call slot its node stops renewing (ms).
    pub slot_ttl_ms: u64,
    /// How long a webhook's de-duplication key is kept (s).
    pub dedup_ttl_secs: u64,
    /// Name of the telephony account whose CPS bucket the nodes share
    /// (its rate and burst are `dialer.calls_per_second` / `cps_burst`).
    pub cps_account: String,
}

/// Default prefix of talky's Redis keys.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "talky:";
/// Default life of a campaign lease not renewed (ms).
pub const DEFAULT_LEASE_TTL_MS: u64 = 15_000;
/// Default life of a call slot not renewed (ms).
pub const DEFAULT_SLOT_TTL_MS: u64 = 30_000;
/// Default life of a webhook de-duplication key (s): a day.
pub const DEFAULT_DEDUP_TTL_SECS: u64 = 86_400;
/// Default name of the shared CPS bucket's account.
pub const DEFAULT_CPS_ACCOUNT: &str = "vonage";

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: Secret::new(DEFAULT_REDIS_URL),
            url_file: None,
            pool_size: DEFAULT_REDIS_POOL_SIZE,
            timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            cluster: true,
            node_id: None,
            key_prefix: DEFAULT_REDIS_KEY_PREFIX.into(),
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            slot_ttl_ms: DEFAULT_SLOT_TTL_MS,
            dedup_ttl_secs: DEFAULT_DEDUP_TTL_SECS,
            cps_account: DEFAULT_CPS_ACCOUNT.into(),
        }
    }
}

impl RedisConfig {
    /// This node's id: `node_id`, or hostname and process id.
    pub fn node(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.trim().to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        format!("{host}-{}", std::process::id())
    }
}
