//! Campaign leases: `SET NX PX` with the node id; renew and release only
//! while the value is still this node's (compare-and-set in Lua). A lease
//! not renewed lapses, and another node takes it.

use std::sync::LazyLock;
use std::time::Duration;

use super::{Keys, RedisError};

/// 1 taken, 2 already ours (extended), 0 another node's.
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 2
end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
return 1
"#,
    )
});

/// 1 extended, 0 not ours.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// 1 released, 0 not ours.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#,
    )
});

/// The outcome of [`acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// It was free; `node` holds it now.
    New,
    /// `node` held it; extended.
    Renewed,
    /// Another node holds it.
    Elsewhere,
}

fn key(keys: &Keys, name: &str) -> String {
    keys.key(&format!("lease:{name}"))
}

fn millis(ttl: Duration) -> String {
    ttl.as_millis().max(1).to_string()
}

/// Takes (or extends) lease `name` for `node` for `ttl`.
pub async fn acquire(
    keys: &Keys,
    name: &str,
    node: &str,
    ttl: Duration,
) -> Result<Acquired, RedisError> {
    let answer: i64 = keys
        .run(&ACQUIRE, &[key(keys, name)], &[node.into(), millis(ttl)])
        .await?;
    match answer {
        1 => Ok(Acquired::New),
        2 => Ok(Acquired::Renewed),
        0 => Ok(Acquired::Elsewhere),
        other => Err(RedisError::Protocol(format!("lease acquire said {other}"))),
    }
}

/// Extends lease `name` if `node` holds it; whether it does.
pub async fn renew(keys: &Keys, name: &str, node: &str, ttl: Duration) -> Result<bool, RedisError> {
    let answer: i64 = keys
        .run(&RENEW, &[key(keys, name)], &[node.into(), millis(ttl)])
        .await?;
    Ok(answer == 1)
}

/// Deletes lease `name` if `node` holds it; whether it did.
pub async fn release(keys: &Keys, name: &str, node: &str) -> Result<bool, RedisError> {
    let answer: i64 = keys
        .run(&RELEASE, &[key(keys, name)], &[node.into()])
        .await?;
    Ok(answer == 1)
}
