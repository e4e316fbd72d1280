//! Every rule of `next_step`, the cap and the jitter bounds.

use chrono::{DateTime, TimeDelta, Utc};

use super::{
    CallOutcome, ContactStatus, DEFAULT_JITTER, DEFAULT_MAX_DELAY, DEFAULT_MULTIPLIER,
    MAX_CALLBACK_AHEAD, MIN_RETRY_DELAY, NextStep, RetryPolicy, next_step,
};

fn now() -> DateTime<Utc> {
    "2026-06-10T12:00:00Z".parse().unwrap()
}

/// A policy without jitter, so delays are exact.
fn exact(base_secs: u32, max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::new(base_secs, max_attempts)
    }
}

fn retry_after(policy: &RetryPolicy, outcome: CallOutcome, attempts: u32) -> TimeDelta {
    match next_step(policy, &outcome, attempts, now(), 0.5) {
        NextStep::RetryAt(at) => at - now(),
        other => panic!("expected a retry, got {other:?}"),
    }
}

const RETRIED: [CallOutcome; 4] = [
    CallOutcome::Busy,
    CallOutcome::NoAnswer,
    CallOutcome::Machine,
    CallOutcome::Failed,
];

#[test]
fn new_uses_the_defaults() {
    let p = RetryPolicy::new(600, 3);
    assert_eq!(p.base_delay, TimeDelta::minutes(10));
    assert_eq!(p.max_attempts, 3);
    assert_eq!(p.multiplier, DEFAULT_MULTIPLIER);
    assert_eq!(p.max_delay, DEFAULT_MAX_DELAY);
    assert_eq!(p.jitter, DEFAULT_JITTER);
    assert_eq!((DEFAULT_MULTIPLIER, DEFAULT_JITTER), (2.0, 0.2));
    assert_eq!(DEFAULT_MAX_DELAY, TimeDelta::hours(24));
}

#[test]
fn final_outcomes() {
    let p = RetryPolicy::new(600, 3);
    for attempts in [0, 1, 2, 3, 100] {
        let step = |o| next_step(&p, &o, attempts, now(), 0.3);
        assert_eq!(
            step(CallOutcome::Completed),
            NextStep::Done {
                status: ContactStatus::Completed
            }
        );
        assert_eq!(
            step(CallOutcome::DoNotCall),
            NextStep::Done {
                status: ContactStatus::Dnc
            }
        );
        assert_eq!(
            step(CallOutcome::Rejected),
            NextStep::Done {
                status: ContactStatus::Failed
            }
        );
    }
}

#[test]
fn retried_outcomes_until_attempts_run_out() {
    let p = RetryPolicy::new(600, 3);
    for outcome in RETRIED {
        for attempts in [1, 2] {
            let step = next_step(&p, &outcome, attempts, now(), 0.5);
            assert_eq!(
                step.status(),
                ContactStatus::Retry,
                "{outcome} after {attempts}"
            );
            assert!(step.retry_at().unwrap() > now());
        }
        for attempts in [3, 4, u32::MAX] {
            assert_eq!(
                next_step(&p, &outcome, attempts, now(), 0.5),
                NextStep::Done {
                    status: ContactStatus::Failed
                },
                "{outcome} after {attempts}"
            );
        }
    }
    // One attempt allowed: the first failure is final.
    let once = RetryPolicy::new(600, 1);
    assert_eq!(
        next_step(&once, &CallOutcome::Busy, 1, now(), 0.5).status(),
        ContactStatus::Failed
    );
    // No attempt allowed at all: nothing is retried.
    let never = RetryPolicy::new(600, 0);
    assert_eq!(
        next_step(&never, &CallOutcome::Busy, 0, now(), 0.5).status(),
        ContactStatus::Failed
    );
}

