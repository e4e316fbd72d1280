//! Properties over random windows, zones and instants, biased towards the
//! days clocks change, and a check against a brute-force model that walks
//! the contact's clock minute by minute.

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::sample::select;

use super::{CallingWindow, DaySet, SEARCH_DAYS};

const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "Pacific/Honolulu",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Australia/Lord_Howe",
];

/// A zone and the instant it changes its clocks in 2026.
const CHANGES: &[(&str, &str)] = &[
    ("America/New_York", "2026-03-08T07:00:00Z"),
    ("America/New_York", "2026-11-01T06:00:00Z"),
    ("Europe/London", "2026-03-29T01:00:00Z"),
    ("Europe/London", "2026-10-25T01:00:00Z"),
    ("Australia/Sydney", "2026-04-04T16:00:00Z"),
    ("Australia/Sydney", "2026-10-03T16:00:00Z"),
    ("Australia/Lord_Howe", "2026-04-04T15:00:00Z"),
    ("Australia/Lord_Howe", "2026-10-03T15:30:00Z"),
    ("Pacific/Chatham", "2026-04-04T14:00:00Z"),
    ("Pacific/Chatham", "2026-09-26T14:00:00Z"),
    ("America/Santiago", "2026-04-05T03:00:00Z"),
    ("America/Santiago", "2026-09-06T04:00:00Z"),
];

fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

fn minutes(m: u32) -> NaiveTime {
    NaiveTime::from_num_seconds_from_midnight_opt(m * 60, 0).unwrap()
}

/// Any weekday set, but often every day so a change day is included.
fn days() -> impl Strategy<Value = DaySet> {
    prop_oneof![Just(127i16), 1i16..=127].prop_map(|bits| DaySet::from_bits(bits).unwrap())
}

/// Windows on whole minutes; half of them short and early in the day,
/// where most clock changes happen.
fn window() -> impl Strategy<Value = CallingWindow> {
    let any = (0u32..1439).prop_flat_map(|s| (Just(s), s + 1..1440));
    let early = (0u32..240).prop_flat_map(|s| (Just(s), s + 1..=s + 120));
    (prop_oneof![any, early], days()).prop_map(|((s, e), days)| CallingWindow {
        start: minutes(s),
        end: minutes(e),
        days,
    })
}

/// A window, zones and an instant (whole seconds). Either all random
/// (instants in 2024-2030), or built around one zone's clock change: the
/// instant within two days of it and the window's start within a couple of
/// hours of the local time at which the clocks change, so windows starting
/// or ending inside gaps and overlaps come up often.
fn case() -> impl Strategy<Value = (CallingWindow, Vec<Tz>, DateTime<Utc>)> {
    let anywhere = (
        window(),
        prop::collection::vec(select(ZONES), 1..=3),
        1_704_067_200i64..1_924_992_000,
    )
        .prop_map(|(w, names, secs)| {
            let zones = names.into_iter().map(tz).collect();
            (w, zones, DateTime::from_timestamp(secs, 0).unwrap())
        });
    let near_change = (
        select(CHANGES),
        prop::collection::vec(select(ZONES), 0..=2),
        -2 * 86_400i64..2 * 86_400,
        -150i64..90,
        1i64..240,
        days(),
    )
        .prop_map(|((zone, change), extra, offset, from_change, len, days)| {
            let change = change.parse::<DateTime<Utc>>().unwrap();
            let before = (change - TimeDelta::seconds(1)).with_timezone(&tz(zone));
            let change_minute = i64::from(before.hour() * 60 + before.minute()) + 1;
            let start = (change_minute + from_change).clamp(0, 1438);
            let end = (start + len).min(1439);
            let w = CallingWindow {
                start: minutes(start as u32),
                end: minutes(end as u32),
                days,
            };
            let mut zones = vec![tz(zone)];
            zones.extend(extra.into_iter().map(tz));
            (w, zones, change + TimeDelta::seconds(offset))
        });
    prop_oneof![anywhere, near_change]
}

/// The window in one zone, minute by minute from `from` (a whole minute),
/// by walking the clock: open when it reads inside the window on an allowed
/// day and has not yet read the end on that date. Exact at whole minutes
/// because windows, offsets and transitions all fall on whole minutes.
fn walk_clock(w: &CallingWindow, tz: Tz, from: DateTime<Utc>, count: i64) -> Vec<bool> {
    let warm_up = 2 * 24 * 60;
    let mut latest: Option<NaiveDateTime> = None;
    let mut out = Vec::new();
    for k in -warm_up..count {
        let local = (from + TimeDelta::minutes(k))
            .with_timezone(&tz)
            .naive_local();
        let ended = latest.is_some_and(|l| l >= local.date().and_time(w.end));
        let open = w.days.contains(local.weekday())
            && w.start <= local.time()
            && local.time() < w.end
            && !ended;
        if k >= 0 {
            out.push(open);
        }
        latest = Some(latest.map_or(local, |l| l.max(local)));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn next_open_is_the_first_open_instant((w, zones, at) in case()) {
        let second = TimeDelta::seconds(1);
        match w.next_open(&zones, at) {
            Some(t) => {
                prop_assert!(t >= at);
                prop_assert!(t <= at + TimeDelta::days(SEARCH_DAYS));
                prop_assert!(w.is_open(&zones, t));
                prop_assert!(t == at || !w.is_open(&zones, t - second));
                let close = w.closes_at(&zones, t);
                prop_assert!(close.is_some());
                let close = close.unwrap();
                prop_assert!(close > t);
                prop_assert!(!w.is_open(&zones, close));
                prop_assert!(w.is_open(&zones, close - second));
            }
            None => {
                prop_assert!(!w.is_open(&zones, at));
                prop_assert_eq!(w.closes_at(&zones, at), None);
            }
        }
    }

    #[test]
    fn closes_at_only_when_open((w, zones, at) in case()) {
        let open = w.is_open(&zones, at);
        prop_assert_eq!(w.closes_at(&zones, at).is_some(), open);
        prop_assert_eq!(w.next_open(&zones, at) == Some(at), open);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agrees_with_walking_the_clock((w, zones, at) in case()) {
        let from = at - TimeDelta::seconds(i64::from(at.second()));
        let count = 3 * 24 * 60;
        let mut expected = vec![true; count];
        for tz in &zones {
            for (e, z) in expected.iter_mut().zip(walk_clock(&w, *tz, from, count as i64)) {
                *e &= z;
            }
        }
        let to = from + TimeDelta::minutes(count as i64);
        let spans = w.openings(&zones, from, to).unwrap();
        for (k, want) in expected.iter().enumerate() {
            let t = from + TimeDelta::minutes(k as i64);
            let got = spans.iter().any(|s| s.contains(t));
            prop_assert_eq!(got, *want, "minute {} ({})", k, t);
            if k % 61 == 0 {
                prop_assert_eq!(w.is_open(&zones, t), *want, "is_open at {}", t);
            }
        }
        let first_open = expected.iter().position(|o| *o);
        if let Some(k) = first_open {
            prop_assert_eq!(w.next_open(&zones, from), Some(from + TimeDelta::minutes(k as i64)));
        }
        if expected[0]
            && let Some(k) = expected.iter().position(|o| !*o)
        {
            prop_assert_eq!(w.closes_at(&zones, from), Some(from + TimeDelta::minutes(k as i64)));
        }
    }
}
