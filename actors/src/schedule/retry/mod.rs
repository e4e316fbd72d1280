//! What happens to a contact after a call: finished with, or tried again
//! and when.
//!
//! # Rules ([`next_step`])
//!
//! * `Completed` → done, status `completed`.
//! * `DoNotCall` → done, status `dnc`.
//! * `Rejected` → done, status `failed`: the callee declined, and calling
//!   again would be pestering.
//! * `Busy`, `NoAnswer`, `Machine`, `Failed` → tried again while
//!   `attempts_made < max_attempts`, otherwise done with status `failed`.
//!   The delay is `base_delay × multiplier^(attempts_made − 1)`, scaled by
//!   the outcome ([`CallOutcome::retry_factor`]: busy ×0.25, no answer ×1,
//!   machine ×2, failed ×1), capped at `max_delay`, then spread by
//!   ±`jitter` (so a batch that failed together does not retry together).
//!   It is never under [`MIN_RETRY_DELAY`], so a retry is always strictly
//!   later than `now`, and never over `max_delay × (1 + jitter)`.
//! * `CallbackRequested(at)` → tried again at `at` (or `now` if `at` has
//!   passed), even when attempts are exhausted, because the callee asked;
//!   but never more than [`MAX_CALLBACK_AHEAD`] from now.
//!
//! Randomness comes from the caller (`jitter_unit`), so the result is a
//! pure function of the arguments.

mod outcome;
mod status;

#[cfg(test)]
mod names_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use chrono::{DateTime, TimeDelta, Utc};

pub use outcome::{CallOutcome, ParseOutcomeError};
pub use status::{ContactStatus, UnknownStatus};

/// Backoff growth per attempt unless configured otherwise: each retry waits
/// twice as long as the one before.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Longest backoff (before jitter) unless configured otherwise: a day, so
/// a contact is still tried at a different time of day each day.
pub const DEFAULT_MAX_DELAY: TimeDelta = TimeDelta::hours(24);
/// Spread of retries unless configured otherwise: ±20 %.
pub const DEFAULT_JITTER: f64 = 0.2;
/// Shortest wait before a retry, so it is always after the call that led
/// to it, even with a zero base delay.
pub const MIN_RETRY_DELAY: TimeDelta = TimeDelta::seconds(1);
/// Furthest ahead a requested callback is honoured; a callback asked for
/// later than this is placed at this distance instead.
pub const MAX_CALLBACK_AHEAD: TimeDelta = TimeDelta::days(30);

/// How a campaign retries unanswered calls.
///
/// The fields are public so a campaign's settings can be mapped in
/// directly; out-of-range values are made safe when used, never a panic:
/// negative delays count as zero, a multiplier below 1 (or NaN) as 1
/// (backoff never shrinks), a jitter outside `0..=1` (or NaN) is clamped
/// (NaN as 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Wait after the first failed attempt (`retry_backoff_secs`).
    pub base_delay: TimeDelta,
    /// Attempts in all, the first included, before giving up.
    pub max_attempts: u32,
    /// Growth of the wait per further attempt.
    pub multiplier: f64,
    /// Longest wait before jitter, however many attempts were made.
    pub max_delay: TimeDelta,
    /// Fraction of the wait by which it is randomly lengthened or
    /// shortened, `0..=1`.
    pub jitter: f64,
}

/// What to do with a contact after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Never dial it again; store this status.
    Done {
        /// The final status to store.
        status: ContactStatus,
    },
    /// Dial it again at this instant (status `retry`, `next_attempt_at`).
    /// The calling window still applies: the campaign dials it at the
    /// first open instant from then on.
    RetryAt(DateTime<Utc>),
}

impl NextStep {
    /// The contact status to store: `retry` for a retry.
    pub fn status(&self) -> ContactStatus {
        match self {
            NextStep::Done { status } => *status,
            NextStep::RetryAt(_) => ContactStatus::Retry,
        }
    }

    /// When to dial again, if ever.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            NextStep::Done { .. } => None,
            NextStep::RetryAt(at) => Some(*at),
        }
    }
}

impl RetryPolicy {
    /// A policy from a campaign's settings (`retry_backoff_secs`,
    /// `max_attempts`), with the default multiplier, cap and jitter.
    pub fn new(base_delay_secs: u32, max_attempts: u32) -> Self {
        RetryPolicy {
            base_delay: TimeDelta::seconds(i64::from(base_delay_secs)),
            max_attempts,
            multiplier: DEFAULT_MULTIPLIER,
            max_delay: DEFAULT_MAX_DELAY,
            jitter: DEFAULT_JITTER,
        }
    }

    /// The wait before retrying after `outcome` on attempt `attempts_made`
    /// (1 for the first call), or `None` when the outcome is not retried by
    /// backoff. Ignores `max_attempts`; [`next_step`] applies it.
    /// `jitter_unit` is the caller's random number in `[0, 1)`: 0 gives the
    /// shortest wait, 0.5 the unjittered one (NaN counts as 0.5).
    pub fn delay(
        &self,
        outcome: &CallOutcome,
        attempts_made: u32,
        jitter_unit: f64,
    ) -> Option<TimeDelta> {
        let factor = outcome.retry_factor()?;
        let base = seconds(self.base_delay).max(0.0);
        let cap = seconds(self.max_delay).max(0.0);
        let multiplier = if self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let grown = if base == 0.0 {
            0.0
        } else {
            base * multiplier.powf(f64::from(attempts_made.saturating_sub(1))) * factor
        };
        let capped = grown.min(cap);
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let unit = if jitter_unit.is_nan() {
            0.5
        } else {
            jitter_unit.clamp(0.0, 1.0)
        };
        let jittered = capped * (1.0 + jitter * (2.0 * unit - 1.0));
        // `as` saturates, and try_milliseconds refuses what TimeDelta cannot
        // hold: either way the longest representable wait.
        let millis = (jittered * 1000.0).round() as i64;
        let delay = TimeDelta::try_milliseconds(millis).unwrap_or(TimeDelta::MAX);
        Some(delay.max(MIN_RETRY_DELAY))
    }
}

/// What to do with a contact whose call just ended with `outcome`, after
/// `attempts_made` attempts (this call included), at `now`. See the module
/// docs for the rules. `jitter_unit` is the caller's random number in
/// `[0, 1)`; the same arguments always give the same answer.
pub fn next_step(
    policy: &RetryPolicy,
    outcome: &CallOutcome,
    attempts_made: u32,
    now: DateTime<Utc>,
    jitter_unit: f64,
) -> NextStep {
    let done = |status| NextStep::Done { status };
    match outcome {
        CallOutcome::Completed => done(ContactStatus::Completed),
        CallOutcome::DoNotCall => done(ContactStatus::Dnc),
        CallOutcome::Rejected => done(ContactStatus::Failed),
        CallOutcome::CallbackRequested(at) => {
            let latest = now
                .checked_add_signed(MAX_CALLBACK_AHEAD)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            NextStep::RetryAt((*at).max(now).min(latest))
        }
        CallOutcome::Busy | CallOutcome::NoAnswer | CallOutcome::Machine | CallOutcome::Failed => {
            if attempts_made >= policy.max_attempts {
                return done(ContactStatus::Failed);
            }
            match policy.delay(outcome, attempts_made, jitter_unit) {
                Some(delay) => NextStep::RetryAt(
                    now.checked_add_signed(delay)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                ),
                None => done(ContactStatus::Failed),
            }
        }
    }
}

/// A duration in (fractional) seconds, to millisecond precision.
fn seconds(d: TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}
