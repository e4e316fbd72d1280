//! What every provider records per operation (`/metrics`): how long the
//! caller waited for it and, when it failed, why. One helper for every
//! client, so the series mean the same thing for each provider.
//!
//! An *operation* is one call of a port as its caller waits for it,
//! retries included: a REST request is timed to its whole answer; a
//! streamed one (LLM tokens, TTS audio) to its first result, which is the
//! latency a call hears; the Deepgram STT socket to its handshake (its
//! results wait for speech, so their timing says nothing of the provider).
//! An operation the circuit breaker refused sent nothing: it is neither
//! timed nor counted as a provider error (the breaker's gauge says it).

use std::future::Future;
use std::time::Instant;

use talky_actors::ports::{PortError, PortResult};

/// Histogram of operation time, seconds, by `provider` and `operation`.
pub const REQUEST_SECONDS: &str = "talky_provider_request_duration_seconds";
/// Counter of failed operations (and of streams broken after their
/// start), by `provider`, `operation` and `kind`.
pub const ERRORS: &str = "talky_provider_errors_total";

/// Operation time buckets, seconds: a first token or audio chunk in tens
/// of milliseconds up to a slow create-call or transcription.
pub const REQUEST_BUCKETS_SECONDS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5, 5.0, 10.0,
];

/// The message end of the error of an operation its breaker refused.
const CIRCUIT_OPEN: &str = ": circuit open";

/// The error of an operation `provider`'s breaker refused (nothing was
/// sent); [`timed`] neither times nor counts it.
pub fn circuit_open(provider: &str) -> PortError {
    PortError::Unavailable(format!("{provider}{CIRCUIT_OPEN}"))
}

/// Whether `e` is [`circuit_open`]'s.
pub fn is_circuit_open(e: &PortError) -> bool {
    matches!(e, PortError::Unavailable(m) if m.ends_with(CIRCUIT_OPEN))
}

/// The `kind` label of an error: its [`PortError`] variant.
pub fn kind(e: &PortError) -> &'static str {
    match e {
        PortError::Timeout(_) => "timeout",
        PortError::RateLimited { .. } => "rate_limited",
        PortError::Unavailable(_) => "unavailable",
        PortError::Rejected(_) => "rejected",
        PortError::Protocol(_) => "protocol",
        PortError::Unknown(_) => "unknown",
    }
}

/// Counts one failure of `provider`'s `operation`.
pub fn error(provider: &str, operation: &'static str, e: &PortError) {
    metrics::counter!(
        ERRORS,
        "provider" => provider.to_owned(),
        "operation" => operation,
        "kind" => kind(e),
    )
    .increment(1);
}

/// Awaits `operation` of `provider`, records its time and, if it failed,
/// its error (module docs: what an operation is).
pub async fn timed<T>(
    provider: &str,
    operation: &'static str,
    fut: impl Future<Output = PortResult<T>>,
) -> PortResult<T> {
    let started = Instant::now();
    let result = fut.await;
    if let Err(e) = &result
        && is_circuit_open(e)
    {
        return result;
    }
    metrics::histogram!(
        REQUEST_SECONDS,
        "provider" => provider.to_owned(),
        "operation" => operation,
    )
    .record(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        error(provider, operation, e);
    }
    result
}

/// Gives the series their `# HELP` line.
pub fn describe() {
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Seconds a provider operation took as its caller waited, retries included, by provider and operation: REST requests (create_call, hang_up, transfer, find_call, get_call, transcribe, complete) to their whole answer; streams (chat: LLM, synthesize: TTS) to their first token or audio; listen (Deepgram STT socket) to its handshake. Refused by an open breaker: not recorded"
    );
    metrics::describe_counter!(
        ERRORS,
        metrics::Unit::Count,
        "Failed provider operations and streams broken after their start, by provider, operation and kind (timeout, rate_limited, unavailable, rejected, protocol, unknown); timeout, rate_limited and unavailable count against the provider's circuit breaker"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_open_is_recognised_and_others_are_not() {
        assert!(is_circuit_open(&circuit_open("deepgram")));
        assert!(!is_circuit_open(&PortError::Unavailable(
            "deepgram: 503".into()
        )));
        assert!(!is_circuit_open(&PortError::Rejected(
            "x: circuit open".into()
        )));
    }

    #[tokio::test]
    async fn timed_records_time_and_errors_but_not_refusals() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let ok: PortResult<()> = timed("aura", "synthesize", async { Ok(()) }).await;
        assert!(ok.is_ok());
        let _ = timed::<()>("aura", "synthesize", async {
            Err(PortError::Timeout("first byte".into()))
        })
        .await;
        let _ = timed::<()>("aura", "synthesize", async { Err(circuit_open("aura")) }).await;
        let text = handle.render();
        let count = text
            .lines()
            .find(|l| {
                l.starts_with(REQUEST_SECONDS)
                    && l.contains("_count")
                    && l.contains("provider=\"aura\"")
            })
            .unwrap_or_default();
        assert!(count.ends_with(" 2"), "two timed, the refusal not: {text}");
        assert!(
            text.lines().any(|l| l.starts_with(ERRORS)
                && l.contains("kind=\"timeout\"")
                && l.contains("operation=\"synthesize\"")
                && l.ends_with(" 1")),
            "{text}"
        );
        assert!(!text.contains("kind=\"unavailable\""), "{text}");
    }
}
