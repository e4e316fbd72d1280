//! Crash recovery: the calls of a process that is gone are reconciled with
//! the telephony provider, so no call row stays unfinished, no campaign
//! slot is held for ever and no leg is left up with nobody on it.
//!
//! # Who owns a call
//!
//! Every call row names the node (`redis.node_id`, by default
//! `hostname-pid`, so a new process is a new node) whose dialer wrote its
//! intent (`calls.node_id`). Each node keeps a heartbeat in Redis
//! (`node:{id}`, renewed every third of `redis.lease_ttl_ms`; see
//! [`crate::redis::nodes`]) and deletes it when it has drained. A call is
//! an orphan when it is not `finished` and
//! - its node's heartbeat has lapsed (or the row names no node), or
//! - it names this node at start-up, before this process runs any call
//!   (a restart under a fixed `node_id`).
//!
//! Without Redis coordination (`redis.cluster = false`) there is one node:
//! every unfinished call of another node id is an orphan.
//!
//! # What is done with an orphan
//!
//! 1. Its provider id: the row's (from the create-call's answer or the
//!    first webhook of the phone leg), else the provider's call list
//!    ([`TelephonyPort::find_call`]: both may have been lost).
//! 2. No leg at the provider: an intent still `queued` was never placed
//!    and is deleted (the attempt is given back); one `dialing` is finished
//!    `failed` ("not placed").
//! 3. A leg still up is hung up (its audio went with the process) and the
//!    call is finished `interrupted`; a leg that ended is finished with the
//!    provider's final status (`completed` after our process died counts
//!    as `interrupted`: the conversation was cut).
//! 4. Nothing is decided while the provider cannot be asked: the call is
//!    tried again on the next pass.
//! 5. A call that had asked its provider for a cold transfer
//!    (`calls.transfer_requested_at`, stored before the request went out)
//!    died between the provider's acceptance and our record of it, or
//!    before the provider answered: a leg still up is the callee talking
//!    with the person (never hung up), and a leg that ended completed had
//!    that conversation; either is finished `transferred`, so the contact
//!    is not called again. A leg the provider ended otherwise keeps the
//!    provider's outcome.
//!
//! Finishing a row is all the reconciler does for the campaign: the
//! CampaignActor re-reads the calls it counts as live and records the
//! contact's outcome through its retry policy, which frees the campaign's
//! slot. The finish never overwrites an outcome recorded meanwhile.
//!
//! Passes run at start-up (before the campaigns resume) and then every
//! `redis.lease_ttl_ms`, so a node that dies while others live is
//! reconciled once its heartbeat lapses, whichever node takes its
//! campaigns over.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use talky_actors::ids::{CallId, TenantId};
use talky_actors::ports::{LegState, PortError, TelephonyPort};

use crate::db::{self, calls::Call};

/// Counter of calls the reconciler settled, by `result` (`finished`,
/// `hung_up`, `released`).
pub const RECONCILED: &str = "talky_calls_reconciled_total";

/// Who is alive: the node heartbeats.
pub trait Nodes: Send + Sync {
    /// Whether `node`'s heartbeat is current; an error when it cannot be
    /// known (then nothing of that node is touched).
    fn alive<'a>(
        &'a self,
        node: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;
}

/// One node alone (`redis.cluster = false`): only this process is alive.
pub struct LocalNodes {
    /// This node.
    pub me: String,
}

impl Nodes for LocalNodes {
    fn alive<'a>(
        &'a self,
        node: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move { Ok(node == self.me) })
    }
}

/// The nodes' heartbeats in Redis.
pub struct RedisNodes {
    /// Pool, prefix, timeout.
    pub keys: crate::redis::Keys,
}

impl Nodes for RedisNodes {
    fn alive<'a>(
        &'a self,
        node: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            crate::redis::nodes::alive(&self.keys, node)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Unfinished calls looked at (of other nodes, or all at start-up).
    pub looked_at: usize,
    /// Orphans finished (with the provider's status or `interrupted`).
    pub finished: usize,
    /// Of those, legs that were still up and were hung up.
    pub hung_up: usize,
    /// Intents never placed, deleted (their attempt given back).
    pub released: usize,
    /// Orphans left for the next pass (provider or store unavailable).
    pub pending: usize,
}

/// Reconciles the calls of dead nodes.
pub struct Reconciler<T> {
    /// The store.
    pub pool: db::Pool,
    /// The telephony provider.
    pub telephony: Arc<T>,
    /// Who is alive.
    pub nodes: Arc<dyn Nodes>,
    /// This node's id.
    pub me: String,
    /// Timeout of each store and provider call.
    pub timeout: Duration,
}

