//! JSON import: an array of contact objects.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::validate::{RawContact, check_len, row_error, validate};
use super::{ImportError, ImportOptions, Row, RowError};
use crate::phone::truncate_echo;

/// The keys a contact object may have.
const KNOWN_KEYS: [&str; 4] = ["phone", "name", "timezone", "metadata"];

/// How many unknown keys a row error lists before eliding the rest.
const MAX_LISTED_KEYS: usize = 5;

/// Parses a JSON contact list: an array of objects
/// `{"phone": "...", "name"?: string|null, "timezone"?: string|null,
/// "metadata"?: object}`.
///
/// Each element is validated on its own and its problems become a
/// [`RowError`] whose `line` is the element's 1-based index. Syntax errors,
/// a top level that is not an array, an empty array, too many elements and
/// overlong strings reject the whole body. Elements are decoded one at a
/// time, so the row limit stops parsing early.
pub fn parse_json(body: &[u8], opts: &ImportOptions) -> Result<Vec<Row>, ImportError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ImportError::EmptyBody);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let mut fatal = None;
    let seed = RowsSeed {
        opts,
        fatal: &mut fatal,
    };
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|rows| deserializer.end().map(|()| rows));
    match parsed {
        Ok(rows) if rows.is_empty() => Err(ImportError::EmptyBody),
        Ok(rows) => Ok(rows),
        Err(error) => Err(fatal.unwrap_or_else(|| malformed(&error))),
    }
}

/// A JSON syntax or shape error, as [`ImportError::Malformed`].
fn malformed(error: &serde_json::Error) -> ImportError {
    ImportError::Malformed {
        line: error.line() as u64,
        message: error.to_string(),
    }
}

/// Decodes the top-level array element by element. A fatal problem found
/// in an element is parked in `fatal` and parsing is aborted with a
/// placeholder serde error.
struct RowsSeed<'a> {
    /// Limits and default region.
    opts: &'a ImportOptions,
    /// The fatal error that aborted parsing, if any.
    fatal: &'a mut Option<ImportError>,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Vec<Row>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Row>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Vec<Row>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of contact objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Row>, A::Error> {
        let mut rows = Vec::new();
        while let Some(element) = seq.next_element::<Value>()? {
            let line = rows.len() as u64 + 1;
            let row = if rows.len() >= self.opts.max_rows {
                Err(ImportError::TooManyRows {
                    limit: self.opts.max_rows,
                })
            } else {
                element_row(line, element, self.opts)
            };
            match row {
                Ok(row) => rows.push(row),
                Err(error) => {
                    *self.fatal = Some(error);
                    return Err(de::Error::custom("import aborted"));
                }
            }
        }
        Ok(rows)
    }
}

/// Validates one array element.
fn element_row(line: u64, element: Value, opts: &ImportOptions) -> Result<Row, ImportError> {
    let Value::Object(object) = element else {
        return Ok(Row::Invalid(RowError {
            line,
            field: None,
            message: format!("expected a contact object, found {}", kind(&element)),
        }));
    };
    check_object_lengths(&object, line, opts)?;
    Ok(match contact_fields(line, object) {
        Ok(fields) => validate(
            RawContact {
                line,
                phone: &fields.phone,
                name: fields.name.as_deref(),
                timezone: fields.timezone.as_deref(),
                metadata: fields.metadata,
            },
            opts,
        ),
        Err(error) => Row::Invalid(error),
    })
}

/// The fields of a contact object, checked for shape.
struct Fields {
    /// `phone`.
    phone: String,
    /// `name`, when a string.
    name: Option<String>,
    /// `timezone`, when a string.
    timezone: Option<String>,
    /// `metadata`, when present.
    metadata: Map<String, Value>,
}

/// Checks keys and types of a contact object.
fn contact_fields(line: u64, mut object: Map<String, Value>) -> Result<Fields, RowError> {
    reject_unknown_keys(line, &object)?;
    let phone = match object.remove("phone") {
        Some(Value::String(phone)) => phone,
        None | Some(Value::Null) => {
            return Err(row_error(line, "phone", "phone number is missing".into()));
        }
        Some(other) => return Err(wrong_type(line, "phone", "a string", &other)),
    };
    let name = optional_string(line, "name", object.remove("name"))?;
    let timezone = optional_string(line, "timezone", object.remove("timezone"))?;
    let metadata = match object.remove("metadata") {
        None => Map::new(),
        Some(Value::Object(metadata)) => metadata,
        Some(other) => return Err(wrong_type(line, "metadata", "an object", &other)),
    };
    Ok(Fields {
        phone,
        name,
        timezone,
        metadata,
    })
}

/// A row error naming the keys that are not [`KNOWN_KEYS`].
fn reject_unknown_keys(line: u64, object: &Map<String, Value>) -> Result<(), RowError> {
    let unknown: Vec<&String> = object
        .keys()
        .filter(|key| !KNOWN_KEYS.contains(&key.as_str()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut listed: Vec<String> = unknown
        .iter()
        .take(MAX_LISTED_KEYS)
        .map(|key| format!("{:?}", truncate_echo(key)))
        .collect();
    if unknown.len() > MAX_LISTED_KEYS {
        listed.push(format!("and {} more", unknown.len() - MAX_LISTED_KEYS));
    }
    Err(RowError {
        line,
        field: None,
        message: format!(
            "unknown field(s) {}; allowed: phone, name, timezone, metadata",
            listed.join(", ")
        ),
    })
}

/// A key that must be a string or null (or absent).
fn optional_string(line: u64, key: &str, value: Option<Value>) -> Result<Option<String>, RowError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(line, key, "a string or null", &other)),
    }
}

/// A row error for a value of the wrong JSON type.
fn wrong_type(line: u64, key: &str, expected: &str, found: &Value) -> RowError {
    row_error(
        line,
        key,
        format!("{key} must be {expected}, found {}", kind(found)),
    )
}

/// The JSON type of a value, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies the field length limit to every key and string of the object,
/// nested ones included.
fn check_object_lengths(
    object: &Map<String, Value>,
    line: u64,
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    for (key, value) in object {
        check_len(key, line, || key.clone(), opts)?;
        check_value_lengths(value, line, &|| key.clone(), opts)?;
    }
    Ok(())
}

/// [`check_object_lengths`] for any value; `path` names it in errors
/// (`metadata.notes`) and is only built when one is reported.
fn check_value_lengths(
    value: &Value,
    line: u64,
    path: &dyn Fn() -> String,
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    match value {
        Value::String(s) => check_len(s, line, path, opts),
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| check_value_lengths(item, line, path, opts)),
        Value::Object(object) => object.iter().try_for_each(|(key, item)| {
            let nested = || format!("{}.{key}", path());
            check_len(key, line, nested, opts)?;
            check_value_lengths(item, line, &nested, opts)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}
