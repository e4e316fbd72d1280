//! The names of the series the actors record (through the `metrics`
//! facade; the application installs the Prometheus recorder) and their
//! `# HELP` text ([`describe`]), so the exposition explains every one of
//! them and a rename is one edit.

/// Histogram of one turn's latency by `stage`, seconds.
pub const TURN_LATENCY: &str = "talky_turn_latency_seconds";
/// Counter: the caller spoke over the agent and the agent stopped.
pub const BARGE_INS: &str = "talky_barge_ins_total";
/// Counter of restarts of failed actors by `actor`.
pub const ACTOR_RESTARTS: &str = "talky_actor_restarts_total";
/// Counter of failures of a call's STT, LLM or TTS child by `child`.
pub const CALL_CHILD_FAILURES: &str = "talky_call_child_failures_total";
/// Counter of cold transfers by `result`.
pub const TRANSFERS: &str = "talky_transfers_total";
/// Counter of ended calls by `outcome`.
pub const CALLS: &str = "talky_calls_total";
/// Counter of call record writes given up, by `op`.
pub const RECORD_WRITES_DROPPED: &str = "talky_call_record_writes_dropped_total";
/// Counter of call record writes retried, by `op`.
pub const RECORD_WRITE_RETRIES: &str = "talky_call_record_write_retries_total";
/// Counter of queued dials never placed.
pub const DIALS_NOT_PLACED: &str = "talky_dials_not_placed_total";
/// Counter of call attempts the dialer started.
pub const DIALLED: &str = "talky_calls_dialled_total";
/// Gauge of live calls on this node.
pub const CALLS_ACTIVE: &str = "talky_calls_active";
/// Gauge of dials waiting for room on this node.
pub const DIAL_QUEUE: &str = "talky_dial_queue";
/// Counter of call actors that crashed.
pub const CALL_CRASHES: &str = "talky_call_crashes_total";

/// Turn latency buckets, seconds (5 ms to 2 s: a voice-to-voice turn is
/// good under 0.8 s).
pub const TURN_LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0,
];

/// Gives every series above its `# HELP` line (on the recorder in use).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        TURN_LATENCY,
        Unit::Seconds,
        "Seconds of one agent turn by stage: stt (end of speech to final transcript), llm_first_token, tts_first_audio, first_frame (first audio frame sent to the caller), voice_to_voice (end of the caller's speech to the agent's first audio)"
    );
    describe_counter!(
        BARGE_INS,
        Unit::Count,
        "Times a caller spoke over the agent and the agent stopped speaking"
    );
    describe_counter!(
        ACTOR_RESTARTS,
        Unit::Count,
        "Restarts of failed actors by kind (the root's children; a call's stt, llm, tts)"
    );
    describe_counter!(
        CALL_CHILD_FAILURES,
        Unit::Count,
        "Failures of a call's child actor by child (stt, llm, tts); restarted within its budget, else the call ends"
    );
    describe_counter!(
        TRANSFERS,
        Unit::Count,
        "Cold transfers of calls to a person asked of the telephony provider, by result (accepted: the call ended transferred; failed: the agent went on)"
    );
    describe_counter!(
        CALLS,
        Unit::Count,
        "Calls ended on this node by outcome (completed, no_answer, busy, voicemail, failed, ...)"
    );
    describe_counter!(
        RECORD_WRITES_DROPPED,
        Unit::Count,
        "Call record writes (status, turns, events) given up after their retries, by op"
    );
    describe_counter!(
        RECORD_WRITE_RETRIES,
        Unit::Count,
        "Call record writes that failed and were retried, by op"
    );
    describe_counter!(
        DIALS_NOT_PLACED,
        Unit::Count,
        "Queued dials dropped before a call was placed (campaign stopped, no room in time, ...); the campaign gets its contact back"
    );
    describe_counter!(
        DIALLED,
        Unit::Count,
        "Call attempts the dialer started (one call actor each, placed through the campaign's telephony); see talky_calls_placed_total for what the providers accepted"
    );
    describe_gauge!(
        CALLS_ACTIVE,
        Unit::Count,
        "Live calls on this node (call actors running)"
    );
    describe_gauge!(
        DIAL_QUEUE,
        Unit::Count,
        "Dials waiting on this node for room under the concurrency limits"
    );
    describe_counter!(
        CALL_CRASHES,
        Unit::Count,
        "Call actors that crashed (panicked) before reporting their outcome"
    );
}
