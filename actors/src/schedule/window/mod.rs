//! Calling windows in the contact's own time zone.
//!
//! A campaign may only call between a local start and end time on some
//! weekdays, and "local" means the contact's zone, not the server's or the
//! campaign owner's. The principle throughout: never call outside the window
//! as the contact experiences it on their wall clock.
//!
//! # The rule, exactly
//!
//! In one zone the window is open at instant `t` when both hold:
//!
//! 1. the contact's clock at `t` reads a time in `[start, end)` on a date
//!    whose weekday is in `days`; and
//! 2. the clock has not already read `end` (or later) on that date.
//!
//! Converting an instant to local time is unambiguous, so rule 1 is a plain
//! check. Rule 2 only matters on days the clocks go back. What follows for
//! daylight-saving changes:
//!
//! * **Spring forward (gap).** Local times in the gap never appear on the
//!   clock. A window starting in the gap (02:30 when 02:00 jumps to 03:00)
//!   opens when the clock jumps, at 03:00 local, the first instant it reads
//!   past the start. A window ending in the gap closes at the jump. A window
//!   lying wholly inside the gap (02:10–02:50) does not open that day.
//! * **Fall back (overlap).** Local times in the overlap appear twice. The
//!   window ends at the *first* time the clock reads `end`; when the hour
//!   repeats the window stays shut (rule 2), so it is never longer than
//!   intended. A window *starting* in the overlap opens at the first reading
//!   of `start`; when the clock is turned back before `start` it is shut
//!   (the clock reads before the start: rule 1) and reopens when the clock
//!   reads `start` again. Example, New York 2026-11-01, window 01:30–03:00:
//!   open 01:30–02:00 EDT, shut 01:00–01:30 EST, open 01:30–03:00 EST.
//!
//! # Several zones
//!
//! A number whose zone is unknown but narrowed to candidates (all US zones
//! for a +1 number, say) is given all of them, and the window is open only
//! when it is open in every one: the most restrictive reading. An empty
//! slice means "zone unknown": the window is never open, and the caller
//! must decide what to do with such contacts (skip them, or pass a default
//! zone explicitly).
//!
//! # Exactness
//!
//! The open instants are computed as exact intervals (from the zones' real
//! offset transitions, see `zone`), not by sampling, so [`CallingWindow::next_open`]
//! and [`CallingWindow::closes_at`] return the very instant the state
//! changes, and agree with [`CallingWindow::is_open`] to the nanosecond.

mod days;
mod interval;
mod zone;

#[cfg(test)]
mod dst_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

pub use days::DaySet;
use interval::{Interval, intersect, normalise};

/// How far ahead [`CallingWindow::next_open`] looks before giving up. Two
/// weeks covers every weekly window plus a DST change; a window that does
/// not open in that time (zones whose windows never overlap) never will.
pub const SEARCH_DAYS: i64 = 14;

/// Why a calling window could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The `window_days` value has bits beyond the seven weekdays.
    #[error("window days {0} is not a set of weekdays (expected 0..=127)")]
    DayBitsOutOfRange(i16),
    /// A window open on no day would never let a call through.
    #[error("a calling window needs at least one day")]
    NoDays,
    /// Windows may not span midnight, so the start must come first.
    #[error("window start {start} is not before its end {end}")]
    StartNotBeforeEnd {
        /// The start that was given.
        start: NaiveTime,
        /// The end that was given.
        end: NaiveTime,
    },
}

/// When a campaign may call: from `start` to `end` (local wall-clock time in
/// the contact's zone, end excluded) on `days`. See the module docs for the
/// exact rule, daylight-saving changes included.
///
/// The fields are public so callers can read them; build with
/// [`CallingWindow::new`] to have them checked. A window built by hand with
/// `start >= end` or no days is simply never open (nothing panics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallingWindow {
    /// First local time of day at which calls may be placed.
    pub start: NaiveTime,
    /// Local time of day from which calls may no longer be placed.
    pub end: NaiveTime,
    /// The local weekdays on which the window opens.
    pub days: DaySet,
}

