//! Worked examples: day sets, fixed and fractional offsets, weekdays in
//! local terms, several zones at once, odd inputs. The helpers here are
//! shared with `dst_tests`.

use chrono::{DateTime, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use chrono_tz::{America, Asia, Australia, Europe, Pacific};

use super::{CallingWindow, DaySet, WindowError};

pub(super) fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub(super) fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

pub(super) fn every_day(start: NaiveTime, end: NaiveTime) -> CallingWindow {
    CallingWindow::new(start, end, DaySet::all()).unwrap()
}

pub(super) const SEC: TimeDelta = TimeDelta::seconds(1);

/// From `from`, the window next opens at `open` and that opening ends at
/// `close`; checked from every side.
#[track_caller]
pub(super) fn assert_opening(w: &CallingWindow, zones: &[Tz], from: &str, open: &str, close: &str) {
    let (from, open, close) = (utc(from), utc(open), utc(close));
    assert_eq!(w.next_open(zones, from), Some(open), "next_open");
    assert!(w.is_open(zones, open), "open at the opening");
    if open > from {
        assert!(!w.is_open(zones, open - SEC), "closed just before");
        assert_eq!(w.closes_at(zones, open - SEC), None);
    }
    assert_eq!(w.closes_at(zones, open), Some(close), "closes_at");
    assert!(w.is_open(zones, close - SEC), "open until the close");
    assert!(!w.is_open(zones, close), "closed at the close");
}

#[test]
fn day_set_reads_and_writes_the_database_bits() {
    assert_eq!(DaySet::from_bits(0).unwrap(), DaySet::empty());
    assert_eq!(DaySet::from_bits(127).unwrap(), DaySet::all());
    assert_eq!(DaySet::from_bits(31).unwrap(), DaySet::weekdays());
    assert_eq!(
        DaySet::from_bits(128),
        Err(WindowError::DayBitsOutOfRange(128))
    );
    assert_eq!(
        DaySet::from_bits(-1),
        Err(WindowError::DayBitsOutOfRange(-1))
    );
    assert_eq!(
        DaySet::from_bits(i16::MAX),
        Err(WindowError::DayBitsOutOfRange(i16::MAX))
    );
    for bits in 0..=127 {
        assert_eq!(DaySet::from_bits(bits).unwrap().bits(), bits);
    }
    let mon = DaySet::from_bits(1).unwrap();
    assert!(mon.contains(Weekday::Mon));
    assert!(!mon.contains(Weekday::Tue));
    let sun = DaySet::from_bits(64).unwrap();
    assert!(sun.contains(Weekday::Sun));
    assert!(!sun.contains(Weekday::Sat));
    let weekend = DaySet::from_days([Weekday::Sat, Weekday::Sun]);
    assert_eq!(weekend.bits(), 96);
    assert_eq!(
        weekend.iter().collect::<Vec<_>>(),
        [Weekday::Sat, Weekday::Sun]
    );
    assert_eq!(DaySet::all().iter().count(), 7);
    assert!(DaySet::empty().is_empty());
    assert!(!DaySet::weekdays().contains(Weekday::Sat));
}

#[test]
fn new_refuses_windows_that_cannot_open() {
    assert_eq!(
        CallingWindow::new(hm(9, 0), hm(9, 0), DaySet::all()),
        Err(WindowError::StartNotBeforeEnd {
            start: hm(9, 0),
            end: hm(9, 0)
        })
    );
    assert_eq!(
        CallingWindow::new(hm(22, 0), hm(6, 0), DaySet::all()),
        Err(WindowError::StartNotBeforeEnd {
            start: hm(22, 0),
            end: hm(6, 0)
        })
    );
    assert_eq!(
        CallingWindow::new(hm(9, 0), hm(17, 0), DaySet::empty()),
        Err(WindowError::NoDays)
    );
    let w = CallingWindow::new(hm(9, 0), hm(17, 0), DaySet::weekdays()).unwrap();
    assert_eq!(
        (w.start, w.end, w.days),
        (hm(9, 0), hm(17, 0), DaySet::weekdays())
    );
}

#[test]
fn hand_built_bad_windows_never_open_and_never_panic() {
    let at = utc("2026-06-10T12:00:00Z");
    let zones = [America::New_York];
    for w in [
        CallingWindow {
            start: hm(17, 0),
            end: hm(9, 0),
            days: DaySet::all(),
        },
        CallingWindow {
            start: hm(9, 0),
            end: hm(9, 0),
            days: DaySet::all(),
        },
        CallingWindow {
            start: hm(0, 0),
            end: hm(23, 59),
            days: DaySet::empty(),
        },
    ] {
        assert!(!w.is_open(&zones, at));
        assert_eq!(w.next_open(&zones, at), None);
        assert_eq!(w.closes_at(&zones, at), None);
    }
}

#[test]
fn unknown_zone_is_never_open() {
    let w = every_day(hm(0, 0), hm(23, 59));
    let at = utc("2026-06-10T12:00:00Z");
    assert!(!w.is_open(&[], at));
    assert_eq!(w.next_open(&[], at), None);
    assert_eq!(w.closes_at(&[], at), None);
}

#[test]
fn extreme_instants_do_not_panic() {
    let w = every_day(hm(0, 0), hm(23, 59));
    let zones = [America::New_York, Asia::Kolkata, Pacific::Chatham];
    for at in [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::UNIX_EPOCH,
    ] {
        let _ = w.is_open(&zones, at);
        let _ = w.next_open(&zones, at);
        let _ = w.closes_at(&zones, at);
    }
}

#[test]
fn new_york_business_hours() {
    let w = CallingWindow::new(hm(9, 0), hm(18, 0), DaySet::weekdays()).unwrap();
    let ny = [America::New_York];
    // Tuesday 2026-03-10, two days after DST began: 09:00 EDT = 13:00 UTC.
    assert_opening(
        &w,
        &ny,
        "2026-03-10T05:00:00Z",
        "2026-03-10T13:00:00Z",
        "2026-03-10T22:00:00Z",
    );
    // Open now: next_open is now.
    let now = utc("2026-03-10T15:17:23Z");
    assert_eq!(w.next_open(&ny, now), Some(now));
    // Friday evening: next opening is Monday.
    assert_opening(
        &w,
        &ny,
        "2026-03-13T22:00:00Z",
        "2026-03-16T13:00:00Z",
        "2026-03-16T22:00:00Z",
    );
    // Winter (EST): 09:00 = 14:00 UTC.
    assert_opening(
        &w,
        &ny,
        "2026-01-15T00:00:00Z",
        "2026-01-15T14:00:00Z",
        "2026-01-15T23:00:00Z",
    );
}

#[test]
fn weekdays_are_the_contacts_local_weekdays() {
    // Friday 2026-03-13 20:00 in Los Angeles (PDT) is Saturday 03:00 UTC.
    let la = [America::Los_Angeles];
    let friday =
        CallingWindow::new(hm(19, 0), hm(21, 0), DaySet::from_days([Weekday::Fri])).unwrap();
    let saturday =
        CallingWindow::new(hm(19, 0), hm(21, 0), DaySet::from_days([Weekday::Sat])).unwrap();
    let at = utc("2026-03-14T03:00:00Z");
    assert!(friday.is_open(&la, at));
    assert!(!saturday.is_open(&la, at));
    assert_eq!(friday.closes_at(&la, at), Some(utc("2026-03-14T04:00:00Z")));
    assert_eq!(
        saturday.next_open(&la, at),
        Some(utc("2026-03-15T02:00:00Z"))
    );

    // Monday 09:00 in Sydney (AEST, July) is Sunday 23:00 UTC.
    let monday =
        CallingWindow::new(hm(9, 0), hm(10, 0), DaySet::from_days([Weekday::Mon])).unwrap();
    let syd = [Australia::Sydney];
    assert_opening(
        &monday,
        &syd,
        "2026-07-04T00:00:00Z",
        "2026-07-05T23:00:00Z",
        "2026-07-06T00:00:00Z",
    );
}

#[test]
fn fractional_offsets() {
    let w = every_day(hm(9, 0), hm(17, 0));
    // Kolkata is UTC+05:30 all year: 09:00 IST = 03:30 UTC.
    assert_opening(
        &w,
        &[Asia::Kolkata],
        "2026-06-10T00:00:00Z",
        "2026-06-10T03:30:00Z",
        "2026-06-10T11:30:00Z",
    );
    // Chatham in January is UTC+13:45: 09:00 = 19:15 UTC the day before.
    assert_opening(
        &w,
        &[Pacific::Chatham],
        "2026-01-14T04:00:00Z",
        "2026-01-14T19:15:00Z",
        "2026-01-15T03:15:00Z",
    );
    // And in July UTC+12:45.
    assert_opening(
        &w,
        &[Pacific::Chatham],
        "2026-07-14T05:00:00Z",
        "2026-07-14T20:15:00Z",
        "2026-07-15T04:15:00Z",
    );
    // 2026-04-05 03:45 CHADT (14:00 UTC on the 4th) goes back to 02:45:
    // a window ending in the repeated 45 minutes ends at the first reading.
    let w = every_day(hm(2, 45), hm(3, 15));
    let chatham = [Pacific::Chatham];
    assert_opening(
        &w,
        &chatham,
        "2026-04-04T06:00:00Z",
        "2026-04-04T13:00:00Z",
        "2026-04-04T13:30:00Z",
    );
    assert!(
        !w.is_open(&chatham, utc("2026-04-04T14:10:00Z")),
        "02:55 CHAST, the repeat"
    );
}

#[test]
fn new_york_and_honolulu_intersect() {
    // Honolulu is UTC-10 all year; 09:00-18:00 there is 19:00-04:00 UTC.
    let zones = [America::New_York, Pacific::Honolulu];
    let w = every_day(hm(9, 0), hm(18, 0));
    // Summer: New York 13:00-22:00 UTC, so both are open 19:00-22:00.
    assert_opening(
        &w,
        &zones,
        "2026-07-01T00:00:00Z",
        "2026-07-01T19:00:00Z",
        "2026-07-01T22:00:00Z",
    );
    // Winter: New York 14:00-23:00 UTC.
    assert_opening(
        &w,
        &zones,
        "2026-01-15T00:00:00Z",
        "2026-01-15T19:00:00Z",
        "2026-01-15T23:00:00Z",
    );
    // Order of zones does not matter.
    let flipped = [Pacific::Honolulu, America::New_York];
    let at = utc("2026-07-01T20:00:00Z");
    assert!(w.is_open(&flipped, at));
    assert!(
        !w.is_open(&zones, utc("2026-07-01T18:00:00Z")),
        "open in New York only"
    );
    assert!(
        !w.is_open(&zones, utc("2026-07-01T23:00:00Z")),
        "open in Honolulu only"
    );
}

#[test]
fn zones_that_never_overlap_give_none() {
    // 09:00-10:00 in Kolkata is 03:30-04:30 UTC; in Los Angeles 16:00-17:00 UTC.
    let w = every_day(hm(9, 0), hm(10, 0));
    let zones = [Asia::Kolkata, America::Los_Angeles];
    let at = utc("2026-06-10T00:00:00Z");
    assert!(!w.is_open(&zones, at));
    assert_eq!(w.next_open(&zones, at), None);
    assert_eq!(w.closes_at(&zones, at), None);
    // Each on its own is fine.
    assert!(w.next_open(&zones[..1], at).is_some());
    assert!(w.next_open(&zones[1..], at).is_some());
}

#[test]
fn all_us_zones_at_once() {
    let us: Vec<Tz> = [
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Phoenix",
        "America/Los_Angeles",
        "America/Anchorage",
        "Pacific/Honolulu",
    ]
    .iter()
    .map(|z| z.parse().unwrap())
    .collect();
    // 08:00-21:00 local: Honolulu opens at 18:00 UTC, New York closes at
    // 01:00 UTC (EDT), so in June the common window is 18:00-01:00 UTC.
    let w = every_day(hm(8, 0), hm(21, 0));
    assert!(
        w.is_open(&us, utc("2026-06-10T00:30:00Z")),
        "still the 9th in Honolulu"
    );
    assert_opening(
        &w,
        &us,
        "2026-06-10T02:00:00Z",
        "2026-06-10T18:00:00Z",
        "2026-06-11T01:00:00Z",
    );
}

#[test]
fn weekly_window_is_found_within_the_horizon() {
    let w = CallingWindow::new(hm(10, 0), hm(11, 0), DaySet::from_days([Weekday::Wed])).unwrap();
    let lon = [Europe::London];
    // From just after Wednesday's window, the next is six days on.
    assert_opening(
        &w,
        &lon,
        "2026-06-10T10:00:00Z",
        "2026-06-17T09:00:00Z",
        "2026-06-17T10:00:00Z",
    );
}

#[test]
fn sub_second_instants() {
    let w = every_day(hm(9, 0), hm(17, 0));
    let lon = [Europe::London];
    let close = utc("2026-06-10T16:00:00Z");
    let nano = TimeDelta::nanoseconds(1);
    assert!(w.is_open(&lon, close - nano));
    assert!(!w.is_open(&lon, close));
    assert_eq!(w.closes_at(&lon, close - nano), Some(close));
    let open = utc("2026-06-10T08:00:00Z");
    assert_eq!(w.next_open(&lon, open - nano), Some(open));
}
