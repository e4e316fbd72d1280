//! Burst then steady rate, rate changes, odd rates, time going backwards,
//! and the rate bound over random take attempts.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{NEVER, TokenBucket};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Takes until refused, counting.
fn drain(b: &mut TokenBucket, now: Instant) -> u32 {
    let mut n = 0;
    while b.try_take(now) {
        n += 1;
        assert!(n <= 1_000_000, "bucket never ran dry");
    }
    n
}

#[test]
fn burst_then_steady_rate() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(10.0, 5, t0);
    assert_eq!(b.available(t0), 5);
    assert_eq!(b.next_available(t0), t0);
    assert_eq!(drain(&mut b, t0), 5);
    assert_eq!(b.available(t0), 0);
    assert_eq!(b.next_available(t0), t0 + ms(100));
    assert!(!b.try_take(t0 + ms(99)));
    assert!(b.try_take(t0 + ms(100)));
    assert!(!b.try_take(t0 + ms(100)));
    // Steady: one every 100 ms, exactly when next_available says.
    let mut now = t0 + ms(100);
    for i in 0..100 {
        let next = b.next_available(now);
        assert_eq!(next, t0 + ms(200 + 100 * i));
        assert!(!b.try_take(next - Duration::from_nanos(1)));
        assert!(b.try_take(next));
        now = next;
    }
    // Idle long enough and the burst is back, but no more.
    let later = now + Duration::from_secs(60);
    assert_eq!(b.available(later), 5);
    assert_eq!(drain(&mut b, later), 5);
}

#[test]
fn partial_refill() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(2.0, 4, t0);
    assert_eq!(drain(&mut b, t0), 4);
    assert_eq!(b.available(t0 + ms(1_250)), 2);
    assert_eq!(drain(&mut b, t0 + ms(1_250)), 2);
    // Half a token was already earned: the next one is 250 ms on.
    assert_eq!(b.next_available(t0 + ms(1_250)), t0 + ms(1_500));
}

#[test]
fn fractional_rates_round_the_interval_up() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(3.0, 1, t0);
    assert!(b.try_take(t0));
    // 1/3 s is 333_333_333.3 ns: the bucket waits 333_333_334 ns.
    assert_eq!(b.next_available(t0), t0 + Duration::from_nanos(333_333_334));
    let mut slow = TokenBucket::new(0.5, 1, t0);
    assert!(slow.try_take(t0));
    assert_eq!(slow.next_available(t0), t0 + Duration::from_secs(2));
}

#[test]
fn rate_zero_never_refills() {
    let t0 = Instant::now();
    for rate in [0.0, -1.0, f64::NAN, 1e-12, f64::NEG_INFINITY] {
        let mut b = TokenBucket::new(rate, 3, t0);
        assert_eq!(b.rate_per_sec(), 0.0);
        assert_eq!(b.next_available(t0), t0);
        assert_eq!(drain(&mut b, t0), 3);
        assert_eq!(b.next_available(t0), t0 + NEVER);
        let much_later = t0 + Duration::from_secs(10 * 365 * 24 * 3600);
        assert!(!b.try_take(much_later));
        assert_eq!(b.available(much_later), 0);
    }
}

#[test]
fn infinite_rate_is_unlimited() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(f64::INFINITY, 2, t0);
    for _ in 0..1000 {
        assert!(b.try_take(t0));
    }
    assert_eq!(b.next_available(t0), t0);
    assert_eq!(b.available(t0), 2);
}

#[test]
fn burst_zero_is_one() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(1.0, 0, t0);
    assert_eq!(b.burst(), 1);
    assert!(b.try_take(t0));
    assert!(!b.try_take(t0));
    assert!(b.try_take(t0 + Duration::from_secs(1)));
}

#[test]
fn time_going_backwards_neither_panics_nor_refills() {
    let t0 = Instant::now();
    let t10 = t0 + Duration::from_secs(10);
    let mut b = TokenBucket::new(1.0, 3, t10);
    // Earlier than creation: read as t10, the bucket is full.
    assert_eq!(b.available(t0), 3);
    assert_eq!(b.next_available(t0), t0);
    assert_eq!(drain(&mut b, t0), 3);
    // Going back further does not refill.
    assert!(!b.try_take(t0));
    assert_eq!(b.available(t0), 0);
    assert_eq!(b.next_available(t0), t10 + Duration::from_secs(1));
    // Time then resumes from the latest seen.
    assert!(!b.try_take(t10 + ms(999)));
    assert!(b.try_take(t10 + Duration::from_secs(1)));
    assert!(!b.try_take(t0));
    // set_rate at an earlier instant does not refill either.
    b.set_rate(100.0, t0);
    assert!(!b.try_take(t0));
    b.set_rate(0.0, t0);
    assert_eq!(b.available(t0), 0);
}

