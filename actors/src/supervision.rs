//! Supervision policy, told the time: OTP-style restart intensity with
//! backoff, and the provider chain a restartable child walks through.
//!
//! ractor restarts nothing by itself (and its default supervisor stops the
//! parent when a child fails), so every supervising actor keeps one
//! [`RestartTracker`] per child and asks it what to do on each failure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Default: restarts allowed per window before escalating.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// Default: the window the restarts are counted in.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(10);
/// Default: delay before the first restart.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Default: the longest delay between restarts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How often a child may fail before its supervisor gives up on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`; one more failure escalates.
    pub max_restarts: u32,
    /// Sliding window over which failures are counted.
    pub window: Duration,
    /// Delay before the first restart of a burst; doubles per recent failure.
    pub backoff_base: Duration,
    /// Cap on that delay.
    pub backoff_max: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: DEFAULT_MAX_RESTARTS,
            window: DEFAULT_RESTART_WINDOW,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }
}

/// What a supervisor does about a failed child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start it again after this delay.
    Restart {
        /// Backoff before the restart.
        after: Duration,
    },
    /// Too many failures in the window: fail upwards.
    Escalate,
}

/// The failure history of one child.
#[derive(Clone, Debug)]
pub struct RestartTracker {
    /// The rules.
    policy: RestartPolicy,
    /// Failure instants inside the current window, oldest first.
    recent: VecDeque<Instant>,
    /// Every restart granted, for the supervisor view.
    total_restarts: u64,
}

impl RestartTracker {
    /// A tracker with no failures yet.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
            total_restarts: 0,
        }
    }

    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, now: Instant) -> RestartDecision {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        let failures = self.recent.len() as u32;
        if failures > self.policy.max_restarts {
            return RestartDecision::Escalate;
        }
        self.total_restarts += 1;
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let after = self
            .policy
            .backoff_base
            .saturating_mul(factor)
            .min(self.policy.backoff_max);
        RestartDecision::Restart { after }
    }

    /// Restarts granted so far.
    pub fn total_restarts(&self) -> u64 {
        self.total_restarts
    }
}

/// The providers of one service in order of preference (primary first),
/// and when to move on: after `switch_after` failures of the provider in
/// use, the next one takes over for the rest of the call. The last one is
/// kept whatever happens (intensity limits end the call instead).
#[derive(Clone, Debug)]
pub struct ProviderChain<P> {
    /// Providers, primary first.
    providers: Vec<P>,
    /// Index of the one in use.
    current: usize,
    /// Failures of the one in use.
    failures: u32,
    /// Failures that make the chain move on.
    switch_after: u32,
}

impl<P: Clone> ProviderChain<P> {
    /// A chain; `None` when it has no provider.
    pub fn new(providers: Vec<P>, switch_after: u32) -> Option<Self> {
        if providers.is_empty() {
            return None;
        }
        Some(Self {
            providers,
            current: 0,
            failures: 0,
            switch_after: switch_after.max(1),
        })
    }

    /// A chain of one provider.
    pub fn single(provider: P) -> Self {
        Self {
            providers: vec![provider],
            current: 0,
            failures: 0,
            switch_after: 1,
        }
    }

    /// The provider to use now.
    pub fn current(&self) -> P {
        self.providers[self.current].clone()
    }

    /// Index of the provider in use (0 = primary).
    pub fn position(&self) -> usize {
        self.current
    }

    /// Records a failure of the provider in use; returns true when the
    /// chain moved on to the next provider.
    pub fn on_failure(&mut self) -> bool {
        self.failures += 1;
        if self.failures >= self.switch_after && self.current + 1 < self.providers.len() {
            self.current += 1;
            self.failures = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn restarts_back_off_then_escalate_within_the_window() {
        let t0 = Instant::now();
        let mut tracker = RestartTracker::new(RestartPolicy::default());
        assert_eq!(
            tracker.on_failure(t0),
            RestartDecision::Restart { after: ms(50) }
        );
        assert_eq!(
            tracker.on_failure(t0 + ms(100)),
            RestartDecision::Restart { after: ms(100) }
        );
        assert_eq!(
            tracker.on_failure(t0 + ms(200)),
            RestartDecision::Restart { after: ms(200) }
        );
        assert_eq!(tracker.on_failure(t0 + ms(300)), RestartDecision::Escalate);
        assert_eq!(tracker.total_restarts(), 3);
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let t0 = Instant::now();
        let mut tracker = RestartTracker::new(RestartPolicy::default());
        for i in 0..3 {
            assert!(matches!(
                tracker.on_failure(t0 + ms(i)),
                RestartDecision::Restart { .. }
            ));
        }
        // 10 s after the first three, the slate is clean again.
        let later = t0 + Duration::from_secs(10) + ms(3);
        assert_eq!(
            tracker.on_failure(later),
            RestartDecision::Restart { after: ms(50) }
        );
        // A steady failure every 4 s never escalates (at most 3 per 10 s).
        let mut t = later;
        for _ in 0..20 {
            t += Duration::from_secs(4);
            assert!(matches!(
                tracker.on_failure(t),
                RestartDecision::Restart { .. }
            ));
        }
    }

    #[test]
    fn backoff_is_capped() {
        let policy = RestartPolicy {
            max_restarts: 100,
            ..RestartPolicy::default()
        };
        let t0 = Instant::now();
        let mut tracker = RestartTracker::new(policy);
        let mut last = Duration::ZERO;
        for i in 0..100 {
            match tracker.on_failure(t0 + ms(i)) {
                RestartDecision::Restart { after } => {
                    assert!(after >= last && after <= DEFAULT_BACKOFF_MAX);
                    last = after;
                }
                RestartDecision::Escalate => panic!("escalated at {i}"),
            }
        }
        assert_eq!(last, DEFAULT_BACKOFF_MAX);
    }

    #[test]
    fn provider_chain_switches_after_k_failures_and_keeps_the_last() {
        assert!(ProviderChain::<&str>::new(vec![], 2).is_none());
        let mut chain = ProviderChain::new(vec!["deepgram", "whisper"], 2).expect("chain");
        assert_eq!(chain.current(), "deepgram");
        assert!(!chain.on_failure());
        assert!(chain.on_failure());
        assert_eq!((chain.current(), chain.position()), ("whisper", 1));
        for _ in 0..5 {
            assert!(!chain.on_failure());
        }
        assert_eq!(chain.current(), "whisper");
    }
}
