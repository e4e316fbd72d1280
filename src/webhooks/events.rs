//! The events a tenant may subscribe to and what their `data` holds.
//! Built from the rows the state change just wrote, inside its
//! transaction, so the event says exactly what was stored.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::db::calls::{Call, CallTurn};

/// A call was answered (the first time its status became `answered`).
pub const CALL_STARTED: &str = "call.started";
/// A call row was finished: outcome, reason, duration, transcript.
pub const CALL_ENDED: &str = "call.ended";
/// A call's post-call analysis was stored (emitted by the analysis code).
pub const CALL_ANALYZED: &str = "call.analyzed";
/// A number was put on the tenant's do-not-call list.
pub const CONTACT_DO_NOT_CALL: &str = "contact.do_not_call";
/// A campaign's state became `completed`.
pub const CAMPAIGN_COMPLETED: &str = "campaign.completed";

/// Every event type, in the order the API documents them.
pub const EVENT_TYPES: [&str; 5] = [
    CALL_STARTED,
    CALL_ENDED,
    CALL_ANALYZED,
    CONTACT_DO_NOT_CALL,
    CAMPAIGN_COMPLETED,
];

/// The call's fields, named as `GET /api/v1/calls/{id}` names them.
pub fn call(c: &Call) -> Value {
    json!({
        "id": c.id,
        "campaign_id": c.campaign_id,
        "contact_id": c.contact_id,
        "attempt": c.attempt,
        "phone": c.phone,
        "provider": c.provider,
        "provider_call_id": c.provider_call_id,
        "status": c.status,
        "outcome": c.outcome,
        "hangup_reason": c.hangup_reason,
        "created_at": c.created_at,
        "dialed_at": c.dialed_at,
        "answered_at": c.answered_at,
        "ended_at": c.ended_at,
        "duration_secs": c.duration_secs,
    })
}

/// Where a call's recording is served, relative to `server.public_url`
/// (made absolute when the event is sent, see `deliver`).
pub fn recording_path(call: uuid::Uuid) -> String {
    format!("/api/v1/calls/{call}/recording")
}

/// `call.ended`: the call, its transcript as heard (an agent turn's text
/// is what the callee heard of it), each turn's latency split, and the
/// recording's URL when the campaign records.
pub fn call_ended(c: &Call, turns: &[CallTurn], records: bool) -> Value {
    let mut data = call(c);
    let turns: Vec<Value> = turns
        .iter()
        .map(|t| {
            json!({
                "seq": t.seq,
                "speaker": t.speaker,
                "text": t.heard_text.as_deref().unwrap_or(&t.text),
                "interrupted": t.interrupted,
                "started_at": t.started_at,
                "ended_at": t.ended_at,
                "latency": {
                    "stt_ms": t.stt_ms,
                    "llm_first_token_ms": t.llm_first_token_ms,
                    "tts_first_audio_ms": t.tts_first_audio_ms,
                    "first_frame_ms": t.first_frame_ms,
                    "voice_to_voice_ms": t.voice_to_voice_ms,
                },
            })
        })
        .collect();
    data["turns"] = Value::Array(turns);
    data["recording_url"] = if records {
        Value::String(recording_path(c.id))
    } else {
        Value::Null
    };
    data
}

/// `contact.do_not_call`: the number, why, and the call that asked (none
/// when an operator listed it through the API).
pub fn do_not_call(
    phone: &str,
    reason: Option<&str>,
    call: Option<uuid::Uuid>,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "phone": phone,
        "reason": reason,
        "call_id": call,
        "source": if call.is_some() { "call" } else { "api" },
        "listed_at": at,
    })
}

/// `campaign.completed`.
pub fn campaign_completed(campaign: uuid::Uuid, name: &str, at: DateTime<Utc>) -> Value {
    json!({ "campaign_id": campaign, "name": name, "state": "completed", "completed_at": at })
}

/// The body of one delivery: `{"type","timestamp","data"}`, with a
/// relative `data.recording_url` made absolute on `public_url`.
pub fn body(
    event_type: &str,
    occurred_at: DateTime<Utc>,
    data: &Value,
    public_url: &str,
) -> Vec<u8> {
    let mut data = data.clone();
    if let Some(path) = data
        .get("recording_url")
        .and_then(Value::as_str)
        .filter(|p| p.starts_with('/'))
    {
        data["recording_url"] = Value::String(format!("{public_url}{path}"));
    }
    let body = json!({
        "type": event_type,
        "timestamp": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_type_timestamp_data_with_an_absolute_recording_url() {
        let at: DateTime<Utc> = "2026-12-04T10:00:00.250Z".parse().expect("time");
        let data = json!({"id": "c1", "recording_url": "/api/v1/calls/c1/recording"});
        let sent: Value = serde_json::from_slice(&body(CALL_ENDED, at, &data, "https://t.example"))
            .expect("json");
        assert_eq!(sent["type"], "call.ended");
        assert_eq!(sent["timestamp"], "2026-12-04T10:00:00.250Z");
        assert_eq!(
            sent["data"]["recording_url"],
            "https://t.example/api/v1/calls/c1/recording"
        );
        let none: Value = serde_json::from_slice(&body(
            CALL_ENDED,
            at,
            &json!({"recording_url": null}),
            "https://t.example",
        ))
        .expect("json");
        assert_eq!(none["data"]["recording_url"], Value::Null);
    }
}
