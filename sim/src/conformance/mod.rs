//! Conformance of clients and emulators to the provider spec
//! (`../shared/specs/providers.md`), through fixtures copied from the
//! spec's JSON examples (`tests/fixtures/spec/`, listed in its README).
//!
//! Each provider module checks, per message, both directions:
//! - **client side**: our client's own parser accepts the fixture of every
//!   server -> client message and yields the expected typed value; what our
//!   client really sends (captured at the emulator) has the shape of the
//!   fixture of every client -> server message;
//! - **emulator side**: what the emulator really produces (read off the
//!   wire on 127.0.0.1) has the fixture's shape, and the emulator accepts
//!   the fixtures of client -> server messages verbatim.
//!
//! So a client and its emulator that drift from the spec the same way no
//! longer pass together: both are held to the spec's examples. "Shape" is
//! [`same_shape`]: every key path of the fixture present in the produced
//! JSON with the same JSON type.

mod chat;
mod deepgram;
mod elevenlabs;
mod twilio;
mod vonage;
mod whisper;

use serde_json::Value;

/// A fixture of `tests/fixtures/spec/` as JSON, compiled in.
macro_rules! fixture {
    ($path:literal) => {
        $crate::conformance::parse_fixture(
            $path,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/spec/",
                $path
            )),
        )
    };
}
pub(crate) use fixture;

/// Parses a fixture's text; a fixture that is not JSON is a broken test.
pub(crate) fn parse_fixture(name: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"))
}

/// The JSON type of a value, as the spec would name it.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a fixture key is the spec's placeholder for a key of any name
/// (`"<uuid>"` in Deepgram's `Metadata.model_info`).
fn is_key_placeholder(k: &str) -> bool {
    k.len() > 2 && k.starts_with('<') && k.ends_with('>')
}

/// Whether `produced` has the shape of `fixture`: every key path of the
/// fixture is present in `produced` with the same JSON type (numbers are
/// one type; `null` must be `null`). Extra keys in `produced` are allowed.
/// Arrays: a non-empty fixture array needs a non-empty produced one; the
/// produced element `i` is compared with the fixture's element `i`, or its
/// first when the fixture is shorter (the spec shows one `words[]` entry
/// for many; its `messages` example holds four different roles). A fixture key
/// written `<...>` stands for any key: the produced object must have at
/// least one, each compared with the placeholder's value.
///
/// `Err` names the first mismatching path, JSON-pointer style.
pub(crate) fn same_shape(fixture: &Value, produced: &Value) -> Result<(), String> {
    same_shape_except(fixture, produced, &[])
}

/// [`same_shape`], except that the paths in `optional` (e.g.
/// `"/previous_text"`) may be missing from `produced`: for fields the spec
/// marks optional that our client leaves out. Present, they must match.
pub(crate) fn same_shape_except(
    fixture: &Value,
    produced: &Value,
    optional: &[&str],
) -> Result<(), String> {
    walk("", fixture, produced, optional)
}

