//! Contact list import (CSV and JSON): parsing and validation only.
//!
//! Operators upload contact lists for a campaign as `text/csv` or
//! `application/json`. The HTTP handler streams the body into
//! [`CsvImport`] (or collects it for [`parse_json`]), inserts the
//! [`Row::Valid`] rows in batches inside one transaction and reports the
//! [`Row::Invalid`] ones back. A fatal [`ImportError`] rejects the whole
//! upload; [`ImportError::status`] gives its HTTP status.
//!
//! Duplicate phone numbers within one upload are returned as they are: the
//! database's unique constraint on (campaign, phone) counts them.

mod csv;
mod json;
mod scan;
mod validate;

#[cfg(test)]
mod tests_csv;
#[cfg(test)]
mod tests_json;

pub use self::csv::CsvImport;
pub use self::json::parse_json;

use serde::Serialize;

/// Default for [`ImportOptions::max_rows`].
pub const DEFAULT_MAX_ROWS: usize = 200_000;
/// Default for [`ImportOptions::max_field_len`].
pub const DEFAULT_MAX_FIELD_LEN: usize = 1024;
/// Default for [`ImportOptions::max_columns`].
pub const DEFAULT_MAX_COLUMNS: usize = 64;

/// Limits and defaults applied to one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Region used to read numbers written without a country code, e.g.
    /// `(212) 555-0123` with `US`.
    pub default_region: phonenumber::country::Id,
    /// Most rows (valid or not, blank lines excluded) one upload may hold,
    /// so that one request cannot hold a transaction open indefinitely.
    pub max_rows: usize,
    /// Longest value, in bytes, of any single field (CSV cell or JSON
    /// string, header names and metadata included), so that one cell cannot
    /// bloat memory or the database.
    pub max_field_len: usize,
    /// Most columns a CSV header may declare.
    pub max_columns: usize,
}

impl ImportOptions {
    /// Options with the default limits and the given default region.
    pub fn new(default_region: phonenumber::country::Id) -> Self {
        Self {
            default_region,
            max_rows: DEFAULT_MAX_ROWS,
            max_field_len: DEFAULT_MAX_FIELD_LEN,
            max_columns: DEFAULT_MAX_COLUMNS,
        }
    }
}

/// One contact that passed validation, ready to insert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactRow {
    /// Where the contact came from, for reports: for CSV the physical line
    /// where the record starts (the header is line 1), for JSON the 1-based
    /// index in the array.
    pub line: u64,
    /// The number in E.164 form (`+12125550123`), the dialable identity of
    /// the contact and the key of the (campaign, phone) unique constraint.
    pub phone: String,
    /// Display name used in the conversation, trimmed; `None` when absent
    /// or blank.
    pub name: Option<String>,
    /// Canonical IANA zone name used for the calling window: the one given
    /// in the upload, else derived from the number when its country has a
    /// single zone; `None` when the dialer must consider all the country's
    /// zones.
    pub timezone: Option<String>,
    /// Every other column (CSV, as strings keyed by the header name as
    /// written) or the `metadata` object (JSON), made available to the call
    /// script.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Why one row was rejected; the rest of the upload still goes in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Same meaning as [`ContactRow::line`], so the operator can find the
    /// row in the file.
    pub line: u64,
    /// The column or key at fault (`"phone"`, `"timezone"`…), when one is.
    pub field: Option<String>,
    /// What is wrong, in words for the operator; never echoes more than 32
    /// characters of the input.
    pub message: String,
}

/// Outcome for one row of the upload.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// The row is valid and can be inserted.
    Valid(ContactRow),
    /// The row is rejected and is reported back.
    Invalid(RowError),
}

/// A problem that rejects the whole upload.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// More rows than [`ImportOptions::max_rows`].
    #[error("too many rows: an upload may hold at most {limit} contacts")]
    TooManyRows {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A field is longer than [`ImportOptions::max_field_len`] bytes.
    #[error("line {line}: the value of {column:?} is longer than {limit} bytes")]
    FieldTooLong {
        /// Line (CSV) or array index (JSON) of the offending row.
        line: u64,
        /// The column, header cell (`column 3`) or JSON key at fault.
        column: String,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The CSV header declares more than [`ImportOptions::max_columns`]
    /// columns.
    #[error("too many columns: the header may have at most {limit}")]
    TooManyColumns {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The CSV header has no `phone` column.
    #[error("the header has no \"phone\" column; it has: {}", quoted_list(.found))]
    MissingPhoneColumn {
        /// The header names that were found, trimmed, to show what was
        /// uploaded instead (often a data row: the header is missing).
        found: Vec<String>,
    },
    /// A header name appears twice (names are case-insensitive).
    #[error("column {column:?} appears more than once in the header")]
    DuplicateColumn {
        /// The repeated name, as written the second time.
        column: String,
    },
    /// Nothing to import: no header row (CSV) or an empty array (JSON).
    #[error("the upload is empty: no header row or an empty array")]
    EmptyBody,
    /// The body is not well-formed CSV or JSON.
    #[error("line {line}: {message}")]
    Malformed {
        /// Physical line of the problem in the body (1-based); for JSON
        /// too, this is the text line reported by the JSON parser.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// Reading the body failed (client disconnect, or the handler's own
    /// body size limit); the handler decides how to answer.
    #[error("reading the upload failed: {0}")]
    Io(#[source] std::io::Error),
}

impl ImportError {
    /// HTTP status for this error: 413 for too many rows, 400 when the body
    /// could not be read, 422 for content problems.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooManyRows { .. } => 413,
            Self::Io(_) => 400,
            Self::FieldTooLong { .. }
            | Self::TooManyColumns { .. }
            | Self::MissingPhoneColumn { .. }
            | Self::DuplicateColumn { .. }
            | Self::EmptyBody
            | Self::Malformed { .. } => 422,
        }
    }
}

/// `"a", "b"` for error messages, each name cut to 32 characters.
fn quoted_list(names: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|n| format!("{:?}", crate::phone::truncate_echo(n)))
        .collect();
    quoted.join(", ")
}
