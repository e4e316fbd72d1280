//! The event webhook (spec §1.7, §1.8): Vonage's JSON parsed into a typed
//! [`VonageEvent`], then mapped to the port's
//! [`TelephonyEvent`](talky_actors::ports::TelephonyEvent).
//!
//! Unknown statuses are kept raw ([`VonageStatus::Unknown`]), never an
//! error: Vonage adds statuses and we must still answer 2xx. Events of the
//! same URL that carry no `status` (error, transfer, input, record) get a
//! derived kind. Only input that is not a JSON object, or lacks both a
//! status and a recognisable kind, or has no valid `timestamp`, is an error.
//!
//! Mapping ([`VonageEvent::telephony`]), for the phone leg:
//!
//! | status | event |
//! |---|---|
//! | `started` | none (we already know we dialled) |
//! | `ringing` | `Ringing` |
//! | `answered` | `Answered` |
//! | `human` / `machine` | `Human` / `Machine` (a later `machine` with `sub_state` `beep_start`/`beep_timeout` maps to `Machine` again: consumers are idempotent) |
//! | `busy` | `Busy` |
//! | `timeout`, `unanswered` | `NoAnswer` |
//! | `rejected` | `Rejected` |
//! | `failed` | `Failed(detail)` |
//! | `cancelled` | `Cancelled` |
//! | `completed` | `Completed` |
//! | `disconnected`, error, transfer, input, record, unknown | none (logged by the caller) |
//!
//! Events of the media (websocket) leg — `to` is a `ws://`/`wss://` URI —
//! map to nothing, except `failed`/`unanswered`/`rejected`/`timeout`:
//! Vonage could not open our socket, so the call is useless:
//! `Failed("media socket: ...")`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use talky_actors::ports::TelephonyEvent;

/// A call status, or a derived kind for status-less events.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VonageStatus {
    /// Call created.
    Started,
    /// Ringing.
    Ringing,
    /// Callee answered.
    Answered,
    /// Machine detection: a person.
    Human,
    /// Machine detection: a machine (maybe with a beep `sub_state`).
    Machine,
    /// Busy.
    Busy,
    /// We cancelled before answer.
    Cancelled,
    /// Not answered / unreachable (`detail`: `unavailable`, `timeout`).
    Unanswered,
    /// Ringing exceeded `ringing_timer`.
    Timeout,
    /// Rejected (`detail`: `invalid_number`, `restricted`, `declined`).
    Rejected,
    /// Could not connect (`detail`: `cannot_route`, ...).
    Failed,
    /// Our websocket closed.
    Disconnected,
    /// Call over.
    Completed,
    /// No status; an error event (`reason`).
    Error,
    /// No status; a transfer event.
    Transfer,
    /// No status; an input (DTMF/speech) result.
    Input,
    /// No status; a recording finished.
    Record,
    /// A status we do not know, kept as sent.
    Unknown(String),
}

impl VonageStatus {
    /// From the wire string.
    pub fn parse(s: &str) -> Self {
        match s {
            "started" => Self::Started,
            "ringing" => Self::Ringing,
            "answered" => Self::Answered,
            "human" => Self::Human,
            "machine" => Self::Machine,
            "busy" => Self::Busy,
            "cancelled" => Self::Cancelled,
            "unanswered" => Self::Unanswered,
            "timeout" => Self::Timeout,
            "rejected" => Self::Rejected,
            "failed" => Self::Failed,
            "disconnected" => Self::Disconnected,
            "completed" => Self::Completed,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// Whether the call is over after this (failure paths and `completed`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Busy
                | Self::Cancelled
                | Self::Unanswered
                | Self::Timeout
                | Self::Rejected
                | Self::Failed
                | Self::Completed
        )
    }
}

/// Why an event body could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not an object of the expected shape.
    #[error("vonage event: malformed: {0}")]
    Malformed(String),
    /// A required field is missing.
    #[error("vonage event: missing field {0}")]
    Missing(&'static str),
    /// `timestamp` is not ISO 8601.
    #[error("vonage event: bad timestamp {0:?}")]
    BadTimestamp(String),
}

