//! Two nodes' actors for one campaign: only the lease holder dials; the
//! other stays idle until the lease lapses, then takes over from the store.

use std::sync::Arc;
use std::time::Duration;

use super::fakes::{
    FakeDialer, FakeStore, Harness, TestClock, advance, always_open, exact_retry, settle,
    wednesday_14z,
};
use crate::campaign_actor::{CampaignArgs, CampaignConfig};
use crate::cluster::LocalCluster;
use crate::schedule::retry::CallOutcome;

#[tokio::test(start_paused = true)]
async fn a_second_node_stays_idle_until_the_lease_lapses_then_takes_over() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 1), 2));
    store.add_many(6);
    let dialer = FakeDialer::manual(clock.clone());
    let a_node = LocalCluster::new(
        "a",
        clock.clone(),
        Duration::from_secs(5),
        Duration::from_secs(30),
    );
    let b_node = a_node.peer("b");
    let args = |cluster: LocalCluster| CampaignArgs {
        campaign: store.campaign(),
        store: Arc::new(store.clone()),
        dialer: Arc::new(dialer.clone()),
        clock: clock.clone(),
        config: CampaignConfig::default(),
        seed: 1,
        cluster: Arc::new(cluster),
    };
    let a = Harness::spawn(store.clone(), dialer.clone(), args(a_node), None).await;
    settle().await;
    let b = Harness::spawn(store.clone(), dialer.clone(), args(b_node), None).await;
    advance(10).await;
    assert_eq!(dialer.placed(), 2, "only the holder dials, up to the cap");
    assert_eq!(a.snapshot().await.dialled, 2);
    assert_eq!(b.snapshot().await.dialled, 0, "the other node is idle");

    // Node a dies: nothing renews its lease any more.
    a.actor.kill();
    advance(2).await;
    assert_eq!(b.snapshot().await.taken_over, 0, "not lapsed yet");
    advance(5).await;
    assert_eq!(
        b.snapshot().await.taken_over,
        2,
        "b took over a's live calls from the store"
    );
    assert_eq!(dialer.placed(), 2, "the cap is still full");
    for contact in dialer.live_contacts() {
        dialer.end(contact, CallOutcome::Completed);
    }
    advance(5).await;
    let snap = b.snapshot().await;
    assert_eq!(snap.completed, 2, "{snap:?}");
    assert_eq!(snap.dialled, 2, "b dials the rest: {snap:?}");
    assert_eq!(dialer.placed(), 4);
}
