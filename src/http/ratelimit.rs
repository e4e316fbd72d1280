//! Request rate limits per API key: a token bucket per key, in this
//! process's memory. Each node counts on its own, so a cluster of N nodes
//! behind a balancer lets a key through at up to N times the rate; the
//! limit is there to keep one tenant's client from crowding the others
//! out of a node, not to meter. The admin token and the provider's
//! callbacks do not pass through it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use talky_actors::ids::ApiKeyId;

/// Keys tracked before idle full buckets are forgotten.
const PRUNE_AT: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per API key.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<ApiKeyId, Bucket>>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved; a rate of 0 lets
    /// everything through.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key` at `now`; when there is none, how long
    /// until there is.
    pub fn check(&self, key: ApiKeyId, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(&key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let key = ApiKeyId(uuid::Uuid::now_v7());
        let other = ApiKeyId(uuid::Uuid::now_v7());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(key, t0).is_ok());
        }
        let wait = limiter.check(key, t0).expect_err("over the burst");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!(limiter.check(other, t0).is_ok(), "another key has its own");
        assert!(limiter.check(key, t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.check(key, t0 + Duration::from_millis(500)).is_err());
        assert!(RateLimiter::new(0.0, 1).check(key, t0).is_ok());
    }
}
