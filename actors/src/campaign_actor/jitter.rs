//! A small seeded random source for retry jitter: xorshift64*, so a
//! campaign's retries spread without a `rand` dependency and tests are
//! deterministic.

/// xorshift64* (Vigna): 64 bits of state, never zero.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// A source seeded with `seed` (any value; it is mixed first, so
    /// nearby seeds give unrelated sequences, and 0 is fine).
    pub fn new(seed: u64) -> Self {
        // splitmix64 finaliser: spreads the seed's bits.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Jitter(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `[0, 1)`, as [`crate::schedule::retry::next_step`]
    /// takes it.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn below(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use super::Jitter;

    #[test]
    fn same_seed_same_sequence_and_units_in_range() {
        let mut a = Jitter::new(7);
        let mut b = Jitter::new(7);
        let mut c = Jitter::new(8);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mut z = Jitter::new(0);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let u = z.unit();
            assert!((0.0..1.0).contains(&u));
            sum += u;
            let n = z.below(5, 10);
            assert!((5..10).contains(&n));
        }
        assert!(
            (sum / 10_000.0 - 0.5).abs() < 0.02,
            "mean {}",
            sum / 10_000.0
        );
        assert_eq!(z.below(3, 3), 3);
    }
}
