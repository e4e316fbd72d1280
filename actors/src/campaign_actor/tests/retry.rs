//! Outcomes become the next step `next_step` decides: retries per outcome,
//! max attempts, callbacks, seeded jitter.

use chrono::{DateTime, TimeDelta, Utc};

use super::fakes::{
    FakeDialer, FakeStore, Harness, RecordedOutcome, TestClock, advance, always_open, exact_retry,
    settle, wednesday_14z,
};
use crate::campaign_actor::CampaignConfig;
use crate::ids::ContactId;
use crate::ports::Clock;
use crate::schedule::retry::{CallOutcome, ContactStatus, NextStep, RetryPolicy};

fn outcome_of(h: &Harness, contact: ContactId, attempts: u32) -> RecordedOutcome {
    h.store
        .lock()
        .outcomes
        .iter()
        .find(|o| o.contact == contact && o.attempts == attempts)
        .cloned()
        .expect("outcome recorded")
}

fn retry_at(o: &RecordedOutcome) -> DateTime<Utc> {
    o.next.retry_at().expect("a retry")
}

#[tokio::test(start_paused = true)]
async fn busy_retries_soon_no_answer_later_and_max_attempts_fail() {
    let t0 = wednesday_14z();
    let clock = TestClock::starting_at(t0);
    // Base 10 min, 3 attempts, no jitter: busy x0.25, no answer x1,
    // machine x2, doubling per attempt.
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(600, 3), 3));
    let busy = store.add(vec![chrono_tz::UTC]);
    let no_answer = store.add(vec![chrono_tz::UTC]);
    let machine = store.add(vec![chrono_tz::UTC]);
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock.clone(), CampaignConfig::default()).await;
    settle().await;
    assert_eq!(h.dialer.placed(), 3);

    advance(10).await;
    let ended = t0 + TimeDelta::seconds(10);
    h.dialer.end(busy, CallOutcome::Busy);
    h.dialer.end(no_answer, CallOutcome::NoAnswer);
    h.dialer.end(machine, CallOutcome::Machine);
    settle().await;
    // Retry instants count from the call's end.
    let close = |a: DateTime<Utc>, b: DateTime<Utc>| (a - b).abs() < TimeDelta::seconds(1);
    assert!(close(
        retry_at(&outcome_of(&h, busy, 1)),
        ended + TimeDelta::seconds(150)
    ));
    assert!(close(
        retry_at(&outcome_of(&h, no_answer, 1)),
        ended + TimeDelta::seconds(600)
    ));
    assert!(close(
        retry_at(&outcome_of(&h, machine, 1)),
        ended + TimeDelta::seconds(1200)
    ));
    {
        let s = h.store.lock();
        assert_eq!(s.contact(busy).status, ContactStatus::Retry);
        assert_eq!(s.contact(busy).attempts, 1);
    }

    // The busy contact comes back first, on the first tick after its time.
    advance(145).await;
    assert_eq!(h.dialer.placed(), 3);
    advance(6).await;
    assert_eq!(h.dialer.live_contacts(), vec![busy]);
    let second = h.dialer.lock().log.last().cloned().expect("dial");
    assert_eq!(second.request.attempt, 2);
    h.dialer.end(busy, CallOutcome::Busy);
    let ended2 = clock.utc();
    settle().await;
    // Second busy: 600 x 2 x 0.25 = 300 s.
    assert!(close(
        retry_at(&outcome_of(&h, busy, 2)),
        ended2 + TimeDelta::seconds(300)
    ));

    advance(301).await;
    assert_eq!(h.dialer.live_contacts(), vec![busy]);
    h.dialer.end(busy, CallOutcome::Busy);
    settle().await;
    let third = outcome_of(&h, busy, 3);
    assert_eq!(
        third.next,
        NextStep::Done {
            status: ContactStatus::Failed
        },
        "third busy of three attempts: failed"
    );
    assert_eq!(h.store.lock().contact(busy).status, ContactStatus::Failed);
    let snap = h.snapshot().await;
    assert_eq!((snap.outcomes, snap.retries, snap.failed), (5, 4, 1));
}

#[tokio::test(start_paused = true)]
async fn a_requested_callback_is_dialled_at_its_time_even_after_the_last_attempt() {
    let t0 = wednesday_14z();
    let clock = TestClock::starting_at(t0);
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(600, 1), 1));
    let c = store.add(vec![chrono_tz::UTC]);
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let callback = t0 + TimeDelta::hours(2);
    h.dialer.end(c, CallOutcome::CallbackRequested(callback));
    settle().await;
    assert_eq!(outcome_of(&h, c, 1).next, NextStep::RetryAt(callback));

    advance(2 * 3600 - 5).await;
    assert_eq!(h.dialer.placed(), 1, "not before the time asked for");
    advance(10).await;
    let log = h.dialer.lock().log.clone();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].request.attempt, 2);
    assert!(log[1].at >= callback);
    // Attempts exhausted: a no-answer now ends it.
    h.dialer.end(c, CallOutcome::NoAnswer);
    let h = h.stopped_within(10).await;
    assert_eq!(h.store.lock().contact(c).status, ContactStatus::Failed);
}

/// The retry instants a campaign of ten no-answers records with `seed`.
async fn retry_offsets(seed: u64) -> Vec<i64> {
    let t0 = wednesday_14z();
    let clock = TestClock::starting_at(t0);
    let store = FakeStore::new(FakeStore::settings(
        always_open(),
        RetryPolicy::new(600, 3),
        10,
    ));
    let contacts = store.add_many(10);
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start_seeded(store, dialer, clock, CampaignConfig::default(), seed).await;
    settle().await;
    for c in &contacts {
        if h.dialer.live_contacts().contains(c) {
            h.dialer.end(*c, CallOutcome::NoAnswer);
        }
    }
    settle().await;
    let s = h.store.lock();
    s.outcomes
        .iter()
        .map(|o| (retry_at(o) - t0).num_milliseconds())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn jitter_is_seeded_and_within_the_policy_bounds() {
    let a = retry_offsets(1).await;
    let b = retry_offsets(1).await;
    let c = retry_offsets(2).await;
    assert_eq!(a.len(), 10);
    assert_eq!(a, b, "same seed, same retries");
    assert_ne!(a, c, "another seed spreads them otherwise");
    // 600 s +-20 %, from the call's end (within the first second).
    for ms in a.iter().chain(&c) {
        assert!((480_000..=721_000).contains(ms), "{ms}");
    }
    let distinct: std::collections::HashSet<_> = a.iter().collect();
    assert!(distinct.len() > 5, "a batch that failed together is spread");
}
