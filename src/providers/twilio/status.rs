//! Twilio's status callbacks (spec §2.1): form-encoded POSTs to the
//! `StatusCallback` URL for each event we asked for (initiated, ringing,
//! answered, completed), and to the `AsyncAmdStatusCallback` URL with the
//! machine-detection verdict. Parsed into [`TwilioCallback`], then mapped
//! to the port's [`TelephonyEvent`]s, the same events Vonage's webhooks
//! become (`super::super::vonage::events`), so the CallActor cannot tell
//! the providers apart.
//!
//! Tolerance: a status or verdict we do not know is kept raw
//! ([`TwilioStatus::Unknown`], [`AnsweredBy::Other`]) and maps to nothing,
//! never an error, because Twilio adds values and we must still answer 2xx.
//! Parameters we do not read are ignored. Only a body that is not a form,
//! one without `CallSid`, one with neither `CallStatus` nor `AnsweredBy`,
//! or a documented number/date that does not parse, is an error.
//!
//! Mapping ([`TwilioCallback::telephony`]):
//!
//! | `CallStatus` | event |
//! |---|---|
//! | `queued`, `initiated` | none (we know we dialled) |
//! | `ringing` | `Ringing` |
//! | `in-progress` | `Answered` |
//! | `busy` | `Busy` |
//! | `no-answer` | `NoAnswer` |
//! | `failed` | `Failed(detail)` (SIP response / error code when given) |
//! | `canceled` | `Cancelled` |
//! | `completed` | `Completed` |
//!
//! | `AnsweredBy` | event |
//! |---|---|
//! | `human` | `Human` |
//! | `machine_start`, `machine_end_beep`, `machine_end_silence`, `machine_end_other` | `Machine` |
//! | `fax` | `Machine` (nobody to talk to; the port has no fax verdict) |
//! | `unknown`, anything else | none (no verdict: the call goes on as answered) |
//!
//! When one callback carries both (AnsweredBy on the answered or the
//! final status callback, unconfirmed whether Twilio adds it there with
//! `AsyncAmd`), `Answered` comes before the verdict, and the verdict
//! before a final status, so the call learns it before it ends. Twilio has
//! no "rejected" status (a declined call reports `busy` or `no-answer`,
//! unconfirmed).
//!
//! Callbacks are retried and may be duplicated or reordered: consumers are
//! idempotent, and [`TwilioCallback::dedup_parts`] names a delivery.

use chrono::{DateTime, Utc};
use talky_actors::ports::{LegState, TelephonyEvent};

/// A `CallStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TwilioStatus {
    /// Waiting to be dialled (CPS limit).
    Queued,
    /// Dialling.
    Initiated,
    /// Ringing.
    Ringing,
    /// Answered, connected.
    InProgress,
    /// Ended after being answered (or hung up by us).
    Completed,
    /// Busy.
    Busy,
    /// Could not be placed.
    Failed,
    /// Nobody answered within `Timeout`.
    NoAnswer,
    /// Cancelled (by us) while queued or ringing.
    Canceled,
    /// A status we do not know, as sent.
    Unknown(String),
}

impl TwilioStatus {
    /// From the wire string.
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "queued" => Self::Queued,
            "initiated" => Self::Initiated,
            "ringing" => Self::Ringing,
            "in-progress" => Self::InProgress,
            "completed" => Self::Completed,
            "busy" => Self::Busy,
            "failed" => Self::Failed,
            "no-answer" => Self::NoAnswer,
            "canceled" => Self::Canceled,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::NoAnswer => "no-answer",
            Self::Canceled => "canceled",
            Self::Unknown(s) => s,
        }
    }

    /// Whether the call is over after this.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Busy | Self::Failed | Self::NoAnswer | Self::Canceled
        )
    }

    /// The leg's state for crash reconciliation (`GET .../Calls/{sid}.json`
    /// reports the same statuses). An unknown status counts as live: the
    /// reconciler then waits for the leg's own limits rather than
    /// declaring a call over that may not be.
    pub fn leg_state(&self) -> LegState {
        match self {
            Self::InProgress => LegState::Live { answered: true },
            s if s.is_terminal() => LegState::Ended(s.as_str().to_owned()),
            _ => LegState::Live { answered: false },
        }
    }
}

