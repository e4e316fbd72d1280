//! Wire shapes of providers.md §6: the speak URL, server messages, error
//! bodies and close codes.

use serde_json::Value;
use talky_actors::ports::PortError;

/// The linear16 rates of the service.
pub const LINEAR16_RATES: [u32; 5] = [8000, 16000, 24000, 32000, 48000];

/// The query of a speak request (REST adds `container=none`).
pub fn speak_query(model: &str, rate: u32, rest: bool) -> String {
    let mut q = vec![
        ("model", model.to_string()),
        ("encoding", "linear16".into()),
        ("sample_rate", rate.to_string()),
    ];
    if rest {
        q.push(("container", "none".into()));
    }
    serde_urlencoded::to_string(&q).unwrap_or_default()
}

/// What one server text message means.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerMessage {
    /// All audio of the flush was sent.
    Flushed,
    /// Anything to note and skip (Metadata, Cleared, Warning, unknown).
    Other(String),
}

/// Parses a server text message.
pub fn server_message(text: &str) -> Result<ServerMessage, PortError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| PortError::Protocol(format!("aura: bad JSON: {e}")))?;
    let Some(kind) = v.get("type").and_then(Value::as_str) else {
        return Err(PortError::Protocol("aura: message without type".into()));
    };
    Ok(match kind {
        "Flushed" => ServerMessage::Flushed,
        "Warning" => ServerMessage::Other(format!(
            "Warning {} {}",
            v["warn_code"].as_str().unwrap_or_default(),
            v["warn_msg"].as_str().unwrap_or_default()
        )),
        other => ServerMessage::Other(other.to_string()),
    })
}

/// A close frame before `Flushed`: 1000 is a (lenient) end, else a typed
/// failure.
pub fn close_result(code: u16, reason: &str) -> Result<bool, PortError> {
    let msg = format!("aura: socket closed {code}: {reason}");
    match code {
        1000 => Ok(true),
        1008 => Err(PortError::Rejected(msg)),
        1013 => Err(PortError::RateLimited { retry_after: None }),
        1002 | 1003 | 1007 | 1009 => Err(PortError::Protocol(msg)),
        _ => Err(PortError::Unavailable(msg)),
    }
}

/// `err_code: err_msg` of a Deepgram error body, or the raw text.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let parts: Vec<&str> = [&v["err_code"], &v["err_msg"], &v["message"]]
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        if !parts.is_empty() {
            return parts.join(": ");
        }
    }
    String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_string()
}

/// A non-2xx answer as a port error.
pub fn status_error(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> PortError {
    let text = format!("aura: HTTP {status}: {}", error_message(body));
    match status {
        429 => PortError::RateLimited {
            retry_after: crate::providers::retry::retry_after(
                headers,
                std::time::SystemTime::now(),
            ),
        },
        408 => PortError::Timeout(text),
        500..=599 => PortError::Unavailable(text),
        _ => PortError::Rejected(text),
    }
}

/// A failed WebSocket handshake as a port error.
pub fn handshake_error(e: tokio_tungstenite::tungstenite::Error) -> PortError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(resp) => {
            let body = resp.body().as_deref().unwrap_or_default();
            status_error(resp.status().as_u16(), resp.headers(), body)
        }
        E::Url(e) => PortError::Rejected(format!("aura: bad URL: {e}")),
        e => PortError::Unavailable(format!("aura: websocket handshake: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_closes_and_errors() {
        assert_eq!(
            server_message(r#"{"type":"Flushed","sequence_id":0}"#).unwrap(),
            ServerMessage::Flushed
        );
        assert!(matches!(
            server_message(r#"{"type":"Metadata","request_id":"x"}"#).unwrap(),
            ServerMessage::Other(_)
        ));
        assert!(server_message("{").is_err());
        assert!(server_message("[]").is_err());
        assert_eq!(close_result(1000, ""), Ok(true));
        assert!(matches!(
            close_result(1008, "x"),
            Err(PortError::Rejected(_))
        ));
        assert!(matches!(
            close_result(1011, "x"),
            Err(PortError::Unavailable(_))
        ));
        assert!(matches!(
            close_result(1007, "x"),
            Err(PortError::Protocol(_))
        ));
        let h = reqwest::header::HeaderMap::new();
        let e = status_error(
            401,
            &h,
            br#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}"#,
        );
        assert_eq!(
            e,
            PortError::Rejected("aura: HTTP 401: INVALID_AUTH: Invalid credentials.".into())
        );
        assert!(matches!(
            status_error(503, &h, b"x"),
            PortError::Unavailable(_)
        ));
        assert_eq!(
            speak_query("aura-2-thalia-en", 16000, true),
            "model=aura-2-thalia-en&encoding=linear16&sample_rate=16000&container=none"
        );
    }
}
