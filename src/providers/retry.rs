//! Retries of a provider request and the provider's own word on when to
//! come back (`Retry-After` and friends), shared by every client that
//! retries or reads them.
//!
//! [`with_retries`] runs attempts through the provider's breaker (each one a
//! [`BreakerGuard`]): 429, 5xx, timeouts and broken connections are retried
//! up to [`RetryPolicy::max_retries`], after the provider's `Retry-After`
//! (a longer one than [`RetryPolicy::max_retry_wait`] ends the retries) or
//! an exponential backoff with +-25 % jitter capped by the same wait. A
//! retry the breaker refuses ends with the failure that asked for it.
//! [`with_retries_by`] also keeps to a deadline: no retry starts that could
//! not end by it (a caller whose own caller gives up at a known time).
//!
//! Parsing is told the time, so tests need no clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use talky_actors::ports::{PortError, PortResult};

use crate::providers::breaker::{BreakerGuard, CircuitBreaker};

/// How a client retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries of a retryable failure (0: one attempt only).
    pub max_retries: u32,
    /// First backoff step; doubled per retry.
    pub backoff_base: Duration,
    /// Cap on any wait before a retry; a longer `Retry-After` ends the
    /// retries.
    pub max_retry_wait: Duration,
}

/// Lowest jitter factor of a backoff.
pub const JITTER_MIN: f64 = 0.75;
/// Highest jitter factor of a backoff (excluded).
pub const JITTER_MAX: f64 = 1.25;

impl RetryPolicy {
    /// At most `max_retries` retries, backing off from `backoff_base`,
    /// never waiting longer than `max_retry_wait`.
    pub fn new(max_retries: u32, backoff_base: Duration, max_retry_wait: Duration) -> Self {
        Self {
            max_retries,
            backoff_base,
            max_retry_wait,
        }
    }

    /// The wait before retry number `retry` (0 for the first) after `err`,
    /// with the backoff scaled by `jitter` (in `JITTER_MIN..JITTER_MAX`);
    /// `None`: give up and return `err`.
    pub fn wait(&self, err: &PortError, retry: u32, jitter: f64) -> Option<Duration> {
        if !is_retryable(err) || retry >= self.max_retries {
            return None;
        }
        match err {
            PortError::RateLimited {
                retry_after: Some(d),
            } => (*d <= self.max_retry_wait).then_some(*d),
            _ => Some(backoff(self.backoff_base, retry, jitter).min(self.max_retry_wait)),
        }
    }
}

/// A failure worth another attempt: rate limited, unavailable, timed out.
/// Anything else (a refusal, nonsense) means the provider is up and would
/// answer the same again.
pub fn is_retryable(err: &PortError) -> bool {
    matches!(
        err,
        PortError::RateLimited { .. } | PortError::Unavailable(_) | PortError::Timeout(_)
    )
}

/// `base * 2^retry` (the exponent capped at 16), times `jitter`.
pub fn backoff(base: Duration, retry: u32, jitter: f64) -> Duration {
    base.saturating_mul(1u32 << retry.min(16)).mul_f64(jitter)
}

/// A random jitter factor in `JITTER_MIN..JITTER_MAX`.
pub fn jitter() -> f64 {
    rand::random_range(JITTER_MIN..JITTER_MAX)
}

/// Runs `attempt` until it succeeds, fails for good, or `policy` gives up;
/// each attempt asks `breaker` first. A success comes with its guard still
/// unresolved (a stream reports its own outcome later); every failed
/// attempt is reported: retryable ones as failures, others as "the
/// provider is up". `name` and `what` name the provider and the request in
/// errors and logs.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    breaker: &Arc<CircuitBreaker>,
    name: &str,
    what: &str,
    attempt: F,
) -> PortResult<(T, BreakerGuard)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    with_retries_by(policy, breaker, name, what, None, attempt).await
}

/// A deadline for [`with_retries_by`]: no retry starts unless its wait plus
/// `attempt` (the longest one attempt can take, e.g. the request time-out)
/// ends by `at`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    /// When the caller stops waiting.
    pub(crate) at: tokio::time::Instant,
    /// The longest one attempt can take.
    pub(crate) attempt: Duration,
}