/// An `AnsweredBy` (answering machine detection verdict).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AnsweredBy {
    /// A person.
    Human,
    /// A machine, known as soon as its greeting starts (`Enable`).
    MachineStart,
    /// A machine, after its greeting ended in a beep (`DetectMessageEnd`).
    MachineEndBeep,
    /// ... in silence.
    MachineEndSilence,
    /// ... otherwise.
    MachineEndOther,
    /// A fax machine.
    Fax,
    /// Twilio could not tell.
    Unknown,
    /// A value we do not know, as sent.
    Other(String),
}

impl AnsweredBy {
    /// From the wire string.
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "human" => Self::Human,
            "machine_start" => Self::MachineStart,
            "machine_end_beep" => Self::MachineEndBeep,
            "machine_end_silence" => Self::MachineEndSilence,
            "machine_end_other" => Self::MachineEndOther,
            "fax" => Self::Fax,
            "unknown" => Self::Unknown,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Human => "human",
            Self::MachineStart => "machine_start",
            Self::MachineEndBeep => "machine_end_beep",
            Self::MachineEndSilence => "machine_end_silence",
            Self::MachineEndOther => "machine_end_other",
            Self::Fax => "fax",
            Self::Unknown => "unknown",
            Self::Other(s) => s,
        }
    }

    /// The port's verdict, if this is one (table in the module docs).
    pub fn telephony(&self) -> Option<TelephonyEvent> {
        match self {
            Self::Human => Some(TelephonyEvent::Human),
            Self::MachineStart
            | Self::MachineEndBeep
            | Self::MachineEndSilence
            | Self::MachineEndOther
            | Self::Fax => Some(TelephonyEvent::Machine),
            Self::Unknown | Self::Other(_) => None,
        }
    }
}

/// Why a callback body could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not `application/x-www-form-urlencoded` text.
    #[error("twilio callback: malformed form body: {0}")]
    Malformed(String),
    /// A required parameter is missing or empty.
    #[error("twilio callback: missing {0}")]
    Missing(&'static str),
    /// Neither `CallStatus` nor `AnsweredBy`: nothing to tell the call.
    #[error("twilio callback: neither CallStatus nor AnsweredBy")]
    NoStatus,
    /// A documented number or date that does not parse.
    #[error("twilio callback: bad {field} {value:?}")]
    Bad {
        /// The parameter.
        field: &'static str,
        /// What it held.
        value: String,
    },
}

/// One status or AMD callback, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioCallback {
    /// `CA...`: the provider's id of the call.
    pub call_sid: String,
    /// `AC...`.
    pub account_sid: Option<String>,
    /// `CallStatus` (absent on the async AMD callback).
    pub status: Option<TwilioStatus>,
    /// `AnsweredBy`, when machine detection is on.
    pub answered_by: Option<AnsweredBy>,
    /// `CallDuration` (seconds, on `completed`).
    pub call_duration_secs: Option<u64>,
    /// `SequenceNumber`: the callback's order for this call (from 0).
    pub sequence_number: Option<u64>,
    /// `Timestamp` (RFC 2822).
    pub timestamp: Option<DateTime<Utc>>,
    /// `MachineDetectionDuration` (ms, AMD callback).
    pub machine_detection_ms: Option<u64>,
    /// `SipResponseCode`, when given (failed calls).
    pub sip_response_code: Option<String>,
    /// `ErrorCode` (unconfirmed on status callbacks).
    pub error_code: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `Direction` (`outbound-api`).
    pub direction: Option<String>,
    /// `CallbackSource` (`call-progress-events`).
    pub callback_source: Option<String>,
}

/// The first non-empty value of `name`.
fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

fn number(params: &[(String, String)], field: &'static str) -> Result<Option<u64>, CallbackError> {
    get(params, field)
        .map(|v| {
            v.parse().map_err(|_| CallbackError::Bad {
                field,
                value: v.to_owned(),
            })
        })
        .transpose()
}

/// RFC 2822 (Twilio's dates), RFC 3339 accepted too.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s.trim())
        .or_else(|_| DateTime::parse_from_rfc3339(s.trim()))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