/// What became of one orphan.
enum Settled {
    Finished {
        hung_up: bool,
    },
    Released,
    /// Still owned by a live process after all (raced with its finish).
    Gone,
}

/// What to do with an orphan's leg, from what the provider says of it:
/// (outcome, reason, hang it up first).
fn decide(
    state: Option<&LegState>,
    answered: bool,
    transfer_requested: bool,
) -> (&'static str, String, bool) {
    match state {
        Some(LegState::Live { .. }) if transfer_requested => (
            "transferred",
            "reconciled after its process ended: a transfer to a person had been asked and the leg is still up (left to the person)".into(),
            false,
        ),
        Some(LegState::Live { .. }) => (
            "interrupted",
            "reconciled after its process ended: the leg was still up and was hung up".into(),
            true,
        ),
        Some(LegState::Ended(status)) => {
            let (outcome, reason) = ended_outcome(status);
            if transfer_requested && outcome == "interrupted" {
                (
                    "transferred",
                    format!("reconciled after its process ended: a transfer to a person had been asked; the provider reports {status:?}"),
                    false,
                )
            } else {
                (outcome, reason, false)
            }
        }
        None if transfer_requested => (
            "transferred",
            "reconciled after its process ended: a transfer to a person had been asked; the provider does not know the leg".into(),
            false,
        ),
        None => (
            if answered { "interrupted" } else { "failed" },
            "reconciled after its process ended: the provider does not know the leg".into(),
            false,
        ),
    }
}

/// Outcome and reason for a leg the provider reports as over.
fn ended_outcome(status: &str) -> (&'static str, String) {
    let outcome = match status {
        "busy" => "busy",
        // Vonage's names, and Twilio's (`no-answer`, `canceled`).
        "timeout" | "unanswered" | "no-answer" => "no_answer",
        "rejected" => "rejected",
        "failed" => "failed",
        "cancelled" | "canceled" => "cancelled",
        // The leg ended after its process died: the conversation was cut.
        _ => "interrupted",
    };
    (
        outcome,
        format!("reconciled after its process ended: the provider reports {status:?}"),
    )
}

