//! Dialling up to the cap, reloading settings, and the tick discipline.

use std::collections::HashMap;

use super::fakes::{
    FakeDialer, FakeStore, Harness, TestClock, advance, always_open, assert_consistent,
    config_with_tick, exact_retry, settle, wednesday_14z,
};
use crate::campaign::CampaignState;
use crate::campaign_actor::{CampaignConfig, CampaignControl};
use crate::ids::ContactId;
use crate::schedule::retry::{CallOutcome, RetryPolicy};

/// Mostly completed, some retried, a few final refusals.
fn mixed_outcome(
    _: ContactId,
    _: u32,
    rng: &mut crate::campaign_actor::Jitter,
    _: chrono::DateTime<chrono::Utc>,
) -> CallOutcome {
    match rng.below(0, 100) {
        0..60 => CallOutcome::Completed,
        60..72 => CallOutcome::Busy,
        72..84 => CallOutcome::NoAnswer,
        84..90 => CallOutcome::Machine,
        90..95 => CallOutcome::Failed,
        95..98 => CallOutcome::Rejected,
        _ => CallOutcome::DoNotCall,
    }
}

#[tokio::test(start_paused = true)]
async fn thousand_due_contacts_are_dialled_up_to_the_cap_and_never_above() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(
        always_open(),
        RetryPolicy::new(120, 3),
        10,
    ));
    store.add_many(1000);
    let dialer = FakeDialer::auto(clock.clone(), 7, (5, 120), Box::new(mixed_outcome));
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;

    // Early on, the cap is full and never exceeded.
    advance(30).await;
    let snap = h.snapshot().await;
    assert_eq!(snap.live_calls, 10);
    assert_eq!(h.dialer.lock().live.len(), 10);

    let h = h.stopped_within(48 * 3600).await;
    let store = h.store.lock();
    let dialer = h.dialer.lock();
    assert_eq!(
        dialer.max_live, 10,
        "the cap of 10 was reached, never passed"
    );
    assert_eq!(store.states, vec![CampaignState::Completed]);
    // Every request was accepted: the only limit was the campaign's own.
    assert!(dialer.log.iter().all(|r| r.answer.is_ok()));
    let mut per_contact: HashMap<ContactId, u32> = HashMap::new();
    for r in &dialer.log {
        *per_contact.entry(r.request.contact).or_default() += 1;
    }
    assert_eq!(per_contact.len(), 1000, "every contact was dialled");
    assert!(per_contact.values().all(|n| (1..=3).contains(n)));
    assert!(
        per_contact.values().any(|n| *n == 3),
        "some contacts used all three attempts"
    );
    drop((store, dialer));
    assert_consistent(&h.store, &h.dialer);
}

#[tokio::test(start_paused = true)]
async fn slots_are_refilled_as_calls_end() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), 3));
    store.add_many(6);
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    settle().await;
    assert_eq!(h.dialer.placed(), 3);
    // Ticks come and go: no slot, no dial, and no due_contacts read either.
    let reads = h.store.lock().due_calls;
    advance(5).await;
    assert_eq!(h.dialer.placed(), 3);
    assert_eq!(h.store.lock().due_calls, reads);
    let first = h.dialer.live_contacts()[0];
    h.dialer.end(first, CallOutcome::Completed);
    advance(1).await;
    assert_eq!(
        h.dialer.placed(),
        4,
        "the freed slot was used on the next tick"
    );
    let snap = h.snapshot().await;
    assert_eq!(
        (snap.live_calls, snap.dialled, snap.outcomes, snap.completed),
        (3, 4, 1, 1)
    );
    assert_eq!(snap.state, Some(CampaignState::Running));
}

#[tokio::test(start_paused = true)]
async fn reload_applies_a_new_cap() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), 2));
    store.add_many(10);
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    advance(3).await;
    assert_eq!(h.dialer.placed(), 2);
    h.store.lock().settings.max_concurrent_calls = 5;
    advance(3).await;
    assert_eq!(h.dialer.placed(), 2, "settings are not re-read unasked");
    h.send(CampaignControl::Reload);
    advance(2).await;
    assert_eq!(h.dialer.placed(), 5);
    // Lowering the cap never ends live calls; it only stops new ones.
    h.store.lock().settings.max_concurrent_calls = 1;
    h.send(CampaignControl::Reload);
    for c in h.dialer.live_contacts().into_iter().take(3) {
        h.dialer.end(c, CallOutcome::Completed);
    }
    advance(3).await;
    assert_eq!(h.dialer.placed(), 5);
    assert_eq!(h.dialer.live_contacts().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn there_is_never_more_than_one_pending_tick() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), 2));
    // Contacts due only much later: every tick reads due contacts once.
    let c = store.add(vec![chrono_tz::UTC]);
    store.lock().contacts[0].next_attempt_at = Some(wednesday_14z() + chrono::TimeDelta::hours(5));
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, config_with_tick(1)).await;
    settle().await;
    let before = h.store.lock().due_calls;
    for _ in 0..20 {
        h.send(CampaignControl::Reload);
        h.send(CampaignControl::Resume); // illegal while running: ignored
        h.actor
            .send_message(crate::campaign_actor::CampaignMsg::Tick)
            .expect("alive");
    }
    advance(10).await;
    let reads = h.store.lock().due_calls - before;
    // 10 seconds of 1 s ticks, plus the 20 extra ticks sent by hand.
    assert!(reads <= 10 + 20 + 1, "{reads} reads");
    let before = h.store.lock().due_calls;
    advance(10).await;
    let reads = h.store.lock().due_calls - before;
    assert!(
        (9..=11).contains(&reads),
        "{reads} reads in 10 s of 1 s ticks"
    );
    assert_eq!(h.dialer.placed(), 0);
    assert_eq!(h.store.lock().contact(c).attempts, 0);
}
