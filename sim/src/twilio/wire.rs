//! The emulator's own reading of what talky sends Twilio, written from the
//! spec (providers.md §2), never from talky's client types, so a client
//! that drifts from the spec is caught here rather than copied: the
//! create-call form (§2.1), TwiML (§2.2) and the Media Streams messages a
//! bidirectional stream accepts (§2.3). `conformance` holds both sides to
//! the spec's examples.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use serde::Deserialize;

/// A form body as sent: every `name=value` pair in order (names repeat:
/// `StatusCallbackEvent`).
pub type Form = Vec<(String, String)>;

/// Parses an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> Result<Form, String> {
    serde_urlencoded::from_bytes::<Form>(body).map_err(|e| e.to_string())
}

/// The first value of `name`.
pub fn first<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Every value of `name`, in order.
pub fn all<'a>(form: &'a Form, name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `+` and 2-15 digits, the first not 0 (E.164, §2.1).
pub fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// An absolute `http://` or `https://` URL with a host.
pub fn is_http_url(u: &str) -> bool {
    ["http://", "https://"].iter().any(|s| {
        u.strip_prefix(s)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    })
}

/// `AC` (or `CA`, `MZ`, ...) and 32 lowercase hex digits.
pub fn is_sid(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

// ----- TwiML ---------------------------------------------------------------

/// One TwiML element: its name, attributes (entities resolved) and child
/// elements (text is kept nowhere: the emulator runs no `<Say>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// The tag name.
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements in order.
    pub children: Vec<Element>,
}

impl Element {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn element(e: &BytesStart<'_>) -> Result<Element, String> {
    let name = String::from_utf8(e.name().as_ref().to_vec()).map_err(|e| e.to_string())?;
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let key = String::from_utf8(a.key.as_ref().to_vec()).map_err(|e| e.to_string())?;
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

/// Reads a TwiML document: well-formed XML with one root element, which
/// must be `<Response>` (Twilio's "Document parse failure" otherwise).
pub fn parse_twiml(xml: &str) -> Result<Element, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML: {e}"))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                stack.push(element(&e)?);
            }
            Event::Empty(e) => {
                let el = element(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err("content after the root element".into()),
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err("unbalanced end tag".into());
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let blank = t.iter().all(u8::is_ascii_whitespace);
                if stack.is_empty() && !blank {
                    return Err("text outside the root element".into());
                }
            }
            Event::Eof => break,
            // Declaration, comments, CDATA, processing instructions,
            // entity references in text: nothing the emulator runs.
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("unclosed element".into());
    }
    let root = root.ok_or("no root element")?;
    if root.name != "Response" {
        return Err(format!(
            "the root element is <{}>, not <Response>",
            root.name
        ));
    }
    Ok(root)
}

/// The bidirectional stream of a call's TwiML: `<Connect><Stream>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTarget {
    /// The `url` attribute (`wss://`, or `ws://` on loopback).
    pub url: String,
    /// The `<Parameter>`s: `start.customParameters`.
    pub parameters: BTreeMap<String, String>,
    /// The `name` attribute, if any.
    pub name: Option<String>,
    /// The `track` attribute, if any.
    pub track: Option<String>,
    /// The `statusCallback` attribute, if any (recorded, not called).
    pub status_callback: Option<String>,
}

