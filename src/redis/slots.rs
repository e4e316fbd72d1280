//! Concurrency counters that a dead node cannot leak: per scope (global,
//! tenant, campaign) a sorted set of slot ids scored by their expiry in
//! Redis time. Acquire drops the expired, checks every cap and adds to
//! every scope in one script; release removes; renew pushes the expiry of
//! live calls' slots out. A node that dies stops renewing, and its slots
//! stop counting when they expire.

use std::sync::LazyLock;
use std::time::Duration;

use super::{Keys, RedisError};

/// Which cap refused an acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The cluster-wide cap.
    Global,
    /// The tenant's cap.
    Tenant,
    /// The campaign's cap.
    Campaign,
}

/// The three counters a slot is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes {
    /// The tenant's id.
    pub tenant: String,
    /// The campaign's id.
    pub campaign: String,
}

/// ARGV: member, ttl ms, caps (global, tenant, campaign). 0 taken, or the
/// 1-based index of the full scope. Taking a slot already held renews it.
static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  for i = 1, 3 do
    if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[2 + i]) then
      return i
    end
  end
end
for i = 1, 3 do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return 0
"#,
    )
});

/// KEYS: triples of scopes; ARGV: ttl ms, then one member per triple.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  for j = 1, 3 do
    local k = KEYS[(i - 2) * 3 + j]
    redis.call('ZADD', k, now + ttl, ARGV[i])
    redis.call('PEXPIRE', k, ttl)
  end
end
return 0
"#,
    )
});

/// KEYS: the three scopes; ARGV: member.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
for i = 1, 3 do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 0
"#,
    )
});

fn scope_keys(keys: &Keys, scopes: &Scopes) -> [String; 3] {
    [
        keys.key("slots:global"),
        keys.key(&format!("slots:tenant:{}", scopes.tenant)),
        keys.key(&format!("slots:campaign:{}", scopes.campaign)),
    ]
}

fn millis(ttl: Duration) -> String {
    ttl.as_millis().max(1).to_string()
}

/// Takes slot `member` in all three scopes for `ttl` if every cap
/// (`[global, tenant, campaign]`) has room; otherwise the full scope.
pub async fn acquire(
    keys: &Keys,
    scopes: &Scopes,
    member: &str,
    caps: [u32; 3],
    ttl: Duration,
) -> Result<Result<(), Scope>, RedisError> {
    let args = [
        member.to_string(),
        millis(ttl),
        caps[0].to_string(),
        caps[1].to_string(),
        caps[2].to_string(),
    ];
    let answer: i64 = keys.run(&ACQUIRE, &scope_keys(keys, scopes), &args).await?;
    match answer {
        0 => Ok(Ok(())),
        1 => Ok(Err(Scope::Global)),
        2 => Ok(Err(Scope::Tenant)),
        3 => Ok(Err(Scope::Campaign)),
        other => Err(RedisError::Protocol(format!("slot acquire said {other}"))),
    }
}

/// Pushes the expiry of these slots to `ttl` from now (a slot that had
/// lapsed counts again: its call is live).
pub async fn renew(
    keys: &Keys,
    slots: &[(Scopes, String)],
    ttl: Duration,
) -> Result<(), RedisError> {
    if slots.is_empty() {
        return Ok(());
    }
    let mut ks = Vec::with_capacity(slots.len() * 3);
    let mut args = Vec::with_capacity(slots.len() + 1);
    args.push(millis(ttl));
    for (scopes, member) in slots {
        ks.extend(scope_keys(keys, scopes));
        args.push(member.clone());
    }
    let _: i64 = keys.run(&RENEW, &ks, &args).await?;
    Ok(())
}

/// Removes slot `member` from its scopes.
pub async fn release(keys: &Keys, scopes: &Scopes, member: &str) -> Result<(), RedisError> {
    let _: i64 = keys
        .run(&RELEASE, &scope_keys(keys, scopes), &[member.to_string()])
        .await?;
    Ok(())
}

/// Live (unexpired) slots in a scope's counter: `None` is the global one.
pub async fn live(keys: &Keys, scope: Option<(&str, &str)>) -> Result<u64, RedisError> {
    let key = match scope {
        None => keys.key("slots:global"),
        Some((kind, id)) => keys.key(&format!("slots:{kind}:{id}")),
    };
    let time = redis::cmd("TIME");
    let (secs, micros): (u64, u64) = keys.cmd(time).await?;
    let now = secs * 1000 + micros / 1000;
    let mut count = redis::cmd("ZCOUNT");
    count.arg(key).arg(format!("({now}")).arg("+inf");
    keys.cmd(count).await
}
