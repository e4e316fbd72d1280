//! The campaign's lease: a campaign actor dials only while its node holds
//! the campaign's lease in the cluster, renews it on every tick, and gives
//! it up when it stops. An actor whose node does not hold it stays idle
//! (it still records outcomes of calls it placed) and asks again each
//! tick; when the holder stops renewing, the lease lapses and the idle
//! actor takes over, reloading everything from the store.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::cluster::{ClusterPort, LeaseGrant};
use crate::ids::CampaignId;

/// Where the lease stands after a tick's ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Held, as on the last tick: go on.
    Held,
    /// Just taken (first time, or after it lapsed): another node may have
    /// run the campaign meanwhile, so load it afresh before dialling.
    Fresh,
    /// Another node holds it, or the cluster did not answer: do not dial.
    Idle,
}

/// One actor's hold on its campaign's lease.
pub struct LeaseKeeper {
    /// The cluster the lease lives in.
    cluster: Arc<dyn ClusterPort>,
    /// Whose lease.
    campaign: CampaignId,
    /// Limit of each cluster call.
    timeout: Duration,
    /// This actor held the lease after its last ask.
    held: bool,
}

impl LeaseKeeper {
    /// Not held yet.
    pub fn new(cluster: Arc<dyn ClusterPort>, campaign: CampaignId, timeout: Duration) -> Self {
        LeaseKeeper {
            cluster,
            campaign,
            timeout,
            held: false,
        }
    }

    /// Whether the lease was held after the last ask.
    pub fn held(&self) -> bool {
        self.held
    }

    /// Renews the lease if held, otherwise tries to take it.
    pub async fn hold(&mut self) -> LeaseStatus {
        if self.held {
            match tokio::time::timeout(self.timeout, self.cluster.renew_lease(self.campaign)).await
            {
                Ok(Ok(true)) => return LeaseStatus::Held,
                Ok(Ok(false)) => {
                    info!(campaign = %self.campaign, node = self.cluster.node(), "campaign lease lost");
                }
                Ok(Err(e)) => {
                    warn!(campaign = %self.campaign, error = %e, "campaign lease not renewed")
                }
                Err(_) => warn!(campaign = %self.campaign, "renewing the campaign lease timed out"),
            }
            self.held = false;
        }
        let asked =
            tokio::time::timeout(self.timeout, self.cluster.acquire_lease(self.campaign)).await;
        match asked {
            Ok(Ok(LeaseGrant::Acquired)) => {
                info!(campaign = %self.campaign, node = self.cluster.node(), "campaign lease taken");
                self.held = true;
                LeaseStatus::Fresh
            }
            Ok(Ok(LeaseGrant::Renewed)) => {
                self.held = true;
                LeaseStatus::Held
            }
            Ok(Ok(LeaseGrant::HeldElsewhere)) => LeaseStatus::Idle,
            Ok(Err(e)) => {
                warn!(campaign = %self.campaign, error = %e, "campaign lease unavailable");
                LeaseStatus::Idle
            }
            Err(_) => {
                warn!(campaign = %self.campaign, "taking the campaign lease timed out");
                LeaseStatus::Idle
            }
        }
    }

    /// Gives the lease up (the actor stops), so another node need not wait
    /// for it to lapse.
    pub async fn release(&mut self) {
        if !std::mem::take(&mut self.held) {
            return;
        }
        let released =
            tokio::time::timeout(self.timeout, self.cluster.release_lease(self.campaign)).await;
        if !matches!(released, Ok(Ok(_))) {
            warn!(campaign = %self.campaign, "campaign lease not released; it will lapse");
        }
    }
}
