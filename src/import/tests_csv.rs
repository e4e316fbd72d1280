//! Tests of the CSV import.

use std::io;

use bytes::Bytes;
use futures_util::stream;
use phonenumber::country::Id;
use serde_json::{Value, json};
use tokio_util::io::StreamReader;

use super::*;

fn opts() -> ImportOptions {
    ImportOptions::new(Id::US)
}

/// Imports a whole body held in memory, in batches of 3.
async fn import(data: &[u8], opts: &ImportOptions) -> Result<Vec<Row>, ImportError> {
    collect(CsvImport::new(data, opts).await?).await
}

/// Drains an import.
async fn collect<R>(mut import: CsvImport<R>) -> Result<Vec<Row>, ImportError>
where
    R: tokio::io::AsyncRead + Unpin + Send,
{
    let mut rows = Vec::new();
    while let Some(batch) = import.next_batch(3).await? {
        assert!(!batch.is_empty() && batch.len() <= 3);
        rows.extend(batch);
    }
    Ok(rows)
}

/// A body streamed the way the handler does it, in `size`-byte chunks.
fn chunked(data: &[u8], size: usize) -> impl tokio::io::AsyncRead + Unpin + Send + use<> {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(size)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    StreamReader::new(stream::iter(chunks))
}

async fn import_chunked(data: &[u8], size: usize) -> Result<Vec<Row>, ImportError> {
    collect(CsvImport::new(chunked(data, size), &opts()).await?).await
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

fn lines(rows: &[Row]) -> Vec<u64> {
    rows.iter()
        .map(|row| match row {
            Row::Valid(c) => c.line,
            Row::Invalid(e) => e.line,
        })
        .collect()
}

#[tokio::test]
async fn happy_path_with_metadata() {
    let data = b"phone,name,timezone,Company,notes\n\
        +44 20 7946 0958,  Ann Smith ,,Acme, likes tea \n\
        (212) 555-0123,Bob,america/chicago,Globex,\n";
    let rows = import(data, &opts()).await.unwrap();
    assert_eq!(rows.len(), 2);
    let ann = valid(&rows[0]);
    assert_eq!(ann.line, 2);
    assert_eq!(ann.phone, "+442079460958");
    assert_eq!(ann.name.as_deref(), Some("Ann Smith"));
    assert_eq!(ann.timezone.as_deref(), Some("Europe/London"));
    assert_eq!(
        Value::Object(ann.metadata.clone()),
        json!({"Company": "Acme", "notes": " likes tea "})
    );
    let bob = valid(&rows[1]);
    assert_eq!(bob.line, 3);
    assert_eq!(bob.phone, "+12125550123");
    assert_eq!(bob.timezone.as_deref(), Some("America/Chicago"));
    assert_eq!(
        Value::Object(bob.metadata.clone()),
        json!({"Company": "Globex", "notes": ""})
    );
}

#[tokio::test]
async fn header_is_trimmed_and_case_insensitive() {
    let data = b" PHONE , Name ,TimeZone, Account ID \n+33142685300,Zoe,,42\n";
    let rows = import(data, &opts()).await.unwrap();
    let zoe = valid(&rows[0]);
    assert_eq!(zoe.name.as_deref(), Some("Zoe"));
    assert_eq!(zoe.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(
        Value::Object(zoe.metadata.clone()),
        json!({"Account ID": "42"})
    );
}

#[tokio::test]
async fn phone_only_header_and_absent_name() {
    let rows = import(b"phone\n+12125550123\n", &opts()).await.unwrap();
    let contact = valid(&rows[0]);
    assert_eq!(contact.name, None);
    assert_eq!(contact.timezone, None, "US has several zones");
    assert!(contact.metadata.is_empty());
}

#[tokio::test]
async fn bom_is_ignored() {
    let data = b"\xEF\xBB\xBFphone,name\n+12125550123,Ann\n";
    let rows = import(data, &opts()).await.unwrap();
    assert_eq!(valid(&rows[0]).name.as_deref(), Some("Ann"));
    for size in [1, 2, 7] {
        let rows = import_chunked(data, size).await.unwrap();
        assert_eq!(rows.len(), 1, "chunk size {size}");
        assert_eq!(valid(&rows[0]).line, 2);
    }
    let quoted = b"\xEF\xBB\xBF\"phone\"\n+12125550123\n";
    assert_eq!(import_chunked(quoted, 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn crlf_and_lf_both_work() {
    let data = b"phone,name\r\n+12125550123,Ann\r\n+12125550124,Bob\n+12125550125,Cy";
    let rows = import(data, &opts()).await.unwrap();
    assert_eq!(lines(&rows), [2, 3, 4]);
    assert_eq!(valid(&rows[0]).name.as_deref(), Some("Ann"));
    assert_eq!(valid(&rows[2]).name.as_deref(), Some("Cy"));
}

#[tokio::test]
async fn quoted_commas_quotes_and_newlines() {
    let data = b"phone,name,notes\r\n\
        +12125550123,\"Smith, Ann\",\"she said \"\"hi\"\"\"\r\n\
        +12125550124,Bob,\"line one\r\nline two\nline three\"\r\n\
        +12125550125,Cy,plain\r\n";
    let rows = import(data, &opts()).await.unwrap();
    assert_eq!(lines(&rows), [2, 3, 6]);
    let ann = valid(&rows[0]);
    assert_eq!(ann.name.as_deref(), Some("Smith, Ann"));
    assert_eq!(ann.metadata["notes"], json!("she said \"hi\""));
    assert_eq!(
        valid(&rows[1]).metadata["notes"],
        json!("line one\r\nline two\nline three")
    );
}

#[tokio::test]
async fn empty_lines_are_skipped_with_correct_line_numbers() {
    let data = b"\n\r\nphone,name\r\n\r\n+12125550123,Ann\n\n\n   \n,,\n+1 nope,Bob\r\n\r\n";
    let mut o = opts();
    o.max_rows = 2;
    let rows = import(data, &o).await.unwrap();
    assert_eq!(lines(&rows), [5, 10]);
    assert_eq!(invalid(&rows[1]).field.as_deref(), Some("phone"));
}

#[tokio::test]
async fn line_numbers_survive_any_chunking() {
    let data =
        b"phone,name\r\n\r\n+12125550123,\"A\r\nB\"\n\n+12125550124,\"C\"\"\"\r\n,,\r\nbad,x\n";
    let whole = import(data, &opts()).await.unwrap();
    assert_eq!(lines(&whole), [3, 6, 8]);
    for size in [1, 2, 3, 7, 64] {
        let rows = import_chunked(data, size).await.unwrap();
        assert_eq!(rows, whole, "chunk size {size}");
    }
}

#[tokio::test]
async fn missing_phone_column_names_the_header_found() {
    let err = import(b"Name,Mobile\nAnn,+12125550123\n", &opts())
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), 422);
    let ImportError::MissingPhoneColumn { found } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(found, &["Name", "Mobile"]);
    assert_eq!(
        err.to_string(),
        "the header has no \"phone\" column; it has: \"Name\", \"Mobile\""
    );
}

#[tokio::test]
async fn duplicate_columns_are_rejected() {
    let err = import(b"phone,Email,name,EMAIL\n", &opts())
        .await
        .err()
        .unwrap();
    assert!(matches!(&err, ImportError::DuplicateColumn { column } if column == "EMAIL"));
    assert_eq!(err.status(), 422);
    let err = import(b"Phone, phone\n", &opts()).await.err().unwrap();
    assert!(matches!(&err, ImportError::DuplicateColumn { column } if column == "phone"));
}

#[tokio::test]
async fn empty_bodies_are_rejected() {
    for data in [&b""[..], b"\n\r\n\n", b"\xEF\xBB\xBF", b" \n,,\n"] {
        let err = import(data, &opts()).await.err().unwrap();
        assert!(matches!(err, ImportError::EmptyBody), "{data:?}: {err:?}");
        assert_eq!(err.status(), 422);
    }
}

#[tokio::test]
async fn import_futures_are_send() {
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    let reader = chunked(b"phone\n+12125550123\n", 4);
    let import = assert_send(CsvImport::new(reader, &opts())).await.unwrap();
    let mut import = assert_send(import);
    let batch = assert_send(import.next_batch(5)).await.unwrap();
    assert_eq!(batch.map(|b| b.len()), Some(1));
}

#[tokio::test]
async fn header_only_yields_no_rows() {
    let mut import = CsvImport::new(&b"phone,name\n"[..], &opts()).await.unwrap();
    assert_eq!(import.next_batch(10).await.unwrap(), None);
    assert_eq!(import.next_batch(10).await.unwrap(), None);
}

#[tokio::test]
async fn batches_respect_their_size() {
    let data = b"phone\n+12125550123\n+12125550124\n+12125550125\n";
    let mut import = CsvImport::new(&data[..], &opts()).await.unwrap();
    assert_eq!(
        import.next_batch(0).await.unwrap().map(|b| b.len()),
        Some(1)
    );
    assert_eq!(
        import.next_batch(5).await.unwrap().map(|b| b.len()),
        Some(2)
    );
    assert_eq!(import.next_batch(5).await.unwrap(), None);
}

#[tokio::test]
async fn rows_with_extra_or_missing_fields_are_row_errors() {
    let data = b"phone,name\n+12125550123,Ann,extra\n+12125550124\n+12125550125,Cy\n";
    let rows = import(data, &opts()).await.unwrap();
    let extra = invalid(&rows[0]);
    assert_eq!(extra.line, 2);
    assert_eq!(extra.message, "expected 2 fields as in the header, found 3");
    assert_eq!(
        invalid(&rows[1]).message,
        "expected 2 fields as in the header, found 1"
    );
    assert_eq!(valid(&rows[2]).line, 4);
}

#[tokio::test]
async fn invalid_phone_is_a_row_error_with_a_short_echo() {
    let long = "5".repeat(50);
    let data = format!("phone,name\nnot a number,A\n{long},B\n(212) 555-012,C\n,D\n");
    let rows = import(data.as_bytes(), &opts()).await.unwrap();
    let errors: Vec<&RowError> = rows.iter().map(invalid).collect();
    assert!(errors.iter().all(|e| e.field.as_deref() == Some("phone")));
    assert_eq!(
        errors[0].message,
        "invalid phone number \"not a number\": not a phone number"
    );
    assert!(errors[1].message.contains(&"5".repeat(32)));
    assert!(!errors[1].message.contains(&"5".repeat(33)));
    assert_eq!(
        errors[2].message,
        "invalid phone number \"(212) 555-012\": not a valid phone number for US (+1)"
    );
    assert_eq!(errors[3].message, "phone number is missing");
    assert_eq!(lines(&rows), [2, 3, 4, 5]);
}

#[tokio::test]
async fn invalid_zone_is_a_row_error() {
    let data = b"phone,timezone\n+12125550123,America/Nowhere\n+12125550123, \n";
    let rows = import(data, &opts()).await.unwrap();
    let error = invalid(&rows[0]);
    assert_eq!(error.field.as_deref(), Some("timezone"));
    assert!(
        error.message.contains("America/Nowhere"),
        "{}",
        error.message
    );
    assert_eq!(valid(&rows[1]).timezone, None, "blank zone means absent");
}

#[tokio::test]
async fn zone_is_derived_only_when_unambiguous() {
    let data = b"phone\n+442079460958\n+12125550123\n+61 2 1234 5678\n+81 3 1234 5678\n";
    let rows = import(data, &opts()).await.unwrap();
    let zones: Vec<Option<&str>> = rows.iter().map(|r| valid(r).timezone.as_deref()).collect();
    assert_eq!(
        zones,
        [Some("Europe/London"), None, None, Some("Asia/Tokyo")]
    );
}

#[tokio::test]
async fn default_region_applies_to_national_numbers() {
    let mut o = opts();
    o.default_region = Id::GB;
    let rows = import(b"phone\n020 7946 0958\n", &o).await.unwrap();
    assert_eq!(valid(&rows[0]).phone, "+442079460958");
}

#[tokio::test]
async fn unnamed_columns_must_stay_empty() {
    let data = b"phone,,name\n+12125550123,,Ann\n+12125550124,oops,Bob\n";
    let rows = import(data, &opts()).await.unwrap();
    assert!(valid(&rows[0]).metadata.is_empty());
    assert_eq!(invalid(&rows[1]).field.as_deref(), Some("column 2"));
}

#[tokio::test]
async fn field_too_long_is_fatal() {
    let mut o = opts();
    o.max_field_len = 12;
    let data = b"phone,notes\n+12125550123,short\n+12125550123,0123456789abc\n";
    let err = import(data, &o).await.err().unwrap();
    assert_eq!(err.status(), 422);
    let ImportError::FieldTooLong {
        line,
        column,
        limit,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!((line, column.as_str(), limit), (3, "notes", 12));

    let err = import(b"phone,0123456789abc\n", &o).await.err().unwrap();
    assert!(
        matches!(err, ImportError::FieldTooLong { line: 1, ref column, .. } if column == "column 2")
    );
}

#[tokio::test]
async fn too_many_columns_is_fatal() {
    let mut o = opts();
    o.max_columns = 3;
    let err = import(b"phone,a,b,c\n", &o).await.err().unwrap();
    assert!(matches!(err, ImportError::TooManyColumns { limit: 3 }));
    assert_eq!(err.status(), 422);
    assert!(import(b"phone,a,b\n", &o).await.is_ok());
}

#[tokio::test]
async fn too_many_rows_counts_invalid_ones() {
    let mut o = opts();
    o.max_rows = 3;
    let ok = b"phone\n+12125550123\nbad\n\n+12125550125\n";
    assert_eq!(import(ok, &o).await.unwrap().len(), 3);
    let over = b"phone\n+12125550123\nbad\n+12125550124\n\n+12125550125\n";
    let err = import(over, &o).await.err().unwrap();
    assert!(matches!(err, ImportError::TooManyRows { limit: 3 }));
    assert_eq!(err.status(), 413);
}

#[tokio::test]
async fn errors_end_the_import() {
    let mut o = opts();
    o.max_rows = 1;
    let data = b"phone\n+12125550123\n+12125550124\n+12125550125\n";
    let mut import = CsvImport::new(&data[..], &o).await.unwrap();
    assert!(import.next_batch(10).await.is_err());
    assert_eq!(import.next_batch(10).await.unwrap(), None);
}

#[tokio::test]
async fn unclosed_quote_is_malformed() {
    let data = b"phone,name\n+12125550123,Ann\n+12125550124,\"Bob\n+12125550125,Cy\n";
    for size in [1, 7, 1000] {
        let err = import_chunked(data, size).await.err().unwrap();
        assert_eq!(err.status(), 422);
        let ImportError::Malformed { line, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(line, 3, "chunk size {size}");
        assert!(message.contains("never closed"), "{message}");
    }
}

#[tokio::test]
async fn runaway_record_is_stopped_early() {
    let mut o = opts();
    o.max_field_len = 16;
    o.max_columns = 4;
    let mut data = b"phone,name\n+12125550123,Ann\n\n+12125550124,\"Bob\n".to_vec();
    data.extend(b"+12125550125,Cy\n".repeat(100_000));
    data.extend(b"\"\n");
    let err = collect(CsvImport::new(chunked(&data, 4096), &o).await.unwrap())
        .await
        .err()
        .unwrap();
    let ImportError::Malformed { line, message } = err else {
        panic!("{err:?}")
    };
    assert_eq!(line, 4);
    assert!(message.contains("opened on line 4"), "{message}");
}

#[tokio::test]
async fn invalid_utf8_is_malformed() {
    let data = b"phone,name\n+12125550123,Ann\n+12125550124,B\xFF\xFEb\n";
    let err = import(data, &opts()).await.err().unwrap();
    let ImportError::Malformed { line, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*line, 3);
    assert_eq!(message, "\"name\" is not valid UTF-8");
    assert_eq!(err.status(), 422);

    let err = import(b"ph\xC3one\n", &opts()).await.err().unwrap();
    assert!(
        matches!(err, ImportError::Malformed { line: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn body_read_errors_are_io_errors() {
    let chunks: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"phone\n+12125550123\n")),
        Err(io::Error::other("body limit reached")),
    ];
    let reader = StreamReader::new(stream::iter(chunks));
    let err = collect(CsvImport::new(reader, &opts()).await.unwrap())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ImportError::Io(_)), "{err:?}");
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn small_chunks_give_the_same_rows() {
    let data = b"\xEF\xBB\xBFphone,name,timezone,city\r\n\
        +44 20 7946 0958,\"Smith, Ann\",,\"London\r\nUK\"\r\n\
        \r\n\
        (212) 555-0123,Bob,Europe/Berlin,\"New \"\"York\"\"\"\r\n\
        nope,Cy,,\r\n";
    let whole = import(data, &opts()).await.unwrap();
    assert_eq!(lines(&whole), [2, 5, 6]);
    assert_eq!(import_chunked(data, 7).await.unwrap(), whole);
}

#[tokio::test]
async fn hundred_thousand_rows_stream_through() {
    let mut data = b"phone,name,ref\n".to_vec();
    for i in 0..100_000u32 {
        data.extend(format!("+44 207 {i:07},Person {i},r{i}\n").as_bytes());
    }
    let mut import = CsvImport::new(chunked(&data, 64 * 1024), &opts())
        .await
        .unwrap();
    let mut count = 0u64;
    while let Some(batch) = import.next_batch(1000).await.unwrap() {
        for row in &batch {
            let contact = valid(row);
            count += 1;
            assert_eq!(contact.line, count + 1);
        }
    }
    assert_eq!(count, 100_000);
}

/// Imports `data` whole and in 1-byte chunks; both must agree.
fn import_both_ways(data: &[u8]) -> (String, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let whole = runtime.block_on(import(data, &opts()));
    let chunked = runtime.block_on(import_chunked(data, 1));
    (format!("{whole:?}"), format!("{chunked:?}"))
}

proptest::proptest! {
    #[test]
    fn any_bytes_are_handled_the_same_in_any_chunking(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        let (whole, chunked) = import_both_ways(&data);
        proptest::prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn csv_like_bytes_are_handled_the_same_in_any_chunking(
        body in proptest::collection::vec(
            proptest::sample::select(&b"ab1+ ,\"\r\n\xFF"[..]),
            0..300,
        ),
    ) {
        let mut data = b"phone,name,x\n".to_vec();
        data.extend(body);
        let (whole, chunked) = import_both_ways(&data);
        proptest::prop_assert_eq!(whole, chunked);
    }
}
