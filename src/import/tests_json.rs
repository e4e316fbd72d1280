//! Tests of the JSON import.

use phonenumber::country::Id;
use serde_json::{Value, json};

use super::*;

fn opts() -> ImportOptions {
    ImportOptions::new(Id::US)
}

fn parse(value: Value) -> Result<Vec<Row>, ImportError> {
    parse_json(value.to_string().as_bytes(), &opts())
}

fn valid(row: &Row) -> &ContactRow {
    match row {
        Row::Valid(contact) => contact,
        Row::Invalid(error) => panic!("expected a valid row, got {error:?}"),
    }
}

fn invalid(row: &Row) -> &RowError {
    match row {
        Row::Invalid(error) => error,
        Row::Valid(contact) => panic!("expected an invalid row, got {contact:?}"),
    }
}

#[test]
fn happy_path() {
    let rows = parse(json!([
        {"phone": "+44 20 7946 0958", "name": " Ann ", "metadata": {"tier": "gold", "visits": 3, "tags": ["a"]}},
        {"phone": "(212) 555-0123", "name": null, "timezone": "america/denver"},
        {"phone": "+12125550124", "timezone": null},
    ]))
    .unwrap();
    assert_eq!(rows.len(), 3);
    let ann = valid(&rows[0]);
    assert_eq!(ann.line, 1);
    assert_eq!(ann.phone, "+442079460958");
    assert_eq!(ann.name.as_deref(), Some("Ann"));
    assert_eq!(ann.timezone.as_deref(), Some("Europe/London"));
    assert_eq!(
        Value::Object(ann.metadata.clone()),
        json!({"tier": "gold", "visits": 3, "tags": ["a"]})
    );
    let second = valid(&rows[1]);
    assert_eq!((second.line, second.name.as_deref()), (2, None));
    assert_eq!(second.timezone.as_deref(), Some("America/Denver"));
    let third = valid(&rows[2]);
    assert_eq!(third.timezone, None, "US has several zones");
    assert!(third.metadata.is_empty());
}

#[test]
fn byte_order_mark_and_whitespace_are_accepted() {
    let rows = parse_json(b"\xEF\xBB\xBF [ {\"phone\": \"+12125550123\"} ]\n", &opts()).unwrap();
    assert_eq!(rows.len(), 1);
}

#[test]
fn unknown_keys_are_named() {
    let rows = parse(json!([{"phone": "+12125550123", "email": "a@b.c", "Name": "x"}])).unwrap();
    let error = invalid(&rows[0]);
    assert_eq!(error.line, 1);
    assert!(error.message.contains("\"email\""), "{}", error.message);
    assert!(error.message.contains("\"Name\""), "{}", error.message);
}