/// One event webhook, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VonageEvent {
    /// The leg's id (`uuid`, or `call_uuid` from standard detection);
    /// absent on error events.
    pub uuid: Option<String>,
    /// `CON-...`.
    pub conversation_uuid: Option<String>,
    /// Status or derived kind.
    pub status: VonageStatus,
    /// `outbound` for our calls.
    pub direction: Option<String>,
    /// When Vonage emitted it.
    pub timestamp: DateTime<Utc>,
    /// Caller.
    pub from: Option<String>,
    /// Callee, or the socket URI on the media leg.
    pub to: Option<String>,
    /// Reason of `unanswered` / `rejected` / `failed`.
    pub detail: Option<String>,
    /// AMD detail: `beep_start` / `beep_timeout`.
    pub sub_state: Option<String>,
    /// Error events: what went wrong.
    pub reason: Option<String>,
    /// `completed`: start (ISO 8601 as sent; empty on `answered`).
    pub start_time: Option<String>,
    /// `completed`: end.
    pub end_time: Option<String>,
    /// `completed`: seconds, as sent (string).
    pub duration: Option<String>,
    /// Per-minute rate (EUR, string).
    pub rate: Option<String>,
    /// Total price (EUR, string).
    pub price: Option<String>,
    /// Network code.
    pub network: Option<String>,
    /// The websocket endpoint's headers echoed (media leg events).
    pub headers: BTreeMap<String, String>,
}

/// Accepts strings or numbers (Vonage is loose with `duration`, `rate`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Loose {
    S(String),
    N(serde_json::Number),
    B(bool),
    Other(serde_json::Value),
}

impl Loose {
    fn into_string(self) -> Option<String> {
        match self {
            Loose::S(s) => Some(s),
            Loose::N(n) => Some(n.to_string()),
            Loose::B(b) => Some(b.to_string()),
            Loose::Other(v) if v.is_null() => None,
            Loose::Other(v) => Some(v.to_string()),
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    uuid: Option<Loose>,
    call_uuid: Option<Loose>,
    conversation_uuid: Option<Loose>,
    status: Option<Loose>,
    direction: Option<Loose>,
    timestamp: Option<Loose>,
    from: Option<Loose>,
    to: Option<Loose>,
    detail: Option<Loose>,
    sub_state: Option<Loose>,
    reason: Option<Loose>,
    start_time: Option<Loose>,
    end_time: Option<Loose>,
    duration: Option<Loose>,
    rate: Option<Loose>,
    price: Option<Loose>,
    network: Option<Loose>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Loose>>,
    conversation_uuid_from: Option<serde_json::Value>,
    dtmf: Option<serde_json::Value>,
    speech: Option<serde_json::Value>,
    recording_url: Option<serde_json::Value>,
}

fn s(v: Option<Loose>) -> Option<String> {
    v.and_then(Loose::into_string)
}

/// ISO 8601 / RFC 3339, or `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn parse_timestamp(t: &str) -> Result<DateTime<Utc>, EventError> {
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(n.and_utc());
        }
    }
    Err(EventError::BadTimestamp(t.to_owned()))
}

