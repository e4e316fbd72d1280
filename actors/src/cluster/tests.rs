//! LocalCluster: caps over peers, expiry, leases, CPS.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::ids::{CampaignId, TenantId};
use crate::ports::TokioClock;

fn cluster() -> LocalCluster {
    LocalCluster::new(
        "a",
        Arc::new(TokioClock),
        Duration::from_secs(3),
        Duration::from_secs(3),
    )
}

fn caps(global: u32) -> SlotCaps {
    SlotCaps {
        global,
        tenant: 100,
        campaign: 100,
    }
}

#[tokio::test(start_paused = true)]
async fn peers_share_the_caps_and_dead_slots_expire() {
    let a = cluster();
    let b = a.peer("b");
    let (t, c) = (TenantId::new(), CampaignId::new());
    let slot = || Slot {
        id: SlotId::new(),
        tenant: t,
        campaign: c,
    };
    let kept = slot();
    assert_eq!(a.acquire_slot(kept, caps(2)).await, Ok(Ok(())));
    assert_eq!(b.acquire_slot(slot(), caps(2)).await, Ok(Ok(())));
    assert_eq!(a.acquire_slot(slot(), caps(2)).await, Ok(Err(Full::Global)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.renew_slots(vec![kept]).await.expect("renew");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // b's slot lapsed (its node "died"); a's renewed one lives on.
    assert_eq!(a.live_slots(), 1);
    assert_eq!(b.acquire_slot(slot(), caps(2)).await, Ok(Ok(())));
    a.release_slot(kept).await.expect("release");
    assert_eq!(a.live_slots(), 1);
}

#[tokio::test(start_paused = true)]
async fn one_node_holds_a_lease_until_it_lapses() {
    let a = cluster();
    let b = a.peer("b");
    let c = CampaignId::new();
    assert_eq!(a.acquire_lease(c).await, Ok(LeaseGrant::Acquired));
    assert_eq!(a.acquire_lease(c).await, Ok(LeaseGrant::Renewed));
    assert_eq!(b.acquire_lease(c).await, Ok(LeaseGrant::HeldElsewhere));
    assert_eq!(b.renew_lease(c).await, Ok(false));
    assert_eq!(b.release_lease(c).await, Ok(false), "not b's to release");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(b.acquire_lease(c).await, Ok(LeaseGrant::Acquired));
    assert_eq!(a.renew_lease(c).await, Ok(false), "a lost it");
    assert_eq!(b.release_lease(c).await, Ok(true));
    assert_eq!(a.acquire_lease(c).await, Ok(LeaseGrant::Acquired));
}

#[tokio::test(start_paused = true)]
async fn cps_tokens_are_shared_and_refill() {
    let a = cluster();
    let b = a.peer("b");
    assert_eq!(a.take_cps(2.0, 2).await, Ok(CpsGrant::Granted));
    assert_eq!(b.take_cps(2.0, 2).await, Ok(CpsGrant::Granted));
    let Ok(CpsGrant::Wait(wait)) = a.take_cps(2.0, 2).await else {
        panic!("the burst is spent");
    };
    assert!(wait <= Duration::from_millis(500), "{wait:?}");
    tokio::time::sleep(wait).await;
    assert_eq!(b.take_cps(2.0, 2).await, Ok(CpsGrant::Granted));
}
