//! The TwiML of a call (spec §2.2): what Twilio runs when the callee
//! answers, sent inline as the create-call's `Twiml` parameter so there is
//! no answer webhook to serve (and nothing to forge):
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://{public}/twilio/media/{call_id}/{media_token}"><Parameter name="call_id" value="{call_id}"/></Stream></Connect></Response>
//! ```
//!
//! `<Connect><Stream>` is the bidirectional stream (`<Start><Stream>` would
//! only fork audio to us; we could not speak). The call stays in it until
//! our server closes the socket or the call ends.
//!
//! The per-call secret is the call's single-use media token
//! ([`PlaceCall::media_token`](talky_actors::ports::PlaceCall)). It rides in
//! the URL *path*, not the query: the spec advises against query strings
//! (whether Twilio keeps them is unconfirmed), and the path reaches our
//! upgrade handler before the socket is accepted, so a wrong or spent token
//! is refused (401/403) before any audio flows, as Vonage's `?token=` is.
//! `customParameters` only arrive in the `start` message after the upgrade,
//! so they carry identification (`call_id`), not the credential: a token
//! there would be checked too late and copied into every `start` we log.
//!
//! Every attribute value is XML-escaped (`& < > " '`), so a URL or
//! parameter can never break out of its attribute. [`parse_stream`] is a
//! small, tolerant reader of exactly this shape, for tests and the
//! emulator (which checks what we send as Twilio would).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters kept as they are in a URL path segment we build (RFC 3986
/// unreserved); everything else is percent-encoded.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `<Parameter>` naming our call in `start.customParameters`.
pub const CALL_ID_PARAMETER: &str = "call_id";

/// Why TwiML could not be built or read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    /// The public URL is not `http(s)://host...`.
    #[error("public URL {0:?} is not http(s)://host")]
    PublicUrl(String),
    /// A call id or token that is empty.
    #[error("empty {0}")]
    Empty(&'static str),
    /// Reading TwiML: not the shape we expect.
    #[error("twiml: {0}")]
    Malformed(String),
}

/// Escapes text for an XML attribute value in double quotes.
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed raw in XML 1.0 except
            // tab/newline/CR, and in attributes those are normalised to
            // spaces by the reader: encode them.
            '\t' | '\n' | '\r' => out.push_str(&format!("&#{};", c as u32)),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape_attr`] (and the other predefined / numeric entities).
/// An unknown or unterminated entity is an error.
pub fn unescape_attr(s: &str) -> Result<String, TwimlError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .filter(|&e| e <= 10)
            .ok_or_else(|| TwimlError::Malformed(format!("unterminated entity in {s:?}")))?;
        let ent = &after[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code =
                    if let Some(h) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                        u32::from_str_radix(h, 16).ok()
                    } else if let Some(d) = ent.strip_prefix('#') {
                        d.parse::<u32>().ok()
                    } else {
                        None
                    };
                code.and_then(char::from_u32)
                    .ok_or_else(|| TwimlError::Malformed(format!("unknown entity &{ent};")))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `http(s)://host[...]` -> `ws(s)://host[...]`, without a trailing `/`.
fn ws_base(public_url: &str) -> Result<String, TwimlError> {
    let b = public_url.trim().trim_end_matches('/');
    if let Some(rest) = b.strip_prefix("https://").filter(|r| !r.is_empty()) {
        Ok(format!("wss://{rest}"))
    } else if let Some(rest) = b.strip_prefix("http://").filter(|r| !r.is_empty()) {
        Ok(format!("ws://{rest}"))
    } else {
        Err(TwimlError::PublicUrl(public_url.to_owned()))
    }
}

/// The media socket URL of a call:
/// `wss://{public host}/twilio/media/{call_id}/{media_token}` (`ws://` for
/// an `http://` public URL, i.e. loopback tests; Twilio itself requires
/// `wss://`). Both segments are percent-encoded.
pub fn media_url(public_url: &str, call: &str, media_token: &str) -> Result<String, TwimlError> {
    if call.trim().is_empty() {
        return Err(TwimlError::Empty("call id"));
    }
    if media_token.trim().is_empty() {
        return Err(TwimlError::Empty("media token"));
    }
    Ok(format!(
        "{}/twilio/media/{}/{}",
        ws_base(public_url)?,
        utf8_percent_encode(call, SEGMENT),
        utf8_percent_encode(media_token, SEGMENT)
    ))
}

