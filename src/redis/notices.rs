//! Campaign notices: what the node that served a campaign request tells
//! the others, over Redis pub/sub (one channel, `{prefix}campaign-notices`).
//!
//! Every node keeps an actor per live campaign, but only the lease holder
//! dials, and the REST request that pauses, stops or resumes a campaign
//! may land on any node. That node stores the new state and then
//! publishes a [`Notice`]; each node's runtime hands it to its own actor
//! for the campaign ([`listen`]), so the holder, wherever it runs, stops
//! (or starts) dialling within milliseconds of the API's answer.
//!
//! Pub/sub delivers at most once: a node that is not subscribed at that
//! moment (reconnecting, Redis restarting) never sees the notice. So the
//! notice only makes the change prompt; the lease holder also reads the
//! stored state every tick and claims contacts only while the stored
//! campaign is `running` (see `talky_actors::campaign_actor`), which does
//! not depend on Redis.

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use talky_actors::campaign::CampaignCommand;
use talky_actors::ids::{CampaignId, TenantId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Keys, RedisError};

/// The channel's name under the key prefix (deployments and tests sharing
/// a Redis server do not hear each other).
const CHANNEL: &str = "campaign-notices";
/// Largest notice read: a real one is about 150 bytes.
const MAX_NOTICE_BYTES: usize = 4096;
/// How often an idle subscription is checked with a PING: a connection
/// that died silently (no reset) is replaced within about this long.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Wait before subscribing again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Counter of notices by `event`: `published`, `publish_failed`,
/// `received`, `invalid`, `dropped` (the runtime's queue was full).
pub const METRIC: &str = "talky_campaign_notices_total";

/// What happened to the campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// Started: every node gives it an actor now.
    Start,
    /// Paused: no new dials.
    Pause,
    /// Resumed: dial again.
    Resume,
    /// Stopped: no new dials, cancelled once drained.
    Stop,
    /// Its settings changed (PATCH): the dialer's call settings and the
    /// actor's window, retry policy and cap are read again.
    Changed,
}

impl From<CampaignCommand> for What {
    fn from(c: CampaignCommand) -> Self {
        match c {
            CampaignCommand::Start => What::Start,
            CampaignCommand::Pause => What::Pause,
            CampaignCommand::Resume => What::Resume,
            CampaignCommand::Stop => What::Stop,
        }
    }
}

/// One notice, as published (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// The campaign's tenant.
    pub tenant: TenantId,
    /// The campaign.
    pub campaign: CampaignId,
    /// What happened to it. Already stored when the notice is sent.
    pub what: What,
    /// The node that served the request (and acted on it already).
    pub node: String,
}

impl Notice {
    /// Reads a notice from the wire; `None` if it is not one (too long,
    /// not JSON, unknown fields or values).
    pub fn parse(payload: &[u8]) -> Option<Notice> {
        if payload.len() > MAX_NOTICE_BYTES {
            return None;
        }
        serde_json::from_slice(payload).ok()
    }
}

/// What a node needs to hear notices: a client for its own connection
/// (a subscribed connection cannot serve the pool), and the keys that
/// name the channel and bound each wait.
#[derive(Clone)]
pub struct Subscription {
    /// Opens the subscribing connection.
    pub client: redis::Client,
    /// Prefix and timeout.
    pub keys: Keys,
}

/// The channel's full name.
pub fn channel(keys: &Keys) -> String {
    keys.key(CHANNEL)
}

/// Publishes `notice` to every node listening (under the keys' timeout);
/// how many received it.
pub async fn publish(keys: &Keys, notice: &Notice) -> Result<u64, RedisError> {
    let payload = serde_json::to_string(notice).map_err(|e| RedisError::Protocol(e.to_string()))?;
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(channel(keys)).arg(payload);
    let result = keys.cmd::<u64>(cmd).await;
    let event = if result.is_ok() {
        "published"
    } else {
        "publish_failed"
    };
    metrics::counter!(METRIC, "event" => event).increment(1);
    result
}

/// Listens to the channel for as long as the returned task runs (abort it
/// to stop), passing each notice to `tx`. Subscribes again after any
/// failure, a second later; a subscription that does not answer a
/// PING within `keys.timeout` counts as failed. What is published while
/// no subscription stands is missed (see the module docs for why that is
/// safe). A notice that does not parse is counted and dropped; so is one
/// that finds `tx` full (the receiver is behind; the per-tick reading of
/// the store catches up).
pub fn listen(sub: Subscription, tx: mpsc::Sender<Notice>) -> JoinHandle<()> {
    let Subscription { client, keys } = sub;
    tokio::spawn(async move {
        let channel = channel(&keys);
        while !tx.is_closed() {
            match subscribe(&client, &channel, keys.timeout).await {
                Ok(pubsub) => {
                    tracing::info!(%channel, "listening for campaign notices");
                    let why = pass_on(pubsub, keys.timeout, &tx).await;
                    if tx.is_closed() {
                        break;
                    }
                    tracing::warn!(%channel, reason = why, "campaign notices: subscription lost; subscribing again");
                }
                Err(e) => {
                    tracing::warn!(%channel, error = %e, "campaign notices: cannot subscribe; retrying")
                }
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    })
}

/// A connection subscribed to `channel`, within `timeout`.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
) -> Result<redis::aio::PubSub, RedisError> {
    let work = async {
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        pubsub
            .subscribe(channel)
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        Ok(pubsub)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::Unavailable("subscribing timed out".into())),
    }
}

/// Passes notices on until the subscription fails or `tx` closes; why it
/// ended.
async fn pass_on(
    pubsub: redis::aio::PubSub,
    timeout: Duration,
    tx: &mpsc::Sender<Notice>,
) -> &'static str {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return "connection closed";
                };
                let Some(notice) = Notice::parse(msg.get_payload_bytes()) else {
                    metrics::counter!(METRIC, "event" => "invalid").increment(1);
                    tracing::warn!(bytes = msg.get_payload_bytes().len(), "campaign notices: not a notice; dropped");
                    continue;
                };
                metrics::counter!(METRIC, "event" => "received").increment(1);
                match tx.try_send(notice) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(n)) => {
                        metrics::counter!(METRIC, "event" => "dropped").increment(1);
                        tracing::warn!(campaign = %n.campaign, "campaign notices: queue full; dropped (the store is read every tick)");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return "receiver gone",
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return "ping failed",
                    Err(_) => return "ping timed out",
                }
            }
            _ = tx.closed() => return "receiver gone",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_anything_else_is_refused() {
        let n = Notice {
            tenant: TenantId::new(),
            campaign: CampaignId::new(),
            what: What::Pause,
            node: "node-a".into(),
        };
        let wire = serde_json::to_vec(&n).expect("json");
        assert_eq!(Notice::parse(&wire), Some(n.clone()));
        let text = String::from_utf8(wire).expect("utf-8");
        assert!(text.contains(r#""what":"pause""#), "{text}");
        for bad in [
            b"".to_vec(),
            b"pause".to_vec(),
            b"{}".to_vec(),
            text.replace("pause", "explode").into_bytes(),
            text.replace("\"node\"", "\"extra\":1,\"node\"")
                .into_bytes(),
            vec![b' '; MAX_NOTICE_BYTES + 1],
        ] {
            assert_eq!(
                Notice::parse(&bad),
                None,
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
        assert_eq!(What::from(CampaignCommand::Stop), What::Stop);
    }
}