#[test]
fn backoff_grows_and_is_scaled_per_outcome() {
    let p = exact(600, 10);
    let min = TimeDelta::minutes;
    assert_eq!(retry_after(&p, CallOutcome::NoAnswer, 1), min(10));
    assert_eq!(retry_after(&p, CallOutcome::NoAnswer, 2), min(20));
    assert_eq!(retry_after(&p, CallOutcome::NoAnswer, 3), min(40));
    assert_eq!(retry_after(&p, CallOutcome::Failed, 3), min(40));
    assert_eq!(
        retry_after(&p, CallOutcome::Busy, 1),
        TimeDelta::seconds(150)
    );
    assert_eq!(retry_after(&p, CallOutcome::Busy, 3), min(10));
    assert_eq!(retry_after(&p, CallOutcome::Machine, 1), min(20));
    assert_eq!(retry_after(&p, CallOutcome::Machine, 3), min(80));
    // attempts_made 0 is read as the first attempt.
    assert_eq!(retry_after(&p, CallOutcome::NoAnswer, 0), min(10));
    // A custom multiplier.
    let triple = RetryPolicy {
        multiplier: 3.0,
        ..p
    };
    assert_eq!(retry_after(&triple, CallOutcome::NoAnswer, 3), min(90));
}

#[test]
fn backoff_is_capped() {
    let p = exact(3600, 100);
    assert_eq!(
        retry_after(&p, CallOutcome::NoAnswer, 5),
        TimeDelta::hours(16)
    );
    assert_eq!(
        retry_after(&p, CallOutcome::NoAnswer, 6),
        TimeDelta::hours(24)
    );
    assert_eq!(
        retry_after(&p, CallOutcome::Machine, 5),
        TimeDelta::hours(24)
    );
    assert_eq!(
        retry_after(&p, CallOutcome::NoAnswer, 99),
        TimeDelta::hours(24)
    );
    // Busy is capped too, after scaling.
    assert_eq!(retry_after(&p, CallOutcome::Busy, 7), TimeDelta::hours(16));
    assert_eq!(retry_after(&p, CallOutcome::Busy, 8), TimeDelta::hours(24));
    // The growth overflows f64 long before u32 runs out; still capped.
    let huge = RetryPolicy {
        multiplier: 1e300,
        ..exact(3600, u32::MAX)
    };
    assert_eq!(
        retry_after(&huge, CallOutcome::NoAnswer, 1_000_000),
        TimeDelta::hours(24)
    );
}

#[test]
fn jitter_spreads_within_bounds_and_is_deterministic() {
    let p = RetryPolicy::new(1000, 10); // jitter 0.2
    let at = |unit| {
        next_step(&p, &CallOutcome::NoAnswer, 1, now(), unit)
            .retry_at()
            .unwrap()
            - now()
    };
    assert_eq!(at(0.5), TimeDelta::seconds(1000));
    assert_eq!(at(0.0), TimeDelta::seconds(800));
    assert_eq!(at(0.25), TimeDelta::seconds(900));
    assert_eq!(at(0.75), TimeDelta::seconds(1100));
    assert_eq!(at(0.99), TimeDelta::seconds(1196));
    assert!(at(0.999_999) <= TimeDelta::seconds(1200));
    assert_eq!(at(0.3), at(0.3));
    // Out-of-range or NaN units are clamped, not trusted.
    assert_eq!(at(-5.0), TimeDelta::seconds(800));
    assert_eq!(at(7.0), TimeDelta::seconds(1200));
    assert_eq!(at(f64::NAN), TimeDelta::seconds(1000));
    // Jitter applies after the cap: up to max_delay * (1 + jitter).
    let capped = RetryPolicy::new(86_400, 10);
    let top = next_step(&capped, &CallOutcome::Machine, 5, now(), 1.0)
        .retry_at()
        .unwrap();
    assert_eq!(top - now(), TimeDelta::hours(24) + TimeDelta::minutes(288));
}

