//! Prometheus exposition of the metrics the actors and providers record
//! through the `metrics` facade. One recorder per process, installed on
//! first use.
//!
//! Conventions: durations are histograms in seconds (`_seconds`), counters
//! end in `_total`, and every series has a `# HELP` line ([`describe`],
//! proven by the `health` integration test on a scraped `/metrics`).
//!
//! What a supervisor watches:
//!
//! - HTTP: `talky_http_requests_total{route,method,status}`,
//!   `talky_http_request_duration_seconds{route,method}` (route: the
//!   template, `/api/v1/campaigns/{id}`; `other` for unknown paths;
//!   `crate::http::telemetry`), `talky_webhooks_refused_total{reason}`,
//!   `talky_webhooks_unmatched_total{reason}` (provider callbacks).
//! - Calls: `talky_calls_active`, `talky_dial_queue`,
//!   `talky_calls_dialled_total`, `talky_dials_not_placed_total`,
//!   `talky_calls_placed_total{provider}`,
//!   `talky_telephony_failovers_total{reason}`, `talky_calls_total{outcome}`,
//!   `talky_turn_latency_seconds{stage}` (histogram), `talky_barge_ins_total`,
//!   `talky_transfers_total{result}` (accepted, failed),
//!   `talky_calls_reconciled_total{result}`.
//! - Actors: `talky_actor_restarts_total{actor}`,
//!   `talky_call_child_failures_total{child}`, `talky_call_crashes_total`,
//!   `talky_call_record_write_retries_total{op}`,
//!   `talky_call_record_writes_dropped_total{op}`,
//!   `talky_call_record_writes_lost_total`.
//! - Providers: `talky_provider_request_duration_seconds{provider,operation}`
//!   (histogram), `talky_provider_errors_total{provider,operation,kind}`
//!   (`crate::providers::observe`), `talky_provider_breaker_open{provider}`
//!   (0 closed, 1 open or half-open; every breaker from start-up).
//! - Recordings: `talky_recordings_total{result}`,
//!   `talky_recording_dropped_chunks_total`, `talky_recording_truncated_total`,
//!   `talky_recording_queue_full_total`,
//!   `talky_recording_uploads_total{result}`, `talky_recording_upload_seconds`
//!   (histogram), `talky_recording_uploads_pending`,
//!   `talky_recordings_expired_total`, `talky_recordings_purged_total`.
//! - Cluster: `talky_campaign_notices_total{event}` (published,
//!   publish_failed, received, invalid, dropped).
//! - Analyses: `talky_analysis_total{result}`, `talky_analysis_seconds`
//!   (histogram), `talky_analysis_pending`.
//! - Webhooks: `talky_webhook_deliveries_total{result}`,
//!   `talky_webhook_delivery_seconds` (histogram),
//!   `talky_webhook_deliveries_pending`.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Post-call analysis time buckets, seconds.
const ANALYSIS_BUCKETS_SECONDS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 120.0];
/// Upload time histogram buckets, seconds.
const UPLOAD_BUCKETS_SECONDS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Calls whose record writes were still queued when a stopping process
/// gave up waiting for them (see `crate::runtime`): lost with the process.
pub const RECORD_WRITES_LOST: &str = "talky_call_record_writes_lost_total";