impl VonageEvent {
    /// Parses a POSTed JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self, EventError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| EventError::Malformed(e.to_string()))?;
        if !value.is_object() {
            return Err(EventError::Malformed("not a JSON object".into()));
        }
        let raw: Raw =
            serde_json::from_value(value).map_err(|e| EventError::Malformed(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Parses the query string of a `GET` event webhook.
    pub fn from_query(query: &str) -> Result<Self, EventError> {
        let map: BTreeMap<String, String> =
            serde_urlencoded::from_str(query).map_err(|e| EventError::Malformed(e.to_string()))?;
        let obj: serde_json::Map<String, serde_json::Value> = map
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let raw: Raw = serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|e| EventError::Malformed(e.to_string()))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Self, EventError> {
        let status = match s(raw.status) {
            Some(st) => VonageStatus::parse(&st),
            None if raw.reason.is_some() => VonageStatus::Error,
            None if raw.conversation_uuid_from.is_some() => VonageStatus::Transfer,
            None if raw.dtmf.is_some() || raw.speech.is_some() => VonageStatus::Input,
            None if raw.recording_url.is_some() => VonageStatus::Record,
            None => return Err(EventError::Missing("status")),
        };
        let ts = s(raw.timestamp).ok_or(EventError::Missing("timestamp"))?;
        let timestamp = parse_timestamp(&ts)?;
        Ok(Self {
            uuid: s(raw.uuid).or_else(|| s(raw.call_uuid)),
            conversation_uuid: s(raw.conversation_uuid),
            status,
            direction: s(raw.direction),
            timestamp,
            from: s(raw.from),
            to: s(raw.to),
            detail: s(raw.detail),
            sub_state: s(raw.sub_state),
            reason: s(raw.reason),
            start_time: s(raw.start_time),
            end_time: s(raw.end_time),
            duration: s(raw.duration),
            rate: s(raw.rate),
            price: s(raw.price),
            network: s(raw.network),
            headers: raw
                .headers
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| v.into_string().map(|v| (k, v)))
                .collect(),
        })
    }

    /// Whether this is an event of the media (websocket) leg.
    pub fn is_media_leg(&self) -> bool {
        self.to
            .as_deref()
            .is_some_and(|t| t.starts_with("ws://") || t.starts_with("wss://"))
    }

    /// The port event this maps to, if any (table in the module docs).
    pub fn telephony(&self) -> Option<TelephonyEvent> {
        use VonageStatus as S;
        if self.is_media_leg() {
            return match self.status {
                S::Failed | S::Unanswered | S::Rejected | S::Timeout => {
                    Some(TelephonyEvent::Failed(format!(
                        "media socket: {}",
                        self.detail.as_deref().unwrap_or(match self.status {
                            S::Failed => "failed",
                            S::Unanswered => "unanswered",
                            S::Rejected => "rejected",
                            _ => "timeout",
                        })
                    )))
                }
                _ => None,
            };
        }
        match &self.status {
            S::Ringing => Some(TelephonyEvent::Ringing),
            S::Answered => Some(TelephonyEvent::Answered),
            S::Human => Some(TelephonyEvent::Human),
            S::Machine => Some(TelephonyEvent::Machine),
            S::Busy => Some(TelephonyEvent::Busy),
            S::Timeout | S::Unanswered => Some(TelephonyEvent::NoAnswer),
            S::Rejected => Some(TelephonyEvent::Rejected),
            S::Failed => Some(TelephonyEvent::Failed(
                self.detail.clone().unwrap_or_else(|| "failed".into()),
            )),
            S::Cancelled => Some(TelephonyEvent::Cancelled),
            S::Completed => Some(TelephonyEvent::Completed),
            S::Started
            | S::Disconnected
            | S::Error
            | S::Transfer
            | S::Input
            | S::Record
            | S::Unknown(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ev(json: &str) -> VonageEvent {
        VonageEvent::from_json(json.as_bytes()).expect("parses")
    }

    fn common(status: &str, extra: &str) -> String {
        format!(
            r#"{{"from":"447700900001","to":"447700900000","uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356",
            "conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22","status":"{status}",
            "direction":"outbound","timestamp":"2020-01-01T12:00:07.000Z"{extra}}}"#
        )
    }

    #[test]
    fn spec_completed_example() {
        let e = ev(
            r#"{"end_time":"2020-01-01T12:00:07.000Z","uuid":"63f61863-...","network":"GB-FIXED",
 "duration":"7","start_time":"2020-01-01T12:00:00.000Z","rate":"0.00450000","price":"0.00052500",
 "from":"447700900001","to":"447700900000","conversation_uuid":"CON-f972836a-...",
 "status":"completed","direction":"outbound","timestamp":"2020-01-01T12:00:07.000Z"}"#,
        );
        assert_eq!(e.status, VonageStatus::Completed);
        assert_eq!(e.uuid.as_deref(), Some("63f61863-..."));
        assert_eq!(e.conversation_uuid.as_deref(), Some("CON-f972836a-..."));
        assert_eq!(e.direction.as_deref(), Some("outbound"));
        assert_eq!(e.duration.as_deref(), Some("7"));
        assert_eq!(e.price.as_deref(), Some("0.00052500"));
        assert_eq!(e.rate.as_deref(), Some("0.00450000"));
        assert_eq!(e.network.as_deref(), Some("GB-FIXED"));
        assert_eq!(e.start_time.as_deref(), Some("2020-01-01T12:00:00.000Z"));
        assert_eq!(e.end_time.as_deref(), Some("2020-01-01T12:00:07.000Z"));
        assert_eq!(
            e.timestamp,
            Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 7)
                .single()
                .expect("t")
        );
        assert_eq!(e.telephony(), Some(TelephonyEvent::Completed));
        assert!(e.status.is_terminal());
    }

