//! `Drain` (the node is stopping): the lease goes to another node at once,
//! this actor dials nothing more, withdraws its queued dials, sees its own
//! calls through and stops, and the stored lifecycle state is untouched.

use std::sync::Arc;
use std::time::Duration;

use super::fakes::{
    FakeDialer, FakeStore, Harness, TestClock, advance, always_open, exact_retry, settle,
    wednesday_14z,
};
use crate::campaign::CampaignState;
use crate::campaign_actor::{CampaignArgs, CampaignConfig, CampaignControl};
use crate::cluster::{ClusterPort, LeaseGrant, LocalCluster};
use crate::schedule::retry::{CallOutcome, ContactStatus};

fn node(clock: Arc<TestClock>) -> LocalCluster {
    // A lease that would take a minute to lapse: a take-over within
    // seconds means it was released.
    LocalCluster::new("a", clock, Duration::from_secs(60), Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn drain_hands_the_lease_over_at_once_and_stops_once_its_own_calls_are_recorded() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 1), 2));
    store.add_many(6);
    let dialer = FakeDialer::manual(clock.clone());
    let a_node = node(clock.clone());
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
    // a's calls report to a.
    dialer.lock().campaign = Some(a.actor.clone());
    advance(5).await;
    let own = dialer.live_contacts();
    assert_eq!(own.len(), 2);
    assert_eq!(
        b.snapshot().await.taken_over,
        0,
        "b idle while a holds the lease"
    );

    a.send(CampaignControl::Drain);
    settle().await;
    assert_eq!(dialer.lock().withdrawn, [store.campaign()]);
    advance(2).await;
    let snap = b.snapshot().await;
    assert_eq!(
        (snap.taken_over, snap.live_calls, snap.dialled),
        (2, 2, 0),
        "b took over at once, a's calls still fill the cap"
    );
    // a's first call ends; its outcome write fails once and is retried.
    store.lock().fail_next = 1;
    dialer.end(own[0], CallOutcome::Completed);
    advance(3).await;
    let snap = a.snapshot().await;
    assert_eq!(snap.state, Some(CampaignState::Running));
    assert_eq!(
        (snap.live_calls, snap.outcomes, snap.pending_writes),
        (1, 1, 0)
    );
    assert_eq!(dialer.placed(), 2, "a dials nothing while draining");
    dialer.end(own[1], CallOutcome::Busy);
    let a = a.stopped_within(2).await;
    {
        let s = a.store.lock();
        assert!(s.states.is_empty(), "lifecycle untouched: {:?}", s.states);
        assert_eq!(s.settings.state, CampaignState::Running);
        assert_eq!(s.contact(own[0]).status, ContactStatus::Completed);
        assert_eq!(s.contact(own[1]).status, ContactStatus::Failed);
        assert_eq!(s.outcomes.len(), 2);
    }
    // b settles a's calls from the store and dials the rest.
    dialer.lock().campaign = Some(b.actor.clone());
    advance(15).await;
    assert_eq!(dialer.placed(), 4, "b dials once a's calls are settled");
}

#[tokio::test(start_paused = true)]
async fn drain_with_nothing_live_stops_at_once_and_frees_the_lease() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), 2));
    store.add_many(2);
    let dialer = FakeDialer::manual(clock.clone());
    let a_node = node(clock.clone());
    let other = a_node.peer("b");
    let args = CampaignArgs {
        campaign: store.campaign(),
        store: Arc::new(store.clone()),
        dialer: Arc::new(dialer.clone()),
        clock: clock.clone(),
        config: CampaignConfig::default(),
        seed: 1,
        cluster: Arc::new(a_node),
    };
    let h = Harness::spawn(store.clone(), dialer.clone(), args, None).await;
    settle().await;
    for c in dialer.live_contacts() {
        dialer.end(c, CallOutcome::NoAnswer);
    }
    settle().await;
    h.send(CampaignControl::Drain);
    let h = h.stopped_within(1).await;
    assert!(h.store.lock().states.is_empty());
    assert_eq!(
        other.acquire_lease(store.campaign()).await.expect("lease"),
        LeaseGrant::Acquired,
        "the lease was given up"
    );
}
