//! A pass-through reader that watches the raw CSV bytes on their way to the
//! CSV parser.
//!
//! `csv-async` reports a record's position as where the *previous* record
//! ended, before the blank lines it skips, so its line numbers are off after
//! empty lines and CRLF endings. It also accepts an unclosed quote by
//! reading the rest of the body into one field, buffering it whole. This
//! reader fixes both without copying data:
//!
//! - it remembers, for the bytes not yet parsed, the offset and line number
//!   of every physical line that starts with content, so the importer can
//!   ask where the record beginning at a byte offset really starts;
//! - it follows the quoting state (the same rules as `csv-core`: `"` opens a
//!   quoted field only at the start of a field, `""` is an escaped quote) and
//!   fails at end of input when a quoted field is still open;
//! - it fails once the record being parsed exceeds a byte budget, which
//!   bounds memory by one record whatever the body holds.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

/// Why [`ScanReader`] stopped the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScanFailure {
    /// The input ended inside a quoted field opened on `line`.
    UnclosedQuote {
        /// Line of the opening quote.
        line: u64,
    },
    /// The record starting on `line` grew beyond `limit` bytes.
    RecordTooLarge {
        /// Line where the record starts.
        line: u64,
        /// The byte budget of a record.
        limit: u64,
        /// Line of a quoted field that is still open, the likely cause.
        open_quote: Option<u64>,
    },
}

/// Where the scanner is in the CSV grammar, mirroring `csv-core`'s states
/// for the default dialect (`,` delimiter, `"` quote, doubled quotes, any of
/// CR, LF, CRLF as terminator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    /// At the start of a field (or record).
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: either the closing quote
    /// or the first half of an escaped `""`.
    AfterQuote,
}

/// See the module documentation.
pub(super) struct ScanReader<R> {
    /// The body.
    inner: R,
    /// Bytes passed through so far (the offset of the next byte).
    seen: u64,
    /// Physical line (1-based) of the next byte.
    line: u64,
    /// The last byte was CR, so an LF now does not start another line.
    prev_cr: bool,
    /// The next byte is the first of a physical line.
    at_line_start: bool,
    /// Quoting state after the last byte.
    quote: QuoteState,
    /// Line of the quote that opened the current quoted field.
    quote_line: u64,
    /// (offset, line) of each content byte that begins a physical line, for
    /// the bytes at or after `floor`.
    line_starts: VecDeque<(u64, u64)>,
    /// Offset where the record being parsed begins.
    floor: u64,
    /// Most bytes read past `floor` before giving up.
    budget: u64,
    /// Set once the input was stopped; every later read fails.
    failure: Option<ScanFailure>,
}

impl<R> ScanReader<R> {
    /// Wraps `inner`; a record may span at most `budget` bytes (plus one
    /// read of read-ahead).
    pub(super) fn new(inner: R, budget: u64) -> Self {
        Self {
            inner,
            seen: 0,
            line: 1,
            prev_cr: false,
            at_line_start: true,
            quote: QuoteState::FieldStart,
            quote_line: 1,
            line_starts: VecDeque::new(),
            floor: 0,
            budget,
            failure: None,
        }
    }

    /// Tells the scanner that the parser starts a record at byte `offset`:
    /// forgets the lines before it and restarts the record budget.
    pub(super) fn begin_record(&mut self, offset: u64) {
        self.floor = offset;
        while self.line_starts.front().is_some_and(|&(o, _)| o < offset) {
            self.line_starts.pop_front();
        }
    }

    /// Physical line of the first content at or after byte `offset`: the
    /// start of a record that the parser reported at `offset`.
    pub(super) fn line_at(&self, offset: u64) -> u64 {
        self.line_starts
            .iter()
            .find(|&&(o, _)| o >= offset)
            .map_or(self.line, |&(_, line)| line)
    }

    /// Why the input was stopped, if it was.
    pub(super) fn failure(&self) -> Option<ScanFailure> {
        self.failure
    }

