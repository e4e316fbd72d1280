//! Worked examples of daylight-saving changes: gaps and overlaps in New
//! York, London, Sydney (southern hemisphere) and Santiago (at midnight),
//! with windows starting, ending or lying inside them.

use chrono::Weekday;
use chrono_tz::{America, Australia, Europe};

use super::tests::{assert_opening, every_day, hm, utc};
use super::{CallingWindow, DaySet};

#[test]
fn new_york_spring_forward_gap() {
    // 2026-03-08 02:00 EST (07:00 UTC) the clocks jump to 03:00 EDT.
    let ny = [America::New_York];
    // Start in the gap: opens when the clock jumps past it, 03:00 EDT.
    let w = every_day(hm(2, 30), hm(4, 0));
    assert_opening(
        &w,
        &ny,
        "2026-03-08T05:00:00Z",
        "2026-03-08T07:00:00Z",
        "2026-03-08T08:00:00Z",
    );
    // End in the gap: closes at the jump.
    let w = every_day(hm(1, 0), hm(2, 30));
    assert_opening(
        &w,
        &ny,
        "2026-03-08T05:00:00Z",
        "2026-03-08T06:00:00Z",
        "2026-03-08T07:00:00Z",
    );
    // Wholly inside the gap: no opening that day, the next is Monday's.
    let w = every_day(hm(2, 10), hm(2, 50));
    assert_opening(
        &w,
        &ny,
        "2026-03-08T05:00:00Z",
        "2026-03-09T06:10:00Z",
        "2026-03-09T06:50:00Z",
    );
    // Spanning the gap: one opening, an hour shorter on the clock's face.
    let w = every_day(hm(1, 0), hm(4, 0));
    assert_opening(
        &w,
        &ny,
        "2026-03-08T05:00:00Z",
        "2026-03-08T06:00:00Z",
        "2026-03-08T08:00:00Z",
    );
    // An ordinary window that day is in EDT.
    let w = every_day(hm(9, 0), hm(17, 0));
    assert_opening(
        &w,
        &ny,
        "2026-03-08T05:00:00Z",
        "2026-03-08T13:00:00Z",
        "2026-03-08T21:00:00Z",
    );
}

#[test]
fn new_york_fall_back_overlap() {
    // 2026-11-01 02:00 EDT (06:00 UTC) the clocks go back to 01:00 EST, so
    // 01:00-02:00 local happens twice: 05:00-06:00 and 06:00-07:00 UTC.
    let ny = [America::New_York];
    // End in the overlap: the first 01:30 ends it, the repeat stays shut.
    let w = every_day(hm(0, 30), hm(1, 30));
    assert_opening(
        &w,
        &ny,
        "2026-11-01T00:00:00Z",
        "2026-11-01T04:30:00Z",
        "2026-11-01T05:30:00Z",
    );
    assert!(
        !w.is_open(&ny, utc("2026-11-01T06:15:00Z")),
        "01:15 EST, after the end"
    );
    assert_eq!(
        w.next_open(&ny, utc("2026-11-01T05:30:00Z")),
        Some(utc("2026-11-02T05:30:00Z"))
    );
    // Wholly inside the overlap: only the first pass.
    let w = every_day(hm(1, 0), hm(1, 30));
    assert_opening(
        &w,
        &ny,
        "2026-11-01T00:00:00Z",
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:30:00Z",
    );
    assert_eq!(
        w.next_open(&ny, utc("2026-11-01T05:30:00Z")),
        Some(utc("2026-11-02T06:00:00Z"))
    );
    // Start in the overlap: shut while the turned-back clock reads before
    // the start, open again when it reads the start a second time.
    let w = every_day(hm(1, 30), hm(3, 0));
    assert_opening(
        &w,
        &ny,
        "2026-11-01T00:00:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z",
    );
    assert_opening(
        &w,
        &ny,
        "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z",
        "2026-11-01T08:00:00Z",
    );
    // An end of 02:00 is first read at 02:00 EST: the repeated hour is,
    // by the clock, inside the window both times.
    let w = every_day(hm(1, 0), hm(2, 0));
    assert_opening(
        &w,
        &ny,
        "2026-11-01T00:00:00Z",
        "2026-11-01T05:00:00Z",
        "2026-11-01T07:00:00Z",
    );
    // An ordinary window that day is in EST.
    let w = every_day(hm(9, 0), hm(17, 0));
    assert_opening(
        &w,
        &ny,
        "2026-11-01T00:00:00Z",
        "2026-11-01T14:00:00Z",
        "2026-11-01T22:00:00Z",
    );
}

