//! A call's room: its local [`Permit`] (this node's caps, the first gate)
//! and its [`Slot`] in the cluster's counters (the caps of every node
//! together). Both are taken before the dial intent is written and given
//! back together on every end of the call; the slot is renewed while the
//! call lives, so a node that dies leaks nothing: its slots lapse.
//!
//! Also the cluster's calls-per-second token, asked for after the local
//! bucket allowed a call.

use std::time::Duration;

use super::admission::Permit;
use super::ports::{DialStore, IntentError};
use super::state::{DialerState, Queued};
use super::{DialRefused, DialRequest};
use crate::call::CallPorts;
use crate::cluster::{CpsGrant, Slot, SlotCaps, SlotId};

/// How long to wait before pacing again when the cluster did not answer.
pub const CLUSTER_RETRY: Duration = Duration::from_millis(500);

/// What an admitted call holds until it ends. Not `Clone`: one release.
#[derive(Debug)]
pub struct Room {
    /// Room under this node's caps.
    pub(super) permit: Permit,
    /// Room under the cluster's caps.
    pub(super) slot: Slot,
}

impl<P: CallPorts, D: DialStore> DialerState<P, D> {
    /// Gives a room back: at once locally, in the background in the
    /// cluster (a failure there only leaves the slot to lapse).
    pub(super) fn free(&mut self, room: Room) {
        self.admission.release(room.permit);
        let cluster = self.cluster.clone();
        let timeout = self.config.rpc_timeout;
        let slot = room.slot;
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, cluster.release_slot(slot)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cluster slot not released; it will lapse")
                }
                Err(_) => tracing::warn!("releasing a cluster slot timed out; it will lapse"),
            }
        });
    }

    /// Extends the slots of every admitted and live call, in the
    /// background.
    pub(super) fn renew_slots(&self) {
        let slots: Vec<Slot> = self
            .queue
            .iter()
            .map(|q| q.room.slot)
            .chain(
                self.live
                    .values()
                    .filter_map(|c| c.room.as_ref().map(|r| r.slot)),
            )
            .collect();
        if slots.is_empty() {
            return;
        }
        let cluster = self.cluster.clone();
        let timeout = self.config.rpc_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, cluster.renew_slots(slots)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cluster slots not renewed"),
                Err(_) => tracing::warn!("renewing cluster slots timed out"),
            }
        });
    }

    /// `None` when the cluster gave a CPS token; otherwise how long to wait
    /// before asking again (a cluster that does not answer gives nothing:
    /// the account's limit is not to be overrun).
    pub(super) async fn cluster_wait(&self) -> Option<Duration> {
        let take = self
            .cluster
            .take_cps(self.config.calls_per_second, self.config.cps_burst);
        match tokio::time::timeout(self.config.rpc_timeout, take).await {
            Ok(Ok(CpsGrant::Granted)) => None,
            Ok(Ok(CpsGrant::Wait(wait))) => Some(wait.max(Duration::from_millis(1))),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster CPS token unavailable");
                Some(CLUSTER_RETRY)
            }
            Err(_) => {
                tracing::warn!("cluster CPS token timed out");
                Some(CLUSTER_RETRY)
            }
        }
    }
}

/// Admits a call: room under the local caps, then under the cluster's,
/// then the dial intent; the call waits in the queue for a CPS token.
/// Whatever fails gives back what was taken.
pub(super) async fn admit<P: CallPorts, D: DialStore>(
    state: &mut DialerState<P, D>,
    request: DialRequest,
) -> Result<(), DialRefused> {
    if state.draining {
        return Err(DialRefused::Unavailable("draining".into()));
    }
    let Some(campaign_cap) = state
        .campaigns
        .get(&request.campaign)
        .map(|c| c.max_concurrent)
    else {
        return Err(DialRefused::Unavailable(
            "campaign is not running here".into(),
        ));
    };
    let permit = state
        .admission
        .try_admit(request.tenant, request.campaign)
        .map_err(|_| DialRefused::AtCapacity)?;
    let slot = Slot {
        id: SlotId::new(),
        tenant: request.tenant,
        campaign: request.campaign,
    };
    let caps = SlotCaps {
        global: state.config.global_cap,
        tenant: state.config.tenant_cap,
        campaign: campaign_cap,
    };
    let acquired = tokio::time::timeout(
        state.config.rpc_timeout,
        state.cluster.acquire_slot(slot, caps),
    )
    .await;
    match acquired {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(_full))) => {
            state.admission.release(permit);
            return Err(DialRefused::AtCapacity);
        }
        Ok(Err(e)) => {
            state.admission.release(permit);
            return Err(DialRefused::Unavailable(format!("cluster slots: {e}")));
        }
        Err(_) => {
            // It may have been taken: give it back, or let it lapse.
            state.free(Room { permit, slot });
            return Err(DialRefused::Unavailable("cluster slots timed out".into()));
        }
    }
    let room = Room { permit, slot };
    let written = tokio::time::timeout(
        state.config.rpc_timeout,
        state.store.create_intent(&request),
    )
    .await;
    let intent = match written {
        Ok(Ok(intent)) => intent,
        Ok(Err(IntentError::Duplicate)) => {
            state.free(room);
            return Err(DialRefused::Duplicate);
        }
        Ok(Err(IntentError::Port(e))) => {
            state.free(room);
            return Err(DialRefused::Unavailable(e.to_string()));
        }
        Err(_) => {
            state.free(room);
            return Err(DialRefused::Unavailable(
                "writing the dial intent timed out".into(),
            ));
        }
    };
    state.queue.push_back(Queued {
        request,
        intent,
        room,
    });
    Ok(())
}
