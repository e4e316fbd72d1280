//! Incremental Server-Sent Events parser: bytes in (split anywhere), the
//! `data` of each complete event out. Lines end with LF, CRLF or CR;
//! lines starting with `:` are comments; several `data:` lines of one
//! event are joined with `\n`; an empty line ends an event; `event`, `id`
//! and `retry` fields are ignored. A line (or an event's data) longer than
//! the cap is an error, so a hostile server cannot grow memory.

/// A line or event over the size cap.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SSE line or event longer than {0} bytes")]
pub struct SseTooLong(pub usize);

/// The parser state between chunks.
#[derive(Debug)]
pub struct SseParser {
    max: usize,
    line: Vec<u8>,
    /// The previous chunk ended with CR: a leading LF belongs to it.
    after_cr: bool,
    data: Option<String>,
}

impl SseParser {
    /// A parser refusing lines and events longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            after_cr: false,
            data: None,
        }
    }

    /// Feeds bytes; returns the data of every event they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<String>, SseTooLong> {
        let mut out = Vec::new();
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    if self.line.len() + bytes.len() > self.max {
                        return Err(SseTooLong(self.max));
                    }
                    self.line.extend_from_slice(bytes);
                    break;
                }
                Some(i) => {
                    if self.line.len() + i > self.max {
                        return Err(SseTooLong(self.max));
                    }
                    self.line.extend_from_slice(&bytes[..i]);
                    let cr = bytes[i] == b'\r';
                    bytes = &bytes[i + 1..];
                    if cr {
                        match bytes.first() {
                            Some(b'\n') => bytes = &bytes[1..],
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line)? {
                        out.push(event);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The end of the stream: an unterminated last line or event is
    /// delivered too (servers that omit the final blank line).
    pub fn finish(&mut self) -> Result<Option<String>, SseTooLong> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.line_done(&line)?;
        }
        Ok(self.data.take())
    }

    fn line_done(&mut self, line: &[u8]) -> Result<Option<String>, SseTooLong> {
        if line.is_empty() {
            return Ok(self.data.take());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            let value = String::from_utf8_lossy(value);
            match &mut self.data {
                Some(d) => {
                    if d.len() + 1 + value.len() > self.max {
                        return Err(SseTooLong(self.max));
                    }
                    d.push('\n');
                    d.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = ": keep-alive\n\ndata: {\"a\":1}\n\nevent: x\nid: 7\ndata: {\"b\":\n\
                          data: 2}\n\ndata: [DONE]\n\n";

    fn all(parser: &mut SseParser, pieces: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for p in pieces {
            out.extend(parser.push(p).unwrap());
        }
        out.extend(parser.finish().unwrap());
        out
    }

    fn expected() -> Vec<String> {
        vec!["{\"a\":1}".into(), "{\"b\":\n2}".into(), "[DONE]".into()]
    }

    #[test]
    fn whole_stream_comments_multiline_and_done() {
        let mut p = SseParser::new(1024);
        assert_eq!(all(&mut p, &[STREAM.as_bytes()]), expected());
    }

    #[test]
    fn split_at_every_position_and_byte_by_byte() {
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            let mut p = SseParser::new(1024);
            assert_eq!(
                all(&mut p, &[&bytes[..cut], &bytes[cut..]]),
                expected(),
                "cut {cut}"
            );
        }
        let mut p = SseParser::new(1024);
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(all(&mut p, &pieces), expected());
    }

    #[test]
    fn crlf_and_cr_line_endings_split_anywhere() {
        for sep in ["\r\n", "\r"] {
            let s = STREAM.replace('\n', sep);
            let bytes = s.as_bytes();
            for cut in 0..=bytes.len() {
                let mut p = SseParser::new(1024);
                assert_eq!(all(&mut p, &[&bytes[..cut], &bytes[cut..]]), expected());
            }
        }
    }

    #[test]
    fn no_space_after_colon_and_utf8_split_inside_a_char() {
        let s = "data:héllo\n\n".as_bytes();
        let mut p = SseParser::new(1024);
        // Cut inside the two-byte é.
        assert_eq!(all(&mut p, &[&s[..7], &s[7..]]), vec!["héllo".to_string()]);
    }

    #[test]
    fn missing_final_blank_line_still_delivers() {
        let mut p = SseParser::new(1024);
        assert_eq!(all(&mut p, &[b"data: [DONE]"]), vec!["[DONE]".to_string()]);
    }

    #[test]
    fn oversized_line_or_event_is_an_error() {
        let mut p = SseParser::new(16);
        assert!(p.push(&[b'x'; 10]).is_ok());
        assert_eq!(p.push(&[b'x'; 10]), Err(SseTooLong(16)));
        let mut p = SseParser::new(16);
        assert!(p.push(b"data: 0123456789\n").is_ok());
        assert!(p.push(b"data: 0123456789\n").is_err());
    }
}
