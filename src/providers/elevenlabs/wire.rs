//! Wire shapes of providers.md §5: request bodies, WebSocket messages,
//! error mapping, and the sample-aligning [`Assembler`].

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use talky_actors::ports::{PortError, PortResult, TtsEvent, TtsRequest};

use super::ElevenLabsConfig;

/// `voice_settings` (§5.1); the defaults are the spec's example.
#[derive(Clone, Debug, PartialEq)]
pub struct VoiceSettings {
    /// 0..1.
    pub stability: f32,
    /// 0..1.
    pub similarity_boost: f32,
    /// 0..1.
    pub style: f32,
    /// Speaker boost.
    pub use_speaker_boost: bool,
    /// Around 1.0 (0.7..1.2).
    pub speed: f32,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self {
            stability: 0.5,
            similarity_boost: 0.75,
            style: 0.0,
            use_speaker_boost: true,
            speed: 1.0,
        }
    }
}

impl VoiceSettings {
    fn to_json(&self) -> Value {
        // Rounded so 0.75f32 goes out as 0.75, not 0.75000001.
        let r = |x: f32| (f64::from(x) * 1000.0).round() / 1000.0;
        json!({"stability": r(self.stability), "similarity_boost": r(self.similarity_boost),
               "style": r(self.style), "use_speaker_boost": self.use_speaker_boost,
               "speed": r(self.speed)})
    }
}

/// The sample rate of a `pcm_<rate>` output format.
pub fn pcm_rate(format: &str) -> Option<u32> {
    let rate: u32 = format.strip_prefix("pcm_")?.parse().ok()?;
    super::PCM_RATES.contains(&rate).then_some(rate)
}

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// A voice id as one URL path segment.
pub fn path_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A query value, percent-encoded.
pub fn query_value(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// ISO 639-1 from a BCP 47 tag: "en-US" -> "en".
fn language_code(tag: &str) -> Option<String> {
    let primary = tag.split(['-', '_']).next()?.trim().to_ascii_lowercase();
    (primary.len() == 2 && primary.chars().all(|c| c.is_ascii_lowercase())).then_some(primary)
}

/// The §5.1 request body.
pub fn http_body(req: &TtsRequest, cfg: &ElevenLabsConfig) -> Value {
    let mut body = json!({"text": req.text, "model_id": cfg.model_id,
                          "voice_settings": cfg.voice_settings.to_json()});
    if let Some(lang) = language_code(&req.language) {
        body["language_code"] = json!(lang);
    }
    body
}

/// The §5.2 init message (text a single space).
pub fn ws_init(cfg: &ElevenLabsConfig, key: Option<&str>) -> String {
    let mut m = json!({"text": " ", "voice_settings": cfg.voice_settings.to_json()});
    if !cfg.chunk_length_schedule.is_empty() {
        let schedule: Vec<u32> = cfg
            .chunk_length_schedule
            .iter()
            .map(|c| (*c).clamp(50, 500))
            .collect();
        m["generation_config"] = json!({"chunk_length_schedule": schedule});
    }
    if let Some(k) = key {
        m["xi_api_key"] = json!(k);
    }
    m.to_string()
}

/// The text message: ends with a space, generation forced with `flush`.
pub fn ws_text(text: &str) -> String {
    let mut t = text.to_string();
    if !t.ends_with(char::is_whitespace) {
        t.push(' ');
    }
    json!({"text": t, "flush": true}).to_string()
}

/// Turns audio chunks into whole-sample PCM and chunk-relative alignment
/// into times from the first sample.
#[derive(Debug)]
pub struct Assembler {
    rate: u32,
    carry: Option<u8>,
    bytes: u64,
    chars: usize,
}

impl Assembler {
    /// For PCM at `rate`.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate.max(1),
            carry: None,
            bytes: 0,
            chars: 0,
        }
    }

    /// Bytes received so far (carried byte included).
    pub fn received_bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds provider bytes; pushes an [`TtsEvent::Audio`] of whole samples
    /// when there is at least one.
    pub fn audio(&mut self, data: &[u8], out: &mut Vec<TtsEvent>) {
        if data.is_empty() {
            return;
        }
        self.bytes += data.len() as u64;
        let mut buf = Vec::with_capacity(data.len() + 1);
        if let Some(c) = self.carry.take() {
            buf.push(c);
        }
        buf.extend_from_slice(data);
        if buf.len() % 2 == 1 {
            self.carry = buf.pop();
        }
        if !buf.is_empty() {
            out.push(TtsEvent::Audio(buf));
        }
    }

    /// Character starts relative to a chunk that began at `chunk_start`
    /// bytes, as (running char index, ms from the first sample).
    pub fn alignment(&mut self, chunk_start: u64, starts_ms: &[f64]) -> Vec<(usize, u32)> {
        let base_ms = chunk_start as f64 / 2.0 * 1000.0 / f64::from(self.rate);
        let out = starts_ms
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let ms = (base_ms + s.max(0.0)).round().min(f64::from(u32::MAX));
                (self.chars + i, ms as u32)
            })
            .collect();
        self.chars += starts_ms.len();
        out
    }

    /// The end: an odd trailing byte is not a sample and is dropped.
    pub fn finish(&mut self) {
        if self.carry.take().is_some() {
            tracing::debug!("elevenlabs: odd trailing byte dropped");
        }
    }
}

