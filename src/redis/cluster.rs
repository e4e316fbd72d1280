//! [`RedisCluster`]: the actors' [`ClusterPort`] over Redis, so every node
//! shares the account's CPS bucket, the concurrency caps and the campaign
//! leases.

use std::time::Duration;

use talky_actors::cluster::{ClusterFuture, ClusterPort, CpsGrant, LeaseGrant, Slot, SlotCaps};
use talky_actors::dialer::admission::Full;
use talky_actors::ids::CampaignId;
use talky_actors::ports::PortError;

use super::slots::{Scope, Scopes};
use super::{Keys, RedisError, cps, lease, slots};

/// The cluster port over Redis.
#[derive(Clone)]
pub struct RedisCluster {
    /// Pool, prefix, timeout.
    pub keys: Keys,
    /// This node's id (the value its leases hold).
    pub node: String,
    /// The telephony account whose CPS bucket is shared.
    pub account: String,
    /// Life of a lease not renewed.
    pub lease_ttl: Duration,
    /// Life of a slot not renewed.
    pub slot_ttl: Duration,
}

fn port(e: RedisError) -> PortError {
    PortError::Unavailable(e.to_string())
}

fn scopes(slot: &Slot) -> Scopes {
    Scopes {
        tenant: slot.tenant.to_string(),
        campaign: slot.campaign.to_string(),
    }
}

fn lease_name(campaign: CampaignId) -> String {
    format!("campaign:{campaign}")
}

impl ClusterPort for RedisCluster {
    fn node(&self) -> &str {
        &self.node
    }

    fn slot_renew_every(&self) -> Duration {
        self.slot_ttl / 3
    }

    fn take_cps(&self, rate: f64, burst: u32) -> ClusterFuture<'_, CpsGrant> {
        Box::pin(async move {
            match cps::take(&self.keys, &self.account, rate, burst).await {
                Ok(None) => Ok(CpsGrant::Granted),
                Ok(Some(wait)) => Ok(CpsGrant::Wait(wait)),
                Err(e) => Err(port(e)),
            }
        })
    }

    fn acquire_slot(&self, slot: Slot, caps: SlotCaps) -> ClusterFuture<'_, Result<(), Full>> {
        Box::pin(async move {
            let taken = slots::acquire(
                &self.keys,
                &scopes(&slot),
                &slot.id.0.to_string(),
                [caps.global, caps.tenant, caps.campaign],
                self.slot_ttl,
            )
            .await
            .map_err(port)?;
            Ok(taken.map_err(|scope| match scope {
                Scope::Global => Full::Global,
                Scope::Tenant => Full::Tenant,
                Scope::Campaign => Full::Campaign,
            }))
        })
    }

    fn renew_slots(&self, live: Vec<Slot>) -> ClusterFuture<'_, ()> {
        Box::pin(async move {
            let items: Vec<(Scopes, String)> = live
                .iter()
                .map(|s| (scopes(s), s.id.0.to_string()))
                .collect();
            slots::renew(&self.keys, &items, self.slot_ttl)
                .await
                .map_err(port)
        })
    }

    fn release_slot(&self, slot: Slot) -> ClusterFuture<'_, ()> {
        Box::pin(async move {
            slots::release(&self.keys, &scopes(&slot), &slot.id.0.to_string())
                .await
                .map_err(port)
        })
    }

    fn acquire_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, LeaseGrant> {
        Box::pin(async move {
            let got = lease::acquire(
                &self.keys,
                &lease_name(campaign),
                &self.node,
                self.lease_ttl,
            )
            .await
            .map_err(port)?;
            Ok(match got {
                lease::Acquired::New => LeaseGrant::Acquired,
                lease::Acquired::Renewed => LeaseGrant::Renewed,
                lease::Acquired::Elsewhere => LeaseGrant::HeldElsewhere,
            })
        })
    }

    fn renew_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, bool> {
        Box::pin(async move {
            lease::renew(
                &self.keys,
                &lease_name(campaign),
                &self.node,
                self.lease_ttl,
            )
            .await
            .map_err(port)
        })
    }

    fn release_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, bool> {
        Box::pin(async move {
            lease::release(&self.keys, &lease_name(campaign), &self.node)
                .await
                .map_err(port)
        })
    }
}
