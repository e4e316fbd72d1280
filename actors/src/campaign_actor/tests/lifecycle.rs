//! Pause, resume, stop, completion, and resuming from the store.

use super::fakes::{
    FakeDialer, FakeStore, Harness, TestClock, advance, always_open, assert_consistent,
    exact_retry, settle, wednesday_14z,
};
use crate::campaign::{CampaignCommand, CampaignState};
use crate::campaign_actor::{CampaignConfig, CampaignControl};
use crate::schedule::retry::{CallOutcome, ContactStatus};

fn running(cap: u32, contacts: usize) -> FakeStore {
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), cap));
    store.add_many(contacts);
    store
}

#[tokio::test(start_paused = true)]
async fn pause_stops_new_dials_while_outcomes_are_still_recorded_and_resume_dials_again() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(2, 6), dialer, clock, CampaignConfig::default()).await;
    settle().await;
    assert_eq!(h.dialer.placed(), 2);

    h.command(CampaignCommand::Pause);
    settle().await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Paused));
    assert!(
        h.store.lock().states.is_empty(),
        "the operator's command is stored by the REST layer, not again by the actor"
    );
    let live = h.dialer.live_contacts();
    h.dialer.end(live[0], CallOutcome::Completed);
    advance(30).await;
    assert_eq!(h.dialer.placed(), 2, "no dial while paused");
    let snap = h.snapshot().await;
    assert_eq!(snap.state, Some(CampaignState::Paused));
    assert_eq!((snap.live_calls, snap.outcomes, snap.completed), (1, 1, 1));
    assert_eq!(
        h.store.lock().contact(live[0]).status,
        ContactStatus::Completed,
        "the outcome was recorded while paused"
    );
    // Paused with nothing live is not completion, whatever remains.
    h.dialer.end(live[1], CallOutcome::Completed);
    advance(30).await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Paused));

    h.command(CampaignCommand::Resume);
    advance(2).await;
    assert_eq!(h.dialer.placed(), 4);
    assert_eq!(h.store.lock().settings.state, CampaignState::Running);
    assert!(h.store.lock().states.is_empty());
}

#[tokio::test(start_paused = true)]
async fn stop_drains_live_calls_then_cancels_and_the_actor_stops() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(3, 10), dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let live = h.dialer.live_contacts();
    assert_eq!(live.len(), 3);

    assert_eq!(h.command(CampaignCommand::Stop), CampaignState::Stopping);
    settle().await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Stopping));
    h.dialer.end(live[0], CallOutcome::Completed);
    h.dialer.end(live[1], CallOutcome::NoAnswer);
    advance(60).await;
    assert_eq!(h.dialer.placed(), 3, "no dial while stopping");
    let snap = h.snapshot().await;
    assert_eq!(snap.state, Some(CampaignState::Stopping));
    assert_eq!(snap.live_calls, 1);
    // Commands other than stop's own drain change nothing now (the API
    // refuses them; one sent all the same is ignored).
    h.send(CampaignControl::Resume);
    settle().await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Stopping));

    h.dialer.end(live[2], CallOutcome::Busy);
    let h = h.stopped_within(5).await;
    let s = h.store.lock();
    assert_eq!(
        s.states,
        vec![CampaignState::Cancelled],
        "stored once drained"
    );
    assert_eq!(
        s.outcomes.len(),
        3,
        "every live call's outcome was recorded"
    );
    assert_eq!(s.contact(live[1]).status, ContactStatus::Retry);
}

#[tokio::test(start_paused = true)]
async fn stop_with_nothing_live_cancels_at_once() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = running(3, 4);
    store.lock().settings.state = CampaignState::Paused;
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    settle().await;
    assert_eq!(h.dialer.placed(), 0, "resumed paused: no dial");
    assert_eq!(h.command(CampaignCommand::Stop), CampaignState::Cancelled);
    let h = h.stopped_within(1).await;
    assert_eq!(h.store.lock().settings.state, CampaignState::Cancelled);
    assert!(
        h.store.lock().states.is_empty(),
        "read as stored: nothing to write"
    );
}

#[tokio::test(start_paused = true)]
async fn the_campaign_completes_when_nothing_remains() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::auto(
        clock.clone(),
        3,
        (10, 60),
        Box::new(|_, _, _, _| CallOutcome::Completed),
    );
    let h = Harness::start(running(2, 5), dialer, clock, CampaignConfig::default()).await;
    let h = h.stopped_within(3600).await;
    assert_eq!(h.store.lock().states, vec![CampaignState::Completed]);
    assert_eq!(h.dialer.placed(), 5);
    assert_consistent(&h.store, &h.dialer);
}

#[tokio::test(start_paused = true)]
async fn an_empty_campaign_completes_at_once() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(2, 0), dialer, clock, CampaignConfig::default()).await;
    let h = h.stopped_within(2).await;
    assert_eq!(h.store.lock().states, vec![CampaignState::Completed]);
}

#[tokio::test(start_paused = true)]
async fn a_campaign_is_not_complete_while_contacts_wait_for_a_retry() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(1, 1), dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let c = h.dialer.live_contacts()[0];
    h.dialer.end(c, CallOutcome::NoAnswer); // retry in 60 s
    advance(30).await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Running));
    advance(31).await;
    h.dialer.end(c, CallOutcome::Completed);
    let h = h.stopped_within(2).await;
    assert_eq!(h.store.lock().states, vec![CampaignState::Completed]);
}

#[tokio::test(start_paused = true)]
async fn campaigns_with_nothing_to_run_stop_at_once() {
    for state in [
        CampaignState::Draft,
        CampaignState::Completed,
        CampaignState::Cancelled,
    ] {
        let clock = TestClock::starting_at(wednesday_14z());
        let store = running(2, 3);
        store.lock().settings.state = state;
        let dialer = FakeDialer::manual(clock.clone());
        let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
        let h = h.stopped_within(1).await;
        assert_eq!(h.dialer.placed(), 0, "{state}");
        assert!(h.store.lock().states.is_empty(), "{state}: nothing written");
    }
}

#[tokio::test(start_paused = true)]
async fn commands_sent_before_the_first_load_apply_after_it() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = running(2, 4);
    store.lock().fail_next = 2;
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    h.command(CampaignCommand::Pause);
    settle().await;
    assert_eq!(h.snapshot().await.state, None);
    advance(5).await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Paused));
    assert_eq!(h.dialer.placed(), 0);
    assert!(h.store.lock().states.is_empty(), "the load found it stored");
}
