//! Redis through bb8-redis: the cross-node engine. Every operation is one
//! atomic Lua script (or one command) under the configured timeout, on
//! keys under a configurable prefix (`talky:` by default; tests use their
//! own). Time comes from Redis `TIME`, never from the nodes' clocks.
//!
//! - [`cps`]: the telephony account's calls-per-second token bucket.
//! - [`slots`]: concurrency counters (global, tenant, campaign) that a dead
//!   node cannot leak: sorted sets of slot ids scored by expiry.
//! - [`lease`]: campaign leases (one node runs a campaign).
//! - [`dedup`]: webhook de-duplication keys.
//! - [`cluster`]: [`RedisCluster`], the actors' `ClusterPort` over these.
//! - [`notices`]: campaign notices over pub/sub (a pause, stop, resume
//!   or settings change served by one node reaches every node at once).
//!
//! Multi-key scripts assume one Redis server (not Redis Cluster).

pub mod cluster;
pub mod cps;
pub mod dedup;
pub mod lease;
pub mod nodes;
pub mod notices;
pub mod slots;

pub use cluster::RedisCluster;

use std::time::Duration;

use bb8_redis::RedisConnectionManager;

use crate::config::RedisConfig;

/// The Redis pool.
pub type Pool = bb8::Pool<RedisConnectionManager>;

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// No connection in time, or the command failed or timed out.
    #[error("Redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered something the script never returns.
    #[error("unexpected Redis answer: {0}")]
    Protocol(String),
}

/// Where the engine's keys live and how long each command may take.
#[derive(Clone)]
pub struct Keys {
    /// The pool.
    pub pool: Pool,
    /// Prefix of every key (`talky:`), so deployments and tests share a
    /// server without meeting.
    pub prefix: String,
    /// Limit of one operation, the wait for a connection included.
    pub timeout: Duration,
}

impl Keys {
    /// The full name of a key.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs `script` with `keys` and `args` under the timeout.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, RedisError> {
        let work = async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| RedisError::Unavailable(e.to_string()))?;
            let mut invocation = script.prepare_invoke();
            for k in keys {
                invocation.key(k);
            }
            for a in args {
                invocation.arg(a);
            }
            invocation
                .invoke_async::<T>(&mut *conn)
                .await
                .map_err(|e| RedisError::Unavailable(e.to_string()))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::Unavailable("Redis script timed out".into())),
        }
    }

    /// Runs one command under the timeout.
    pub async fn cmd<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, RedisError> {
        let work = async {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| RedisError::Unavailable(e.to_string()))?;
            cmd.query_async::<T>(&mut *conn)
                .await
                .map_err(|e| RedisError::Unavailable(e.to_string()))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::Unavailable("Redis command timed out".into())),
        }
    }
}

/// Builds the pool; it connects lazily, so a Redis that is still starting
/// does not stop talky (readiness says so instead).
pub fn pool(url: &str, config: &RedisConfig) -> Result<Pool, RedisError> {
    let manager = RedisConnectionManager::new(url).map_err(|e| RedisError::Url(e.to_string()))?;
    Ok(bb8::Pool::builder()
        .max_size(config.pool_size)
        .connection_timeout(Duration::from_millis(config.timeout_ms))
        .build_unchecked(manager))
}

/// PING under `timeout`.
pub async fn ping(pool: &Pool, timeout: Duration) -> Result<(), RedisError> {
    let work = async {
        let mut conn = pool
            .get()
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        redis::cmd("PING")
            .query_async::<String>(&mut *conn)
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(RedisError::Unavailable("PING timed out".into())),
    }
}