    #[test]
    fn every_documented_status_maps() {
        use TelephonyEvent as T;
        let cases: Vec<(&str, &str, VonageStatus, Option<T>)> = vec![
            ("started", "", VonageStatus::Started, None),
            ("ringing", "", VonageStatus::Ringing, Some(T::Ringing)),
            (
                "answered",
                r#","start_time":"","rate":"","network":"""#,
                VonageStatus::Answered,
                Some(T::Answered),
            ),
            ("human", "", VonageStatus::Human, Some(T::Human)),
            ("machine", "", VonageStatus::Machine, Some(T::Machine)),
            ("busy", "", VonageStatus::Busy, Some(T::Busy)),
            ("cancelled", "", VonageStatus::Cancelled, Some(T::Cancelled)),
            (
                "unanswered",
                r#","detail":"unavailable""#,
                VonageStatus::Unanswered,
                Some(T::NoAnswer),
            ),
            ("timeout", "", VonageStatus::Timeout, Some(T::NoAnswer)),
            (
                "rejected",
                r#","detail":"declined""#,
                VonageStatus::Rejected,
                Some(T::Rejected),
            ),
            (
                "failed",
                r#","detail":"cannot_route""#,
                VonageStatus::Failed,
                Some(T::Failed("cannot_route".into())),
            ),
            (
                "disconnected",
                r#","headers":{"call_id":"c-123"}"#,
                VonageStatus::Disconnected,
                None,
            ),
            ("completed", "", VonageStatus::Completed, Some(T::Completed)),
        ];
        for (status, extra, want_status, want_event) in cases {
            let e = ev(&common(status, extra));
            assert_eq!(e.status, want_status, "{status}");
            assert_eq!(e.telephony(), want_event, "{status}");
        }
        let a = ev(&common(
            "answered",
            r#","start_time":"","rate":"","network":"""#,
        ));
        assert_eq!(a.start_time.as_deref(), Some(""));
        let f = ev(&common("failed", ""));
        assert_eq!(f.telephony(), Some(TelephonyEvent::Failed("failed".into())));
    }