impl TwilioCallback {
    /// Parses a form-encoded body (or the query string of a GET).
    pub fn from_form(body: &[u8]) -> Result<Self, CallbackError> {
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| CallbackError::Malformed(e.to_string()))?;
        Self::from_params(&params)
    }

    /// From decoded parameters (as signature verification also uses them).
    pub fn from_params(params: &[(String, String)]) -> Result<Self, CallbackError> {
        let call_sid = get(params, "CallSid").ok_or(CallbackError::Missing("CallSid"))?;
        let status = get(params, "CallStatus").map(TwilioStatus::parse);
        let answered_by = get(params, "AnsweredBy").map(AnsweredBy::parse);
        if status.is_none() && answered_by.is_none() {
            return Err(CallbackError::NoStatus);
        }
        let timestamp = match get(params, "Timestamp") {
            Some(t) => Some(parse_date(t).ok_or_else(|| CallbackError::Bad {
                field: "Timestamp",
                value: t.to_owned(),
            })?),
            None => None,
        };
        let s = |name: &str| get(params, name).map(str::to_owned);
        Ok(Self {
            call_sid: call_sid.to_owned(),
            account_sid: s("AccountSid"),
            status,
            answered_by,
            call_duration_secs: number(params, "CallDuration")?,
            sequence_number: number(params, "SequenceNumber")?,
            timestamp,
            machine_detection_ms: number(params, "MachineDetectionDuration")?,
            sip_response_code: s("SipResponseCode"),
            error_code: s("ErrorCode"),
            from: s("From"),
            to: s("To"),
            direction: s("Direction"),
            callback_source: s("CallbackSource"),
        })
    }

    /// The port events this maps to, in the order to deliver them (tables
    /// in the module docs).
    pub fn telephony(&self) -> Vec<TelephonyEvent> {
        use TwilioStatus as S;
        let status = self.status.as_ref().and_then(|s| match s {
            S::Queued | S::Initiated | S::Unknown(_) => None,
            S::Ringing => Some(TelephonyEvent::Ringing),
            S::InProgress => Some(TelephonyEvent::Answered),
            S::Completed => Some(TelephonyEvent::Completed),
            S::Busy => Some(TelephonyEvent::Busy),
            S::NoAnswer => Some(TelephonyEvent::NoAnswer),
            S::Canceled => Some(TelephonyEvent::Cancelled),
            S::Failed => Some(TelephonyEvent::Failed(self.failure_detail())),
        });
        let verdict = self.answered_by.as_ref().and_then(AnsweredBy::telephony);
        let terminal = self.status.as_ref().is_some_and(TwilioStatus::is_terminal);
        let (first, second) = if terminal {
            (verdict, status)
        } else {
            (status, verdict)
        };
        first.into_iter().chain(second).collect()
    }

    fn failure_detail(&self) -> String {
        let mut d = String::from("failed");
        if let Some(sip) = &self.sip_response_code {
            d.push_str(&format!(" (SIP {sip})"));
        }
        if let Some(code) = &self.error_code {
            d.push_str(&format!(" (Twilio error {code})"));
        }
        d
    }

    /// Whether this is the async AMD callback (a verdict, no status).
    pub fn is_amd(&self) -> bool {
        self.status.is_none() && self.answered_by.is_some()
    }

    /// What names one delivery, for de-duplication across retries and
    /// nodes: the call, the status (or `amd`), and the sequence number (or
    /// timestamp, or verdict). Duplicates of a delivery share them.
    pub fn dedup_parts(&self) -> [String; 3] {
        let kind = match &self.status {
            Some(s) => s.as_str().to_owned(),
            None => "amd".to_owned(),
        };
        let which = match (self.sequence_number, &self.timestamp, &self.answered_by) {
            (Some(n), _, _) => n.to_string(),
            (None, Some(t), _) => t.to_rfc3339(),
            (None, None, Some(a)) => a.as_str().to_owned(),
            (None, None, None) => String::new(),
        };
        [self.call_sid.clone(), kind, which]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TelephonyEvent as T;
    use chrono::TimeZone;

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        serde_urlencoded::to_string(pairs)
            .expect("encode")
            .into_bytes()
    }

    fn base(status: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AccountSid", "AC0000".into()),
            ("CallSid", "CA0123456789abcdef0123456789abcdef".into()),
            ("From", "+447700900001".into()),
            ("To", "+447700900000".into()),
            ("Direction", "outbound-api".into()),
            ("ApiVersion", "2010-04-01".into()),
            ("CallStatus", status.into()),
            ("Timestamp", "Mon, 16 Aug 2010 03:45:01 +0000".into()),
            ("SequenceNumber", "2".into()),
            ("CallbackSource", "call-progress-events".into()),
        ]
    }

    fn parse(pairs: &[(&'static str, String)]) -> TwilioCallback {
        let p: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        TwilioCallback::from_form(&form(&p)).expect("parses")
    }

    #[test]
    fn a_completed_callback_parses_fully() {
        let mut p = base("completed");
        p.push(("CallDuration", "37".into()));
        let c = parse(&p);
        assert_eq!(c.call_sid, "CA0123456789abcdef0123456789abcdef");
        assert_eq!(c.account_sid.as_deref(), Some("AC0000"));
        assert_eq!(c.status, Some(TwilioStatus::Completed));
        assert_eq!(c.call_duration_secs, Some(37));
        assert_eq!(c.sequence_number, Some(2));
        assert_eq!(
            c.timestamp,
            Utc.with_ymd_and_hms(2010, 8, 16, 3, 45, 1).single()
        );
        assert_eq!(c.direction.as_deref(), Some("outbound-api"));
        assert_eq!(c.callback_source.as_deref(), Some("call-progress-events"));
        assert_eq!(c.to.as_deref(), Some("+447700900000"));
        assert_eq!(c.telephony(), vec![T::Completed]);
        assert!(!c.is_amd());
        assert_eq!(
            c.dedup_parts(),
            [
                "CA0123456789abcdef0123456789abcdef".to_owned(),
                "completed".into(),
                "2".into()
            ]
        );
    }

    #[test]
    fn every_documented_status_maps() {
        let cases: Vec<(&str, TwilioStatus, Vec<T>)> = vec![
            ("queued", TwilioStatus::Queued, vec![]),
            ("initiated", TwilioStatus::Initiated, vec![]),
            ("ringing", TwilioStatus::Ringing, vec![T::Ringing]),
            ("in-progress", TwilioStatus::InProgress, vec![T::Answered]),
            ("completed", TwilioStatus::Completed, vec![T::Completed]),
            ("busy", TwilioStatus::Busy, vec![T::Busy]),
            (
                "failed",
                TwilioStatus::Failed,
                vec![T::Failed("failed".into())],
            ),
            ("no-answer", TwilioStatus::NoAnswer, vec![T::NoAnswer]),
            ("canceled", TwilioStatus::Canceled, vec![T::Cancelled]),
            ("on-hold", TwilioStatus::Unknown("on-hold".into()), vec![]),
        ];
        for (wire, status, events) in cases {
            let c = parse(&base(wire));
            assert_eq!(c.status.as_ref(), Some(&status), "{wire}");
            assert_eq!(c.telephony(), events, "{wire}");
            assert_eq!(status.as_str(), wire);
            assert_eq!(TwilioStatus::parse(wire), status);
        }
        assert!(TwilioStatus::NoAnswer.is_terminal());
        assert!(!TwilioStatus::Ringing.is_terminal());
        assert!(!TwilioStatus::Unknown("x".into()).is_terminal());
    }

    #[test]
    fn failures_carry_their_detail() {
        let mut p = base("failed");
        p.push(("SipResponseCode", "404".into()));
        p.push(("ErrorCode", "32009".into()));
        assert_eq!(
            parse(&p).telephony(),
            vec![T::Failed("failed (SIP 404) (Twilio error 32009)".into())]
        );
    }

    #[test]
    fn machine_verdicts_map() {
        let cases = [
            ("human", Some(T::Human)),
            ("machine_start", Some(T::Machine)),
            ("machine_end_beep", Some(T::Machine)),
            ("machine_end_silence", Some(T::Machine)),
            ("machine_end_other", Some(T::Machine)),
            ("fax", Some(T::Machine)),
            ("unknown", None),
            ("robot", None),
        ];
        for (wire, event) in cases {
            // The async AMD callback: no CallStatus.
            let body = form(&[
                ("AccountSid", "AC0000"),
                ("CallSid", "CA1"),
                ("AnsweredBy", wire),
                ("MachineDetectionDuration", "2750"),
            ]);
            let c = TwilioCallback::from_form(&body).expect("amd");
            assert!(c.is_amd());
            assert_eq!(c.answered_by.as_ref().map(AnsweredBy::as_str), Some(wire));
            assert_eq!(c.machine_detection_ms, Some(2750));
            assert_eq!(
                c.telephony(),
                event.clone().into_iter().collect::<Vec<_>>(),
                "{wire}"
            );
            assert_eq!(
                c.dedup_parts(),
                ["CA1".to_owned(), "amd".into(), wire.into()]
            );
        }
    }

    #[test]
    fn a_verdict_beside_a_status_is_ordered_around_it() {
        let mut p = base("in-progress");
        p.push(("AnsweredBy", "machine_start".into()));
        assert_eq!(parse(&p).telephony(), vec![T::Answered, T::Machine]);
        let mut p = base("completed");
        p.push(("AnsweredBy", "machine_end_beep".into()));
        assert_eq!(parse(&p).telephony(), vec![T::Machine, T::Completed]);
        let mut p = base("ringing");
        p.push(("AnsweredBy", "unknown".into()));
        assert_eq!(parse(&p).telephony(), vec![T::Ringing]);
    }

    #[test]
    fn leg_states_for_reconciliation() {
        use TwilioStatus as S;
        assert_eq!(S::Queued.leg_state(), LegState::Live { answered: false });
        assert_eq!(S::Ringing.leg_state(), LegState::Live { answered: false });
        assert_eq!(S::InProgress.leg_state(), LegState::Live { answered: true });
        assert_eq!(S::NoAnswer.leg_state(), LegState::Ended("no-answer".into()));
        assert_eq!(S::Canceled.leg_state(), LegState::Ended("canceled".into()));
        assert_eq!(
            S::Unknown("x".into()).leg_state(),
            LegState::Live { answered: false }
        );
    }

    #[test]
    fn malformed_bodies_are_errors_never_panics() {
        use CallbackError as E;
        assert_eq!(TwilioCallback::from_form(b""), Err(E::Missing("CallSid")));
        assert_eq!(
            TwilioCallback::from_form(b"CallStatus=completed"),
            Err(E::Missing("CallSid"))
        );
        assert_eq!(
            TwilioCallback::from_form(b"CallSid=&CallStatus=completed"),
            Err(E::Missing("CallSid"))
        );
        assert_eq!(TwilioCallback::from_form(b"CallSid=CA1"), Err(E::NoStatus));
        // Invalid UTF-8 is decoded lossily (U+FFFD): an unknown status,
        // no event, no error.
        let c = TwilioCallback::from_form(b"CallSid=CA1&CallStatus=%FF%FE").expect("lossy");
        assert_eq!(
            c.status,
            Some(TwilioStatus::Unknown("\u{FFFD}\u{FFFD}".into()))
        );
        assert!(c.telephony().is_empty());
        assert_eq!(
            TwilioCallback::from_form(b"CallSid=CA1&CallStatus=completed&CallDuration=ten"),
            Err(E::Bad {
                field: "CallDuration",
                value: "ten".into()
            })
        );
        assert_eq!(
            TwilioCallback::from_form(b"CallSid=CA1&CallStatus=completed&SequenceNumber=-1"),
            Err(E::Bad {
                field: "SequenceNumber",
                value: "-1".into()
            })
        );
        assert_eq!(
            TwilioCallback::from_form(b"CallSid=CA1&CallStatus=completed&Timestamp=yesterday"),
            Err(E::Bad {
                field: "Timestamp",
                value: "yesterday".into()
            })
        );
        for junk in [
            &b"&&&"[..],
            b"=",
            b"%",
            b"\xff\xfe",
            b"{\"CallSid\":\"CA1\"}",
        ] {
            assert!(TwilioCallback::from_form(junk).is_err(), "{junk:?}");
        }
        // Tolerated: unknown parameters, `+` for space, repeated names
        // (first non-empty wins), a query string of a GET.
        let c = TwilioCallback::from_form(
            b"CallSid=CA1&CallStatus=&CallStatus=busy&Extra=1&From=%2B44+77",
        )
        .expect("tolerant");
        assert_eq!(c.status, Some(TwilioStatus::Busy));
        assert_eq!(c.from.as_deref(), Some("+44 77"));
        assert_eq!(c.sequence_number, None);
        assert_eq!(
            c.dedup_parts(),
            ["CA1".to_owned(), "busy".into(), String::new()]
        );
    }

    #[test]
    fn dates_parse_in_both_forms() {
        let want = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 7).single();
        assert_eq!(parse_date("Fri, 01 Mar 2024 12:00:07 +0000"), want);
        assert_eq!(parse_date("2024-03-01T12:00:07Z"), want);
        assert_eq!(parse_date(""), None);
        assert_eq!(parse_date("Fri, 99 Mar 2024"), None);
    }
}
