//! Webhook de-duplication: `SET NX EX` on a key made of the event's
//! identity (hashed, so the key's length is bounded whatever the provider
//! sends). The first delivery sets it; repeats find it.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Keys, RedisError};

/// The key of one delivery: SHA-256 of its parts, each length-prefixed so
/// that different splits never collide.
pub fn event_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("dedup:{hex}")
}

/// Marks `key` (from [`event_key`]) seen for `ttl`: `true` on the first
/// delivery, `false` on a repeat within `ttl`.
pub async fn first(keys: &Keys, key: &str, ttl: Duration) -> Result<bool, RedisError> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(keys.key(key))
        .arg("1")
        .arg("NX")
        .arg("EX")
        .arg(ttl.as_secs().max(1));
    let set: Option<String> = keys.cmd(cmd).await?;
    Ok(set.is_some())
}
