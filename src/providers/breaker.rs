//! One circuit breaker per provider, shared (through `Arc`) by every call
//! to it. It is told the time, so tests drive it without sleeping.
//!
//! Closed: every call goes through; `failure_threshold` consecutive
//! failures open it. Open: calls are refused until `open_for` has passed,
//! then it is half-open: exactly one probe at a time goes through; the
//! probe's success closes it, its failure opens it again for `open_for`.
//!
//! Its state is on `/metrics` as [`OPEN_METRIC`]`{provider}` from the
//! moment it is made (start-up: the series exists before any failure) and
//! after every transition.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use talky_actors::ports::PortError;

/// Gauge per provider: 1 while its breaker refuses calls (open, or
/// half-open with its one probe out), 0 while closed.
pub const OPEN_METRIC: &str = "talky_provider_breaker_open";

/// What the breaker currently does with calls (for metrics and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open,
    /// One probe at a time goes through.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// A thread-safe circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    failure_threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `failure_threshold` (at least 1)
    /// consecutive failures and stays open for `open_for`.
    pub fn new(name: impl Into<String>, failure_threshold: u32, open_for: Duration) -> Self {
        let breaker = Self {
            name: name.into(),
            failure_threshold: failure_threshold.max(1),
            open_for,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        };
        breaker.publish(BreakerState::Closed);
        breaker
    }

    /// Sets [`OPEN_METRIC`] to `state`'s value.
    fn publish(&self, state: BreakerState) {
        let open = if state == BreakerState::Closed {
            0.0
        } else {
            1.0
        };
        metrics::gauge!(OPEN_METRIC, "provider" => self.name.clone()).set(open);
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state invalid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go out now. In half-open state a `true` makes
    /// the caller the probe: it must report `on_success` or `on_failure`.
    pub fn allow(&self, now: Instant) -> bool {
        let mut g = self.lock();
        match g.state {
            BreakerState::Closed => true,
            BreakerState::Open => {
                let opened = g.opened_at.unwrap_or(now);
                if now.saturating_duration_since(opened) >= self.open_for {
                    g.state = BreakerState::HalfOpen;
                    g.probe_in_flight = true;
                    self.publish(g.state);
                    true
                } else {
                    false
                }
            }
            BreakerState::HalfOpen => {
                if g.probe_in_flight {
                    false
                } else {
                    g.probe_in_flight = true;
                    true
                }
            }
        }
    }

    /// A call succeeded: the breaker closes.
    pub fn on_success(&self, _now: Instant) {
        let mut g = self.lock();
        if g.state != BreakerState::Closed {
            self.publish(BreakerState::Closed);
        }
        g.state = BreakerState::Closed;
        g.consecutive_failures = 0;
        g.opened_at = None;
        g.probe_in_flight = false;
    }

    /// A call failed: counts towards opening; a failed probe reopens.
    /// (The failure itself is counted by the operation, in
    /// `talky_provider_errors_total`: `super::observe`.)
    pub fn on_failure(&self, now: Instant) {
        let mut g = self.lock();
        let before = g.state;
        self.on_failure_locked(&mut g, now);
        if g.state != before {
            self.publish(g.state);
        }
    }

    fn on_failure_locked(&self, g: &mut Inner, now: Instant) {
        match g.state {
            BreakerState::Closed => {
                g.consecutive_failures = g.consecutive_failures.saturating_add(1);
                if g.consecutive_failures >= self.failure_threshold {
                    g.state = BreakerState::Open;
                    g.opened_at = Some(now);
                }
            }
            BreakerState::HalfOpen => {
                g.state = BreakerState::Open;
                g.opened_at = Some(now);
                g.probe_in_flight = false;
            }
            // A late failure of a call let through before the breaker
            // opened: the breaker is already open, keep its timer.
            BreakerState::Open => {}
        }
    }

    /// The current state (as of the last `allow`/`on_*`).
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }
}

/// Reports one attempt's outcome to its breaker exactly once. Dropped
/// unresolved (the caller gave up), it reports success if output was
/// produced, else failure, so a half-open probe is never left dangling.
///
/// Every client asks its breaker through [`BreakerGuard::acquire`] only:
/// the permission and the guard that resolves it are one value, so no
/// attempt (a half-open probe above all) can be let through without a
/// result being reported, whether the attempt ends, fails, or is dropped by
/// a caller that gave up on it.
pub(crate) struct BreakerGuard {
    breaker: Arc<CircuitBreaker>,
    resolved: bool,
    /// Something was handed to the caller: the provider is up.
    pub(crate) produced_output: bool,
}

