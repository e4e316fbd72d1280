//! Storage names and serde shapes of outcomes and statuses.

use chrono::{DateTime, Utc};

use super::{CallOutcome, ContactStatus, ParseOutcomeError, UnknownStatus};

fn now() -> DateTime<Utc> {
    "2026-06-10T12:00:00Z".parse().unwrap()
}

#[test]
fn outcome_names_round_trip() {
    let all = [
        CallOutcome::Completed,
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
        CallOutcome::Machine,
        CallOutcome::Failed,
        CallOutcome::Rejected,
        CallOutcome::DoNotCall,
        CallOutcome::CallbackRequested(now()),
    ];
    let names: Vec<&str> = all.iter().map(|o| o.as_str()).collect();
    assert_eq!(names, CallOutcome::NAMES);
    for o in all {
        assert_eq!(CallOutcome::from_stored(o.as_str(), o.callback_at()), Ok(o));
        assert_eq!(o.to_string(), o.as_str());
        if o.callback_at().is_none() {
            assert_eq!(o.as_str().parse::<CallOutcome>(), Ok(o));
            // A stray time beside a plain outcome is ignored.
            assert_eq!(CallOutcome::from_stored(o.as_str(), Some(now())), Ok(o));
        }
    }
    assert_eq!(
        "callback_requested".parse::<CallOutcome>(),
        Err(ParseOutcomeError::CallbackWithoutTime)
    );
    assert_eq!(
        "Busy".parse::<CallOutcome>(),
        Err(ParseOutcomeError::Unknown("Busy".into()))
    );
    assert_eq!(
        "".parse::<CallOutcome>(),
        Err(ParseOutcomeError::Unknown(String::new()))
    );
}

#[test]
fn outcome_serde_is_snake_case() {
    assert_eq!(serde_json_string(&CallOutcome::NoAnswer), "\"no_answer\"");
    assert_eq!(
        serde_json_string(&CallOutcome::DoNotCall),
        "\"do_not_call\""
    );
    assert_eq!(
        serde_json_string(&CallOutcome::CallbackRequested(now())),
        "{\"callback_requested\":\"2026-06-10T12:00:00Z\"}"
    );
    assert_eq!(
        serde_json_string(&ContactStatus::InProgress),
        "\"in_progress\""
    );
}

fn serde_json_string<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

#[test]
fn serde_round_trips() {
    for o in [
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
        CallOutcome::CallbackRequested(now()),
    ] {
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<CallOutcome>(&json).unwrap(), o);
    }
    for s in ContactStatus::ALL {
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.as_str()));
        assert_eq!(serde_json::from_str::<ContactStatus>(&json).unwrap(), s);
    }
}

/// The stored names never change (rows hold them); that the database
/// allows exactly these is `tests/it/schema.rs`'s check.
#[test]
fn status_names_are_stable() {
    let names: Vec<&str> = ContactStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "pending",
            "in_progress",
            "retry",
            "completed",
            "failed",
            "dnc"
        ]
    );
    for s in ContactStatus::ALL {
        assert_eq!(s.as_str().parse::<ContactStatus>(), Ok(s));
        assert_eq!(s.to_string(), s.as_str());
    }
    assert_eq!(
        "DNC".parse::<ContactStatus>(),
        Err(UnknownStatus("DNC".into()))
    );
    let finals: Vec<ContactStatus> = ContactStatus::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .collect();
    assert_eq!(
        finals,
        [
            ContactStatus::Completed,
            ContactStatus::Failed,
            ContactStatus::Dnc
        ]
    );
}
