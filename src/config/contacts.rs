//! Contact import rules and limits (`[contacts]`).

use serde::{Deserialize, Serialize};

/// Default region for numbers written without a country code.
pub const DEFAULT_REGION: &str = "US";
/// Default limit on an uploaded contact list (bytes).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 32 * 1024 * 1024;
/// Default limit on rows in one upload.
pub const DEFAULT_MAX_ROWS: usize = 200_000;
/// Default limit on one CSV field or JSON string (bytes).
pub const DEFAULT_MAX_FIELD_LEN: usize = 1024;
/// Default limit on columns of a CSV upload.
pub const DEFAULT_MAX_COLUMNS: usize = 64;

/// Contact import settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContactsConfig {
    /// ISO 3166 region for numbers without a `+country` prefix.
    pub default_region: String,
    /// Largest upload (bytes); larger is a 413.
    pub max_upload_bytes: u64,
    /// Most rows in one upload; more is a 413.
    pub max_rows: usize,
    /// Longest field (bytes); longer is a 422.
    pub max_field_len: usize,
    /// Most CSV columns; more is a 422.
    pub max_columns: usize,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        Self {
            default_region: DEFAULT_REGION.into(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_rows: DEFAULT_MAX_ROWS,
            max_field_len: DEFAULT_MAX_FIELD_LEN,
            max_columns: DEFAULT_MAX_COLUMNS,
        }
    }
}
