//! The cluster port: what the dialer and the campaign actors share with
//! the other talky nodes. Calls-per-second tokens of the telephony
//! account, concurrency slots (global, tenant, campaign) that cannot leak
//! when a node dies, and campaign leases (one node runs a campaign; another
//! takes over when the lease lapses).
//!
//! `src/redis/` implements it over Redis; [`LocalCluster`] is the
//! in-memory, single-process version (actor tests, and `talky serve`
//! without Redis). The trait is object-safe (`Arc<dyn ClusterPort>`), so
//! the actors' type parameters stay as they are.

mod local;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use local::LocalCluster;

/// Default life of a campaign lease that is not renewed (the holder renews
/// it every campaign tick).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);
/// Default life of a call slot that is not renewed (the dialer renews them
/// every third of it).
pub const DEFAULT_SLOT_TTL: Duration = Duration::from_secs(30);

use crate::dialer::admission::Full;
use crate::ids::{CampaignId, TenantId};
use crate::ports::PortResult;

/// A cluster call's future (boxed, so the trait can be a trait object).
pub type ClusterFuture<'a, T> = Pin<Box<dyn Future<Output = PortResult<T>> + Send + 'a>>;

/// The answer to asking for a calls-per-second token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpsGrant {
    /// A token was taken: place the call now.
    Granted,
    /// None left: ask again after this long.
    Wait(Duration),
}

/// Identifies one call's room in the shared counters. Made by the dialer
/// before the dial intent exists, so it is not the call id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotId(pub uuid::Uuid);

impl SlotId {
    /// A fresh random id.
    pub fn new() -> Self {
        SlotId(uuid::Uuid::new_v4())
    }
}

impl Default for SlotId {
    fn default() -> Self {
        Self::new()
    }
}

/// One live (or admitted) call's room in the global, tenant and campaign
/// counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Its id in every counter.
    pub id: SlotId,
    /// The tenant counter it is in.
    pub tenant: TenantId,
    /// The campaign counter it is in.
    pub campaign: CampaignId,
}

/// The caps an acquire checks, all at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotCaps {
    /// Calls live in the whole cluster.
    pub global: u32,
    /// Calls live for the tenant, cluster-wide.
    pub tenant: u32,
    /// Calls live for the campaign, cluster-wide.
    pub campaign: u32,
}

/// The answer to asking for a campaign's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseGrant {
    /// It was free (never held, released, or lapsed): this node holds it
    /// now, and must load the campaign afresh (another node may have run it
    /// meanwhile).
    Acquired,
    /// This node held it already; it is extended.
    Renewed,
    /// Another node holds it.
    HeldElsewhere,
}

/// What the dialer and the campaign actors share with the other nodes.
/// Every call answers or fails on its own; the actors add their timeouts.
pub trait ClusterPort: Send + Sync + 'static {
    /// This node's id (the value a lease holds).
    fn node(&self) -> &str;

    /// How often the dialer renews the slots of its live calls (well within
    /// the slots' time to live).
    fn slot_renew_every(&self) -> Duration;

    /// Takes a calls-per-second token of the telephony account shared by
    /// every node (`rate` tokens a second, at most `burst` held).
    fn take_cps(&self, rate: f64, burst: u32) -> ClusterFuture<'_, CpsGrant>;

    /// Room for one call in every counter, if all three caps allow
    /// (expired slots of dead nodes do not count); nothing is taken
    /// otherwise, and the full cap is named.
    fn acquire_slot(&self, slot: Slot, caps: SlotCaps) -> ClusterFuture<'_, Result<(), Full>>;

    /// Extends the life of these slots (their calls are still live).
    fn renew_slots(&self, slots: Vec<Slot>) -> ClusterFuture<'_, ()>;

    /// Gives a slot's room back (its call ended).
    fn release_slot(&self, slot: Slot) -> ClusterFuture<'_, ()>;

    /// Takes the campaign's lease, or extends it if this node holds it.
    fn acquire_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, LeaseGrant>;

    /// Extends the lease if this node still holds it; `false` when it does
    /// not (lapsed, or another node's now).
    fn renew_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, bool>;

    /// Gives the lease up if this node holds it; `false` when it did not.
    fn release_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, bool>;
}