/// `<Response><Connect><Stream url="…">` with one `<Parameter>` per
/// `(name, value)`, every attribute escaped.
pub fn connect_stream(url: &str, parameters: &[(&str, &str)]) -> String {
    let mut s = String::with_capacity(160 + url.len() + parameters.len() * 48);
    s.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url=""#);
    s.push_str(&escape_attr(url));
    s.push_str("\">");
    for (name, value) in parameters {
        s.push_str(r#"<Parameter name=""#);
        s.push_str(&escape_attr(name));
        s.push_str(r#"" value=""#);
        s.push_str(&escape_attr(value));
        s.push_str(r#""/>"#);
    }
    s.push_str("</Stream></Connect></Response>");
    s
}

/// The TwiML of one call: its media socket ([`media_url`]) and the
/// `call_id` parameter.
pub fn call_twiml(public_url: &str, call: &str, media_token: &str) -> Result<String, TwimlError> {
    let url = media_url(public_url, call, media_token)?;
    Ok(connect_stream(&url, &[(CALL_ID_PARAMETER, call)]))
}

/// The TwiML of a cold transfer (spec §2): the call's running
/// `<Connect><Stream>` is replaced (`POST …/Calls/{sid}.json` with
/// `Twiml=`) by a `<Dial>` to the person's number, showing `caller_id`:
///
/// ```xml
/// <?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+14155550100"><Number>+14155550199</Number></Dial></Response>
/// ```
///
/// The stream ends (Twilio sends `stop`) and the call goes on to the
/// person until one side hangs up; then its status callback says
/// `completed`.
pub fn dial_number(number: &str, caller_id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="{}"><Number>{}</Number></Dial></Response>"#,
        escape_attr(caller_id),
        escape_attr(number)
    )
}

/// What [`parse_dial`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedDial {
    /// The `<Number>`, unescaped and trimmed.
    pub number: String,
    /// The `<Dial callerId>`, when given.
    pub caller_id: Option<String>,
}

/// Reads `<Response><Dial [callerId]><Number>…</Number></Dial></Response>`
/// ([`dial_number`]'s shape; anything else is refused), for tests and the
/// emulator.
pub fn parse_dial(doc: &str) -> Result<ParsedDial, TwimlError> {
    let bad = |why: &str| TwimlError::Malformed(format!("expected Response/Dial/Number: {why}"));
    let open = doc.find("<Number>").ok_or_else(|| bad("no <Number>"))?;
    let text_at = open + "<Number>".len();
    let close = doc[text_at..]
        .find("</Number>")
        .map(|i| text_at + i)
        .ok_or_else(|| bad("unclosed <Number>"))?;
    let number = unescape_attr(doc[text_at..close].trim())?;
    if number.is_empty() {
        return Err(bad("empty <Number>"));
    }
    let rest = format!("{}{}", &doc[..text_at], &doc[close..]);
    let tags = tags(&rest)?;
    let names: Vec<&str> = tags.iter().map(|t| t.name).collect();
    if names
        != [
            "Response",
            "Dial",
            "Number",
            "/Number",
            "/Dial",
            "/Response",
        ]
        || tags.iter().any(|t| t.self_closing)
    {
        return Err(bad(&format!("got {names:?}")));
    }
    let dial = &tags[1];
    if let Some((name, _)) = dial.attrs.iter().find(|(k, _)| *k != "callerId") {
        return Err(bad(&format!("unexpected <Dial {name}>")));
    }
    let caller_id = dial
        .attrs
        .iter()
        .find(|(k, _)| *k == "callerId")
        .map(|(_, v)| v.clone());
    Ok(ParsedDial { number, caller_id })
}

/// What [`parse_stream`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedStream {
    /// The `<Stream url>`, unescaped.
    pub url: String,
    /// The `<Stream name>`, when given.
    pub name: Option<String>,
    /// Each `<Parameter name value>`, unescaped, in document order.
    pub parameters: Vec<(String, String)>,
}

impl ParsedStream {
    /// The value of the first parameter called `name`.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One tag: its name (with a leading `/` for a closing tag), attributes,
/// whether it closes itself.
struct Tag<'a> {
    name: &'a str,
    attrs: Vec<(&'a str, String)>,
    self_closing: bool,
}

fn attrs(mut s: &str) -> Result<Vec<(&str, String)>, TwimlError> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Ok(out);
        }
        let eq = s
            .find('=')
            .ok_or_else(|| TwimlError::Malformed(format!("attribute without value: {s:?}")))?;
        let name = s[..eq].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(TwimlError::Malformed(format!(
                "bad attribute name {name:?}"
            )));
        }
        let rest = s[eq + 1..].trim_start();
        let quote = rest
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| TwimlError::Malformed(format!("unquoted value of {name}")))?;
        let body = &rest[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| TwimlError::Malformed(format!("unterminated value of {name}")))?;
        out.push((name, unescape_attr(&body[..end])?));
        s = &body[end + 1..];
    }
}