impl<T: TelephonyPort> Reconciler<T> {
    async fn timed<R>(
        &self,
        what: &str,
        f: impl Future<Output = Result<R, PortError>>,
    ) -> Result<R, String> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: timed out")),
        }
    }

    async fn db<R>(
        &self,
        f: impl AsyncFnOnce(&mut diesel_async::AsyncPgConnection) -> Result<R, db::DbError>,
    ) -> Result<R, String> {
        crate::store::with_conn(&self.pool, self.timeout, f)
            .await
            .map_err(|e| e.to_string())
    }

    /// One pass. At `startup` this node runs no call yet, so its own
    /// unfinished calls are orphans too.
    pub async fn pass(&self, startup: bool) -> Result<PassReport, String> {
        let except = (!startup).then(|| self.me.clone());
        let rows = self
            .db(async move |conn| db::calls::unfinished(conn, except.as_deref()).await)
            .await?;
        let mut report = PassReport {
            looked_at: rows.len(),
            ..PassReport::default()
        };
        let mut alive: HashMap<String, bool> = HashMap::new();
        for row in rows {
            let owner_alive = match row.node_id.as_deref() {
                None => false,
                Some(node) if node == self.me => !startup,
                Some(node) => match alive.get(node) {
                    Some(a) => *a,
                    None => match self.nodes.alive(node).await {
                        Ok(a) => {
                            alive.insert(node.to_string(), a);
                            a
                        }
                        Err(e) => {
                            tracing::warn!(node, error = %e, "node liveness unknown; its calls wait");
                            alive.insert(node.to_string(), true);
                            true
                        }
                    },
                },
            };
            if owner_alive {
                continue;
            }
            let call = row.id;
            match self.settle(row).await {
                Ok(Settled::Finished { hung_up }) => {
                    report.finished += 1;
                    if hung_up {
                        report.hung_up += 1;
                    }
                }
                Ok(Settled::Released) => report.released += 1,
                Ok(Settled::Gone) => {}
                Err(e) => {
                    report.pending += 1;
                    tracing::warn!(call.id = %call, error = %e, "orphaned call not reconciled yet");
                }
            }
        }
        for (what, n) in [
            ("finished", report.finished),
            ("hung_up", report.hung_up),
            ("released", report.released),
        ] {
            if n > 0 {
                metrics::counter!(RECONCILED, "result" => what).increment(n as u64);
            }
        }
        if report.finished + report.released + report.pending > 0 {
            tracing::info!(
                finished = report.finished,
                hung_up = report.hung_up,
                released = report.released,
                pending = report.pending,
                "reconciled the calls of ended processes"
            );
        }
        Ok(report)
    }

    /// Finishes (or releases) one orphan.
    async fn settle(&self, row: Call) -> Result<Settled, String> {
        let tenant = TenantId(row.tenant_id);
        let id = CallId(row.id);
        // The row has the id whenever the create-call answered or a phone
        // leg's webhook arrived (the route stores it); else ask the list.
        // The leg id names the provider that placed it (the row's
        // `provider`; `crate::providers::telephony`), so every question
        // below goes to that provider.
        let mut leg = row.leg();
        if leg.is_none() {
            let since = row.dialed_at.unwrap_or(row.created_at);
            leg = self
                .timed(
                    "the provider's call list",
                    self.telephony.find_call(id, &row.phone, since),
                )
                .await?;
        }
        let Some(leg) = leg else {
            if row.status == "queued" {
                let deleted = self
                    .db(async move |conn| db::calls::cancel_intent(conn, tenant, id).await)
                    .await?;
                return Ok(if deleted {
                    Settled::Released
                } else {
                    Settled::Gone
                });
            }
            return self
                .finish(
                    tenant,
                    id,
                    "failed",
                    "not placed: the provider has no leg for it".into(),
                    false,
                )
                .await;
        };
        if row.provider_call_id.is_none() {
            let (_, bare) = crate::providers::telephony::split_leg(&leg);
            let l = bare.to_owned();
            self.db(async move |conn| db::calls::learn_provider_id(conn, tenant, id, &l).await)
                .await?;
        }
        let state = self
            .timed(
                "the provider's call state",
                self.telephony.leg_state(leg.clone()),
            )
            .await?;
        let (outcome, reason, hang_up) = decide(
            state.as_ref(),
            row.answered_at.is_some(),
            row.transfer_requested_at.is_some(),
        );
        if hang_up {
            self.timed("hanging up the orphaned leg", self.telephony.hang_up(leg))
                .await?;
        }
        self.finish(tenant, id, outcome, reason, hang_up).await
    }

    async fn finish(
        &self,
        tenant: TenantId,
        id: CallId,
        outcome: &'static str,
        reason: String,
        hung_up: bool,
    ) -> Result<Settled, String> {
        let done = self
            .db(async move |conn| {
                db::calls::finish_unfinished(conn, tenant, id, outcome, &reason, Utc::now()).await
            })
            .await?;
        Ok(match done {
            Some(_) => {
                tracing::info!(call.id = %id, outcome, "orphaned call reconciled");
                Settled::Finished { hung_up }
            }
            None => Settled::Gone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_statuses_map_to_outcomes() {
        for (status, outcome) in [
            ("busy", "busy"),
            ("timeout", "no_answer"),
            ("unanswered", "no_answer"),
            ("rejected", "rejected"),
            ("failed", "failed"),
            ("cancelled", "cancelled"),
            ("completed", "interrupted"),
            // Twilio's.
            ("no-answer", "no_answer"),
            ("canceled", "cancelled"),
        ] {
            assert_eq!(ended_outcome(status).0, outcome, "{status}");
        }
    }

    #[test]
    fn a_transferred_leg_is_never_hung_up_and_ends_transferred() {
        let live = LegState::Live { answered: true };
        let (o, _, hang_up) = decide(Some(&live), true, false);
        assert_eq!((o, hang_up), ("interrupted", true));
        let (o, reason, hang_up) = decide(Some(&live), true, true);
        assert_eq!((o, hang_up), ("transferred", false), "{reason}");
        let completed = LegState::Ended("completed".into());
        assert_eq!(decide(Some(&completed), true, false).0, "interrupted");
        assert_eq!(decide(Some(&completed), true, true).0, "transferred");
        // What the provider says of a leg that never reached anyone stays.
        let busy = LegState::Ended("busy".into());
        assert_eq!(decide(Some(&busy), false, true).0, "busy");
        assert_eq!(decide(None, true, false).0, "interrupted");
        assert_eq!(decide(None, false, false).0, "failed");
        assert_eq!(decide(None, true, true).0, "transferred");
        for (state, answered, transfer) in [
            (Some(&completed), true, true),
            (None, true, true),
            (Some(&busy), false, true),
        ] {
            assert!(!decide(state, answered, transfer).2, "never hung up");
        }
    }

    #[tokio::test]
    async fn a_single_node_knows_only_itself() {
        let nodes = LocalNodes { me: "a".into() };
        assert_eq!(nodes.alive("a").await, Ok(true));
        assert_eq!(nodes.alive("b").await, Ok(false));
    }
}