fn walk(path: &str, f: &Value, p: &Value, optional: &[&str]) -> Result<(), String> {
    if kind(f) != kind(p) {
        return Err(format!(
            "{}: expected {}, got {} ({p})",
            if path.is_empty() { "/" } else { path },
            kind(f),
            kind(p)
        ));
    }
    match (f, p) {
        (Value::Object(fm), Value::Object(pm)) => {
            for (k, fv) in fm {
                let here = format!("{path}/{k}");
                if is_key_placeholder(k) {
                    if pm.is_empty() {
                        return Err(format!("{here}: expected at least one key, got none"));
                    }
                    for (pk, pv) in pm {
                        walk(&format!("{path}/{pk}"), fv, pv, optional)?;
                    }
                    continue;
                }
                match pm.get(k) {
                    Some(pv) => walk(&here, fv, pv, optional)?,
                    None if optional.contains(&here.as_str()) => {}
                    None => return Err(format!("{here}: missing")),
                }
            }
            Ok(())
        }
        (Value::Array(fa), Value::Array(pa)) => {
            let Some(first) = fa.first() else {
                return Ok(());
            };
            if pa.is_empty() {
                return Err(format!("{path}: expected a non-empty array, got []"));
            }
            for (i, pv) in pa.iter().enumerate() {
                walk(
                    &format!("{path}/{i}"),
                    fa.get(i).unwrap_or(first),
                    pv,
                    optional,
                )?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Renames the key at `path` (JSON pointer) to `to`: a mutation that
/// [`same_shape`] must reject.
pub(crate) fn rename_key(v: &Value, path: &str, to: &str) -> Value {
    let mut out = v.clone();
    let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
    let obj = out
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent:?}"));
    let val = obj
        .remove(key)
        .unwrap_or_else(|| panic!("no key {key:?} at {parent:?}"));
    obj.insert(to.to_string(), val);
    out
}

/// Replaces the value at `path` (JSON pointer) with `with`: a wrong type.
pub(crate) fn set_value(v: &Value, path: &str, with: Value) -> Value {
    let mut out = v.clone();
    *out.pointer_mut(path)
        .unwrap_or_else(|| panic!("no value at {path:?}")) = with;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identical_and_superset_pass() {
        let f = json!({"a": 1, "b": {"c": "x", "d": [1, 2]}, "n": null});
        assert_eq!(same_shape(&f, &f), Ok(()));
        let more = json!({"a": 2.5, "b": {"c": "y", "d": [7], "e": true}, "n": null, "z": 0});
        assert_eq!(same_shape(&f, &more), Ok(()));
    }

    #[test]
    fn missing_key_wrong_type_and_arrays_are_reported_by_path() {
        let f = json!({"a": 1, "b": {"c": "x", "d": [{"e": 1}]}, "n": null});
        let p = json!({"a": 1, "b": {"d": [{"e": 1}]}, "n": null});
        assert_eq!(same_shape(&f, &p), Err("/b/c: missing".into()));
        let p = json!({"a": "1", "b": {"c": "x", "d": [{"e": 1}]}, "n": null});
        assert!(
            same_shape(&f, &p).is_err_and(|e| e.starts_with("/a: expected number, got string"))
        );
        let p = json!({"a": 1, "b": {"c": "x", "d": [{"e": 1}, {"e": "2"}]}, "n": null});
        assert!(same_shape(&f, &p).is_err_and(|e| e.starts_with("/b/d/1/e:")));
        let f2 = json!([{"r": "s"}, {"r": "a", "t": [1]}]);
        assert_eq!(
            same_shape(&f2, &json!([{"r": "x"}, {"r": "y", "t": [2]}, {"r": "z"}])),
            Ok(())
        );
        assert!(
            same_shape(&f2, &json!([{"r": "x"}, {"r": "y"}])).is_err_and(|e| e == "/1/t: missing")
        );
        let p = json!({"a": 1, "b": {"c": "x", "d": []}, "n": null});
        assert!(same_shape(&f, &p).is_err_and(|e| e.starts_with("/b/d:")));
        let p = json!({"a": 1, "b": {"c": "x", "d": [{"e": 1}]}, "n": 0});
        assert!(same_shape(&f, &p).is_err_and(|e| e.starts_with("/n: expected null")));
        assert!(same_shape(&json!([]), &json!({})).is_err());
    }

    #[test]
    fn optional_paths_may_be_missing_but_not_wrong() {
        let f = json!({"text": "x", "seed": null});
        let p = json!({"text": "y"});
        assert!(same_shape(&f, &p).is_err());
        assert_eq!(same_shape_except(&f, &p, &["/seed"]), Ok(()));
        let p = json!({"text": "y", "seed": 3});
        assert!(same_shape_except(&f, &p, &["/seed"]).is_err());
    }

    #[test]
    fn key_placeholders_match_any_key() {
        let f = json!({"m": {"<uuid>": {"name": "n"}}});
        assert_eq!(
            same_shape(&f, &json!({"m": {"abc": {"name": "x"}}})),
            Ok(())
        );
        assert!(same_shape(&f, &json!({"m": {}})).is_err());
        assert!(
            same_shape(&f, &json!({"m": {"abc": {"nom": "x"}}}))
                .is_err_and(|e| e == "/m/abc/name: missing")
        );
    }

    #[test]
    fn mutations() {
        let f = json!({"a": {"b": 1}});
        assert_eq!(rename_key(&f, "/a/b", "c"), json!({"a": {"c": 1}}));
        assert_eq!(set_value(&f, "/a/b", json!("1")), json!({"a": {"b": "1"}}));
    }
}
