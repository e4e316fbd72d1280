//! Streaming CSV import.

use std::io::Cursor;

use csv_async::{AsyncReader, AsyncReaderBuilder, ByteRecord};
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, Chain};

use super::scan::{ScanFailure, ScanReader};
use super::validate::{RawContact, check_len, validate};
use super::{ImportError, ImportOptions, Row, RowError};

/// The UTF-8 byte order mark some spreadsheet programs write first.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Read buffer of the CSV parser; also the read-ahead allowance of the
/// record budget.
const BUFFER_CAPACITY: usize = 16 * 1024;

/// The body after its BOM check: the bytes read to look for a BOM (none if
/// it was one), then the rest.
type Body<R> = Chain<Cursor<Vec<u8>>, R>;

/// What a header column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    /// The phone number.
    Phone,
    /// The contact's name.
    Name,
    /// The contact's IANA time zone.
    Timezone,
    /// Anything else, stored in metadata under this name.
    Metadata(String),
    /// A column with a blank header name: its cells must be empty.
    Unnamed,
}

/// Streaming reader of a CSV contact list.
///
/// [`CsvImport::new`] reads and checks the header; [`CsvImport::next_batch`]
/// then yields validated rows a batch at a time. Memory is bounded by the
/// batch and one record (a record larger than its field and column limits
/// allow is rejected as malformed), never by the body.
pub struct CsvImport<R> {
    /// The CSV parser over the scanned body.
    csv: AsyncReader<ScanReader<Body<R>>>,
    /// Limits and default region.
    opts: ImportOptions,
    /// Role of each header column, in order.
    columns: Vec<Column>,
    /// Header names as written (trimmed), for error messages.
    names: Vec<String>,
    /// Rows read so far, valid or not, blank lines excluded.
    rows: usize,
    /// Reused record buffer.
    record: ByteRecord,
    /// The end of the input or a fatal error was reached.
    done: bool,
}

impl<R: AsyncRead + Unpin + Send> CsvImport<R> {
    /// Starts an import over `reader`: skips a UTF-8 BOM and blank lines,
    /// then reads and validates the header row.
    pub async fn new(reader: R, opts: &ImportOptions) -> Result<Self, ImportError> {
        let body = skip_bom(reader).await?;
        let scanner = ScanReader::new(body, record_budget(opts));
        let csv = AsyncReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(BUFFER_CAPACITY)
            .create_reader(scanner);
        let mut import = Self {
            csv,
            opts: *opts,
            columns: Vec::new(),
            names: Vec::new(),
            rows: 0,
            record: ByteRecord::new(),
            done: false,
        };
        import.read_header().await?;
        Ok(import)
    }

