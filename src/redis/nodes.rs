//! Node heartbeats: each talky process keeps `node:{id}` alive with
//! `SET PX` while it runs (and deletes it when it has drained). A node
//! whose key lapsed is gone: the calls its rows name are orphans that
//! another node reconciles with the provider (see `crate::reconcile`).

use std::time::Duration;

use super::{Keys, RedisError};

fn key(keys: &Keys, node: &str) -> String {
    keys.key(&format!("node:{node}"))
}

/// Says `node` is alive for `ttl`.
pub async fn beat(keys: &Keys, node: &str, ttl: Duration) -> Result<(), RedisError> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key(keys, node))
        .arg("1")
        .arg("PX")
        .arg(ttl.as_millis().max(1) as u64);
    let _: () = keys.cmd(cmd).await?;
    Ok(())
}

/// Whether `node`'s heartbeat is current.
pub async fn alive(keys: &Keys, node: &str) -> Result<bool, RedisError> {
    let mut cmd = redis::cmd("EXISTS");
    cmd.arg(key(keys, node));
    let n: i64 = keys.cmd(cmd).await?;
    Ok(n > 0)
}

/// `node` is gone for good (a drained process, on its way out).
pub async fn forget(keys: &Keys, node: &str) -> Result<(), RedisError> {
    let mut cmd = redis::cmd("DEL");
    cmd.arg(key(keys, node));
    let _: i64 = keys.cmd(cmd).await?;
    Ok(())
}