fn tags(doc: &str) -> Result<Vec<Tag<'_>>, TwimlError> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        if !text.trim().is_empty() {
            return Err(TwimlError::Malformed(format!(
                "unexpected text {:?}",
                text.trim()
            )));
        }
        let after = &rest[i + 1..];
        if let Some(body) = after.strip_prefix("!--") {
            let end = body
                .find("-->")
                .ok_or_else(|| TwimlError::Malformed("unterminated comment".into()))?;
            rest = &body[end + 3..];
            continue;
        }
        // An attribute value may contain '>' only escaped (we escape it),
        // so the first '>' ends the tag.
        let end = after
            .find('>')
            .ok_or_else(|| TwimlError::Malformed("unterminated tag".into()))?;
        let inner = &after[..end];
        rest = &after[end + 1..];
        if inner.starts_with('?') {
            continue; // XML declaration / processing instruction
        }
        let (inner, self_closing) = match inner.strip_suffix('/') {
            Some(i) => (i, true),
            None => (inner, false),
        };
        let inner = inner.trim();
        let name_end = inner.find(char::is_whitespace).unwrap_or(inner.len());
        let (name, attr_text) = inner.split_at(name_end);
        if name.is_empty() || name == "/" {
            return Err(TwimlError::Malformed("tag without a name".into()));
        }
        out.push(Tag {
            name,
            attrs: attrs(attr_text)?,
            self_closing,
        });
    }
    if !rest.trim().is_empty() {
        return Err(TwimlError::Malformed(format!(
            "trailing text {:?}",
            rest.trim()
        )));
    }
    Ok(out)
}