    #[test]
    fn machine_detection_events_1_8() {
        // Standard detection uses call_uuid instead of uuid.
        let e = ev(
            r#"{"call_uuid":"abc","conversation_uuid":"CON-1","status":"machine","direction":"outbound","timestamp":"2020-01-01T12:00:05.123Z"}"#,
        );
        assert_eq!(e.uuid.as_deref(), Some("abc"));
        assert_eq!(e.telephony(), Some(TelephonyEvent::Machine));
        let beep = ev(&common("machine", r#","sub_state":"beep_start""#));
        assert_eq!(beep.sub_state.as_deref(), Some("beep_start"));
        assert_eq!(beep.telephony(), Some(TelephonyEvent::Machine));
        let h = ev(&common("human", ""));
        assert_eq!(h.telephony(), Some(TelephonyEvent::Human));
    }

    #[test]
    fn media_leg_events_1_6() {
        let e = ev(
            r#"{"from":"447700900001","to":"wss://dialer.example.com/vonage/media",
"uuid":"u2","conversation_uuid":"CON-1","status":"disconnected","timestamp":"2020-03-31T12:00:00.000Z","headers":{"call_id":"c-123"}}"#,
        );
        assert!(e.is_media_leg());
        assert_eq!(e.headers.get("call_id").map(String::as_str), Some("c-123"));
        assert_eq!(e.telephony(), None);
        let ws = |status: &str| {
            ev(&format!(
                r#"{{"to":"wss://x/vonage/media","uuid":"u2","status":"{status}","timestamp":"2020-03-31T12:00:00.000Z"}}"#
            ))
        };
        assert_eq!(ws("answered").telephony(), None);
        assert_eq!(ws("completed").telephony(), None);
        assert_eq!(
            ws("failed").telephony(),
            Some(TelephonyEvent::Failed("media socket: failed".into()))
        );
        assert_eq!(
            ws("unanswered").telephony(),
            Some(TelephonyEvent::Failed("media socket: unanswered".into()))
        );
    }

    #[test]
    fn status_less_events_get_a_kind() {
        let err = ev(
            r#"{"reason":"Syntax error in NCCO. Invalid value type or action.","conversation_uuid":"CON-1","timestamp":"2020-01-01T12:00:00.000Z"}"#,
        );
        assert_eq!(err.status, VonageStatus::Error);
        assert!(err.reason.as_deref().is_some_and(|r| r.contains("Syntax")));
        assert_eq!(err.uuid, None);
        assert_eq!(err.telephony(), None);
        let t = ev(
            r#"{"conversation_uuid_from":"CON-1","conversation_uuid_to":"CON-2","uuid":"u","timestamp":"2020-01-01T12:00:00.000Z"}"#,
        );
        assert_eq!(t.status, VonageStatus::Transfer);
        let i = ev(
            r#"{"from":"a","to":"b","uuid":"u","conversation_uuid":"c","timestamp":"2020-01-01T12:00:00.000Z","dtmf":{"digits":"42","timed_out":true}}"#,
        );
        assert_eq!(i.status, VonageStatus::Input);
        let r = ev(
            r#"{"start_time":"2020-01-01T12:00:00Z","end_time":"2020-01-01T12:00:05Z","recording_url":"https://x","size":10,"recording_uuid":"r","conversation_uuid":"c","timestamp":"2020-01-01T12:00:05.000Z"}"#,
        );
        assert_eq!(r.status, VonageStatus::Record);
    }

    #[test]
    fn unknown_status_is_kept_raw() {
        let e = ev(&common("teleported", ""));
        assert_eq!(e.status, VonageStatus::Unknown("teleported".into()));
        assert_eq!(e.telephony(), None);
        assert!(!e.status.is_terminal());
    }

    #[test]
    fn optional_fields_may_be_missing_and_types_loose() {
        let e = ev(r#"{"status":"ringing","timestamp":"2020-01-01 12:00:00"}"#);
        assert_eq!(e.uuid, None);
        assert_eq!(e.direction, None);
        assert!(e.headers.is_empty());
        assert_eq!(e.telephony(), Some(TelephonyEvent::Ringing));
        let e = ev(&common(
            "completed",
            r#","duration":7,"price":null,"extra":{"x":1}"#,
        ));
        assert_eq!(e.duration.as_deref(), Some("7"));
        assert_eq!(e.price, None);
    }

    #[test]
    fn get_query_events() {
        let e = VonageEvent::from_query(
            "status=busy&uuid=u1&timestamp=2020-01-01T12%3A00%3A00.000Z&direction=outbound",
        )
        .expect("query");
        assert_eq!(e.status, VonageStatus::Busy);
        assert_eq!(e.uuid.as_deref(), Some("u1"));
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        let bad: [&[u8]; 6] = [
            b"",
            b"not json",
            b"[1,2]",
            b"{\"status\":\"ringing\"}",
            b"{\"status\":\"ringing\",\"timestamp\":\"yesterday\"}",
            b"{\"uuid\":\"u\",\"timestamp\":\"2020-01-01T12:00:00Z\"}",
        ];
        let kinds: Vec<String> = bad
            .iter()
            .map(|b| match VonageEvent::from_json(b) {
                Err(EventError::Malformed(_)) => "malformed".into(),
                Err(EventError::Missing(f)) => format!("missing {f}"),
                Err(EventError::BadTimestamp(_)) => "timestamp".into(),
                Ok(e) => panic!("parsed {e:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "malformed",
                "malformed",
                "malformed",
                "missing timestamp",
                "timestamp",
                "missing status"
            ]
        );
        assert!(VonageEvent::from_json(&[0xff, 0xfe]).is_err());
    }
}
