//! A calls-per-second limiter for the DialerActor: a token bucket that
//! holds up to `burst` tokens, refills at `rate_per_sec`, and spends one
//! token per call placed.
//!
//! It is kept in the equivalent "virtual scheduling" form (GCRA): instead
//! of a fractional token count it remembers the instant at which the bucket
//! will be full again, and every sum is on whole nanoseconds. So there is
//! no rounding drift: over any span of length `T`, however the calls are
//! timed, at most `burst + rate × T` calls get through, and
//! [`TokenBucket::next_available`] is exactly the instant
//! [`TokenBucket::try_take`] first succeeds.
//!
//! The bucket is told the time (`now`) and never reads a clock. If `now`
//! goes backwards (earlier than a `now` already seen) it is taken as the
//! latest `now` seen: no time has passed, so nothing refills, and nothing
//! panics.

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

/// Below this rate (one call per ~32 years) the bucket is treated as
/// never refilling, which keeps every sum within `Duration`'s range.
pub const MIN_RATE_PER_SEC: f64 = 1e-9;

/// How far ahead [`TokenBucket::next_available`] answers when the bucket is
/// empty and never refills (rate 0): a year, as good as never, yet an
/// instant a caller can still sleep until (it should re-ask after
/// [`TokenBucket::set_rate`] anyway).
pub const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// A calls-per-second limiter. See the module docs.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// The rate as asked for (after making it safe), for reporting.
    rate_per_sec: f64,
    /// Most tokens held at once; at least 1.
    burst: u32,
    /// How the bucket refills.
    refill: Refill,
    /// The latest `now` seen; an earlier one is read as this.
    latest: Instant,
}

/// The bucket's state, depending on whether it refills.
#[derive(Clone, Copy, Debug)]
enum Refill {
    /// One token per `interval`. `full_at` is when the bucket is (or was)
    /// full: each token taken pushes it one interval later, so the tokens
    /// held at `now` are `burst − (full_at − now) / interval`.
    Every {
        interval: Duration,
        full_at: Instant,
    },
    /// No refill (rate 0): what is left is all there is.
    Never { tokens: u32 },
}

impl TokenBucket {
    /// A bucket for `rate_per_sec` calls a second with bursts of up to
    /// `burst`, full at `now`. A rate that is negative, NaN or below
    /// [`MIN_RATE_PER_SEC`] means no refill; an infinite rate means no
    /// limit. A burst of 0 is taken as 1, since a bucket that cannot hold a
    /// token would never let a call through.
    pub fn new(rate_per_sec: f64, burst: u32, now: Instant) -> Self {
        let burst = burst.max(1);
        let (rate_per_sec, refill) = match interval(rate_per_sec) {
            Some((rate, interval)) => (
                rate,
                Refill::Every {
                    interval,
                    full_at: now,
                },
            ),
            None => (0.0, Refill::Never { tokens: burst }),
        };
        TokenBucket {
            rate_per_sec,
            burst,
            refill,
            latest: now,
        }
    }