/// [`with_retries`], but within `deadline` when one is given: a retry that
/// could not finish in time is not started, and the failure that asked
/// for it is returned. For callers whose own caller gives up at a known
/// time (the dialer's place timeout) and must hear the client's answer
/// first.
pub(crate) async fn with_retries_by<T, F, Fut>(
    policy: &RetryPolicy,
    breaker: &Arc<CircuitBreaker>,
    name: &str,
    what: &str,
    deadline: Option<Deadline>,
    mut attempt: F,
) -> PortResult<(T, BreakerGuard)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    let mut retry = 0u32;
    let mut last_err: Option<PortError> = None;
    loop {
        let Some(guard) = BreakerGuard::acquire(breaker) else {
            // A retry the breaker refuses ends with the real failure.
            return Err(last_err.unwrap_or_else(|| crate::providers::observe::circuit_open(name)));
        };
        let err = match attempt().await {
            Ok(v) => return Ok((v, guard)),
            Err(e) => e,
        };
        if is_retryable(&err) {
            guard.failure();
        } else {
            // The provider answered (a 4xx, or nonsense): it is up.
            guard.success();
        }
        let Some(wait) = policy.wait(&err, retry, jitter()) else {
            return Err(err);
        };
        if let Some(d) = deadline
            && tokio::time::Instant::now() + wait + d.attempt > d.at
        {
            tracing::debug!(provider = %name, error = %err, ?wait, retry, "{what}: no time left to retry");
            return Err(err);
        }
        tracing::debug!(provider = %name, error = %err, ?wait, retry, "{what} retry");
        tokio::time::sleep(wait).await;
        retry += 1;
        last_err = Some(err);
    }
}

/// Marks a transport error that happened before the request was sent
/// (see [`maybe_sent`]).
pub(crate) const CONNECT_FAILED: &str = "(not sent: connect failed)";

/// The port error of a request of `provider` (`what`: "create call", ...)
/// that got no answer: a connect failure (marked [`CONNECT_FAILED`]) and
/// anything unknown are `Unavailable` (worth a retry), a time-out is
/// `Timeout`, an unreadable body `Protocol`.
pub(crate) fn transport_error(provider: &str, what: &str, e: &reqwest::Error) -> PortError {
    if e.is_connect() {
        PortError::Unavailable(format!("{provider} {what}: {e} {CONNECT_FAILED}"))
    } else if e.is_timeout() {
        PortError::Timeout(format!("{provider} {what}: {e}"))
    } else if e.is_decode() || e.is_body() {
        PortError::Protocol(format!("{provider} {what}: {e}"))
    } else {
        PortError::Unavailable(format!("{provider} {what}: {e}"))
    }
}

/// The failure of a request that may have reached the provider and done
/// its work (a create-call): anything but a refusal before sending (a
/// connect failure) or an answer is of unknown outcome, so the caller
/// resolves it instead of repeating it.
pub(crate) fn maybe_sent(e: PortError) -> PortError {
    match e {
        PortError::Timeout(m) | PortError::Protocol(m) => PortError::Unknown(m),
        PortError::Unavailable(m) if !m.contains(CONNECT_FAILED) => PortError::Unknown(m),
        e => e,
    }
}

/// A provider's whole answer to one REST request.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Its HTTP status.
    pub(crate) status: reqwest::StatusCode,
    /// Its `Retry-After`, raw.
    pub(crate) retry_after: Option<String>,
    /// Its body.
    pub(crate) body: bytes::Bytes,
}

/// Sends `req` (its auth already set) and reads the whole answer; a
/// failure without an answer is a [`transport_error`]. Time-outs are the
/// client's (connect and whole-request, set when it was built).
pub(crate) async fn send(
    provider: &str,
    what: &str,
    req: reqwest::RequestBuilder,
) -> PortResult<Answer> {
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error(provider, what, &e))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport_error(provider, what, &e))?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// How a provider words a non-2xx answer for errors and logs: from its
/// status and error body.
pub(crate) type Describe = fn(reqwest::StatusCode, &[u8]) -> String;

impl Answer {
    /// The port error of this answer as a failure: 429 -> `RateLimited`
    /// (with `Retry-After`), other 4xx -> `Rejected` (retrying will not
    /// help), 5xx -> `Unavailable`, anything else -> `Protocol`; the
    /// message is `describe`'s.
    pub(crate) fn error(&self, describe: Describe) -> PortError {
        let msg = describe(self.status, &self.body);
        match self.status.as_u16() {
            429 => PortError::RateLimited {
                retry_after: self
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
            },
            400..=499 => PortError::Rejected(msg),
            500..=599 => PortError::Unavailable(msg),
            _ => PortError::Protocol(format!("unexpected status {msg}")),
        }
    }

