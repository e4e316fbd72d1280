//! The dialer says no (at capacity, unavailable), or its answer is lost:
//! no contact is lost and no attempt is dialled twice.

use std::collections::HashMap;
use std::time::Duration;

use super::fakes::{
    FakeDialer, FakeStore, Harness, TestClock, advance, always_open, assert_consistent, settle,
    wednesday_14z,
};
use crate::campaign::CampaignState;
use crate::campaign_actor::{CampaignConfig, DialRefused};
use crate::ids::ContactId;
use crate::schedule::retry::{CallOutcome, RetryPolicy};

fn outcome(
    _: ContactId,
    _: u32,
    rng: &mut crate::campaign_actor::Jitter,
    _: chrono::DateTime<chrono::Utc>,
) -> CallOutcome {
    if rng.below(0, 10) < 7 {
        CallOutcome::Completed
    } else {
        CallOutcome::Busy
    }
}

#[tokio::test(start_paused = true)]
async fn at_capacity_and_unavailable_lose_no_contact_and_dial_none_twice() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(
        always_open(),
        RetryPolicy::new(60, 3),
        8,
    ));
    store.add_many(200);
    let dialer = FakeDialer::auto(clock.clone(), 11, (5, 90), Box::new(outcome));
    {
        let mut d = dialer.lock();
        d.cap = Some(5); // tighter than the campaign's own 8
        d.refuse_rate = 0.15;
        d.unavailable_rate = 0.05;
        d.intent_guard = false; // a second dial would be placed and counted
    }
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    let h = h.stopped_within(24 * 3600).await;

    assert_eq!(h.store.lock().states, vec![CampaignState::Completed]);
    assert_consistent(&h.store, &h.dialer);
    let d = h.dialer.lock();
    let refused = d
        .log
        .iter()
        .filter(|r| r.answer == Err(DialRefused::AtCapacity))
        .count();
    let unavailable = d
        .log
        .iter()
        .filter(|r| matches!(r.answer, Err(DialRefused::Unavailable(_))))
        .count();
    assert!(refused > 20, "{refused} refusals");
    assert!(unavailable > 3, "{unavailable} unavailable");
    assert!(d.max_live <= 5);
    // Every refused claim was given back.
    assert_eq!(h.store.lock().releases.len(), refused + unavailable);
    // A refused attempt is asked for again later, with the same number.
    let mut asks: HashMap<(ContactId, u32), Vec<bool>> = HashMap::new();
    for r in &d.log {
        asks.entry((r.request.contact, r.request.attempt))
            .or_default()
            .push(r.answer.is_ok());
    }
    for (key, answers) in &asks {
        assert_eq!(answers.iter().filter(|ok| **ok).count(), 1, "{key:?}");
        assert!(*answers.last().expect("asked"), "{key:?}: accepted last");
    }
}

#[tokio::test(start_paused = true)]
async fn lost_dial_answers_come_back_as_duplicates_and_are_never_placed_twice() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(
        always_open(),
        RetryPolicy::new(60, 3),
        6,
    ));
    store.add_many(150);
    let dialer = FakeDialer::auto(clock.clone(), 5, (5, 120), Box::new(outcome));
    {
        let mut d = dialer.lock();
        d.lose_rate = 0.2; // accepted, but the campaign never hears so
        d.intent_guard = true; // the real dialer's intent row
        d.cap = Some(6);
    }
    let config = CampaignConfig {
        port_timeout: Duration::from_secs(2),
        refusal_backoff: Duration::from_secs(1),
        ..CampaignConfig::default()
    };
    let h = Harness::start(store, dialer, clock, config).await;
    let h = h.stopped_within(24 * 3600).await;

    assert_eq!(h.store.lock().states, vec![CampaignState::Completed]);
    assert_consistent(&h.store, &h.dialer);
    let d = h.dialer.lock();
    let lost = d.log.iter().filter(|r| r.answer_lost).count();
    let duplicates = d
        .log
        .iter()
        .filter(|r| r.answer == Err(DialRefused::Duplicate))
        .count();
    assert!(lost > 10, "{lost} lost answers");
    assert!(duplicates > 0, "some lost dials were asked for again");
    assert!(duplicates <= lost);
    // An attempt is asked for again only after its answer was lost.
    let mut seen: HashMap<(ContactId, u32), bool> = HashMap::new();
    for r in &d.log {
        let key = (r.request.contact, r.request.attempt);
        if let Some(was_lost) = seen.get(&key) {
            assert!(
                *was_lost || r.answer != Err(DialRefused::Duplicate),
                "{key:?} asked again though its dial was answered"
            );
        }
        if r.answer.is_ok() {
            seen.insert(key, r.answer_lost);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_counts_as_live_until_its_outcome_arrives() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(
        always_open(),
        RetryPolicy::new(60, 3),
        1,
    ));
    let c = store.add(vec![chrono_tz::UTC]);
    let dialer = FakeDialer::manual(clock.clone());
    dialer.lock().intent_guard = true;
    // The attempt was placed before (say, by an incarnation that died).
    dialer.lock().placed.insert((c, 1));
    dialer.lock().live.insert((c, 1));
    let other = store.add(vec![chrono_tz::UTC]);
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let snap = h.snapshot().await;
    assert_eq!((snap.duplicates, snap.live_calls, snap.dialled), (1, 1, 0));
    advance(10).await;
    assert_eq!(
        h.dialer.placed(),
        1,
        "the cap of 1 is held by the duplicate"
    );
    h.dialer.end(c, CallOutcome::Completed);
    advance(2).await;
    assert_eq!(h.dialer.live_contacts(), vec![other]);
}