impl BreakerGuard {
    /// One attempt on `breaker`, if it lets one through now; `None` while it
    /// refuses.
    pub(crate) fn acquire(breaker: &Arc<CircuitBreaker>) -> Option<Self> {
        breaker.allow(Instant::now()).then(|| Self {
            breaker: breaker.clone(),
            resolved: false,
            produced_output: false,
        })
    }

    /// The provider answered properly.
    pub(crate) fn success(mut self) {
        self.resolved = true;
        self.breaker.on_success(Instant::now());
    }

    /// The breaker's provider (the `provider` label of its metrics).
    pub(crate) fn provider(&self) -> &str {
        self.breaker.name()
    }

    /// The provider failed.
    pub(crate) fn failure(mut self) {
        self.resolved = true;
        self.breaker.on_failure(Instant::now());
    }

    /// Success, or the error's verdict: a refusal (4xx) or nonsense still
    /// means the provider is up; anything else counts against it.
    pub(crate) fn resolve(self, err: Option<&PortError>) {
        match err {
            None | Some(PortError::Rejected(_)) | Some(PortError::Protocol(_)) => self.success(),
            Some(_) => self.failure(),
        }
    }
}

impl Drop for BreakerGuard {
    fn drop(&mut self) {
        if !self.resolved {
            if self.produced_output {
                self.breaker.on_success(Instant::now());
            } else {
                self.breaker.on_failure(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const OPEN_FOR: Duration = Duration::from_secs(10);

    #[test]
    fn closed_allows_and_success_resets_the_count() {
        let b = CircuitBreaker::new("groq", 3, OPEN_FOR);
        let t = Instant::now();
        assert!(b.allow(t));
        b.on_failure(t);
        b.on_failure(t);
        b.on_success(t);
        b.on_failure(t);
        b.on_failure(t);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(t));
        assert_eq!(b.name(), "groq");
    }

    #[test]
    fn opens_after_threshold_and_refuses_until_open_for() {
        let b = CircuitBreaker::new("groq", 3, OPEN_FOR);
        let t = Instant::now();
        for _ in 0..3 {
            b.on_failure(t);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(t));
        assert!(!b.allow(t + Duration::from_secs(9)));
        assert!(b.allow(t + OPEN_FOR));
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn half_open_allows_one_probe_and_success_closes() {
        let b = CircuitBreaker::new("x", 1, OPEN_FOR);
        let t = Instant::now();
        b.on_failure(t);
        let t2 = t + OPEN_FOR;
        assert!(b.allow(t2));
        assert!(!b.allow(t2), "second probe while one is in flight");
        b.on_success(t2);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(t2));
        assert!(b.allow(t2));
    }

    #[test]
    fn failed_probe_reopens_for_another_period() {
        let b = CircuitBreaker::new("x", 2, OPEN_FOR);
        let t = Instant::now();
        b.on_failure(t);
        b.on_failure(t);
        let t2 = t + OPEN_FOR;
        assert!(b.allow(t2));
        b.on_failure(t2);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow(t2 + Duration::from_secs(5)));
        assert!(b.allow(t2 + OPEN_FOR));
    }

    #[test]
    fn threshold_zero_behaves_as_one_and_late_failures_keep_timer() {
        let b = CircuitBreaker::new("x", 0, OPEN_FOR);
        let t = Instant::now();
        b.on_failure(t);
        assert_eq!(b.state(), BreakerState::Open);
        b.on_failure(t + Duration::from_secs(5));
        assert!(b.allow(t + OPEN_FOR));
    }

    /// The breaker's gauge line in `text`, if any.
    fn gauge(text: &str, provider: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("{OPEN_METRIC}{{provider=\"{provider}\"}}")))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
    }

    #[test]
    fn the_gauge_exists_from_the_start_and_follows_every_transition() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let b = CircuitBreaker::new("aura", 1, OPEN_FOR);
        assert_eq!(gauge(&handle.render(), "aura").as_deref(), Some("0"));
        let t = Instant::now();
        b.on_failure(t);
        assert_eq!(gauge(&handle.render(), "aura").as_deref(), Some("1"));
        assert!(b.allow(t + OPEN_FOR), "the probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(gauge(&handle.render(), "aura").as_deref(), Some("1"));
        b.on_success(t + OPEN_FOR);
        assert_eq!(gauge(&handle.render(), "aura").as_deref(), Some("0"));
    }

    #[test]
    fn shared_across_threads_only_one_probe() {
        let b = Arc::new(CircuitBreaker::new("x", 1, Duration::ZERO));
        let t = Instant::now();
        b.on_failure(t);
        let allowed: usize = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.allow(t) as usize)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(allowed, 1);
    }
}