    /// `Ok` for a 2xx, else [`Answer::error`].
    pub(crate) fn success(self, describe: Describe) -> PortResult<Self> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.error(describe))
        }
    }

    /// The JSON of a 2xx answer of `provider`'s `what`; `None` for a 404
    /// (the provider does not know the resource); an unreadable 2xx is
    /// `Protocol`.
    pub(crate) fn found_json<T: serde::de::DeserializeOwned>(
        self,
        provider: &str,
        what: &str,
        describe: Describe,
    ) -> PortResult<Option<T>> {
        if self.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let ok = self.success(describe)?;
        serde_json::from_slice(&ok.body)
            .map(Some)
            .map_err(|e| PortError::Protocol(format!("{provider} {what}: {e}")))
    }

    /// The resource a create request made: a 2xx says it exists, so one
    /// whose body cannot be read, or whose `id` is empty, is `Unknown`
    /// (which one is unknown, not failed); a non-2xx is
    /// [`Answer::error`].
    pub(crate) fn created<T: serde::de::DeserializeOwned>(
        self,
        provider: &str,
        describe: Describe,
        id: impl FnOnce(&T) -> &str,
        id_name: &str,
    ) -> PortResult<T> {
        let ok = self.success(describe)?;
        let created: T = serde_json::from_slice(&ok.body)
            .map_err(|e| PortError::Unknown(format!("{provider} create call: {e}")))?;
        if id(&created).trim().is_empty() {
            return Err(PortError::Unknown(format!(
                "{provider} create call: empty {id_name}"
            )));
        }
        Ok(created)
    }
}

