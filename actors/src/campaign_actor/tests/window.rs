//! Calling windows in the contact's own zone: dial inside, defer to the
//! exact next opening outside, give up when it never opens.

use chrono::{DateTime, Utc};
use chrono_tz::America::{Los_Angeles, New_York};
use chrono_tz::Asia::Tokyo;

use super::fakes::{
    FakeDialer, FakeStore, Harness, TestClock, advance, config_with_tick, exact_retry,
    office_hours, settle, wednesday_14z,
};
use crate::campaign_actor::GiveUpReason;
use crate::schedule::retry::ContactStatus;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("instant")
}

/// When each contact was dialled, per the dialer.
fn dialled_at(h: &Harness, contact: crate::ids::ContactId) -> Vec<DateTime<Utc>> {
    h.dialer
        .lock()
        .log
        .iter()
        .filter(|r| r.request.contact == contact)
        .map(|r| r.at)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn contacts_outside_their_window_are_deferred_to_the_exact_next_opening() {
    let now = wednesday_14z();
    let window = office_hours();
    let clock = TestClock::starting_at(now);
    let store = FakeStore::new(FakeStore::settings(window, exact_retry(60, 3), 10));
    let ny = store.add(vec![New_York]); // 10:00 EDT: open
    let tokyo = store.add(vec![Tokyo]); // 23:00 JST: shut until tomorrow 09:00
    let la = store.add(vec![Los_Angeles]); // 07:00 PDT: shut until 09:00
    let unknown = store.add(vec![]);
    let ambiguous = store.add(vec![New_York, Tokyo]); // no common opening
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, config_with_tick(60)).await;
    settle().await;

    assert_eq!(h.dialer.live_contacts(), vec![ny]);
    let tokyo_open = at("2026-06-11T00:00:00Z");
    let la_open = at("2026-06-10T16:00:00Z");
    assert_eq!(window.next_open(&[Tokyo], now), Some(tokyo_open));
    assert_eq!(window.next_open(&[Los_Angeles], now), Some(la_open));
    {
        let s = h.store.lock();
        let mut deferrals = s.deferrals.clone();
        deferrals.sort_by_key(|(_, t)| *t);
        assert_eq!(deferrals, vec![(la, la_open), (tokyo, tokyo_open)]);
        assert_eq!(s.contact(tokyo).status, ContactStatus::Pending);
        assert_eq!(s.contact(tokyo).attempts, 0);
        let given_up = |c| (s.contact(c).status, s.contact(c).given_up);
        assert_eq!(
            given_up(unknown),
            (ContactStatus::Failed, Some(GiveUpReason::UnknownZone))
        );
        assert_eq!(
            given_up(ambiguous),
            (ContactStatus::Failed, Some(GiveUpReason::WindowNeverOpens))
        );
    }
    let snap = h.snapshot().await;
    assert_eq!(
        (snap.dialled, snap.deferred, snap.given_up, snap.failed),
        (1, 2, 2, 2)
    );

    // Nothing is dialled before its opening, and it is dialled on the first
    // tick after it.
    advance(2 * 3600 - 61).await;
    assert!(dialled_at(&h, la).is_empty());
    advance(120).await;
    let la_dials = dialled_at(&h, la);
    assert_eq!(la_dials.len(), 1);
    assert!(la_dials[0] >= la_open && la_dials[0] < la_open + chrono::TimeDelta::seconds(60));

    advance(8 * 3600 - 120).await;
    assert!(dialled_at(&h, tokyo).is_empty());
    advance(120).await;
    let tokyo_dials = dialled_at(&h, tokyo);
    assert_eq!(tokyo_dials.len(), 1);
    assert!(tokyo_dials[0] >= tokyo_open);
    assert!(tokyo_dials[0] < tokyo_open + chrono::TimeDelta::seconds(60));
    // Each was deferred once: never re-read while not due.
    assert_eq!(h.store.lock().deferrals.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn friday_night_in_tokyo_waits_for_monday_morning() {
    let now = at("2026-06-12T14:00:00Z"); // Friday 23:00 JST
    let window = office_hours();
    let clock = TestClock::starting_at(now);
    let store = FakeStore::new(FakeStore::settings(window, exact_retry(60, 3), 10));
    let tokyo = store.add(vec![Tokyo]);
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, config_with_tick(60)).await;
    settle().await;
    let monday = at("2026-06-15T00:00:00Z"); // Monday 09:00 JST
    assert_eq!(window.next_open(&[Tokyo], now), Some(monday));
    assert_eq!(h.store.lock().deferrals, vec![(tokyo, monday)]);
    assert_eq!(h.dialer.placed(), 0);
}
