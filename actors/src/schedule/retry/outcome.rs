//! How a call ended, from the campaign's point of view.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a call ended. Stored by name ([`CallOutcome::as_str`]) in
/// `calls.outcome` and `contacts.last_outcome`; the time of a requested
/// callback is not part of the name (it is stored as the contact's
/// `next_attempt_at`), see [`CallOutcome::from_stored`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// The callee answered and the conversation ran to its end.
    Completed,
    /// The line was busy.
    Busy,
    /// It rang out, nobody answered.
    NoAnswer,
    /// An answering machine or voicemail picked up.
    Machine,
    /// The call could not be placed or dropped for a technical reason.
    Failed,
    /// The callee declined: hung up at once or said no.
    Rejected,
    /// The callee asked never to be called again.
    DoNotCall,
    /// The callee asked to be called back at this time.
    CallbackRequested(DateTime<Utc>),
}

/// A stored outcome that cannot be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseOutcomeError {
    /// The name is not one of [`CallOutcome::NAMES`].
    #[error("unknown call outcome {0:?}")]
    Unknown(String),
    /// `callback_requested` was read without the time it asks for.
    #[error("a callback_requested outcome needs its callback time")]
    CallbackWithoutTime,
}

impl CallOutcome {
    /// Every stored name, one per variant.
    pub const NAMES: [&'static str; 8] = [
        "completed",
        "busy",
        "no_answer",
        "machine",
        "failed",
        "rejected",
        "do_not_call",
        "callback_requested",
    ];

    /// The name stored in the database and shown in the API (without the
    /// callback time).
    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Completed => "completed",
            CallOutcome::Busy => "busy",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Machine => "machine",
            CallOutcome::Failed => "failed",
            CallOutcome::Rejected => "rejected",
            CallOutcome::DoNotCall => "do_not_call",
            CallOutcome::CallbackRequested(_) => "callback_requested",
        }
    }

    /// The time a callback was asked for, if this is a callback request.
    pub fn callback_at(&self) -> Option<DateTime<Utc>> {
        match self {
            CallOutcome::CallbackRequested(at) => Some(*at),
            _ => None,
        }
    }

    /// Reads a stored outcome back: the name, plus the callback time that
    /// was stored beside it (needed for `callback_requested` only, ignored
    /// otherwise). `from_stored(o.as_str(), o.callback_at())` gives `o`.
    pub fn from_stored(
        name: &str,
        callback_at: Option<DateTime<Utc>>,
    ) -> Result<Self, ParseOutcomeError> {
        Ok(match name {
            "completed" => CallOutcome::Completed,
            "busy" => CallOutcome::Busy,
            "no_answer" => CallOutcome::NoAnswer,
            "machine" => CallOutcome::Machine,
            "failed" => CallOutcome::Failed,
            "rejected" => CallOutcome::Rejected,
            "do_not_call" => CallOutcome::DoNotCall,
            "callback_requested" => match callback_at {
                Some(at) => CallOutcome::CallbackRequested(at),
                None => return Err(ParseOutcomeError::CallbackWithoutTime),
            },
            other => return Err(ParseOutcomeError::Unknown(other.to_owned())),
        })
    }

    /// How much of the policy's backoff delay this outcome waits before
    /// the next attempt, or `None` when it is not retried by backoff:
    /// busy ×0.25 (the line is in use now, so try again soon), no answer
    /// ×1, machine ×2 (they are away; give it longer), failed ×1.
    pub fn retry_factor(&self) -> Option<f64> {
        match self {
            CallOutcome::Busy => Some(0.25),
            CallOutcome::NoAnswer | CallOutcome::Failed => Some(1.0),
            CallOutcome::Machine => Some(2.0),
            CallOutcome::Completed
            | CallOutcome::Rejected
            | CallOutcome::DoNotCall
            | CallOutcome::CallbackRequested(_) => None,
        }
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a stored name without a callback time, so `callback_requested`
/// is refused ([`ParseOutcomeError::CallbackWithoutTime`]); use
/// [`CallOutcome::from_stored`] to read one back.
impl FromStr for CallOutcome {
    type Err = ParseOutcomeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallOutcome::from_stored(s, None)
    }
}
