//! Live calls re-checked against the store: a call whose outcome event
//! never arrives (sent to a dead incarnation, finished by the reconciler)
//! is settled from `claimed` within `recheck_every`, so it neither holds
//! the campaign's cap nor its stop's drain for ever.

use super::fakes::{
    FakeDialer, FakeStore, Harness, TestClock, advance, always_open, exact_retry, settle,
    wednesday_14z,
};
use crate::campaign::{CampaignCommand, CampaignState};
use crate::campaign_actor::CampaignConfig;
use crate::ids::ContactId;
use crate::schedule::retry::{CallOutcome, ContactStatus};

/// A running campaign whose first contact an earlier incarnation left
/// live (dialled, attempt 1) and whose other contacts are done.
fn left_live(contacts: usize) -> (FakeStore, ContactId) {
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), 2));
    store.add_many(contacts);
    let live = store.lock().contacts[0].id;
    store.lock().contacts[0].status = ContactStatus::InProgress;
    for c in store.lock().contacts.iter_mut().skip(1) {
        c.status = ContactStatus::Completed;
        c.attempts = 1;
    }
    (store, live)
}

/// The call row of `contact`'s attempt 1 is finished by someone else (the
/// reconciler): the store shows it ended, and no event is sent.
fn finished_elsewhere(dialer: &FakeDialer, contact: ContactId, outcome: CallOutcome) {
    let mut d = dialer.lock();
    d.live.remove(&(contact, 1));
    d.ended.insert((contact, 1), outcome);
}

fn taken_over_dialer(clock: std::sync::Arc<TestClock>, contact: ContactId) -> FakeDialer {
    let dialer = FakeDialer::manual(clock);
    dialer.lock().placed.insert((contact, 1));
    dialer.lock().live.insert((contact, 1));
    dialer
}

#[tokio::test(start_paused = true)]
async fn a_taken_over_call_finished_elsewhere_is_settled_and_a_stop_drains() {
    let clock = TestClock::starting_at(wednesday_14z());
    let (store, live) = left_live(3);
    // Another contact still to dial, so the campaign does not complete.
    store.lock().contacts[1].status = ContactStatus::Pending;
    store.lock().contacts[1].attempts = 0;
    let dialer = taken_over_dialer(clock.clone(), live);
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let snap = h.snapshot().await;
    assert_eq!((snap.taken_over, snap.live_calls), (1, 2));
    h.command(CampaignCommand::Stop);
    settle().await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Stopping));
    let other = *h
        .dialer
        .live_contacts()
        .iter()
        .find(|c| **c != live)
        .expect("the other call");
    h.dialer.end(other, CallOutcome::Busy);

    finished_elsewhere(&h.dialer, live, CallOutcome::NoAnswer);
    advance(3).await;
    assert_eq!(
        h.snapshot().await.live_calls,
        1,
        "not re-checked before recheck_every"
    );
    let h = h.stopped_within(10).await;
    let s = h.store.lock();
    assert_eq!(s.states, vec![CampaignState::Cancelled]);
    assert_eq!(s.contact(live).status, ContactStatus::Retry);
    assert_eq!(s.contact(live).attempts, 1);
    assert_eq!(
        s.outcomes.iter().filter(|o| o.contact == live).count(),
        1,
        "its outcome recorded once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_campaign_whose_last_call_ended_unseen_completes() {
    let clock = TestClock::starting_at(wednesday_14z());
    let (store, live) = left_live(3);
    let dialer = taken_over_dialer(clock.clone(), live);
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    advance(5).await;
    assert_eq!(h.snapshot().await.live_calls, 1);
    finished_elsewhere(&h.dialer, live, CallOutcome::Completed);
    let h = h.stopped_within(12).await;
    let s = h.store.lock();
    assert_eq!(s.states, vec![CampaignState::Completed]);
    assert_eq!(s.contact(live).status, ContactStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn an_own_call_whose_event_is_lost_is_settled_once_even_if_the_event_comes_late() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), 1));
    store.add_many(2);
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let first = h.dialer.live_contacts()[0];
    // Its call ends, but the event goes nowhere.
    finished_elsewhere(&h.dialer, first, CallOutcome::Completed);
    advance(12).await;
    let snap = h.snapshot().await;
    assert_eq!((snap.outcomes, snap.completed, snap.rechecked), (1, 1, 1));
    assert_eq!(
        h.dialer.placed(),
        2,
        "its slot was freed for the next contact"
    );
    // The lost event turns up after all: not counted again.
    h.actor
        .send_message(
            crate::campaign_actor::CampaignEvent::CallEnded {
                contact: first,
                attempt: 1,
                outcome: CallOutcome::Completed,
            }
            .into(),
        )
        .expect("alive");
    settle().await;
    let snap = h.snapshot().await;
    assert_eq!(
        (snap.outcomes, snap.completed, snap.pending_writes),
        (1, 1, 0)
    );
    assert_eq!(h.store.lock().repeated_outcomes, 0);
}