    /// Spends a token if one is available at `now`: `true` means place the
    /// call, `false` means wait (see [`Self::next_available`]).
    pub fn try_take(&mut self, now: Instant) -> bool {
        let now = self.observe(now);
        match &mut self.refill {
            Refill::Never { tokens } => {
                if *tokens == 0 {
                    return false;
                }
                *tokens -= 1;
                true
            }
            Refill::Every { interval, full_at } => {
                // Taking moves "full" one interval later; allowed while that
                // stays within the burst: full_at' − now <= burst × interval.
                let Some(next_full) = (*full_at).max(now).checked_add(*interval) else {
                    return false;
                };
                let Some(limit) = interval
                    .checked_mul(self.burst)
                    .and_then(|d| now.checked_add(d))
                else {
                    return false;
                };
                if next_full <= limit {
                    *full_at = next_full;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// The first instant, at or after `now`, at which [`Self::try_take`]
    /// would succeed: `now` when a token is available, `now + NEVER` when
    /// the bucket is empty and does not refill.
    pub fn next_available(&self, now: Instant) -> Instant {
        match self.refill {
            Refill::Never { tokens } if tokens > 0 => now,
            Refill::Never { .. } => now.checked_add(NEVER).unwrap_or(now),
            Refill::Every { interval, full_at } => {
                // Solve full_at + interval − t <= burst × interval for t.
                let ahead = interval.checked_mul(self.burst - 1);
                match ahead.and_then(|d| full_at.checked_sub(d)) {
                    Some(earliest) if earliest > now.max(self.latest) => earliest,
                    _ => now,
                }
            }
        }
    }

    /// Changes the rate from `now` on, keeping the tokens held (and, when
    /// both rates refill, the progress towards the next one) so a change
    /// never grants a fresh burst. Rates are made safe as in [`Self::new`].
    pub fn set_rate(&mut self, rate_per_sec: f64, now: Instant) {
        let now = self.observe(now);
        let new = interval(rate_per_sec);
        self.rate_per_sec = new.map_or(0.0, |(rate, _)| rate);
        self.refill = match (self.refill, new) {
            (Refill::Every { interval, full_at }, Some((_, new_interval))) => {
                let missing = full_at.saturating_duration_since(now);
                // At most an empty bucket's worth, should the sum overflow.
                let empty = new_interval.saturating_mul(self.burst);
                let rescaled = scale(missing, new_interval, interval).unwrap_or(empty);
                Refill::Every {
                    interval: new_interval,
                    full_at: now.checked_add(rescaled).unwrap_or(full_at),
                }
            }
            (Refill::Every { .. }, None) => Refill::Never {
                tokens: self.available(now),
            },
            (Refill::Never { tokens }, Some((_, new_interval))) => {
                let missing = new_interval
                    .checked_mul(self.burst - tokens.min(self.burst))
                    .unwrap_or(Duration::MAX);
                Refill::Every {
                    interval: new_interval,
                    full_at: now.checked_add(missing).unwrap_or(now),
                }
            }
            (never @ Refill::Never { .. }, None) => never,
        };
    }

    /// Whole tokens available at `now`: how many calls could be placed at
    /// once.
    pub fn available(&self, now: Instant) -> u32 {
        let now = now.max(self.latest);
        match self.refill {
            Refill::Never { tokens } => tokens,
            Refill::Every { interval, .. } if interval.is_zero() => self.burst,
            Refill::Every { interval, full_at } => {
                let missing = full_at.saturating_duration_since(now).as_nanos();
                let whole = missing.div_ceil(interval.as_nanos());
                let missing_tokens = u32::try_from(whole).unwrap_or(u32::MAX);
                self.burst.saturating_sub(missing_tokens)
            }
        }
    }

    /// The rate in force, in calls a second (0 when it does not refill).
    pub fn rate_per_sec(&self) -> f64 {
        self.rate_per_sec
    }

    /// The most calls that can be placed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Records `now` and returns the time to use: never earlier than the
    /// latest `now` seen.
    fn observe(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }
}

/// A safe rate and the time between tokens at that rate, rounded up to the
/// nanosecond (so the effective rate never exceeds the one asked for), or
/// `None` when the bucket should not refill.
fn interval(rate_per_sec: f64) -> Option<(f64, Duration)> {
    if rate_per_sec.is_nan() || rate_per_sec < MIN_RATE_PER_SEC {
        return None;
    }
    let nanos = (1e9 / rate_per_sec).ceil();
    // 1e9 / MIN_RATE_PER_SEC = 1e18 nanoseconds fits a u64; `as` saturates.
    Some((rate_per_sec, Duration::from_nanos(nanos as u64)))
}

/// `d × num / den` on nanoseconds, rounded up (0 when `den` is 0), or
/// `None` if it overflows.
fn scale(d: Duration, num: Duration, den: Duration) -> Option<Duration> {
    let den = den.as_nanos();
    if den == 0 {
        return Some(Duration::ZERO);
    }
    let nanos = d.as_nanos().checked_mul(num.as_nanos())?.div_ceil(den);
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}