impl CallingWindow {
    /// A window from `start` to `end` on `days`. Refused when it could never
    /// open or would span midnight: `start` must be before `end` and `days`
    /// must not be empty.
    pub fn new(start: NaiveTime, end: NaiveTime, days: DaySet) -> Result<Self, WindowError> {
        if start >= end {
            return Err(WindowError::StartNotBeforeEnd { start, end });
        }
        if days.is_empty() {
            return Err(WindowError::NoDays);
        }
        Ok(CallingWindow { start, end, days })
    }

    /// Whether a contact may be called at `at`: the window is open in every
    /// zone of `zones`. An empty slice means the zone is unknown, and the
    /// answer is `false`.
    pub fn is_open(&self, zones: &[Tz], at: DateTime<Utc>) -> bool {
        if zones.is_empty() || !zones.iter().all(|tz| self.clock_reads_open(*tz, at)) {
            return false;
        }
        self.openings(zones, at, at)
            .is_some_and(|spans| spans.iter().any(|s| s.contains(at)))
    }

    /// The earliest instant `t >= at` at which [`Self::is_open`] holds, or
    /// `None` when there is none within [`SEARCH_DAYS`] days (or `zones` is
    /// empty). Returns `at` itself when the window is open at `at`.
    pub fn next_open(&self, zones: &[Tz], at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if zones.is_empty() {
            return None;
        }
        let horizon = at.checked_add_signed(TimeDelta::days(SEARCH_DAYS))?;
        let spans = self.openings(zones, at, horizon)?;
        let first = spans.iter().find(|s| s.end > at)?;
        let t = first.start.max(at);
        (t <= horizon).then_some(t)
    }

    /// When the opening that contains `at` ends: the first instant after
    /// `at` at which [`Self::is_open`] is false. `None` when the window is
    /// closed at `at`.
    pub fn closes_at(&self, zones: &[Tz], at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.is_open(zones, at) {
            return None;
        }
        let horizon = at.checked_add_signed(TimeDelta::days(SEARCH_DAYS))?;
        let spans = self.openings(zones, at, horizon)?;
        spans.iter().find(|s| s.contains(at)).map(|s| s.end)
    }

    /// Rule 1 alone, for one zone: a cheap necessary condition.
    fn clock_reads_open(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        let Some(local) = at.naive_utc().checked_add_signed(zone::offset_at(tz, at)) else {
            return false;
        };
        let time = local.time();
        self.days.contains(chrono::Datelike::weekday(&local))
            && self.start <= time
            && time < self.end
    }

    /// Every instant in `[from, to]` (and possibly some around it) at which
    /// the window is open in all `zones`, as sorted, disjoint intervals.
    /// `None` only when the range leaves chrono's time line.
    fn openings(
        &self,
        zones: &[Tz],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Option<Vec<Interval>> {
        let mut common: Option<Vec<Interval>> = None;
        for tz in zones {
            let spans = self.zone_openings(*tz, from, to)?;
            common = Some(match common {
                None => spans,
                Some(acc) => intersect(&acc, &spans),
            });
        }
        common
    }

    /// The window's openings in one zone covering `[from, to]`.
    ///
    /// Offsets are below a day, so an instant's local date is its UTC date
    /// give or take one: the local dates from `from`'s UTC date − 1 to
    /// `to`'s + 1 cover the range, and the instants with those local dates
    /// lie within three days of it, which is how far offsets are read.
    fn zone_openings(
        &self,
        tz: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Option<Vec<Interval>> {
        let margin = TimeDelta::days(3);
        let seg_end = to.checked_add_signed(margin)?;
        let segs = zone::segments(tz, from.checked_sub_signed(margin)?, seg_end)?;
        let first_day = from.date_naive().pred_opt()?;
        let last_day = to.date_naive().succ_opt()?;
        let mut spans = Vec::new();
        let mut day: NaiveDate = first_day;
        while day <= last_day {
            if self.days.contains(chrono::Datelike::weekday(&day)) {
                zone::day_openings(&segs, seg_end, day, self.start, self.end, &mut spans)?;
            }
            day = day.succ_opt()?;
        }
        Some(normalise(spans))
    }
}
