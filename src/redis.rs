//! Redis through bb8-redis: the cross-node engine (call-per-second
//! buckets, concurrency counters, campaign leases, webhook de-duplication
//! come with the dialer). Every command runs under a timeout.

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