#[test]
fn set_rate_keeps_tokens_and_progress() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(10.0, 5, t0);
    assert_eq!(drain(&mut b, t0), 5);
    // Halfway to the next token when the rate halves: still halfway.
    b.set_rate(5.0, t0 + ms(50));
    assert_eq!(b.rate_per_sec(), 5.0);
    assert_eq!(b.next_available(t0 + ms(50)), t0 + ms(150));
    // No fresh burst from a rate change.
    b.set_rate(1000.0, t0 + ms(150));
    assert_eq!(b.available(t0 + ms(150)), 1);
    // Stopping keeps what is held; restarting refills from there.
    let mut b = TokenBucket::new(10.0, 5, t0);
    assert!(b.try_take(t0));
    assert!(b.try_take(t0));
    b.set_rate(0.0, t0 + ms(50));
    assert_eq!(
        b.available(t0 + ms(50)),
        3,
        "the half-earned token is dropped"
    );
    assert_eq!(b.available(t0 + Duration::from_secs(100)), 3);
    b.set_rate(1.0, t0 + Duration::from_secs(100));
    assert_eq!(drain(&mut b, t0 + Duration::from_secs(100)), 3);
    assert_eq!(
        b.next_available(t0 + Duration::from_secs(100)),
        t0 + Duration::from_secs(101)
    );
    // Zero to zero is a no-op.
    let mut z = TokenBucket::new(0.0, 2, t0);
    z.set_rate(0.0, t0);
    assert_eq!(z.available(t0), 2);
}

/// Attempts: (nanoseconds since the previous attempt, how many to try).
fn attempts() -> impl Strategy<Value = Vec<(u64, u8)>> {
    let gap = prop_oneof![Just(0u64), 0u64..1_000_000, 0u64..3_000_000_000];
    prop::collection::vec((gap, 1u8..4), 1..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn never_more_than_burst_plus_rate_times_t(
        rate in prop_oneof![0.01f64..1.0, 1.0f64..50.0, 50.0f64..5_000.0],
        burst in 1u32..20,
        steps in attempts(),
    ) {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(rate, burst, t0);
        let mut now = t0;
        let mut taken: Vec<Instant> = Vec::new();
        for (gap, tries) in steps {
            now += Duration::from_nanos(gap);
            for _ in 0..tries {
                let next = b.next_available(now);
                prop_assert!(next >= now);
                let ok = b.clone().try_take(now);
                prop_assert_eq!(ok, next == now, "next_available agrees with try_take");
                if !ok {
                    let mut probe = b.clone();
                    prop_assert!(probe.try_take(next), "a token at next_available");
                    prop_assert!(!b.clone().try_take(next - Duration::from_nanos(1)));
                }
                if b.try_take(now) {
                    taken.push(now);
                }
            }
        }
        // The worst windows start and end on a take.
        for i in 0..taken.len() {
            for j in i..taken.len() {
                let span = taken[j].duration_since(taken[i]).as_secs_f64();
                let count = (j - i + 1) as f64;
                prop_assert!(
                    count <= f64::from(burst) + rate * span + 1e-6,
                    "{} takes in {}s at rate {} burst {}", count, span, rate, burst
                );
            }
        }
    }

    #[test]
    fn random_rate_changes_never_panic_or_exceed_the_burst_at_once(
        ops in prop::collection::vec((0u64..2_000_000_000, prop_oneof![Just(None), (-1.0f64..100.0).prop_map(Some)], any::<bool>()), 1..100),
        burst in 1u32..10,
    ) {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut b = TokenBucket::new(5.0, burst, t0);
        let mut now = t0;
        for (gap, rate, backwards) in ops {
            now = if backwards { now - Duration::from_nanos(gap / 1000) } else { now + Duration::from_nanos(gap) };
            if let Some(rate) = rate {
                b.set_rate(rate, now);
            }
            prop_assert!(b.available(now) <= burst);
            let _ = b.next_available(now);
            let n = drain(&mut b, now);
            prop_assert!(n <= burst);
        }
    }
}
