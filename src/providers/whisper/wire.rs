//! Wire shapes of providers.md §4: the `multipart/form-data` upload and
//! the three response formats.

use serde_json::Value;
use talky_actors::ports::PortError;

/// One text field of the form.
pub struct Field<'a> {
    /// Field name.
    pub name: &'a str,
    /// Its value.
    pub value: &'a str,
}

/// A random boundary that does not occur in `data`.
pub fn boundary(data: &[u8]) -> String {
    loop {
        let b = format!("talky-{:032x}", rand::random::<u128>());
        if !contains(data, b.as_bytes()) {
            return b;
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The body of a `multipart/form-data` request with one file part
/// (`file`, with filename and content type) and text fields.
pub fn multipart(
    boundary: &str,
    filename: &str,
    content_type: &str,
    file: &[u8],
    fields: &[Field<'_>],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + 512);
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(b"\r\n");
    for f in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{}\r\n",
                f.name, f.value
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// ISO 639-1 from a BCP 47 tag: "en-US" -> "en"; `None` when it has no
/// two-letter primary subtag (the field is then left out).
pub fn language_code(tag: &str) -> Option<String> {
    let primary = tag.split(['-', '_']).next()?.trim().to_ascii_lowercase();
    (primary.len() == 2 && primary.chars().all(|c| c.is_ascii_lowercase())).then_some(primary)
}

/// The transcript of a 200 answer: `json` / `verbose_json` bodies carry
/// `text`; a `text/plain` body is the transcript itself. Trimmed.
pub fn transcript(content_type: Option<&str>, body: &[u8]) -> Result<String, PortError> {
    let is_plain = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("text/plain"));
    if is_plain {
        let text = std::str::from_utf8(body)
            .map_err(|_| PortError::Protocol("whisper: transcript is not UTF-8".into()))?;
        return Ok(text.trim().to_string());
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PortError::Protocol(format!("whisper: bad JSON: {e}")))?;
    match v.get("text") {
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        _ => Err(PortError::Protocol(
            "whisper: response has no string text".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_shape() {
        let body = multipart(
            "B",
            "u.wav",
            "audio/wav",
            b"RIFF",
            &[Field {
                name: "model",
                value: "whisper-large-v3",
            }],
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-large-v3\r\n--B--\r\n"
        );
        let b = boundary(b"talky-");
        assert!(b.starts_with("talky-") && b.len() == 38);
    }

    #[test]
    fn transcripts_of_each_format() {
        let j = br#"{"text":" Hello, is this Anna?","x_groq":{"id":"req_01j"}}"#;
        assert_eq!(
            transcript(Some("application/json"), j).unwrap(),
            "Hello, is this Anna?"
        );
        assert_eq!(
            transcript(Some("text/plain; charset=utf-8"), b" hi \n").unwrap(),
            "hi"
        );
        assert_eq!(transcript(None, br#"{"text":""}"#).unwrap(), "");
        for bad in [&b"{"[..], b"[]", br#"{"text":3}"#, b"\xff"] {
            assert!(matches!(
                transcript(Some("application/json"), bad),
                Err(PortError::Protocol(_))
            ));
        }
        assert!(transcript(Some("text/plain"), b"\xff\xfe").is_err());
        assert_eq!(language_code("en-US").as_deref(), Some("en"));
        assert_eq!(language_code("english"), None);
    }
}