    /// Updates line and quoting state for `bytes`, the next bytes of input.
    fn scan(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.track_quote(byte);
            self.track_line(byte);
            self.seen += 1;
        }
    }

    /// Line bookkeeping for one byte at offset `self.seen`.
    fn track_line(&mut self, byte: u8) {
        match byte {
            b'\n' => {
                if !self.prev_cr {
                    self.line += 1;
                }
                self.prev_cr = false;
                self.at_line_start = true;
            }
            b'\r' => {
                self.line += 1;
                self.prev_cr = true;
                self.at_line_start = true;
            }
            _ => {
                if self.at_line_start {
                    self.line_starts.push_back((self.seen, self.line));
                }
                self.prev_cr = false;
                self.at_line_start = false;
            }
        }
    }

    /// Quoting state machine for one byte.
    fn track_quote(&mut self, byte: u8) {
        let is_end = matches!(byte, b',' | b'\r' | b'\n');
        self.quote = match (self.quote, byte) {
            (QuoteState::FieldStart, b'"') => {
                self.quote_line = self.line;
                QuoteState::Quoted
            }
            (QuoteState::Quoted, b'"') => QuoteState::AfterQuote,
            (QuoteState::Quoted, _) => QuoteState::Quoted,
            (QuoteState::AfterQuote, b'"') => QuoteState::Quoted,
            (_, _) if is_end => QuoteState::FieldStart,
            (_, _) => QuoteState::Unquoted,
        };
    }

    /// Checks the state after a read of `n` bytes (0 at end of input).
    fn check(&mut self, n: usize) -> Option<ScanFailure> {
        let open_quote = (self.quote == QuoteState::Quoted).then_some(self.quote_line);
        if n == 0 {
            return open_quote.map(|line| ScanFailure::UnclosedQuote { line });
        }
        if self.seen.saturating_sub(self.floor) > self.budget {
            return Some(ScanFailure::RecordTooLarge {
                line: self.line_at(self.floor),
                limit: self.budget,
                open_quote,
            });
        }
        None
    }
}

/// The error handed to the CSV parser when the scanner stops the input;
/// the importer reads [`ScanReader::failure`] for the details.
fn stopped() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "CSV input stopped by the scanner",
    )
}

impl<R: AsyncRead + Unpin> AsyncRead for ScanReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.failure.is_some() {
            return Poll::Ready(Err(stopped()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let new_bytes = &buf.filled()[before..];
        let n = new_bytes.len();
        self.scan(new_bytes);
        if let Some(failure) = self.check(n) {
            self.failure = Some(failure);
            buf.set_filled(before);
            return Poll::Ready(Err(stopped()));
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn drain(data: &[u8], budget: u64) -> (ScanReader<&[u8]>, io::Result<usize>) {
        let mut reader = ScanReader::new(data, budget);
        let mut out = Vec::new();
        let result = reader.read_to_end(&mut out).await;
        (reader, result)
    }

    #[tokio::test]
    async fn finds_record_starts_after_blank_lines() {
        let (reader, result) = drain(b"a\r\n\r\n\nb\n\"x\ny\"\rz", 1000).await;
        assert!(result.is_ok());
        assert_eq!(reader.line_at(0), 1);
        assert_eq!(reader.line_at(2), 4);
        assert_eq!(reader.line_at(8), 5);
        assert_eq!(reader.line_at(14), 7);
    }

    #[tokio::test]
    async fn escaped_and_closed_quotes_are_fine() {
        let (reader, result) = drain(b"\"a\"\"b\",c\"d\n\"x\"y", 1000).await;
        assert!(result.is_ok());
        assert_eq!(reader.failure(), None);
    }

    #[tokio::test]
    async fn unclosed_quote_fails_at_end_of_input() {
        let (reader, result) = drain(b"a,b\nc,\"d\n\ne", 1000).await;
        assert!(result.is_err());
        assert_eq!(
            reader.failure(),
            Some(ScanFailure::UnclosedQuote { line: 2 })
        );
    }

    #[tokio::test]
    async fn record_budget_is_enforced() {
        let data = vec![b'x'; 100];
        let (reader, result) = drain(&data, 10).await;
        assert!(result.is_err());
        assert!(matches!(
            reader.failure(),
            Some(ScanFailure::RecordTooLarge {
                line: 1,
                limit: 10,
                open_quote: None
            })
        ));
    }
}