/// Whether a stream URL is one the emulator connects to: `wss://`, or
/// `ws://` to a loopback host (real Twilio needs `wss://`; talky's tests
/// run without TLS).
pub fn is_stream_url(u: &str) -> bool {
    if let Some(rest) = u.strip_prefix("wss://") {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    let Some(rest) = u.strip_prefix("ws://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map_or("", |h| h),
        None => authority.split(':').next().unwrap_or_default(),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// Finds the call's `<Connect><Stream>` and checks it as Twilio would
/// (§2.2): a `url` the emulator can reach, `track` only `inbound_track`
/// (the only one `<Connect>` allows), `<Parameter>`s with a `name` and a
/// `value`. `<Start><Stream>` (fork only, we could not speak) is refused.
pub fn stream_target(twiml: &Element) -> Result<StreamTarget, String> {
    let connect = twiml
        .children
        .iter()
        .find(|c| c.name == "Connect")
        .ok_or_else(|| {
            if twiml.children.iter().any(|c| c.name == "Start") {
                "<Start><Stream> is fork-only: the emulator needs <Connect><Stream>".to_owned()
            } else {
                "no <Connect> verb: nothing bridges the call's media".to_owned()
            }
        })?;
    let stream = match connect.children.as_slice() {
        [s] if s.name == "Stream" => s,
        _ => return Err("<Connect> must hold exactly one <Stream>".into()),
    };
    let url = stream.attr("url").ok_or("<Stream> has no url")?.to_owned();
    if !is_stream_url(&url) {
        return Err(format!(
            "<Stream url=\"{url}\">: must be wss:// (ws:// only to loopback)"
        ));
    }
    let track = stream.attr("track").map(str::to_owned);
    if track.as_deref().is_some_and(|t| t != "inbound_track") {
        return Err("<Connect><Stream> supports track=\"inbound_track\" only".into());
    }
    let mut parameters = BTreeMap::new();
    for p in &stream.children {
        if p.name != "Parameter" {
            return Err(format!("<{}> inside <Stream>", p.name));
        }
        let (Some(name), Some(value)) = (p.attr("name"), p.attr("value")) else {
            return Err("<Parameter> needs name and value".into());
        };
        parameters.insert(name.to_owned(), value.to_owned());
    }
    Ok(StreamTarget {
        url,
        parameters,
        name: stream.attr("name").map(str::to_owned),
        track,
        status_callback: stream.attr("statusCallback").map(str::to_owned),
    })
}

// ----- Media Streams: what a bidirectional stream accepts (§2.3) ------------

/// One message talky may send on the stream. Anything else (another
/// `event`, a missing field) is what Twilio answers with error 31924.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Inbound {
    /// Audio to play: base64 8 kHz μ-law, no header.
    Media {
        /// The stream.
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// The audio.
        media: InboundMedia,
    },
    /// A marker placed after the audio sent so far.
    Mark {
        /// The stream.
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// Its name.
        mark: MarkName,
    },
    /// Empties the queue (barge-in); pending marks come back.
    Clear {
        /// The stream.
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
}

impl Inbound {
    /// The stream the message names.
    pub fn stream_sid(&self) -> &str {
        match self {
            Self::Media { stream_sid, .. }
            | Self::Mark { stream_sid, .. }
            | Self::Clear { stream_sid } => stream_sid,
        }
    }
}

/// `media` of an inbound media message.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct InboundMedia {
    /// Base64 μ-law.
    pub payload: String,
}

/// `mark` of a mark message.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MarkName {
    /// The mark's name.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_spec_twiml() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Connect><Stream url="wss://dialer.example.com/twilio/media">
  <Parameter name="call_id" value="c-123"/>
</Stream></Connect></Response>"#;
        let t = stream_target(&parse_twiml(xml).expect("parses")).expect("stream");
        assert_eq!(t.url, "wss://dialer.example.com/twilio/media");
        assert_eq!(
            t.parameters.get("call_id").map(String::as_str),
            Some("c-123")
        );
    }

    #[test]
    fn refuses_what_twilio_would() {
        for bad in [
            "",
            "<Response>",
            "<Response></Connect>",
            "<Reply/>",
            "<Response/><Response/>",
            "oops<Response/>",
        ] {
            assert!(parse_twiml(bad).is_err(), "{bad:?}");
        }
        let target = |x: &str| stream_target(&parse_twiml(x).expect("xml"));
        assert!(target("<Response><Say>hi</Say></Response>").is_err());
        assert!(
            target(r#"<Response><Start><Stream url="wss://a/b"/></Start></Response>"#).is_err()
        );
        assert!(target(r#"<Response><Connect><Stream url="ws://dialer.example.com/m"/></Connect></Response>"#).is_err());
        assert!(target(r#"<Response><Connect><Stream url="wss://a/b" track="both_tracks"/></Connect></Response>"#).is_err());
        assert!(target(r#"<Response><Connect><Stream url="wss://a/b"><Parameter name="x"/></Stream></Connect></Response>"#).is_err());
        let ok = target(r#"<Response><Connect><Stream url="ws://127.0.0.1:9/m/a&amp;b"><Parameter name="k" value="&lt;v&gt;"/></Stream></Connect></Response>"#)
            .expect("loopback ws and entities");
        assert_eq!(ok.url, "ws://127.0.0.1:9/m/a&b");
        assert_eq!(ok.parameters["k"], "<v>");
    }

    #[test]
    fn numbers_urls_and_sids() {
        assert!(is_e164("+447700900100"));
        for bad in [
            "447700900100",
            "+0447",
            "+1",
            "+12345678901234567",
            "+44 77",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
        assert!(is_http_url("https://a.example/x") && is_http_url("http://127.0.0.1:1/"));
        assert!(!is_http_url("ftp://a") && !is_http_url("https://") && !is_http_url("/x"));
        assert!(is_sid("CA", &format!("CA{}", "0a".repeat(16))));
        assert!(!is_sid("CA", &format!("CA{}", "0A".repeat(16))));
        assert!(is_stream_url("ws://localhost:8080/x") && is_stream_url("ws://[::1]:1/x"));
        assert!(!is_stream_url("ws://10.0.0.1/x") && !is_stream_url("https://a/b"));
    }

    #[test]
    fn reads_inbound_messages_and_refuses_others() {
        let m: Inbound = serde_json::from_str(
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"AAA="}}"#,
        )
        .expect("media");
        assert_eq!(m.stream_sid(), "MZ1");
        for bad in [
            r#"{"event":"media","streamSid":"MZ1"}"#,
            r#"{"event":"stop","streamSid":"MZ1"}"#,
            r#"{"event":"mark","streamSid":"MZ1","mark":{}}"#,
            r#"{"streamSid":"MZ1"}"#,
        ] {
            assert!(serde_json::from_str::<Inbound>(bad).is_err(), "{bad}");
        }
    }
}
