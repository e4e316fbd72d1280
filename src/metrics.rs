//! Prometheus exposition of the metrics the actors and providers record
//! through the `metrics` facade. One recorder per process, installed on
//! first use.
//!
//! What a supervisor watches: `talky_calls_active`, `talky_dial_queue`,
//! `talky_calls_dialled_total`, `talky_calls_placed_total{provider}`,
//! `talky_telephony_failovers_total{reason}`, `talky_calls_total{outcome}`,
//! `talky_turn_latency_ms{stage}` (histogram), `talky_barge_ins_total`,
//! `talky_actor_restarts_total{actor}`, `talky_call_child_failures_total{child}`,
//! `talky_call_crashes_total`, `talky_provider_errors_total{provider}`,
//! `talky_provider_breaker_open{provider}`, `talky_http_requests_total`,
//! `talky_recordings_total{result}`, `talky_recording_dropped_chunks_total`,
//! `talky_recording_queue_full_total`, `talky_call_record_writes_lost_total`,
//! `talky_recording_uploads_total{result}`, `talky_recording_upload_seconds`
//! (histogram), `talky_recording_uploads_pending`,
//! `talky_recordings_expired_total`,
//! `talky_campaign_notices_total{event}` (published, publish_failed,
//! received, invalid, dropped), `talky_analysis_total{result}`,
//! `talky_analysis_seconds` (histogram), `talky_analysis_pending`,
//! `talky_webhook_deliveries_total{result}`,
//! `talky_webhook_delivery_seconds` (histogram),
//! `talky_webhook_deliveries_pending`, `talky_transfers_total{result}`
//! (accepted, failed).
//!
//! Metrics whose meaning is not plain from their name are described
//! ([`describe`]): their `# HELP` line says what they count.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency histogram buckets, milliseconds.
const LATENCY_BUCKETS_MS: [f64; 12] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 500.0, 800.0, 1200.0, 2000.0,
];

/// Post-call analysis time buckets, seconds.
const ANALYSIS_BUCKETS_SECONDS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 120.0];
/// Upload time histogram buckets, seconds.
const UPLOAD_BUCKETS_SECONDS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Calls whose record writes were still queued when a stopping process
/// gave up waiting for them (see `crate::runtime`): lost with the process.
pub const RECORD_WRITES_LOST: &str = "talky_call_record_writes_lost_total";

/// Call attempts the dialer started (`talky-actors`' dialer counts them).
pub const DIALLED: &str = "talky_calls_dialled_total";

/// Webhook request time buckets, seconds.
const WEBHOOK_BUCKETS_S: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Gives the described metrics their `# HELP` line (on the recorder in
/// use: the global one, or a test's local one).
pub fn describe() {
    metrics::describe_counter!(
        crate::providers::telephony_chain::CALLS_PLACED,
        metrics::Unit::Count,
        "Create-calls a telephony provider accepted (answered with the leg's id), by provider"
    );
    metrics::describe_counter!(
        crate::providers::telephony_chain::FAILOVERS,
        metrics::Unit::Count,
        "Call attempts of vonage_then_twilio campaigns placed on Twilio because Vonage provably held no leg for them: its circuit was open (circuit_open) or its create-call failed before a leg existed (no_leg)"
    );
    metrics::describe_counter!(
        DIALLED,
        metrics::Unit::Count,
        "Call attempts the dialer started (one call actor each, placed through the campaign's telephony); see talky_calls_placed_total for what the providers accepted"
    );
    metrics::describe_counter!(
        RECORD_WRITES_LOST,
        metrics::Unit::Count,
        "Calls whose records (status, outcome, turns, events) were still queued when a stopping process gave up waiting for them; they were lost at exit"
    );
    metrics::describe_counter!(
        crate::recording::upload::UPLOADS_METRIC,
        metrics::Unit::Count,
        "Attempts to upload a finished recording to the object store, by result (ok, error); failed ones are retried with backoff"
    );
    metrics::describe_histogram!(
        crate::recording::upload::UPLOAD_SECONDS_METRIC,
        metrics::Unit::Seconds,
        "Seconds one successful recording upload to the object store took"
    );
    metrics::describe_gauge!(
        crate::recording::upload::PENDING_METRIC,
        metrics::Unit::Count,
        "Finished recordings on this node's disk not yet in the object store (409 for clients until they land)"
    );
    metrics::describe_counter!(
        crate::recording::sweep::EXPIRED_METRIC,
        metrics::Unit::Count,
        "Recordings deleted by their campaign's recording_retention_days (the API answers 404 expired)"
    );
    metrics::describe_counter!(
        crate::recording::sweep::PURGED_METRIC,
        metrics::Unit::Count,
        "Recordings (files or objects) deleted because their campaign was deleted"
    );
    metrics::describe_counter!(
        "talky_transfers_total",
        metrics::Unit::Count,
        "Cold transfers of calls to a person asked of the telephony provider, by result (accepted: the call ended transferred; failed: the agent went on)"
    );
    metrics::describe_counter!(
        crate::redis::notices::METRIC,
        metrics::Unit::Count,
        "Campaign lifecycle notices between nodes over Redis pub/sub, by event (published, publish_failed, received, invalid, dropped)"
    );
    use crate::webhooks::deliver;
    metrics::describe_counter!(
        deliver::DELIVERIES,
        metrics::Unit::Count,
        "Customer webhook attempts by result: delivered (2xx), retry (another attempt is scheduled), failed (retry window over), disabled (the receiver answered 410)"
    );
    metrics::describe_histogram!(
        deliver::DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "Time of one customer webhook attempt, request sent to status received (or the error)"
    );
    metrics::describe_gauge!(
        deliver::PENDING,
        metrics::Unit::Count,
        "Customer webhook deliveries not yet delivered, failed or disabled, across the cluster (recounted every 5 s)"
    );
}

/// The process's recorder (installed on the first call).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_ms".into()), &LATENCY_BUCKETS_MS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::analysis::worker::SECONDS.into()),
                        &ANALYSIS_BUCKETS_SECONDS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::webhooks::deliver::DELIVERY_SECONDS.into()),
                        &WEBHOOK_BUCKETS_S,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(crate::recording::upload::UPLOAD_SECONDS_METRIC.into()),
                        &UPLOAD_BUCKETS_SECONDS,
                    )
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
            crate::analysis::worker::describe();
            handle
        })
        .clone()
}