/// A `Retry-After` value: delta seconds (a fraction accepted) or an
/// HTTP-date (one in the past is no wait).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at: SystemTime = chrono::DateTime::parse_from_rfc2822(v)
        .ok()?
        .with_timezone(&chrono::Utc)
        .into();
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` header of an answer, parsed.
pub fn retry_after_header(
    headers: &reqwest::header::HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
}

/// How long an OpenAI-style API asks us to wait: `retry-after-ms`,
/// `retry-after` (seconds or an HTTP-date), else the `x-ratelimit-reset-*`
/// of an exhausted limit.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64((ms / 1000.0).min(1e9)));
    }
    if let Some(d) = retry_after_header(headers, now) {
        return Some(d);
    }
    let mut hint: Option<Duration> = None;
    for kind in ["requests", "tokens"] {
        if get(&format!("x-ratelimit-remaining-{kind}")) == Some("0")
            && let Some(d) = get(&format!("x-ratelimit-reset-{kind}")).and_then(parse_go_duration)
        {
            hint = Some(hint.map_or(d, |h| h.max(d)));
        }
    }
    hint
}

/// Parses durations like `2m59.56s`, `7.66s`, `1s`, `6m0s`, `120ms`, `1h2m`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 2,
        backoff_base: Duration::from_millis(250),
        max_retry_wait: Duration::from_secs(5),
    };

    /// Moved here from the Vonage client with the parser it tested.
    #[test]
    fn retry_after_forms() {
        let now: SystemTime = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .expect("t")
            .with_timezone(&chrono::Utc)
            .into();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after_header(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after_header(&h, now), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(
            retry_after_header(&h, now),
            Some(Duration::from_secs(7)),
            "only Retry-After"
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn waits_follow_retry_after_up_to_the_cap_else_back_off() {
        let limited = |s| PortError::RateLimited {
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            POLICY.wait(&limited(2), 0, 1.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            POLICY.wait(&limited(5), 1, 1.0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            POLICY.wait(&limited(6), 0, 1.0),
            None,
            "longer than the cap"
        );
        assert_eq!(POLICY.wait(&limited(1), 2, 1.0), None, "retries used up");
        let down = PortError::Unavailable("x".into());
        assert_eq!(POLICY.wait(&down, 0, 1.0), Some(Duration::from_millis(250)));
        assert_eq!(POLICY.wait(&down, 1, 1.0), Some(Duration::from_millis(500)));
        assert_eq!(
            POLICY.wait(&PortError::Timeout("x".into()), 1, 0.75),
            Some(Duration::from_millis(375))
        );
        assert_eq!(
            POLICY.wait(&PortError::RateLimited { retry_after: None }, 0, 1.0),
            Some(Duration::from_millis(250))
        );
        for e in [
            PortError::Rejected("x".into()),
            PortError::Protocol("x".into()),
            PortError::Unknown("x".into()),
        ] {
            assert_eq!(POLICY.wait(&e, 0, 1.0), None, "{e}");
        }
        let slow = RetryPolicy {
            max_retries: 40,
            ..POLICY
        };
        assert_eq!(
            slow.wait(&down, 30, 1.0),
            Some(Duration::from_secs(5)),
            "capped"
        );
        assert_eq!(
            backoff(Duration::from_millis(1), 30, 1.0),
            Duration::from_millis(1 << 16),
            "the exponent stops at 16"
        );
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((JITTER_MIN..JITTER_MAX).contains(&j), "{j}");
            let d = backoff(Duration::from_millis(400), 1, j);
            assert!(
                d >= Duration::from_millis(600) && d < Duration::from_millis(1000),
                "{d:?}"
            );
        }
    }

    #[tokio::test]
    async fn with_retries_reports_each_attempt_and_gives_up_with_the_last_error() {
        const POLICY: RetryPolicy = RetryPolicy {
            max_retries: 2,
            backoff_base: Duration::from_millis(1),
            max_retry_wait: Duration::from_secs(5),
        };
        let breaker = Arc::new(CircuitBreaker::new("x", 10, Duration::from_secs(30)));
        let mut calls = 0;
        let r: PortResult<((), BreakerGuard)> =
            with_retries(&POLICY, &breaker, "x", "test", || {
                calls += 1;
                async { Err(PortError::Unavailable("down".into())) }
            })
            .await;
        assert_eq!(r.err(), Some(PortError::Unavailable("down".into())));
        assert_eq!(calls, 3, "one attempt and two retries");

        // A refusal is not retried and tells the breaker the provider is up.
        let breaker = Arc::new(CircuitBreaker::new("x", 1, Duration::from_secs(30)));
        let mut calls = 0;
        let r: PortResult<((), BreakerGuard)> =
            with_retries(&POLICY, &breaker, "x", "test", || {
                calls += 1;
                async { Err(PortError::Rejected("no".into())) }
            })
            .await;
        assert!(matches!(r, Err(PortError::Rejected(_))));
        assert_eq!(calls, 1);
        assert_eq!(
            breaker.state(),
            crate::providers::breaker::BreakerState::Closed
        );

        // A breaker opened by the first failure refuses the retry, which
        // ends with that failure; a fresh call is refused as circuit open.
        let mut calls = 0;
        let r: PortResult<((), BreakerGuard)> =
            with_retries(&POLICY, &breaker, "x", "test", || {
                calls += 1;
                async { Err(PortError::Timeout("slow".into())) }
            })
            .await;
        assert_eq!(r.err(), Some(PortError::Timeout("slow".into())));
        assert_eq!(calls, 1);
        let r: PortResult<((), BreakerGuard)> =
            with_retries(&POLICY, &breaker, "x", "test", || async { Ok(()) }).await;
        assert_eq!(
            r.err(),
            Some(PortError::Unavailable("x: circuit open".into()))
        );
    }

    #[tokio::test]
    async fn with_retries_by_starts_no_retry_that_would_end_past_the_deadline() {
        const POLICY: RetryPolicy = RetryPolicy {
            max_retries: 5,
            backoff_base: Duration::from_millis(1),
            max_retry_wait: Duration::from_secs(5),
        };
        let breaker = Arc::new(CircuitBreaker::new("x", 100, Duration::from_secs(30)));
        let now = tokio::time::Instant::now();
        // Room for no attempt of 1 s after the first: no retry at all.
        let tight = Deadline {
            at: now + Duration::from_millis(500),
            attempt: Duration::from_secs(1),
        };
        let mut calls = 0;
        let r: PortResult<((), BreakerGuard)> =
            with_retries_by(&POLICY, &breaker, "x", "test", Some(tight), || {
                calls += 1;
                async { Err(PortError::Unavailable("down".into())) }
            })
            .await;
        assert_eq!(r.err(), Some(PortError::Unavailable("down".into())));
        assert_eq!(calls, 1);
        // A Retry-After longer than the time left ends the retries too.
        let roomy = Deadline {
            at: now + Duration::from_secs(60),
            attempt: Duration::from_millis(10),
        };
        let mut calls = 0;
        let limited = PortError::RateLimited {
            retry_after: Some(Duration::from_secs(4)),
        };
        let r: PortResult<((), BreakerGuard)> = with_retries_by(
            &POLICY,
            &breaker,
            "x",
            "test",
            Some(Deadline {
                at: now + Duration::from_secs(2),
                ..roomy
            }),
            || {
                calls += 1;
                let e = limited.clone();
                async move { Err(e) }
            },
        )
        .await;
        assert_eq!(r.err(), Some(limited));
        assert_eq!(calls, 1);
        // With room, it retries as usual.
        let mut calls = 0;
        let r: PortResult<((), BreakerGuard)> =
            with_retries_by(&POLICY, &breaker, "x", "test", Some(roomy), || {
                calls += 1;
                let ok = calls == 3;
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err(PortError::Unavailable("down".into()))
                    }
                }
            })
            .await;
        assert!(r.is_ok());
        assert_eq!(calls, 3);
    }
}
