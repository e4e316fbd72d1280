//! A strict little `multipart/form-data` reader (RFC 7578) for the
//! Whisper emulator: CRLF line ends, `Content-Disposition: form-data` with
//! a quoted `name` (and `filename` for files) on every part.

/// One part of the form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The field name.
    pub name: String,
    /// The filename (file parts).
    pub filename: Option<String>,
    /// The part's `Content-Type`.
    pub content_type: Option<String>,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data; boundary=...` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut it = content_type.split(';');
    let mime = it.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    it.filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() || needle.is_empty() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A `key="value"` parameter of a header value.
fn param(value: &str, key: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a body into its parts.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, &'static str> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let first = find(body, delim, 0).ok_or("no boundary in the body")?;
    let mut at = first + delim.len();
    let next_delim = [b"\r\n".as_slice(), delim].concat();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return if parts.is_empty() {
                Err("no parts")
            } else {
                Ok(parts)
            };
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("boundary not followed by CRLF");
        }
        at += 2;
        let end = find(body, &next_delim, at).ok_or("part without a closing boundary")?;
        let part = &body[at..end];
        let head_end = find(part, b"\r\n\r\n", 0).ok_or("part without headers")?;
        let head = std::str::from_utf8(&part[..head_end]).map_err(|_| "headers not UTF-8")?;
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                return Err("malformed part header");
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                if !v.trim().to_ascii_lowercase().starts_with("form-data") {
                    return Err("part is not form-data");
                }
                name = param(v, "name");
                filename = param(v, "filename");
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_string());
            }
        }
        parts.push(Part {
            name: name.ok_or("part without a name")?,
            filename,
            content_type,
            data: part[head_end + 4..].to_vec(),
        });
        at = end + next_delim.len();
    }
}

/// A form as the spec's request (RFC 7578, boundary `xyz`): the file part,
/// whose bytes hold CRLF and a near-boundary, then a field. The client's
/// writer must produce exactly this (`conformance::whisper`).
#[cfg(test)]
pub(crate) const SPEC_FORM: &[u8] = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.wav\"\r\nContent-Type: audio/wav\r\n\r\n\r\n--xy binary\r\n--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--xyz--\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_spec_form() {
        let body = SPEC_FORM;
        let parts = parse(body, "xyz").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "file");
        assert_eq!(parts[0].filename.as_deref(), Some("u.wav"));
        assert_eq!(parts[0].content_type.as_deref(), Some("audio/wav"));
        assert_eq!(parts[0].data, b"\r\n--xy binary");
        assert_eq!(parts[1].name, "model");
        assert_eq!(parts[1].data, b"m");
        assert_eq!(
            boundary("multipart/form-data; boundary=\"xyz\"").as_deref(),
            Some("xyz")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b""[..],
            b"--xyz--",
            b"--xyz\r\nno headers",
            b"--xyz\r\nContent-Disposition: form-data\r\n\r\ndata\r\n--xyz--",
            b"--xyz\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nd\r\n--xyz--",
            b"--xyzjunk",
        ] {
            assert!(parse(bad, "xyz").is_err(), "{bad:?}");
        }
    }
}
