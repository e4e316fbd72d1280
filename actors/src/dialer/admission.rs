//! Concurrent-call caps: global, per tenant and per campaign. A call is
//! admitted only when all three have room, and holds a [`Permit`] until it
//! ends; releasing the permit gives the room back. The counts can never
//! exceed the caps, whatever the order of admits and releases.

use std::collections::HashMap;

use crate::ids::{CampaignId, TenantId};

/// Which cap refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The process-wide cap.
    Global,
    /// The tenant's cap.
    Tenant,
    /// The campaign's cap.
    Campaign,
}

/// Room held by one live call. Not `Clone`: one permit, one release.
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    /// Owner of the call.
    tenant: TenantId,
    /// Campaign of the call.
    campaign: CampaignId,
}

/// The live-call counts against their caps.
#[derive(Debug)]
pub struct Admission {
    /// Calls allowed in this process at once.
    global_cap: u32,
    /// Calls allowed per tenant when the tenant has no cap of its own.
    default_tenant_cap: u32,
    /// Tenants with a cap of their own.
    tenant_caps: HashMap<TenantId, u32>,
    /// Each campaign's cap (`max_concurrent_calls`).
    campaign_caps: HashMap<CampaignId, u32>,
    /// Live calls in the process.
    live: u32,
    /// Live calls per tenant.
    live_by_tenant: HashMap<TenantId, u32>,
    /// Live calls per campaign.
    live_by_campaign: HashMap<CampaignId, u32>,
}

impl Admission {
    /// Caps with no live calls.
    pub fn new(global_cap: u32, default_tenant_cap: u32) -> Self {
        Self {
            global_cap,
            default_tenant_cap,
            tenant_caps: HashMap::new(),
            campaign_caps: HashMap::new(),
            live: 0,
            live_by_tenant: HashMap::new(),
            live_by_campaign: HashMap::new(),
        }
    }

    /// Sets a tenant's own cap.
    pub fn set_tenant_cap(&mut self, tenant: TenantId, cap: u32) {
        self.tenant_caps.insert(tenant, cap);
    }

    /// Sets a campaign's cap (a campaign without one admits nothing).
    pub fn set_campaign_cap(&mut self, campaign: CampaignId, cap: u32) {
        self.campaign_caps.insert(campaign, cap);
    }

    fn tenant_cap(&self, tenant: TenantId) -> u32 {
        self.tenant_caps
            .get(&tenant)
            .copied()
            .unwrap_or(self.default_tenant_cap)
    }

    /// Room for one more call of this campaign now, if every cap allows.
    pub fn try_admit(&mut self, tenant: TenantId, campaign: CampaignId) -> Result<Permit, Full> {
        if self.live >= self.global_cap {
            return Err(Full::Global);
        }
        if self.live_by_tenant.get(&tenant).copied().unwrap_or(0) >= self.tenant_cap(tenant) {
            return Err(Full::Tenant);
        }
        let campaign_cap = self.campaign_caps.get(&campaign).copied().unwrap_or(0);
        if self.live_by_campaign.get(&campaign).copied().unwrap_or(0) >= campaign_cap {
            return Err(Full::Campaign);
        }
        self.live += 1;
        *self.live_by_tenant.entry(tenant).or_insert(0) += 1;
        *self.live_by_campaign.entry(campaign).or_insert(0) += 1;
        Ok(Permit { tenant, campaign })
    }

    /// Gives a finished call's room back.
    pub fn release(&mut self, permit: Permit) {
        self.live = self.live.saturating_sub(1);
        decrement(&mut self.live_by_tenant, permit.tenant);
        decrement(&mut self.live_by_campaign, permit.campaign);
    }

    /// Live calls in the process.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Live calls of a campaign.
    pub fn live_in_campaign(&self, campaign: CampaignId) -> u32 {
        self.live_by_campaign.get(&campaign).copied().unwrap_or(0)
    }

    /// Live calls of a tenant.
    pub fn live_for_tenant(&self, tenant: TenantId) -> u32 {
        self.live_by_tenant.get(&tenant).copied().unwrap_or(0)
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_refuses_in_turn() {
        let (t1, t2) = (TenantId::new(), TenantId::new());
        let (c1, c2, c3) = (CampaignId::new(), CampaignId::new(), CampaignId::new());
        let mut a = Admission::new(4, 3);
        a.set_campaign_cap(c1, 2);
        a.set_campaign_cap(c2, 10);
        a.set_campaign_cap(c3, 10);
        let p1 = a.try_admit(t1, c1).expect("1");
        let _p2 = a.try_admit(t1, c1).expect("2");
        assert_eq!(a.try_admit(t1, c1), Err(Full::Campaign));
        let _p3 = a.try_admit(t1, c2).expect("3");
        assert_eq!(a.try_admit(t1, c2), Err(Full::Tenant));
        let _p4 = a.try_admit(t2, c3).expect("4");
        assert_eq!(a.try_admit(t2, c3), Err(Full::Global));
        a.release(p1);
        assert_eq!(a.live(), 3);
        assert_eq!(a.live_in_campaign(c1), 1);
        assert!(a.try_admit(t2, c3).is_ok(), "room again after a release");
        assert_eq!(a.try_admit(t2, CampaignId::new()), Err(Full::Global));
    }

    #[test]
    fn a_campaign_without_a_cap_admits_nothing() {
        let mut a = Admission::new(100, 100);
        assert_eq!(
            a.try_admit(TenantId::new(), CampaignId::new()),
            Err(Full::Campaign)
        );
        assert_eq!(a.live(), 0);
    }

    #[test]
    fn caps_hold_under_a_burst_of_thousands() {
        // 1,000 due contacts over 5 campaigns of 2 tenants, admitted and
        // released in a pseudo-random interleaving: no count ever exceeds
        // its cap, and everything is admitted eventually.
        let tenants = [TenantId::new(), TenantId::new()];
        let campaigns: Vec<(TenantId, CampaignId, u32)> = (0..5)
            .map(|i| (tenants[i % 2], CampaignId::new(), 3 + i as u32))
            .collect();
        let mut a = Admission::new(12, 8);
        for (_, c, cap) in &campaigns {
            a.set_campaign_cap(*c, *cap);
        }
        let mut queue: Vec<(TenantId, CampaignId)> = (0..1000)
            .map(|i| (campaigns[i % 5].0, campaigns[i % 5].1))
            .collect();
        let mut live: Vec<Permit> = Vec::new();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut admitted = 0;
        while !queue.is_empty() || !live.is_empty() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if !queue.is_empty() && !seed.is_multiple_of(3) {
                let (t, c) = queue[queue.len() - 1];
                if let Ok(p) = a.try_admit(t, c) {
                    queue.pop();
                    live.push(p);
                    admitted += 1;
                }
            } else if !live.is_empty() {
                let idx = (seed as usize) % live.len();
                a.release(live.swap_remove(idx));
            }
            assert!(a.live() <= 12);
            for t in tenants {
                assert!(a.live_for_tenant(t) <= 8);
            }
            for (_, c, cap) in &campaigns {
                assert!(a.live_in_campaign(*c) <= *cap);
            }
            assert_eq!(a.live() as usize, live.len());
        }
        assert_eq!(admitted, 1000);
        assert_eq!(a.live(), 0);
    }
}