    /// Reads up to `max` rows (at least one). Returns `None` once the input
    /// is exhausted, and after a fatal error.
    pub async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<Row>>, ImportError> {
        let max = max.max(1);
        let mut batch = Vec::with_capacity(max.min(1024));
        while batch.len() < max {
            match self.next_row().await {
                Ok(Some(row)) => batch.push(row),
                Ok(None) => break,
                Err(error) => {
                    self.done = true;
                    return Err(error);
                }
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// Reads the first non-blank record and sets up the columns.
    async fn read_header(&mut self) -> Result<(), ImportError> {
        let Some(line) = self.read_record().await? else {
            return Err(ImportError::EmptyBody);
        };
        if self.record.len() > self.opts.max_columns {
            return Err(ImportError::TooManyColumns {
                limit: self.opts.max_columns,
            });
        }
        let names = header_names(&self.record, line, &self.opts)?;
        self.columns = header_columns(&names)?;
        self.names = names;
        Ok(())
    }

    /// Reads and validates the next row.
    async fn next_row(&mut self) -> Result<Option<Row>, ImportError> {
        if self.done {
            return Ok(None);
        }
        let Some(line) = self.read_record().await? else {
            self.done = true;
            return Ok(None);
        };
        self.rows += 1;
        if self.rows > self.opts.max_rows {
            return Err(ImportError::TooManyRows {
                limit: self.opts.max_rows,
            });
        }
        self.row_from_record(line).map(Some)
    }

    /// Reads the next non-blank record into `self.record` and returns the
    /// physical line where it starts; `None` at end of input.
    async fn read_record(&mut self) -> Result<Option<u64>, ImportError> {
        loop {
            let start = self.csv.position().byte();
            self.csv.get_mut().begin_record(start);
            let found = self.csv.read_byte_record(&mut self.record).await;
            if !found.map_err(|e| self.csv_error(e))? {
                return Ok(None);
            }
            if !is_blank(&self.record) {
                return Ok(Some(self.csv.get_ref().line_at(start)));
            }
        }
    }

    /// Turns the record just read into a row. Overlong fields and invalid
    /// UTF-8 are fatal; everything else is a [`RowError`].
    fn row_from_record(&self, line: u64) -> Result<Row, ImportError> {
        let cells = self.decode_cells(line)?;
        if cells.len() != self.columns.len() {
            return Ok(Row::Invalid(RowError {
                line,
                field: None,
                message: format!(
                    "expected {} fields as in the header, found {}",
                    self.columns.len(),
                    cells.len()
                ),
            }));
        }
        Ok(self.contact_from_cells(line, &cells))
    }

    /// Decodes every cell as UTF-8 and checks its length.
    fn decode_cells(&self, line: u64) -> Result<Vec<&str>, ImportError> {
        let mut cells = Vec::with_capacity(self.record.len());
        for (index, bytes) in self.record.iter().enumerate() {
            let cell = std::str::from_utf8(bytes).map_err(|_| ImportError::Malformed {
                line,
                message: format!("{:?} is not valid UTF-8", self.column_label(index)),
            })?;
            check_len(cell, line, || self.column_label(index), &self.opts)?;
            cells.push(cell);
        }
        Ok(cells)
    }

    /// Validates a row whose cells line up with the header.
    fn contact_from_cells(&self, line: u64, cells: &[&str]) -> Row {
        let mut phone = "";
        let mut name = None;
        let mut timezone = None;
        let mut metadata = Map::new();
        for (index, (column, cell)) in self.columns.iter().zip(cells).enumerate() {
            match column {
                Column::Phone => phone = cell,
                Column::Name => name = Some(*cell),
                Column::Timezone => timezone = Some(*cell),
                Column::Metadata(key) => {
                    metadata.insert(key.clone(), Value::String((*cell).to_owned()));
                }
                Column::Unnamed if cell.trim().is_empty() => {}
                Column::Unnamed => return Row::Invalid(unnamed_column_error(line, index)),
            }
        }
        let raw = RawContact {
            line,
            phone,
            name,
            timezone,
            metadata,
        };
        validate(raw, &self.opts)
    }

    /// The header name of column `index`, or its position when it has
    /// none (blank header cell, or a field beyond the header).
    fn column_label(&self, index: usize) -> String {
        match self.names.get(index) {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("column {}", index + 1),
        }
    }

    /// Maps a parser error: failures raised by the scanner become
    /// [`ImportError::Malformed`], body read errors [`ImportError::Io`].
    fn csv_error(&self, error: csv_async::Error) -> ImportError {
        if let Some(failure) = self.csv.get_ref().failure() {
            return scan_failure(failure, self.opts.max_field_len);
        }
        let line = self.csv.get_ref().line_at(self.csv.position().byte());
        let message = error.to_string();
        match error.into_kind() {
            csv_async::ErrorKind::Io(io) => ImportError::Io(io),
            _ => ImportError::Malformed { line, message },
        }
    }
}

/// Reads the first bytes of the body and drops them if they are a UTF-8
/// BOM. (`csv-core` only strips a BOM that arrives in one piece, which a
/// body streamed in small chunks does not guarantee.)
async fn skip_bom<R: AsyncRead + Unpin>(mut reader: R) -> Result<Body<R>, ImportError> {
    let mut prefix = Vec::with_capacity(BOM.len());
    while prefix.len() < BOM.len() && BOM.starts_with(&prefix) {
        let mut byte = [0u8; 1];
        if reader.read(&mut byte).await.map_err(ImportError::Io)? == 0 {
            break;
        }
        prefix.push(byte[0]);
    }
    if prefix == BOM {
        prefix.clear();
    }
    Ok(Cursor::new(prefix).chain(reader))
}

/// Most raw bytes one record may span: every allowed column (plus one
/// stray) at the longest allowed value, fully quoted with every byte an
/// escaped quote, plus the parser's read buffer.
fn record_budget(opts: &ImportOptions) -> u64 {
    let columns = opts.max_columns as u64 + 1;
    let field = (opts.max_field_len as u64)
        .saturating_mul(2)
        .saturating_add(3);
    columns
        .saturating_mul(field)
        .saturating_add(2 * BUFFER_CAPACITY as u64)
}

/// A record whose fields are all empty or whitespace, such as a blank or
/// `,,,` line left by a spreadsheet: skipped, not counted.
fn is_blank(record: &ByteRecord) -> bool {
    record
        .iter()
        .all(|field| field.iter().all(u8::is_ascii_whitespace))
}

/// Decodes, trims and length-checks the header names.
fn header_names(
    record: &ByteRecord,
    line: u64,
    opts: &ImportOptions,
) -> Result<Vec<String>, ImportError> {
    let mut names = Vec::with_capacity(record.len());
    for (index, bytes) in record.iter().enumerate() {
        let column = format!("column {}", index + 1);
        let name = std::str::from_utf8(bytes).map_err(|_| ImportError::Malformed {
            line,
            message: format!("header {column} is not valid UTF-8"),
        })?;
        check_len(name, line, || column.clone(), opts)?;
        if name.contains('\0') {
            return Err(ImportError::Malformed {
                line,
                message: format!(
                    "header {column} contains a NUL character (U+0000), which cannot be stored"
                ),
            });
        }
        names.push(name.trim().to_owned());
    }
    Ok(names)
}

/// Assigns each header name its role; fails on duplicates (names are
/// case-insensitive) and when there is no phone column.
fn header_columns(names: &[String]) -> Result<Vec<Column>, ImportError> {
    let mut seen = std::collections::HashSet::new();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        if name.is_empty() {
            columns.push(Column::Unnamed);
            continue;
        }
        if !seen.insert(name.to_lowercase()) {
            return Err(ImportError::DuplicateColumn {
                column: name.clone(),
            });
        }
        columns.push(column_role(name));
    }
    if !columns.contains(&Column::Phone) {
        return Err(ImportError::MissingPhoneColumn {
            found: names.to_vec(),
        });
    }
    Ok(columns)
}

/// The role of a non-blank header name.
fn column_role(name: &str) -> Column {
    match name.to_lowercase().as_str() {
        "phone" => Column::Phone,
        "name" => Column::Name,
        "timezone" => Column::Timezone,
        _ => Column::Metadata(name.to_owned()),
    }
}

/// The row error for a value under a column without a header name.
fn unnamed_column_error(line: u64, index: usize) -> RowError {
    RowError {
        line,
        field: Some(format!("column {}", index + 1)),
        message: format!(
            "column {} has a value but no header name; name the column or empty it",
            index + 1
        ),
    }
}

/// Explains why the scanner stopped the input.
fn scan_failure(failure: ScanFailure, max_field_len: usize) -> ImportError {
    match failure {
        ScanFailure::UnclosedQuote { line } => ImportError::Malformed {
            line,
            message: "a quoted field opened on this line is never closed".to_owned(),
        },
        ScanFailure::RecordTooLarge {
            line,
            limit,
            open_quote: Some(quote_line),
        } => ImportError::Malformed {
            line,
            message: format!(
                "record is larger than {limit} bytes: the quoted field opened on line \
                 {quote_line} is probably missing its closing quote"
            ),
        },
        ScanFailure::RecordTooLarge {
            line,
            limit,
            open_quote: None,
        } => ImportError::Malformed {
            line,
            message: format!(
                "record is larger than {limit} bytes: a field is longer than \
                 {max_field_len} bytes or the row has far more fields than the header"
            ),
        },
    }
}