/// Webhook request time buckets, seconds.
const WEBHOOK_BUCKETS_S: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Gives every series the process records its `# HELP` line and unit (on
/// the recorder in use: the global one, or a test's local one): this
/// crate's, the actors' (`talky_actors::metrics`), the HTTP layer's and
/// the providers'.
pub fn describe() {
    talky_actors::metrics::describe();
    crate::http::telemetry::describe();
    crate::providers::observe::describe();
    crate::analysis::worker::describe();
    describe_gauge!(
        crate::providers::breaker::OPEN_METRIC,
        Unit::Count,
        "Circuit breaker of a provider: 1 while it refuses calls (open, or half-open with its one probe out), 0 while closed; set for every breaker at start-up"
    );
    describe_counter!(
        crate::providers::telephony_chain::CALLS_PLACED,
        Unit::Count,
        "Create-calls a telephony provider accepted (answered with the leg's id), by provider"
    );
    describe_counter!(
        crate::providers::telephony_chain::FAILOVERS,
        Unit::Count,
        "Call attempts of vonage_then_twilio campaigns placed on Twilio because Vonage provably held no leg for them: its circuit was open (circuit_open) or its create-call failed before a leg existed (no_leg)"
    );
    describe_counter!(
        RECORD_WRITES_LOST,
        Unit::Count,
        "Calls whose records (status, outcome, turns, events) were still queued when a stopping process gave up waiting for them; they were lost at exit"
    );
    describe_counter!(
        crate::reconcile::RECONCILED,
        Unit::Count,
        "Calls of dead nodes the reconciler settled, by result: finished (stored as ended), hung_up (of those, legs still up that it hung up), released (intents never placed, given back)"
    );
    describe_counter!(
        crate::http::vonage::REFUSED,
        Unit::Count,
        "Provider callbacks (Vonage, Twilio) refused for their credentials or leg, by reason (signature, uuid_mismatch, replay, ...)"
    );
    describe_counter!(
        crate::http::vonage::UNMATCHED,
        Unit::Count,
        "Provider callbacks that matched no call, by reason (key, unknown_call)"
    );
    describe_counter!(
        crate::recording::pool::RESULT_METRIC,
        Unit::Count,
        "Call recordings encoded, by result (ready, failed, empty)"
    );
    describe_counter!(
        crate::recording::spool::DROPPED_METRIC,
        Unit::Count,
        "Audio chunks left out of a recording because its spool's queue was full"
    );
    describe_counter!(
        crate::recording::spool::TRUNCATED_METRIC,
        Unit::Count,
        "Calls whose recording reached its size cap (the rest of the call was not recorded)"
    );
    describe_counter!(
        crate::recording::QUEUE_FULL_METRIC,
        Unit::Count,
        "Finished spools that found the encoder queue full (left on disk for the next start)"
    );
    describe_counter!(
        crate::recording::upload::UPLOADS_METRIC,
        Unit::Count,
        "Attempts to upload a finished recording to the object store, by result (ok, error); failed ones are retried with backoff"
    );
    describe_histogram!(
        crate::recording::upload::UPLOAD_SECONDS_METRIC,
        Unit::Seconds,
        "Seconds one successful recording upload to the object store took"
    );
    describe_gauge!(
        crate::recording::upload::PENDING_METRIC,
        Unit::Count,
        "Finished recordings on this node's disk not yet in the object store (409 for clients until they land)"
    );
    describe_counter!(
        crate::recording::sweep::EXPIRED_METRIC,
        Unit::Count,
        "Recordings deleted by their campaign's recording_retention_days (the API answers 404 expired)"
    );
    describe_counter!(
        crate::recording::sweep::PURGED_METRIC,
        Unit::Count,
        "Recordings (files or objects) deleted because their campaign was deleted"
    );
    describe_counter!(
        crate::redis::notices::METRIC,
        Unit::Count,
        "Campaign lifecycle notices between nodes over Redis pub/sub, by event (published, publish_failed, received, invalid, dropped)"
    );
    use crate::webhooks::deliver;
    describe_counter!(
        deliver::DELIVERIES,
        Unit::Count,
        "Customer webhook attempts by result: delivered (2xx), retry (another attempt is scheduled), failed (retry window over), disabled (the receiver answered 410)"
    );
    describe_histogram!(
        deliver::DELIVERY_SECONDS,
        Unit::Seconds,
        "Time of one customer webhook attempt, request sent to status received (or the error)"
    );
    describe_gauge!(
        deliver::PENDING,
        Unit::Count,
        "Customer webhook deliveries not yet delivered, failed or disabled, across the cluster (recounted every 5 s)"
    );
}

/// The histograms' buckets (every other histogram gets the exporter's
/// default, seconds).
fn buckets() -> [(&'static str, &'static [f64]); 6] {
    [
        (
            talky_actors::metrics::TURN_LATENCY,
            &talky_actors::metrics::TURN_LATENCY_BUCKETS_SECONDS,
        ),
        (
            crate::providers::observe::REQUEST_SECONDS,
            &crate::providers::observe::REQUEST_BUCKETS_SECONDS,
        ),
        (
            crate::http::telemetry::DURATION,
            &crate::http::telemetry::DURATION_BUCKETS_SECONDS,
        ),
        (crate::analysis::worker::SECONDS, &ANALYSIS_BUCKETS_SECONDS),
        (
            crate::webhooks::deliver::DELIVERY_SECONDS,
            &WEBHOOK_BUCKETS_S,
        ),
        (
            crate::recording::upload::UPLOAD_SECONDS_METRIC,
            &UPLOAD_BUCKETS_SECONDS,
        ),
    ]
}

/// The process's recorder (installed on the first call).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = buckets()
                .into_iter()
                .try_fold(PrometheusBuilder::new(), |b, (name, buckets)| {
                    b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only ours"
                );
            }
            describe();
            handle
        })
        .clone()
}
