//! [`LocalCluster`]: the cluster port in memory. One process is the whole
//! cluster; handles made with [`LocalCluster::peer`] share the state as if
//! they were other nodes (the tests' second node). Expiry is computed from
//! the [`Clock`] it is given, never read from the system.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{ClusterFuture, ClusterPort, CpsGrant, LeaseGrant, Slot, SlotCaps, SlotId};
use crate::dialer::admission::Full;
use crate::ids::CampaignId;
use crate::ports::Clock;
use crate::schedule::bucket::TokenBucket;

/// State shared by a node and its peers.
#[derive(Default)]
struct Shared {
    /// The account's CPS bucket, made on first use.
    bucket: Option<TokenBucket>,
    /// Live slots and when each expires.
    slots: HashMap<SlotId, (Slot, Instant)>,
    /// Campaign leases: holder and expiry.
    leases: HashMap<CampaignId, (String, Instant)>,
}

/// The in-memory cluster. See the module docs.
#[derive(Clone)]
pub struct LocalCluster {
    /// This handle's node id.
    node: String,
    /// What all peers share.
    shared: Arc<Mutex<Shared>>,
    /// Time for expiries and the bucket.
    clock: Arc<dyn Clock>,
    /// Life of a lease not renewed.
    lease_ttl: Duration,
    /// Life of a slot not renewed.
    slot_ttl: Duration,
}

impl LocalCluster {
    /// A one-node cluster.
    pub fn new(
        node: impl Into<String>,
        clock: Arc<dyn Clock>,
        lease_ttl: Duration,
        slot_ttl: Duration,
    ) -> Self {
        LocalCluster {
            node: node.into(),
            shared: Arc::new(Mutex::new(Shared::default())),
            clock,
            lease_ttl,
            slot_ttl,
        }
    }

    /// A one-node cluster with the default lifetimes.
    pub fn single(node: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self::new(
            node,
            clock,
            super::DEFAULT_LEASE_TTL,
            super::DEFAULT_SLOT_TTL,
        )
    }

    /// Another node of the same cluster (shares every counter and lease).
    pub fn peer(&self, node: impl Into<String>) -> Self {
        LocalCluster {
            node: node.into(),
            ..self.clone()
        }
    }

    /// Live (unexpired) slots, cluster-wide.
    pub fn live_slots(&self) -> usize {
        let now = self.clock.now();
        let mut shared = self.lock();
        drop_expired(&mut shared, now);
        shared.slots.len()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere while holding the lock leaves consistent maps.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ready<T: Send + 'static>(value: T) -> ClusterFuture<'static, T> {
        Box::pin(std::future::ready(Ok(value)))
    }
}

fn drop_expired(shared: &mut Shared, now: Instant) {
    shared.slots.retain(|_, (_, until)| *until > now);
    shared.leases.retain(|_, (_, until)| *until > now);
}

impl ClusterPort for LocalCluster {
    fn node(&self) -> &str {
        &self.node
    }

    fn slot_renew_every(&self) -> Duration {
        self.slot_ttl / 3
    }

    fn take_cps(&self, rate: f64, burst: u32) -> ClusterFuture<'_, CpsGrant> {
        let now = self.clock.now();
        let mut shared = self.lock();
        let bucket = shared
            .bucket
            .get_or_insert_with(|| TokenBucket::new(rate, burst, now));
        let grant = if bucket.try_take(now) {
            CpsGrant::Granted
        } else {
            CpsGrant::Wait(bucket.next_available(now).saturating_duration_since(now))
        };
        Self::ready(grant)
    }

    fn acquire_slot(&self, slot: Slot, caps: SlotCaps) -> ClusterFuture<'_, Result<(), Full>> {
        let now = self.clock.now();
        let mut shared = self.lock();
        drop_expired(&mut shared, now);
        let live = shared.slots.values().map(|(s, _)| s);
        let (mut global, mut tenant, mut campaign) = (0u32, 0u32, 0u32);
        for s in live {
            global += 1;
            tenant += u32::from(s.tenant == slot.tenant);
            campaign += u32::from(s.campaign == slot.campaign);
        }
        let answer = if global >= caps.global {
            Err(Full::Global)
        } else if tenant >= caps.tenant {
            Err(Full::Tenant)
        } else if campaign >= caps.campaign {
            Err(Full::Campaign)
        } else {
            shared.slots.insert(slot.id, (slot, now + self.slot_ttl));
            Ok(())
        };
        Self::ready(answer)
    }

    fn renew_slots(&self, slots: Vec<Slot>) -> ClusterFuture<'_, ()> {
        let until = self.clock.now() + self.slot_ttl;
        let mut shared = self.lock();
        for slot in slots {
            shared.slots.insert(slot.id, (slot, until));
        }
        Self::ready(())
    }

    fn release_slot(&self, slot: Slot) -> ClusterFuture<'_, ()> {
        self.lock().slots.remove(&slot.id);
        Self::ready(())
    }

    fn acquire_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, LeaseGrant> {
        let now = self.clock.now();
        let mut shared = self.lock();
        drop_expired(&mut shared, now);
        let until = now + self.lease_ttl;
        let grant = match shared.leases.get_mut(&campaign) {
            Some((holder, expiry)) if *holder == self.node => {
                *expiry = until;
                LeaseGrant::Renewed
            }
            Some(_) => LeaseGrant::HeldElsewhere,
            None => {
                shared.leases.insert(campaign, (self.node.clone(), until));
                LeaseGrant::Acquired
            }
        };
        Self::ready(grant)
    }

    fn renew_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, bool> {
        let now = self.clock.now();
        let mut shared = self.lock();
        drop_expired(&mut shared, now);
        let ours = match shared.leases.get_mut(&campaign) {
            Some((holder, expiry)) if *holder == self.node => {
                *expiry = now + self.lease_ttl;
                true
            }
            _ => false,
        };
        Self::ready(ours)
    }

    fn release_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, bool> {
        let mut shared = self.lock();
        let ours = shared
            .leases
            .get(&campaign)
            .is_some_and(|(holder, _)| *holder == self.node);
        if ours {
            shared.leases.remove(&campaign);
        }
        Self::ready(ours)
    }
}
