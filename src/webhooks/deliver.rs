//! The delivery worker: claims due deliveries from the outbox, signs and
//! POSTs them, records every attempt.
//!
//! It runs in its own tasks on its own small PostgreSQL pool, so nothing
//! on a call's path waits for a receiver, and a slow receiver never takes
//! a connection a call or the API needs (no connection is held while a
//! request is in flight). At most `webhooks.concurrency` requests are in
//! flight, at most one per endpoint ([`outbox::claim`]), each bounded by
//! `webhooks.timeout_ms`. A claim is a lease (`locked_until`): when this
//! process dies mid-delivery, the lease lapses and any node sends the
//! event again with the same `webhook-id` (at least once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, watch};

use super::outbox::{self, AttemptRecord, Claimed, Outcome};
use super::{events, sign, target};
use crate::config::WebhooksConfig;
use crate::db;

/// Attempts by result: delivered, retry, failed, disabled.
pub const DELIVERIES: &str = "talky_webhook_deliveries_total";
/// Time of one attempt's request, seconds.
pub const DELIVERY_SECONDS: &str = "talky_webhook_delivery_seconds";
/// Deliveries pending across the cluster (as this node last counted).
pub const PENDING: &str = "talky_webhook_deliveries_pending";

/// How often the pending gauge is recounted.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// The most deliveries one tenant may have in flight (across nodes): half
/// of a node's `webhooks.concurrency`, at least one, so a tenant with many
/// slow or dead receivers leaves the other half to everyone else.
pub fn per_tenant(concurrency: u32) -> i64 {
    i64::from((concurrency / 2).max(1))
}

/// How often a node sweeps events past `webhooks.retention_days`.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Events deleted per statement of a sweep (short transactions).
const SWEEP_BATCH: i64 = 1000;

/// The delay before attempt `attempt + 1`: `base` doubled per attempt
/// made, capped at `max`, times a jitter factor in 0.5..1.5 (`jitter` in
/// 0..1), so receivers that failed together are not retried together.
pub fn backoff(attempt: i32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let exp = base.saturating_mul(1u32 << doublings).min(max);
    exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0)).min(max)
}

/// What an attempt's answer (`Some(status)`, or `None`: no answer) means
/// for its delivery: 2xx delivered, 410 gone, anything else another try
/// after `delay`, unless that would fall past the retry window
/// (`retry_from + retry_for`), which fails it.
pub fn verdict(
    status: Option<u16>,
    now: DateTime<Utc>,
    retry_from: DateTime<Utc>,
    retry_for: Duration,
    delay: Duration,
) -> Outcome {
    match status {
        Some(s) if (200..300).contains(&s) => Outcome::Delivered,
        Some(410) => Outcome::Gone,
        _ => {
            let deadline =
                retry_from + chrono::Duration::from_std(retry_for).unwrap_or(chrono::Duration::MAX);
            if now >= deadline {
                return Outcome::Failed;
            }
            let next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            Outcome::Retry(next.min(deadline))
        }
    }
}

/// The worker's settings and clients.
struct Worker {
    pool: db::Pool,
    config: WebhooksConfig,
    public_url: String,
    client: reqwest::Client,
    wake: Notify,
}

/// A running worker; dropping it stops claiming (in-flight attempts end
/// on their own, bounded by their timeout).
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
}

impl WorkerHandle {
    /// Stops claiming new deliveries.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The HTTP client of deliveries: no redirects (a receiver cannot send
/// talky elsewhere), no proxy, the guarded resolver, the attempt timeout.
fn client(config: &WebhooksConfig) -> reqwest::Result<reqwest::Client> {
    let timeout = Duration::from_millis(config.timeout_ms);
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("talky-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(target::GuardedResolver {
            allow_private: config.allow_private_targets,
            timeout: timeout.min(Duration::from_secs(5)),
        })
        .build()
}

