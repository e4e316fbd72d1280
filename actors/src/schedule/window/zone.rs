//! A zone's UTC offsets over a stretch of time, found exactly, and the
//! instants at which a window is open on one local date in that zone.
//!
//! chrono-tz answers "what is the offset at this instant" but does not list
//! its transitions, so they are found here: the offset is probed every
//! [`PROBE`] and, where two probes differ, the change is located to the
//! second by bisection (tzdb transitions fall on whole seconds). This is
//! exact as long as a zone never changes its offset twice within one probe
//! step, which holds for every zone in tzdb (the closest real transitions
//! are weeks apart).

use chrono::{DateTime, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::interval::Interval;

/// How far apart the offset is probed when looking for transitions.
const PROBE: TimeDelta = TimeDelta::hours(1);

/// A stretch of time during which a zone's UTC offset does not change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    /// The first instant of the stretch (a transition, or the start of the
    /// range asked for).
    pub from: DateTime<Utc>,
    /// Local time minus UTC during the stretch.
    pub offset: TimeDelta,
}

/// The offset of `tz` at `at` (local minus UTC).
pub(super) fn offset_at(tz: Tz, at: DateTime<Utc>) -> TimeDelta {
    let secs = tz
        .offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc();
    TimeDelta::seconds(i64::from(secs))
}

/// The offsets of `tz` from `from` to `to`, one segment per offset in force,
/// in time order. `None` only when the range leaves chrono's time line.
pub(super) fn segments(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Vec<Segment>> {
    let first = Segment {
        from,
        offset: offset_at(tz, from),
    };
    let mut segs = vec![first];
    let mut probe = from;
    let mut offset = first.offset;
    while probe < to {
        let next = probe.checked_add_signed(PROBE)?.min(to);
        let next_offset = offset_at(tz, next);
        if next_offset != offset {
            let change = find_change(tz, probe, offset, next)?;
            segs.push(Segment {
                from: change,
                offset: offset_at(tz, change),
            });
            offset = next_offset;
        }
        probe = next;
    }
    Some(segs)
}

/// The whole second in `(before, after]` at which the offset stops being
/// `offset`, by bisection. Offsets change on whole seconds, so the offset at
/// `floor(before)` is the offset at `before`, and likewise for `after`.
fn find_change(
    tz: Tz,
    before: DateTime<Utc>,
    offset: TimeDelta,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut lo = before.timestamp();
    let mut hi = after.timestamp();
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, DateTime::from_timestamp(mid, 0)?) == offset {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// `local` read in a stretch whose offset is `offset`, as a UTC instant.
fn instant(local: chrono::NaiveDateTime, offset: TimeDelta) -> Option<DateTime<Utc>> {
    Some(local.checked_sub_signed(offset)?.and_utc())
}

/// Appends to `out` the instants at which the window `[start, end)` is open
/// on the local date `day`, given the zone's offsets `segs` (which end at
/// `range_end`). The rule, applied exactly:
///
/// * the contact's clock reads a time in `[start, end)` on `day`; and
/// * the clock has not yet read `end` (or later) on `day`: once the window
///   has ended, it stays shut for the rest of the date even if the clocks
///   are turned back (fall-back overlap), so it is never longer than meant.
///
/// Within one segment the clock runs with the offset, so the first rule is a
/// plain interval; the second cuts everything from the first instant the
/// clock reaches `day` + `end`.
pub(super) fn day_openings(
    segs: &[Segment],
    range_end: DateTime<Utc>,
    day: NaiveDate,
    start: NaiveTime,
    end: NaiveTime,
    out: &mut Vec<Interval>,
) -> Option<()> {
    let local_start = day.and_time(start);
    let local_end = day.and_time(end);
    let stretches = segs.iter().enumerate().map(|(i, seg)| {
        let until = segs.get(i + 1).map_or(range_end, |next| next.from);
        (seg, until)
    });

    // The first instant at which the clock reads `end` or later on `day`.
    let mut ended = range_end;
    for (seg, until) in stretches.clone() {
        let reach = instant(local_end, seg.offset)?.max(seg.from);
        if reach < until {
            ended = reach;
            break;
        }
    }

    for (seg, until) in stretches {
        let open = instant(local_start, seg.offset)?.max(seg.from);
        let close = instant(local_end, seg.offset)?.min(until).min(ended);
        if open < close {
            out.push(Interval {
                start: open,
                end: close,
            });
        }
    }
    Some(())
}
