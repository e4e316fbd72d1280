//! The calls-per-second token bucket of a telephony account, shared by all
//! nodes: one hash per account (`tokens`, `ts` in microseconds of Redis
//! `TIME`), refilled and spent in one script.

use std::sync::LazyLock;
use std::time::Duration;

use super::{Keys, RedisError};

/// Refill by the time since the last take (Redis' clock), take one token
/// if there is one; answer 0 or the microseconds until the next token.
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
  ts = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"#,
    )
});

/// Slowest rate accepted (a token every ~11 days); below it is a
/// configuration mistake.
pub const MIN_RATE: f64 = 1e-6;

/// Takes a token from `account`'s bucket (`rate` a second, `burst` held at
/// most): `None` when granted, else the wait until the next token.
pub async fn take(
    keys: &Keys,
    account: &str,
    rate: f64,
    burst: u32,
) -> Result<Option<Duration>, RedisError> {
    if !(rate.is_finite() && rate >= MIN_RATE) {
        return Err(RedisError::Protocol(format!(
            "CPS rate {rate} is not usable"
        )));
    }
    let key = keys.key(&format!("cps:{account}"));
    let wait: i64 = keys
        .run(&TAKE, &[key], &[rate.to_string(), burst.max(1).to_string()])
        .await?;
    Ok((wait > 0).then(|| Duration::from_micros(wait.unsigned_abs())))
}