/// Starts the worker on `pool` (its own; see the module doc).
/// `public_url` makes relative URLs in event data absolute.
pub fn start(
    pool: db::Pool,
    config: &WebhooksConfig,
    public_url: String,
) -> anyhow::Result<WorkerHandle> {
    let worker = Arc::new(Worker {
        pool,
        client: client(config)?,
        config: config.clone(),
        public_url,
        wake: Notify::new(),
    });
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(sweeper(worker.clone(), stopped.clone()));
    tokio::spawn(run(worker, stopped));
    Ok(WorkerHandle { stop })
}

async fn run(worker: Arc<Worker>, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(worker.config.concurrency as usize));
    let poll = Duration::from_millis(worker.config.poll_ms);
    // Longer than any attempt (request timeout, then the write of its
    // result), so a live worker never loses its lease.
    let lease = Duration::from_millis(worker.config.timeout_ms) * 2 + Duration::from_secs(10);
    let mut counted = Instant::now() - GAUGE_EVERY;
    let mut failing = false;
    loop {
        if *stopped.borrow() {
            return;
        }
        let free = slots.available_permits();
        let mut claimed = 0;
        if free > 0 {
            match claim(&worker, free as i64, lease).await {
                Ok(batch) => {
                    failing = false;
                    claimed = batch.len();
                    for c in batch {
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            break; // cannot happen: no more than `free` were claimed
                        };
                        let worker = worker.clone();
                        tokio::spawn(async move {
                            deliver(&worker, c).await;
                            drop(permit);
                            worker.wake.notify_one();
                        });
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "webhook deliveries cannot be claimed; retrying");
                    }
                    failing = true;
                }
            }
        }
        if counted.elapsed() >= GAUGE_EVERY {
            counted = Instant::now();
            if let Ok(mut conn) = worker.pool.get().await
                && let Ok(n) = outbox::pending_count(&mut conn).await
            {
                metrics::gauge!(PENDING).set(n as f64);
            }
        }
        if claimed > 0 && slots.available_permits() > 0 {
            continue; // more may be due
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = worker.wake.notified() => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Deletes, at start and then every [`SWEEP_EVERY`], the events older
/// than `webhooks.retention_days` whose deliveries are all finished
/// (every node does; a delete is idempotent, so they need no agreement).
async fn sweeper(worker: Arc<Worker>, mut stopped: watch::Receiver<bool>) {
    let keep = chrono::Duration::days(i64::from(worker.config.retention_days));
    loop {
        if *stopped.borrow() {
            return;
        }
        let mut removed = 0;
        if let Ok(mut conn) = worker.pool.get().await {
            let before = chrono::Utc::now() - keep;
            loop {
                match outbox::sweep(&mut conn, before, SWEEP_BATCH).await {
                    Ok(n) => {
                        removed += n;
                        if n < SWEEP_BATCH as usize {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook retention sweep failed; next sweep retries");
                        break;
                    }
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "webhook events past their retention deleted");
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stopped.changed() => {}
        }
    }
}

async fn claim(worker: &Worker, limit: i64, lease: Duration) -> Result<Vec<Claimed>, db::DbError> {
    let mut conn = worker.pool.get().await?;
    outbox::claim(
        &mut conn,
        limit,
        per_tenant(worker.config.concurrency),
        lease,
    )
    .await
}

/// One attempt: send, judge, record.
async fn deliver(worker: &Worker, c: Claimed) {
    let started_at = Utc::now();
    let t0 = Instant::now();
    let answer = send(worker, &c).await;
    let took = t0.elapsed();
    metrics::histogram!(DELIVERY_SECONDS).record(took.as_secs_f64());
    let (status, error) = match answer {
        Ok(status) => (Some(status), None),
        Err(e) => (None, Some(e)),
    };
    let cfg = &worker.config;
    let delay = backoff(
        c.delivery.attempts,
        Duration::from_millis(cfg.retry_base_ms),
        Duration::from_secs(cfg.retry_max_secs),
        rand::random::<f64>(),
    );
    let outcome = verdict(
        status,
        Utc::now(),
        c.delivery.retry_from,
        Duration::from_secs(cfg.retry_for_secs),
        delay,
    );
    let result = match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Gone => "disabled",
        Outcome::Retry(_) => "retry",
        Outcome::Failed => "failed",
    };
    metrics::counter!(DELIVERIES, "result" => result).increment(1);
    tracing::debug!(delivery = %c.delivery.id, attempt = c.delivery.attempts, ?status, result, "webhook attempt");
    let record = AttemptRecord {
        started_at,
        duration_ms: took.as_millis().min(i32::MAX as u128) as i32,
        status_code: status.map(i32::from),
        error,
    };
    let written = async {
        let mut conn = worker.pool.get().await?;
        outbox::record(&mut conn, &c.delivery, record, outcome).await
    }
    .await;
    if let Err(e) = written {
        // The lease lapses and the delivery is sent again: at least once.
        tracing::warn!(delivery = %c.delivery.id, error = %e, "webhook attempt not recorded; it will be retried");
    }
}

/// Sends one attempt: the receiver's status, or why there was none.
async fn send(worker: &Worker, c: &Claimed) -> Result<u16, String> {
    let url = target::parse(&c.endpoint.url).map_err(|e| e.to_string())?;
    target::check_literal(&url, worker.config.allow_private_targets).map_err(|e| e.to_string())?;
    let body = events::body(
        &c.event.event_type,
        c.event.occurred_at,
        &c.event.data,
        &worker.public_url,
    );
    let id = outbox::webhook_id(c.event.id);
    let timestamp = Utc::now().timestamp();
    let signature =
        sign::signature(&c.endpoint.secret, &id, timestamp, &body).map_err(|e| e.to_string())?;
    let response = worker
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(response.status().as_u16())
}

/// A request error in words, with its cause (the guarded resolver's
/// refusal, a refused connection, the timeout), without the URL.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(1, base, max, 0.5), Duration::from_secs(5));
        assert_eq!(backoff(2, base, max, 0.5), Duration::from_secs(10));
        assert_eq!(backoff(4, base, max, 0.5), Duration::from_secs(40));
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_millis(2500));
        assert_eq!(backoff(1, base, max, 1.0), Duration::from_millis(7500));
        assert_eq!(backoff(30, base, max, 1.0), max);
        assert_eq!(backoff(i32::MAX, base, max, 0.5), max);
    }

    #[test]
    fn a_tenant_gets_half_the_workers_and_at_least_one() {
        assert_eq!(per_tenant(8), 4);
        assert_eq!(per_tenant(3), 1);
        assert_eq!(per_tenant(1), 1);
        assert_eq!(per_tenant(256), 128);
    }

    #[test]
    fn verdicts() {
        let t0: DateTime<Utc> = "2026-12-04T10:00:00Z".parse().expect("time");
        let day = Duration::from_secs(86_400);
        let d = Duration::from_secs(10);
        let now = t0 + chrono::Duration::seconds(60);
        assert_eq!(verdict(Some(200), now, t0, day, d), Outcome::Delivered);
        assert_eq!(verdict(Some(204), now, t0, day, d), Outcome::Delivered);
        assert_eq!(verdict(Some(410), now, t0, day, d), Outcome::Gone);
        let retry = Outcome::Retry(now + chrono::Duration::seconds(10));
        assert_eq!(verdict(Some(500), now, t0, day, d), retry);
        assert_eq!(verdict(Some(301), now, t0, day, d), retry);
        assert_eq!(verdict(None, now, t0, day, d), retry);
        // The last try is at the window's end; past it the delivery fails.
        let near = t0 + chrono::Duration::seconds(86_395);
        assert_eq!(
            verdict(Some(500), near, t0, day, d),
            Outcome::Retry(t0 + chrono::Duration::seconds(86_400))
        );
        let past = t0 + chrono::Duration::seconds(86_400);
        assert_eq!(verdict(Some(500), past, t0, day, d), Outcome::Failed);
    }
}