/// Reads `<Response><Connect><Stream url>[<Parameter/>...]</Stream></Connect></Response>`
/// (whitespace, comments, the XML declaration, either quote style and
/// attribute order are tolerated; anything else in that structure, such as
/// a `<Say>` or a `<Start><Stream>`, is refused).
pub fn parse_stream(doc: &str) -> Result<ParsedStream, TwimlError> {
    let tags = tags(doc)?;
    let names: Vec<&str> = tags.iter().map(|t| t.name).collect();
    let bad = || TwimlError::Malformed(format!("expected Response/Connect/Stream, got {names:?}"));
    let n = tags.len();
    if n < 6 {
        return Err(bad());
    }
    let (open, params, close) = (&tags[..3], &tags[3..n - 3], &tags[n - 3..]);
    let shape_ok = open
        .iter()
        .map(|t| t.name)
        .eq(["Response", "Connect", "Stream"])
        && open.iter().all(|t| !t.self_closing)
        && close
            .iter()
            .map(|t| t.name)
            .eq(["/Stream", "/Connect", "/Response"]);
    if !shape_ok {
        return Err(bad());
    }
    let stream = &open[2];
    let attr = |name: &str| {
        stream
            .attrs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let url = attr("url").ok_or_else(|| TwimlError::Malformed("<Stream> without url".into()))?;
    let mut parameters = Vec::with_capacity(params.len());
    // A <Parameter></Parameter> pair is as good as <Parameter/>.
    let mut i = 0;
    while i < params.len() {
        let t = &params[i];
        if t.name != "Parameter" {
            return Err(TwimlError::Malformed(format!(
                "unexpected <{}> in <Stream>",
                t.name
            )));
        }
        if !t.self_closing {
            if params.get(i + 1).map(|c| c.name) != Some("/Parameter") {
                return Err(TwimlError::Malformed("unclosed <Parameter>".into()));
            }
            i += 1;
        }
        let get = |k: &str| {
            t.attrs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
        };
        let name =
            get("name").ok_or_else(|| TwimlError::Malformed("<Parameter> without name".into()))?;
        parameters.push((name, get("value").unwrap_or_default()));
        i += 1;
    }
    Ok(ParsedStream {
        url,
        name: attr("name"),
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_twiml_is_exact_and_reads_back() {
        let doc = dial_number("+14155550199", "+14155550100");
        assert_eq!(
            doc,
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+14155550100"><Number>+14155550199</Number></Dial></Response>"#
        );
        assert_eq!(
            parse_dial(&doc),
            Ok(ParsedDial {
                number: "+14155550199".into(),
                caller_id: Some("+14155550100".into())
            })
        );
        for bad in [
            "<Response><Dial><Number></Number></Dial></Response>",
            "<Response><Dial><Number>+1</Number><Number>+2</Number></Dial></Response>",
            "<Response><Say>hi</Say><Dial><Number>+1</Number></Dial></Response>",
            r#"<Response><Dial record="true"><Number>+1</Number></Dial></Response>"#,
            "<Response><Connect><Number>+1</Number></Connect></Response>",
            "<Response><Dial><Number>+1</Number></Dial>",
        ] {
            assert!(parse_dial(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn call_twiml_is_exact() {
        let t = call_twiml("https://dialer.example.com/", "c-123", "tok").expect("twiml");
        assert_eq!(
            t,
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://dialer.example.com/twilio/media/c-123/tok"><Parameter name="call_id" value="c-123"/></Stream></Connect></Response>"#
        );
        let p = parse_stream(&t).expect("parses");
        assert_eq!(p.url, "wss://dialer.example.com/twilio/media/c-123/tok");
        assert_eq!(p.parameter("call_id"), Some("c-123"));
        assert_eq!(p.name, None);
    }

    #[test]
    fn media_urls_encode_their_segments_and_check_inputs() {
        assert_eq!(
            media_url("http://127.0.0.1:8080", "c/1", "t0k/en+=").expect("url"),
            "ws://127.0.0.1:8080/twilio/media/c%2F1/t0k%2Fen%2B%3D"
        );
        assert_eq!(
            media_url("https://h.example/base/", "c", "t").expect("url"),
            "wss://h.example/base/twilio/media/c/t"
        );
        for bad in ["", "dialer.example.com", "ftp://x", "https://", "http://"] {
            assert_eq!(
                media_url(bad, "c", "t"),
                Err(TwimlError::PublicUrl(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(
            media_url("https://h", "", "t"),
            Err(TwimlError::Empty("call id"))
        );
        assert_eq!(
            media_url("https://h", "c", " "),
            Err(TwimlError::Empty("media token"))
        );
    }

    #[test]
    fn every_attribute_is_escaped_and_round_trips() {
        let nasty = r#"a"b'c<d>e&f"/><Say>hi</Say><x y=""#;
        let t = connect_stream(
            &format!("wss://h/x?{nasty}"),
            &[(nasty, nasty), ("tabs", "a\tb\nc"), ("ctl", "a\u{1}b")],
        );
        assert!(!t.contains("<Say>"), "{t}");
        let p = parse_stream(&t).expect("parses");
        assert_eq!(p.url, format!("wss://h/x?{nasty}"));
        assert_eq!(
            p.parameters,
            vec![
                (nasty.to_owned(), nasty.to_owned()),
                ("tabs".to_owned(), "a\tb\nc".to_owned()),
                ("ctl".to_owned(), "ab".to_owned()),
            ]
        );
        assert_eq!(escape_attr("ü €"), "ü €");
    }

    #[test]
    fn the_parser_tolerates_layout() {
        let doc = r#"<?xml version="1.0"?>
            <!-- a comment -->
            <Response>
              <Connect>
                <Stream name='s1' url='wss://h/twilio/media/c/t?a=1&amp;b=2' >
                  <Parameter value="v&#x41;&#66;" name="k"></Parameter>
                  <Parameter name="empty" />
                </Stream>
              </Connect>
            </Response>
        "#;
        let p = parse_stream(doc).expect("parses");
        assert_eq!(p.url, "wss://h/twilio/media/c/t?a=1&b=2");
        assert_eq!(p.name.as_deref(), Some("s1"));
        assert_eq!(
            p.parameters,
            vec![("k".into(), "vAB".into()), ("empty".into(), String::new())]
        );
    }

    #[test]
    fn the_parser_refuses_other_shapes_without_panicking() {
        for doc in [
            "",
            "   ",
            "not xml",
            "<Response/>",
            "<Response></Response>",
            "<Response><Start><Stream url=\"wss://h\"></Stream></Start></Response>",
            "<Response><Connect><Stream></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"wss://h\"><Say>x</Say></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"wss://h\">text</Stream></Connect></Response>",
            "<Response><Connect><Stream url=wss://h></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"wss://h></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"&bogus;\"></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"&amp\"></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"&#xFFFFFFFF;\"></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"wss://h\"><Parameter value=\"v\"/></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"wss://h\"><Parameter name=\"n\"></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"wss://h\"></Stream></Connect></Response>trailing",
            "<Response><Connect><Stream url=\"wss://h\"></Stream></Connect>",
            "<Response><Connect><Stream url=\"wss://h\"/></Connect></Response>",
            "<",
            "<>",
            "</>",
            "<!--",
            "<Response x></Response>",
            "<Response =\"v\"></Response>",
        ] {
            assert!(parse_stream(doc).is_err(), "{doc:?}");
        }
    }
}
