//! Sample counts and durations of 16-bit mono PCM.

use std::time::Duration;

/// Time taken to play `samples` at `rate` (0 counts as 1), rounded up to
/// the nanosecond so that [`samples_in`] of it gives `samples` back.
pub(super) fn duration_of(samples: u64, rate: u32) -> Duration {
    let rate = u128::from(rate.max(1));
    let nanos = (u128::from(samples) * 1_000_000_000).div_ceil(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Whole samples played in `d` at `rate`.
pub(super) fn samples_in(d: Duration, rate: u32) -> u64 {
    let samples = d.as_nanos() * u128::from(rate) / 1_000_000_000;
    u64::try_from(samples).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_common_and_odd_rates() {
        for rate in [8_000, 16_000, 22_050, 44_100, 48_000, 11_025, 1, 7] {
            for n in [0, 1, 2, 159, 160, 320, 441, 12_345, 10_000_000] {
                assert_eq!(samples_in(duration_of(n, rate), rate), n, "{n} @ {rate}");
            }
        }
    }

    #[test]
    fn exact_for_telephony_rates() {
        assert_eq!(duration_of(320, 16_000), Duration::from_millis(20));
        assert_eq!(duration_of(160, 8_000), Duration::from_millis(20));
        assert_eq!(samples_in(Duration::from_millis(20), 16_000), 320);
    }

    #[test]
    fn zero_rate_and_huge_values_do_not_panic() {
        assert_eq!(duration_of(5, 0), Duration::from_secs(5));
        assert_eq!(samples_in(Duration::MAX, u32::MAX), u64::MAX);
        let _ = duration_of(u64::MAX, 1);
    }
}