#[test]
fn non_objects_are_row_errors() {
    let rows = parse(json!([{"phone": "+12125550123"}, "+12125550124", 5, null, []])).unwrap();
    assert!(matches!(rows[0], Row::Valid(_)));
    let errors: Vec<&RowError> = rows[1..].iter().map(invalid).collect();
    assert_eq!(
        errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    assert_eq!(
        errors[0].message,
        "expected a contact object, found a string"
    );
    assert_eq!(
        errors[3].message,
        "expected a contact object, found an array"
    );
}

#[test]
fn wrong_types_are_row_errors() {
    let rows = parse(json!([
        {"phone": 12125550123u64},
        {"phone": "+12125550123", "name": 5},
        {"phone": "+12125550123", "timezone": true},
        {"phone": "+12125550123", "metadata": ["x"]},
        {"phone": "+12125550123", "metadata": null},
    ]))
    .unwrap();
    let fields: Vec<Option<&str>> = rows.iter().map(|r| invalid(r).field.as_deref()).collect();
    assert_eq!(
        fields,
        [
            Some("phone"),
            Some("name"),
            Some("timezone"),
            Some("metadata"),
            Some("metadata")
        ]
    );
    assert_eq!(
        invalid(&rows[0]).message,
        "phone must be a string, found a number"
    );
}

#[test]
fn missing_or_invalid_phone_and_zone() {
    let rows = parse(json!([
        {"name": "Ann"},
        {"phone": null},
        {"phone": "555"},
        {"phone": "+12125550123", "timezone": "Moon/Base"},
    ]))
    .unwrap();
    assert_eq!(invalid(&rows[0]).message, "phone number is missing");
    assert_eq!(invalid(&rows[1]).field.as_deref(), Some("phone"));
    assert_eq!(invalid(&rows[2]).field.as_deref(), Some("phone"));
    let zone = invalid(&rows[3]);
    assert_eq!((zone.line, zone.field.as_deref()), (4, Some("timezone")));
}

#[test]
fn duplicates_are_kept() {
    let rows = parse(json!([{"phone": "+12125550123"}, {"phone": "(212) 555-0123"}])).unwrap();
    assert_eq!(valid(&rows[0]).phone, valid(&rows[1]).phone);
}

#[test]
fn top_level_must_be_an_array() {
    for body in [
        &b"{\"phone\": \"+12125550123\"}"[..],
        b"\"x\"",
        b"42",
        b"null",
    ] {
        let err = parse_json(body, &opts()).err().unwrap();
        assert!(
            matches!(err, ImportError::Malformed { line: 1, .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), 422);
    }
}

#[test]
fn syntax_errors_are_malformed_with_their_line() {
    let err = parse_json(
        b"[\n{\"phone\": \"+12125550123\"},\n{\"phone\": }\n]",
        &opts(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, ImportError::Malformed { line: 3, .. }),
        "{err:?}"
    );
    let err = parse_json(b"[{\"phone\": \"+12125550123\"}] trailing", &opts())
        .err()
        .unwrap();
    assert!(matches!(err, ImportError::Malformed { .. }), "{err:?}");
    let err = parse_json(b"[{\"phone\": \"+1212\xFF5550123\"}]", &opts())
        .err()
        .unwrap();
    assert!(matches!(err, ImportError::Malformed { .. }), "{err:?}");
}

#[test]
fn empty_bodies_are_rejected() {
    for body in [&b""[..], b"  \n", b"[]", b" [ ] "] {
        let err = parse_json(body, &opts()).err().unwrap();
        assert!(matches!(err, ImportError::EmptyBody), "{err:?}");
    }
}

#[test]
fn too_many_rows_is_fatal() {
    let mut o = opts();
    o.max_rows = 2;
    let body = json!([{"phone": "+12125550123"}, 7]).to_string();
    assert_eq!(parse_json(body.as_bytes(), &o).unwrap().len(), 2);
    let body = json!([{"phone": "+12125550123"}, 7, {"phone": "+12125550124"}]).to_string();
    let err = parse_json(body.as_bytes(), &o).err().unwrap();
    assert!(
        matches!(err, ImportError::TooManyRows { limit: 2 }),
        "{err:?}"
    );
    assert_eq!(err.status(), 413);
}

#[test]
fn long_strings_are_fatal() {
    let mut o = opts();
    o.max_field_len = 12;
    let long = "x".repeat(13);
    let cases = [
        (
            json!([{"phone": "+12125550123"}, {"phone": long}]),
            2,
            "phone",
        ),
        (json!([{"phone": "+12125550123", "name": long}]), 1, "name"),
        (
            json!([{"phone": "+12125550123", "metadata": {"a": {"notes": [long]}}}]),
            1,
            "metadata.a.notes",
        ),
        (
            json!([{"phone": "+12125550123", "metadata": {long.clone(): 1}}]),
            1,
            "metadata.xxxxxxxxxxxxx",
        ),
    ];
    for (value, expected_line, expected_column) in cases {
        let err = parse_json(value.to_string().as_bytes(), &o).err().unwrap();
        let ImportError::FieldTooLong {
            line,
            column,
            limit,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(
            (*line, column.as_str(), *limit),
            (expected_line, expected_column, 12)
        );
        assert_eq!(err.status(), 422);
    }
}

proptest::proptest! {
    #[test]
    fn any_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = parse_json(&data, &opts());
    }

    #[test]
    fn json_like_text_never_panics(text in "[\\[\\]{}:,\" a-z0-9+.nul\\\\]{0,200}") {
        let _ = parse_json(text.as_bytes(), &opts());
    }
}