fn protocol(msg: impl Into<String>) -> PortError {
    PortError::Protocol(format!("elevenlabs: {}", msg.into()))
}

/// One server text message of §5.2; `Ok(true)` on `isFinal: true`.
pub fn ws_message(text: &str, asm: &mut Assembler, out: &mut Vec<TtsEvent>) -> PortResult<bool> {
    let v: Value = serde_json::from_str(text).map_err(|e| protocol(format!("bad JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(protocol("message is not an object"));
    };
    let audio = match obj.get("audio") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| protocol(format!("bad base64 audio: {e}")))?,
        ),
        Some(_) => return Err(protocol("audio is not a string")),
    };
    if audio.is_none() && (obj.contains_key("error") || obj.contains_key("message")) {
        return Err(server_error(&v));
    }
    let chunk_start = asm.received_bytes();
    let align = [obj.get("alignment"), obj.get("normalizedAlignment")]
        .into_iter()
        .flatten()
        .find(|a| a.is_object());
    let mut starts: Vec<f64> = Vec::new();
    if let Some(a) = align {
        let chars = a["chars"].as_array().map_or(0, Vec::len);
        if let Some(ts) = a["charStartTimesMs"].as_array() {
            for t in ts.iter().take(chars) {
                let t = t
                    .as_f64()
                    .filter(|t| t.is_finite())
                    .ok_or_else(|| protocol("charStartTimesMs holds a non-number"))?;
                starts.push(t);
            }
        }
    }
    if !starts.is_empty() {
        out.push(TtsEvent::Alignment(asm.alignment(chunk_start, &starts)));
    }
    if let Some(a) = audio {
        asm.audio(&a, out);
    }
    Ok(obj.get("isFinal").and_then(Value::as_bool) == Some(true))
}

/// An error message (`{"message","error","code"}`, unconfirmed shape).
fn server_error(v: &Value) -> PortError {
    let text = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let msg = format!(
        "elevenlabs: {} {} {}",
        text("error"),
        text("message"),
        text("code")
    );
    let msg = msg.trim().to_string();
    if let Some(code) = v["code"].as_u64().and_then(|c| u16::try_from(c).ok())
        && (400..600).contains(&code)
    {
        return by_status(code, msg, None);
    }
    by_words(&msg).unwrap_or(PortError::Unavailable(msg))
}

fn by_words(msg: &str) -> Option<PortError> {
    let m = msg.to_ascii_lowercase();
    if [
        "api_key",
        "api key",
        "unauthorized",
        "unauthenticated",
        "invalid_key",
    ]
    .iter()
    .any(|w| m.contains(w))
    {
        Some(PortError::Rejected(msg.to_string()))
    } else if ["concurrent", "rate limit", "rate_limit", "busy", "quota"]
        .iter()
        .any(|w| m.contains(w))
    {
        Some(PortError::RateLimited { retry_after: None })
    } else {
        None
    }
}

/// A close frame before `isFinal`: 1000 is a (lenient) end, else a failure.
pub fn close_result(code: u16, reason: &str) -> PortResult<bool> {
    if code == 1000 {
        return Ok(true);
    }
    let msg = format!("elevenlabs: socket closed {code}: {reason}");
    Err(by_words(reason).unwrap_or(match code {
        1002 | 1003 | 1007 => PortError::Protocol(msg),
        _ => PortError::Unavailable(msg),
    }))
}

fn by_status(status: u16, text: String, retry_after: Option<std::time::Duration>) -> PortError {
    match status {
        429 => PortError::RateLimited { retry_after },
        408 => PortError::Timeout(text),
        500..=599 => PortError::Unavailable(text),
        _ => PortError::Rejected(text),
    }
}

/// The message of an error body: `detail.message`, `detail.status`, the
/// first validation `msg`, or the raw text.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let d = &v["detail"];
        let parts: Vec<&str> = [&d["status"], &d["message"], &d[0]["msg"], d]
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        if !parts.is_empty() {
            return parts.join(": ");
        }
    }
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.trim().to_string()
}

/// A non-2xx answer as a port error.
pub fn status_error(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> PortError {
    let text = format!("elevenlabs: HTTP {status}: {}", error_message(body));
    let retry_after = crate::providers::retry::retry_after(headers, std::time::SystemTime::now());
    by_status(status, text, retry_after)
}

/// A failed WebSocket handshake as a port error.
pub fn handshake_error(e: tokio_tungstenite::tungstenite::Error) -> PortError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(resp) => {
            let body = resp.body().as_deref().unwrap_or_default();
            status_error(resp.status().as_u16(), resp.headers(), body)
        }
        E::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            PortError::Timeout(format!("elevenlabs: connect: {e}"))
        }
        E::Url(e) => PortError::Rejected(format!("elevenlabs: bad URL: {e}")),
        e => PortError::Unavailable(format!("elevenlabs: websocket handshake: {e}")),
    }
}
