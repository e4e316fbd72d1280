//! Where a contact stands in its campaign, as the `contacts.status` column
//! stores it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A contact's status. The names are the database's (`contacts.status`
/// CHECK constraint), so [`ContactStatus::as_str`] is what gets stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactStatus {
    /// Imported, never dialled yet.
    Pending,
    /// A call to it is being placed or is live.
    InProgress,
    /// Waiting for its next attempt (`next_attempt_at`).
    Retry,
    /// Reached and the call ran to its end: nothing more to do.
    Completed,
    /// Given up on: attempts exhausted, or the callee declined.
    Failed,
    /// Must never be called again (do-not-call).
    Dnc,
}

/// A status name that is not one of [`ContactStatus::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown contact status {0:?}")]
pub struct UnknownStatus(
    /// The name that was read.
    pub String,
);

impl ContactStatus {
    /// Every status, in the order a contact usually meets them.
    pub const ALL: [ContactStatus; 6] = [
        ContactStatus::Pending,
        ContactStatus::InProgress,
        ContactStatus::Retry,
        ContactStatus::Completed,
        ContactStatus::Failed,
        ContactStatus::Dnc,
    ];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactStatus::Pending => "pending",
            ContactStatus::InProgress => "in_progress",
            ContactStatus::Retry => "retry",
            ContactStatus::Completed => "completed",
            ContactStatus::Failed => "failed",
            ContactStatus::Dnc => "dnc",
        }
    }

    /// Whether the contact is finished with: it will never be dialled again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ContactStatus::Completed | ContactStatus::Failed | ContactStatus::Dnc
        )
    }
}

impl fmt::Display for ContactStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContactStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContactStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}
