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
//! `talky_campaign_notices_total{event}` (published, publish_failed,
//! received, invalid, dropped), `talky_transfers_total{result}`
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

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Calls whose record writes were still queued when a stopping process
/// gave up waiting for them (see `crate::runtime`): lost with the process.
pub const RECORD_WRITES_LOST: &str = "talky_call_record_writes_lost_total";

/// Call attempts the dialer started (`talky-actors`' dialer counts them).
pub const DIALLED: &str = "talky_calls_dialled_total";

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
        "talky_transfers_total",
        metrics::Unit::Count,
        "Cold transfers of calls to a person asked of the telephony provider, by result (accepted: the call ended transferred; failed: the agent went on)"
    );
    metrics::describe_counter!(
        crate::redis::notices::METRIC,
        metrics::Unit::Count,
        "Campaign lifecycle notices between nodes over Redis pub/sub, by event (published, publish_failed, received, invalid, dropped)"
    );
}

/// The process's recorder (installed on the first call).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_ms".into()), &LATENCY_BUCKETS_MS)
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