#[test]
fn london_changes() {
    let lon = [Europe::London];
    // 2026-03-29 01:00 GMT (01:00 UTC) jumps to 02:00 BST.
    let w = every_day(hm(1, 15), hm(1, 45));
    assert_opening(
        &w,
        &lon,
        "2026-03-29T00:00:00Z",
        "2026-03-30T00:15:00Z",
        "2026-03-30T00:45:00Z",
    );
    let w = every_day(hm(0, 30), hm(1, 30));
    assert_opening(
        &w,
        &lon,
        "2026-03-29T00:00:00Z",
        "2026-03-29T00:30:00Z",
        "2026-03-29T01:00:00Z",
    );
    let w = every_day(hm(1, 30), hm(2, 30));
    assert_opening(
        &w,
        &lon,
        "2026-03-29T00:00:00Z",
        "2026-03-29T01:00:00Z",
        "2026-03-29T01:30:00Z",
    );
    // 2026-10-25 02:00 BST (01:00 UTC) goes back to 01:00 GMT.
    let w = every_day(hm(1, 0), hm(1, 30));
    assert_opening(
        &w,
        &lon,
        "2026-10-24T23:00:00Z",
        "2026-10-25T00:00:00Z",
        "2026-10-25T00:30:00Z",
    );
    assert!(
        !w.is_open(&lon, utc("2026-10-25T01:10:00Z")),
        "01:10 GMT, the repeat"
    );
    let w = every_day(hm(0, 30), hm(1, 45));
    assert_opening(
        &w,
        &lon,
        "2026-10-24T23:00:00Z",
        "2026-10-24T23:30:00Z",
        "2026-10-25T00:45:00Z",
    );
    assert_eq!(
        w.next_open(&lon, utc("2026-10-25T00:45:00Z")),
        Some(utc("2026-10-26T00:30:00Z"))
    );
}

#[test]
fn sydney_southern_hemisphere_changes() {
    let syd = [Australia::Sydney];
    // 2026-04-05 03:00 AEDT (16:00 UTC on the 4th) goes back to 02:00 AEST.
    let w = every_day(hm(2, 0), hm(2, 30));
    assert_opening(
        &w,
        &syd,
        "2026-04-04T12:00:00Z",
        "2026-04-04T15:00:00Z",
        "2026-04-04T15:30:00Z",
    );
    assert!(
        !w.is_open(&syd, utc("2026-04-04T16:10:00Z")),
        "02:10 AEST, the repeat"
    );
    let w = every_day(hm(9, 0), hm(17, 0));
    assert_opening(
        &w,
        &syd,
        "2026-04-04T12:00:00Z",
        "2026-04-04T23:00:00Z",
        "2026-04-05T07:00:00Z",
    );
    // 2026-10-04 02:00 AEST (16:00 UTC on the 3rd) jumps to 03:00 AEDT.
    let w = every_day(hm(2, 30), hm(3, 30));
    assert_opening(
        &w,
        &syd,
        "2026-10-03T12:00:00Z",
        "2026-10-03T16:00:00Z",
        "2026-10-03T16:30:00Z",
    );
    // That is a Sunday locally and still Saturday in UTC.
    let sunday =
        CallingWindow::new(hm(2, 30), hm(3, 30), DaySet::from_days([Weekday::Sun])).unwrap();
    assert!(sunday.is_open(&syd, utc("2026-10-03T16:00:00Z")));
    let w = every_day(hm(9, 0), hm(17, 0));
    assert_opening(
        &w,
        &syd,
        "2026-10-03T12:00:00Z",
        "2026-10-03T22:00:00Z",
        "2026-10-04T06:00:00Z",
    );
}

#[test]
fn santiago_changes_at_midnight() {
    let scl = [America::Santiago];
    // Saturday 2026-04-04 24:00 (-03, 03:00 UTC) goes back to 23:00 (-04).
    let w = every_day(hm(23, 0), hm(23, 30));
    assert_opening(
        &w,
        &scl,
        "2026-04-04T12:00:00Z",
        "2026-04-05T02:00:00Z",
        "2026-04-05T02:30:00Z",
    );
    assert!(
        !w.is_open(&scl, utc("2026-04-05T03:10:00Z")),
        "Saturday 23:10 again"
    );
    // Sunday starts only when the clock first reads it, at 04:00 UTC.
    let sunday =
        CallingWindow::new(hm(0, 0), hm(0, 30), DaySet::from_days([Weekday::Sun])).unwrap();
    assert_opening(
        &sunday,
        &scl,
        "2026-04-04T12:00:00Z",
        "2026-04-05T04:00:00Z",
        "2026-04-05T04:30:00Z",
    );
    // Saturday 2026-09-05 24:00 (-04, 04:00 UTC) jumps to Sunday 01:00 (-03).
    assert_opening(
        &sunday,
        &scl,
        "2026-09-05T12:00:00Z",
        "2026-09-13T03:00:00Z",
        "2026-09-13T03:30:00Z",
    );
    let w = CallingWindow::new(hm(0, 30), hm(2, 0), DaySet::from_days([Weekday::Sun])).unwrap();
    assert_opening(
        &w,
        &scl,
        "2026-09-05T12:00:00Z",
        "2026-09-06T04:00:00Z",
        "2026-09-06T05:00:00Z",
    );
}
