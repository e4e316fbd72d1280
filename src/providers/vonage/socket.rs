//! Vonage's media WebSocket on the wire (spec: providers.md §1.6): 20 ms
//! frames of `audio/l16;rate=16000` as binary messages, Vonage's JSON
//! events (`websocket:dtmf`, `websocket:notify`) in, `clear` and `notify`
//! commands out, and the close codes talky uses. The route and the pump
//! live in `http::media`.

use talky_actors::ports::{MediaIn, MediaOut};

use crate::net::ws::Message;

/// Bytes of one 20 ms frame at 16 kHz, the rate our NCCO asks for.
pub const FRAME_BYTES: usize = 640;
/// Close code for a binary message that is not one whole 20 ms frame of
/// the negotiated format (RFC 6455: data inconsistent with its type).
pub const CLOSE_BAD_FRAME: u16 = 1007;
/// Close code for a socket that sent no audio for `media.idle_timeout_secs`
/// (RFC 6455: policy violation).
pub const CLOSE_IDLE: u16 = 1008;

/// Whether a binary message is one whole 20 ms frame of the negotiated
/// format; else the close code and reason to send.
pub fn check_frame(bytes: &[u8]) -> Result<(), (u16, String)> {
    if bytes.len() == FRAME_BYTES {
        return Ok(());
    }
    Err((
        CLOSE_BAD_FRAME,
        format!(
            "binary messages must be one 20 ms frame of audio/l16;rate=16000 ({FRAME_BYTES} bytes)"
        ),
    ))
}

/// Parses one of Vonage's JSON events on the socket.
pub fn event(text: &str) -> Option<MediaIn> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    match value.get("event").and_then(|e| e.as_str())? {
        "websocket:dtmf" => value
            .get("digit")
            .or_else(|| value.get("dtmf").and_then(|d| d.get("digit")))
            .and_then(|d| d.as_str())
            .and_then(|d| d.chars().next())
            .map(MediaIn::Dtmf),
        "websocket:notify" => value
            .get("payload")
            .and_then(|p| p.get("mark"))
            .and_then(|m| m.as_str())
            .map(|m| MediaIn::Mark(m.to_string())),
        _ => None,
    }
}

/// One message of the call's outbound queue as the socket message
/// Vonage takes.
pub fn outbound(item: MediaOut) -> Message {
    match item {
        MediaOut::Audio(mut bytes) => {
            // Vonage takes exactly one 20 ms frame per message.
            bytes.resize(FRAME_BYTES, 0);
            Message::binary(bytes)
        }
        MediaOut::Clear => Message::text(r#"{"action":"clear"}"#),
        MediaOut::Mark(mark) => Message::text(
            serde_json::json!({ "action": "notify", "payload": { "mark": mark } }).to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vonage_events_on_the_socket() {
        assert_eq!(
            event(r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#),
            Some(MediaIn::Dtmf('5'))
        );
        assert_eq!(
            event(r##"{"event":"websocket:dtmf","dtmf":{"digit":"#"}}"##),
            Some(MediaIn::Dtmf('#'))
        );
        assert_eq!(
            event(r#"{"event":"websocket:notify","payload":{"mark":"seg-3"}}"#),
            Some(MediaIn::Mark("seg-3".into()))
        );
        assert_eq!(
            event(r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#),
            None
        );
        assert_eq!(event("not json"), None);
    }

    #[test]
    fn outbound_frames_are_exact() {
        let m = outbound(MediaOut::Audio(vec![1; 100]));
        assert_eq!(m.as_bytes().len(), FRAME_BYTES);
        assert_eq!(
            outbound(MediaOut::Clear).to_str(),
            Ok(r#"{"action":"clear"}"#)
        );
        let mark = outbound(MediaOut::Mark("m1".into()));
        assert_eq!(
            mark.to_str(),
            Ok(r#"{"action":"notify","payload":{"mark":"m1"}}"#)
        );
    }
}
