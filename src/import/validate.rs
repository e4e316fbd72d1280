//! Row validation shared by the CSV and JSON readers.

use serde_json::{Map, Value};

use super::{ContactRow, ImportError, ImportOptions, Row, RowError};
use crate::phone::{self, PhoneError, truncate_echo};

/// The fields of one row as read from the upload, before validation.
pub(super) struct RawContact<'a> {
    /// See [`ContactRow::line`].
    pub line: u64,
    /// The phone cell as written.
    pub phone: &'a str,
    /// The name cell, if the row has one.
    pub name: Option<&'a str>,
    /// The time zone cell, if the row has one; blank means absent.
    pub timezone: Option<&'a str>,
    /// Metadata, already shaped for storage.
    pub metadata: Map<String, Value>,
}

/// Validates a row: normalizes the phone number, resolves the time zone
/// (given, or derived from the number) and tidies the name.
pub(super) fn validate(raw: RawContact<'_>, opts: &ImportOptions) -> Row {
    match build_contact(raw, opts) {
        Ok(contact) => Row::Valid(contact),
        Err(error) => Row::Invalid(error),
    }
}

/// [`validate`], with the rejection as an error.
fn build_contact(raw: RawContact<'_>, opts: &ImportOptions) -> Result<ContactRow, RowError> {
    if let Some(field) = nul_field(&raw) {
        return Err(row_error(
            raw.line,
            &field,
            "contains a NUL character (U+0000), which cannot be stored".to_owned(),
        ));
    }
    let phone = phone::normalize(raw.phone, opts.default_region)
        .map_err(|e| row_error(raw.line, "phone", phone_message(raw.phone, &e)))?;
    let timezone = match raw.timezone.map(str::trim).filter(|t| !t.is_empty()) {
        Some(given) => Some(
            phone::parse_timezone(given)
                .map_err(|e| row_error(raw.line, "timezone", e.to_string()))?,
        ),
        None => phone::derive_timezone(&phone),
    };
    Ok(contact(raw, phone, timezone.map(|tz| tz.name().to_owned())))
}

/// The first field of the row holding a NUL character (PostgreSQL text and
/// jsonb cannot store one): `phone`, `name`, `timezone`, or the path of a
/// metadata key or string (`metadata.notes`, `metadata.tags[1]`).
fn nul_field(raw: &RawContact<'_>) -> Option<String> {
    for (field, value) in [
        ("phone", Some(raw.phone)),
        ("name", raw.name),
        ("timezone", raw.timezone),
    ] {
        if value.is_some_and(|v| v.contains('\0')) {
            return Some(field.to_owned());
        }
    }
    raw.metadata
        .iter()
        .find_map(|(k, v)| nul_in(k, v, format!("metadata.{}", k.replace('\0', "\\u0000"))))
}

fn nul_in(key: &str, value: &Value, at: String) -> Option<String> {
    if key.contains('\0') {
        return Some(at);
    }
    match value {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in("", v, format!("{at}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| nul_in(k, v, format!("{at}.{}", k.replace('\0', "\\u0000")))),
        _ => None,
    }
}

/// Assembles the validated contact.
fn contact(raw: RawContact<'_>, phone: String, timezone: Option<String>) -> ContactRow {
    let name = raw
        .name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    ContactRow {
        line: raw.line,
        phone,
        name,
        timezone,
        metadata: raw.metadata,
    }
}

/// Message for a rejected phone number, quoting at most 32 characters of
/// what was written.
fn phone_message(input: &str, error: &PhoneError) -> String {
    let input = input.trim();
    match error {
        PhoneError::Empty => "phone number is missing".to_owned(),
        _ => format!("invalid phone number {:?}: {error}", truncate_echo(input)),
    }
}

/// A [`RowError`] about one field.
pub(super) fn row_error(line: u64, field: &str, message: String) -> RowError {
    RowError {
        line,
        field: Some(field.to_owned()),
        message,
    }
}

/// Fails with [`ImportError::FieldTooLong`] when `value` is longer than the
/// limit (in bytes); `column` names the field, built only on failure.
pub(super) fn check_len(
    value: &str,
    line: u64,
    column: impl FnOnce() -> String,
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    if value.len() > opts.max_field_len {
        return Err(ImportError::FieldTooLong {
            line,
            column: truncate_echo(&column()),
            limit: opts.max_field_len,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id;

    fn raw<'a>(phone: &'a str, name: Option<&'a str>, tz: Option<&'a str>) -> RawContact<'a> {
        RawContact {
            line: 7,
            phone,
            name,
            timezone: tz,
            metadata: Map::new(),
        }
    }

    fn opts() -> ImportOptions {
        ImportOptions::new(Id::US)
    }

    #[test]
    fn valid_row_is_normalized() {
        let Row::Valid(c) = validate(raw(" (212) 555-0123 ", Some("  Ann "), None), &opts()) else {
            panic!("expected a valid row");
        };
        assert_eq!(c.phone, "+12125550123");
        assert_eq!(c.name.as_deref(), Some("Ann"));
        assert_eq!(c.timezone, None);
        assert_eq!(c.line, 7);
    }

    #[test]
    fn given_zone_wins_and_is_canonical() {
        let row = validate(raw("+442079460958", Some(" "), Some("asia/tokyo")), &opts());
        let Row::Valid(c) = row else {
            panic!("{row:?}")
        };
        assert_eq!(c.timezone.as_deref(), Some("Asia/Tokyo"));
        assert_eq!(c.name, None);
    }

    #[test]
    fn phone_errors_quote_at_most_32_chars() {
        let input = format!("{}x", "9".repeat(40));
        let Row::Invalid(e) = validate(raw(&input, None, None), &opts()) else {
            panic!("expected an error");
        };
        assert_eq!(e.field.as_deref(), Some("phone"));
        assert!(e.message.contains(&"9".repeat(32)), "{}", e.message);
        assert!(!e.message.contains(&"9".repeat(33)), "{}", e.message);
    }

    #[test]
    fn missing_phone_is_reported() {
        let Row::Invalid(e) = validate(raw("  ", None, None), &opts()) else {
            panic!("expected an error");
        };
        assert_eq!(e.message, "phone number is missing");
    }

    #[test]
    fn nul_characters_make_the_row_invalid_naming_the_field() {
        let Row::Invalid(e) = validate(raw("+12125550123", Some("A\0nn"), None), &opts()) else {
            panic!("expected an error");
        };
        assert_eq!((e.line, e.field.as_deref()), (7, Some("name")));
        let mut r = raw("+12125550123", None, None);
        r.metadata
            .insert("tags".into(), serde_json::json!(["ok", {"k\0": 1}]));
        let Row::Invalid(e) = validate(r, &opts()) else {
            panic!("expected an error");
        };
        assert_eq!(e.field.as_deref(), Some("metadata.tags[1].k\\u0000"));
    }

    #[test]
    fn field_length_is_in_bytes() {
        let mut o = opts();
        o.max_field_len = 3;
        assert!(check_len("abc", 1, || "x".into(), &o).is_ok());
        assert!(matches!(
            check_len("éé", 1, || "x".into(), &o),
            Err(ImportError::FieldTooLong { limit: 3, .. })
        ));
    }
}
