//! Properties over random policies, outcomes and times: retries are always
//! after now, bounded, and a pure function of the arguments.

use chrono::{DateTime, TimeDelta};
use proptest::prelude::*;

use super::{CallOutcome, MAX_CALLBACK_AHEAD, MIN_RETRY_DELAY, NextStep, RetryPolicy, next_step};

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (
        0u32..=2_592_000,
        0u32..=100,
        1.0f64..5.0,
        1i64..=7 * 86_400,
        0.0f64..=1.0,
    )
        .prop_map(
            |(base, attempts, multiplier, max_secs, jitter)| RetryPolicy {
                multiplier,
                max_delay: TimeDelta::seconds(max_secs),
                jitter,
                ..RetryPolicy::new(base, attempts)
            },
        )
}

fn outcome() -> impl Strategy<Value = CallOutcome> {
    prop_oneof![
        Just(CallOutcome::Completed),
        Just(CallOutcome::Busy),
        Just(CallOutcome::NoAnswer),
        Just(CallOutcome::Machine),
        Just(CallOutcome::Failed),
        Just(CallOutcome::Rejected),
        Just(CallOutcome::DoNotCall),
        // Seconds from now, made absolute in the test.
        (-86_400i64 * 60..86_400 * 60)
            .prop_map(|s| CallOutcome::CallbackRequested(DateTime::from_timestamp(s, 0).unwrap())),
    ]
}

proptest! {
    #[test]
    fn retries_are_after_now_and_bounded(
        p in policy(),
        o in outcome(),
        attempts in 0u32..=120,
        offset in 0i64..400_000_000,
        unit in 0.0f64..1.0,
    ) {
        let now = DateTime::from_timestamp(1_700_000_000 + offset, 0).unwrap();
        let o = match o {
            CallOutcome::CallbackRequested(at) => {
                CallOutcome::CallbackRequested(now + (at - DateTime::UNIX_EPOCH))
            }
            other => other,
        };
        let step = next_step(&p, &o, attempts, now, unit);
        prop_assert_eq!(step, next_step(&p, &o, attempts, now, unit), "deterministic");
        match (o, step) {
            (CallOutcome::CallbackRequested(asked), NextStep::RetryAt(t)) => {
                prop_assert!(t >= now);
                prop_assert!(t <= now + MAX_CALLBACK_AHEAD);
                prop_assert!(t == asked || asked < now || asked > now + MAX_CALLBACK_AHEAD);
            }
            (_, NextStep::RetryAt(t)) => {
                prop_assert!(o.retry_factor().is_some());
                prop_assert!(attempts < p.max_attempts);
                prop_assert!(t > now);
                let bound = (p.max_delay.num_milliseconds() as f64 * (1.0 + p.jitter)).ceil() as i64;
                prop_assert!(t - now <= TimeDelta::milliseconds(bound).max(MIN_RETRY_DELAY));
                // Unjittered it would be within the jitter fraction of this.
                let plain = p.delay(&o, attempts, 0.5).unwrap();
                let spread = plain.num_milliseconds() as f64 * p.jitter + 1.0;
                let diff = ((t - now) - plain).num_milliseconds().abs() as f64;
                prop_assert!(diff <= spread || t - now == MIN_RETRY_DELAY);
            }
            (_, NextStep::Done { status }) => {
                prop_assert!(status.is_final());
                prop_assert!(o.retry_factor().is_none() || attempts >= p.max_attempts);
            }
        }
    }
}