#[test]
fn odd_policies_are_made_safe() {
    // A zero base delay still waits the minimum.
    let zero = exact(0, 5);
    assert_eq!(retry_after(&zero, CallOutcome::Busy, 1), MIN_RETRY_DELAY);
    // Full jitter at its low end would be no wait at all.
    let full = RetryPolicy {
        jitter: 1.0,
        ..RetryPolicy::new(600, 5)
    };
    let t = next_step(&full, &CallOutcome::NoAnswer, 1, now(), 0.0)
        .retry_at()
        .unwrap();
    assert_eq!(t - now(), MIN_RETRY_DELAY);
    // Nonsense values do not panic and do not shrink the backoff.
    let odd = RetryPolicy {
        base_delay: TimeDelta::seconds(-50),
        max_attempts: 5,
        multiplier: f64::NAN,
        max_delay: TimeDelta::seconds(-1),
        jitter: f64::NAN,
    };
    assert_eq!(retry_after(&odd, CallOutcome::Machine, 3), MIN_RETRY_DELAY);
    let shrinking = RetryPolicy {
        multiplier: 0.1,
        ..exact(600, 5)
    };
    assert_eq!(
        retry_after(&shrinking, CallOutcome::NoAnswer, 3),
        TimeDelta::minutes(10)
    );
    let negative_jitter = RetryPolicy {
        jitter: -3.0,
        ..exact(600, 5)
    };
    let t = next_step(&negative_jitter, &CallOutcome::NoAnswer, 1, now(), 0.0)
        .retry_at()
        .unwrap();
    assert_eq!(t - now(), TimeDelta::minutes(10));
    // An enormous cap and delay end at the end of time, not in a panic.
    let endless = RetryPolicy {
        base_delay: TimeDelta::MAX,
        max_attempts: 5,
        multiplier: f64::INFINITY,
        max_delay: TimeDelta::MAX,
        jitter: 1.0,
    };
    let step = next_step(&endless, &CallOutcome::Machine, 3, now(), 0.99);
    assert_eq!(step, NextStep::RetryAt(DateTime::<Utc>::MAX_UTC));
    let step = next_step(
        &exact(600, 5),
        &CallOutcome::Busy,
        1,
        DateTime::<Utc>::MAX_UTC,
        0.5,
    );
    assert_eq!(step, NextStep::RetryAt(DateTime::<Utc>::MAX_UTC));
}

#[test]
fn callbacks_are_honoured_even_when_attempts_are_exhausted() {
    let p = RetryPolicy::new(600, 2);
    let later = now() + TimeDelta::hours(3);
    for attempts in [1, 2, 50] {
        let step = next_step(
            &p,
            &CallOutcome::CallbackRequested(later),
            attempts,
            now(),
            0.9,
        );
        assert_eq!(step, NextStep::RetryAt(later), "no jitter, no backoff");
        assert_eq!(step.status(), ContactStatus::Retry);
    }
    // A time already past means now.
    let past = now() - TimeDelta::minutes(5);
    assert_eq!(
        next_step(&p, &CallOutcome::CallbackRequested(past), 1, now(), 0.5),
        NextStep::RetryAt(now())
    );
    // Too far ahead is brought in to the limit.
    let far = now() + TimeDelta::days(400);
    assert_eq!(
        next_step(&p, &CallOutcome::CallbackRequested(far), 1, now(), 0.5),
        NextStep::RetryAt(now() + MAX_CALLBACK_AHEAD)
    );
    let edge = now() + MAX_CALLBACK_AHEAD;
    assert_eq!(
        next_step(&p, &CallOutcome::CallbackRequested(edge), 1, now(), 0.5),
        NextStep::RetryAt(edge)
    );
    // At the end of time nothing overflows.
    let end = DateTime::<Utc>::MAX_UTC;
    assert_eq!(
        next_step(&p, &CallOutcome::CallbackRequested(end), 1, end, 0.5),
        NextStep::RetryAt(end)
    );
}

#[test]
fn next_step_accessors() {
    let done = NextStep::Done {
        status: ContactStatus::Dnc,
    };
    assert_eq!((done.status(), done.retry_at()), (ContactStatus::Dnc, None));
    let retry = NextStep::RetryAt(now());
    assert_eq!(
        (retry.status(), retry.retry_at()),
        (ContactStatus::Retry, Some(now()))
    );
}
