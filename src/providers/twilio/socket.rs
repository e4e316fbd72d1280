//! Twilio Media Streams on the wire (spec §2.3), and the audio gateway
//! that lets the CallActor see the same audio as with Vonage.
//!
//! - [`StreamEvent::parse`]: Twilio's JSON text frames (`connected`,
//!   `start`, `media`, `dtmf`, `mark`, `stop`) into a typed enum. Binary
//!   frames are refused (Twilio never sends them; spec: error 31950), as is
//!   anything that is not one of those events with its required fields: a
//!   [`SocketError`] says which. Numbers Twilio sends as strings
//!   (`sequenceNumber`, `chunk`, `timestamp`) are accepted as either
//!   (tolerance: the spec marks little of this confirmed).
//!   [`StreamEvent::to_text`] writes them back, for the emulator and the
//!   conformance fixtures.
//! - [`Outbound`]: what we send (`media`, `mark`, `clear`), and its parser
//!   (for the emulator, which checks what we send as Twilio does).
//! - [`InboundAudio`] / [`OutboundAudio`]: 8 kHz μ-law <-> 16 kHz s16le at
//!   this gateway, with the streaming resamplers of [`crate::audio`].
//!   Inbound, payloads of any size become whole 20 ms frames of 640 bytes
//!   (what Vonage delivers and the call's VAD/STT expect); outbound, 20 ms
//!   frames become 160-byte μ-law payloads (multiples of 160 avoid gaps,
//!   spec §2.3, unconfirmed).
//! - [`MediaBridge`]: one stream's state after its `start`: Twilio events
//!   to [`MediaIn`], [`MediaOut`] to Twilio messages. It keeps the marks
//!   sent and not yet echoed, because Twilio also echoes the marks a
//!   `clear` discarded: those are dropped, so a [`MediaIn::Mark`] always
//!   means "the audio before it was played" (what barge-in's "heard text"
//!   relies on).

use std::collections::{BTreeMap, VecDeque};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value, json};
use talky_actors::ports::{MediaIn, MediaOut};

use crate::audio::{mulaw, pcm, resample};
use crate::net::ws::Message;

/// Bytes of 20 ms of 8 kHz μ-law (one Twilio media payload).
pub const MULAW_FRAME_BYTES: usize = 160;
/// Bytes of 20 ms of 16 kHz s16le (one frame to and from the call).
pub const PCM_FRAME_BYTES: usize = 640;
/// The only media format we accept in `start`.
pub const ENCODING: &str = "audio/x-mulaw";
/// Its sample rate.
pub const SAMPLE_RATE: u32 = 8000;
/// Marks remembered while waiting for their echo; past this the oldest is
/// forgotten (a peer that never echoes must not grow our memory).
pub const MAX_PENDING_MARKS: usize = 1024;

/// Standard base64, padding optional on decode (tolerance), written padded.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a frame from (or to) the socket was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    /// A binary frame: Media Streams are JSON text only.
    #[error("binary frame of {0} bytes: Twilio media streams carry JSON text frames only")]
    Binary(usize),
    /// Not JSON, or not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// No `event` string.
    #[error("message without an \"event\"")]
    MissingEvent,
    /// An `event` we do not know.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// A required field is missing.
    #[error("{event}: missing {field}")]
    Missing {
        /// The event.
        event: &'static str,
        /// The field (dotted path).
        field: &'static str,
    },
    /// A field has the wrong type or an unusable value.
    #[error("{event}: bad {field}: {why}")]
    Bad {
        /// The event.
        event: &'static str,
        /// The field (dotted path).
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// `start` announced a format other than 8 kHz mono μ-law.
    #[error("unsupported media format {encoding} at {sample_rate} Hz, {channels} channel(s)")]
    UnsupportedFormat {
        /// `mediaFormat.encoding`.
        encoding: String,
        /// `mediaFormat.sampleRate`.
        sample_rate: u32,
        /// `mediaFormat.channels`.
        channels: u16,
    },
}

/// `mediaFormat` of `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaFormat {
    /// `audio/x-mulaw`.
    pub encoding: String,
    /// 8000.
    pub sample_rate: u32,
    /// 1.
    pub channels: u16,
}

impl Default for MediaFormat {
    /// What the spec says Twilio always sends (used when `start` has no
    /// `mediaFormat`, unconfirmed whether it can).
    fn default() -> Self {
        Self {
            encoding: ENCODING.into(),
            sample_rate: SAMPLE_RATE,
            channels: 1,
        }
    }
}

impl MediaFormat {
    /// Whether this is the one format the gateway converts.
    pub fn is_supported(&self) -> bool {
        self.encoding.eq_ignore_ascii_case(ENCODING)
            && self.sample_rate == SAMPLE_RATE
            && self.channels == 1
    }
}

/// `connected`: the first message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connected {
    /// `Call`.
    pub protocol: Option<String>,
    /// `1.0.0`.
    pub version: Option<String>,
}

/// `start`: the stream's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// Message counter (from 1).
    pub sequence_number: Option<u64>,
    /// `MZ...`; every later message carries it, and ours must too.
    pub stream_sid: String,
    /// `AC...`.
    pub account_sid: Option<String>,
    /// `CA...`: the provider's id of the call.
    pub call_sid: String,
    /// `["inbound"]` for `<Connect><Stream>`.
    pub tracks: Vec<String>,
    /// The `<Parameter>`s of our TwiML.
    pub custom_parameters: BTreeMap<String, String>,
    /// The audio format (8 kHz mono μ-law).
    pub media_format: MediaFormat,
}

/// `media`: a chunk of the callee's audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// Message counter.
    pub sequence_number: Option<u64>,
    /// `MZ...`.
    pub stream_sid: Option<String>,
    /// `inbound`.
    pub track: Option<String>,
    /// Chunk counter (from 1).
    pub chunk: Option<u64>,
    /// Milliseconds since the stream started.
    pub timestamp_ms: Option<u64>,
    /// Raw 8 kHz μ-law, no header (base64-decoded).
    pub payload: Vec<u8>,
}

/// `dtmf`: a key the callee pressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dtmf {
    /// Message counter.
    pub sequence_number: Option<u64>,
    /// `MZ...`.
    pub stream_sid: Option<String>,
    /// `inbound_track`.
    pub track: Option<String>,
    /// The key.
    pub digit: char,
}

/// `mark`: the echo of a mark we sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Message counter.
    pub sequence_number: Option<u64>,
    /// `MZ...`.
    pub stream_sid: Option<String>,
    /// The name we gave it.
    pub name: String,
}

/// `stop`: the last message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stop {
    /// Message counter.
    pub sequence_number: Option<u64>,
    /// `MZ...`.
    pub stream_sid: Option<String>,
    /// `AC...`.
    pub account_sid: Option<String>,
    /// `CA...`.
    pub call_sid: Option<String>,
}

/// One message from Twilio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// `connected`.
    Connected(Connected),
    /// `start`.
    Start(Start),
    /// `media`.
    Media(Media),
    /// `dtmf`.
    Dtmf(Dtmf),
    /// `mark`.
    Mark(Mark),
    /// `stop`.
    Stop(Stop),
}

/// A string field, or a number written as one (Twilio writes counters as
/// strings; accept both).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(
    event: &'static str,
    field: &'static str,
    v: Option<&Value>,
) -> Result<Option<u64>, SocketError> {
    let bad = |why: String| SocketError::Bad { event, field, why };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(format!("{n} is not a whole number"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("{s:?} is not a whole number"))),
        Some(other) => Err(bad(format!("{other} is not a number"))),
    }
}

fn required(
    event: &'static str,
    field: &'static str,
    v: Option<&Value>,
) -> Result<String, SocketError> {
    text(v)
        .filter(|s| !s.is_empty())
        .ok_or(SocketError::Missing { event, field })
}

fn object<'a>(
    event: &'static str,
    field: &'static str,
    v: &'a Value,
) -> Result<&'a Map<String, Value>, SocketError> {
    match v.get(field) {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(SocketError::Bad {
            event,
            field,
            why: format!("{other} is not an object"),
        }),
        None => Err(SocketError::Missing { event, field }),
    }
}

impl StreamEvent {
    /// Parses one text frame from Twilio.
    pub fn parse(frame: &str) -> Result<Self, SocketError> {
        let v: Value =
            serde_json::from_str(frame).map_err(|e| SocketError::NotJson(e.to_string()))?;
        if !v.is_object() {
            return Err(SocketError::NotJson("not an object".into()));
        }
        let event = match v.get("event") {
            Some(Value::String(e)) => e.as_str(),
            _ => return Err(SocketError::MissingEvent),
        };
        let sid = text(v.get("streamSid"));
        match event {
            "connected" => Ok(Self::Connected(Connected {
                protocol: text(v.get("protocol")),
                version: text(v.get("version")),
            })),
            "start" => {
                const E: &str = "start";
                let s = object(E, "start", &v)?;
                let stream_sid = text(s.get("streamSid"))
                    .or(sid)
                    .filter(|s| !s.is_empty())
                    .ok_or(SocketError::Missing {
                        event: E,
                        field: "streamSid",
                    })?;
                let call_sid = required(E, "start.callSid", s.get("callSid"))?;
                let tracks = match s.get("tracks") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a.iter().filter_map(|t| text(Some(t))).collect(),
                    Some(other) => {
                        return Err(SocketError::Bad {
                            event: E,
                            field: "start.tracks",
                            why: format!("{other} is not an array"),
                        });
                    }
                };
                let custom_parameters = match s.get("customParameters") {
                    None | Some(Value::Null) => BTreeMap::new(),
                    Some(Value::Object(m)) => m
                        .iter()
                        .filter_map(|(k, v)| text(Some(v)).map(|v| (k.clone(), v)))
                        .collect(),
                    Some(other) => {
                        return Err(SocketError::Bad {
                            event: E,
                            field: "start.customParameters",
                            why: format!("{other} is not an object"),
                        });
                    }
                };
                let media_format = match s.get("mediaFormat") {
                    None | Some(Value::Null) => MediaFormat::default(),
                    Some(Value::Object(m)) => {
                        let get = |f: &'static str, field: &'static str| number(E, field, m.get(f));
                        let sample_rate = get("sampleRate", "start.mediaFormat.sampleRate")?
                            .unwrap_or(u64::from(SAMPLE_RATE));
                        let channels = get("channels", "start.mediaFormat.channels")?.unwrap_or(1);
                        MediaFormat {
                            encoding: text(m.get("encoding")).unwrap_or_else(|| ENCODING.into()),
                            sample_rate: u32::try_from(sample_rate).unwrap_or(u32::MAX),
                            channels: u16::try_from(channels).unwrap_or(u16::MAX),
                        }
                    }
                    Some(other) => {
                        return Err(SocketError::Bad {
                            event: E,
                            field: "start.mediaFormat",
                            why: format!("{other} is not an object"),
                        });
                    }
                };
                Ok(Self::Start(Start {
                    sequence_number: number(E, "sequenceNumber", v.get("sequenceNumber"))?,
                    stream_sid,
                    account_sid: text(s.get("accountSid")),
                    call_sid,
                    tracks,
                    custom_parameters,
                    media_format,
                }))
            }
            "media" => {
                const E: &str = "media";
                let m = object(E, "media", &v)?;
                let payload = match m.get("payload") {
                    Some(Value::String(p)) => {
                        B64.decode(p.trim()).map_err(|e| SocketError::Bad {
                            event: E,
                            field: "media.payload",
                            why: format!("not base64: {e}"),
                        })?
                    }
                    Some(other) => {
                        return Err(SocketError::Bad {
                            event: E,
                            field: "media.payload",
                            why: format!("{other} is not a string"),
                        });
                    }
                    None => {
                        return Err(SocketError::Missing {
                            event: E,
                            field: "media.payload",
                        });
                    }
                };
                Ok(Self::Media(Media {
                    sequence_number: number(E, "sequenceNumber", v.get("sequenceNumber"))?,
                    stream_sid: sid,
                    track: text(m.get("track")),
                    chunk: number(E, "media.chunk", m.get("chunk"))?,
                    timestamp_ms: number(E, "media.timestamp", m.get("timestamp"))?,
                    payload,
                }))
            }
            "dtmf" => {
                const E: &str = "dtmf";
                let d = object(E, "dtmf", &v)?;
                let digit = required(E, "dtmf.digit", d.get("digit"))?;
                let mut chars = digit.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    return Err(SocketError::Bad {
                        event: E,
                        field: "dtmf.digit",
                        why: format!("{digit:?} is not one key"),
                    });
                };
                Ok(Self::Dtmf(Dtmf {
                    sequence_number: number(E, "sequenceNumber", v.get("sequenceNumber"))?,
                    stream_sid: sid,
                    track: text(d.get("track")),
                    digit: c,
                }))
            }
            "mark" => {
                const E: &str = "mark";
                let m = object(E, "mark", &v)?;
                Ok(Self::Mark(Mark {
                    sequence_number: number(E, "sequenceNumber", v.get("sequenceNumber"))?,
                    stream_sid: sid,
                    name: required(E, "mark.name", m.get("name"))?,
                }))
            }
            "stop" => {
                const E: &str = "stop";
                // Tolerant: a `stop` without its object still ends the stream.
                let s = v.get("stop").and_then(Value::as_object);
                Ok(Self::Stop(Stop {
                    sequence_number: number(E, "sequenceNumber", v.get("sequenceNumber"))?,
                    stream_sid: sid,
                    account_sid: s.and_then(|s| text(s.get("accountSid"))),
                    call_sid: s.and_then(|s| text(s.get("callSid"))),
                }))
            }
            other => Err(SocketError::UnknownEvent(other.to_owned())),
        }
    }

    /// The text frame Twilio would send for this (counters as strings,
    /// payload base64): for the emulator and fixtures.
    pub fn to_text(&self) -> String {
        fn put(o: &mut Map<String, Value>, k: &str, v: &Option<impl ToString>) {
            if let Some(v) = v {
                o.insert(k.into(), Value::String(v.to_string()));
            }
        }
        let mut o = Map::new();
        match self {
            Self::Connected(c) => {
                o.insert("event".into(), json!("connected"));
                put(&mut o, "protocol", &c.protocol);
                put(&mut o, "version", &c.version);
            }
            Self::Start(s) => {
                o.insert("event".into(), json!("start"));
                put(&mut o, "sequenceNumber", &s.sequence_number);
                o.insert("streamSid".into(), json!(s.stream_sid));
                let mut start = Map::new();
                start.insert("streamSid".into(), json!(s.stream_sid));
                put(&mut start, "accountSid", &s.account_sid);
                start.insert("callSid".into(), json!(s.call_sid));
                start.insert("tracks".into(), json!(s.tracks));
                start.insert("customParameters".into(), json!(s.custom_parameters));
                start.insert(
                    "mediaFormat".into(),
                    json!({
                        "encoding": s.media_format.encoding,
                        "sampleRate": s.media_format.sample_rate,
                        "channels": s.media_format.channels,
                    }),
                );
                o.insert("start".into(), Value::Object(start));
            }
            Self::Media(m) => {
                o.insert("event".into(), json!("media"));
                put(&mut o, "sequenceNumber", &m.sequence_number);
                put(&mut o, "streamSid", &m.stream_sid);
                let mut media = Map::new();
                put(&mut media, "track", &m.track);
                put(&mut media, "chunk", &m.chunk);
                put(&mut media, "timestamp", &m.timestamp_ms);
                media.insert("payload".into(), json!(B64.encode(&m.payload)));
                o.insert("media".into(), Value::Object(media));
            }
            Self::Dtmf(d) => {
                o.insert("event".into(), json!("dtmf"));
                put(&mut o, "sequenceNumber", &d.sequence_number);
                put(&mut o, "streamSid", &d.stream_sid);
                let mut dtmf = Map::new();
                put(&mut dtmf, "track", &d.track);
                dtmf.insert("digit".into(), json!(d.digit.to_string()));
                o.insert("dtmf".into(), Value::Object(dtmf));
            }
            Self::Mark(m) => {
                o.insert("event".into(), json!("mark"));
                put(&mut o, "sequenceNumber", &m.sequence_number);
                put(&mut o, "streamSid", &m.stream_sid);
                o.insert("mark".into(), json!({ "name": m.name }));
            }
            Self::Stop(s) => {
                o.insert("event".into(), json!("stop"));
                put(&mut o, "sequenceNumber", &s.sequence_number);
                put(&mut o, "streamSid", &s.stream_sid);
                let mut stop = Map::new();
                put(&mut stop, "accountSid", &s.account_sid);
                put(&mut stop, "callSid", &s.call_sid);
                o.insert("stop".into(), Value::Object(stop));
            }
        }
        Value::Object(o).to_string()
    }

    /// Parses a socket message: text is [`Self::parse`]d, binary refused;
    /// control frames (ping, pong, close) are `Ok(None)`, the route's
    /// business.
    pub fn from_ws(msg: &Message) -> Result<Option<Self>, SocketError> {
        if msg.is_text() {
            let text = msg
                .to_str()
                .map_err(|()| SocketError::NotJson("text frame is not UTF-8".into()))?;
            Self::parse(text).map(Some)
        } else if msg.is_binary() {
            Err(SocketError::Binary(msg.as_bytes().len()))
        } else {
            Ok(None)
        }
    }
}

/// One message we send to Twilio (bidirectional streams only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Audio to play: raw 8 kHz μ-law (base64 on the wire).
    Media {
        /// The stream's `MZ...`.
        stream_sid: String,
        /// μ-law bytes.
        payload: Vec<u8>,
    },
    /// Tell us (echo) when playback reaches here.
    Mark {
        /// The stream's `MZ...`.
        stream_sid: String,
        /// Its name.
        name: String,
    },
    /// Drop the queued audio (barge-in); pending marks are echoed.
    Clear {
        /// The stream's `MZ...`.
        stream_sid: String,
    },
}

impl Outbound {
    /// The text frame.
    pub fn to_text(&self) -> String {
        match self {
            Self::Media {
                stream_sid,
                payload,
            } => json!({
                "event": "media",
                "streamSid": stream_sid,
                "media": { "payload": B64.encode(payload) },
            }),
            Self::Mark { stream_sid, name } => json!({
                "event": "mark",
                "streamSid": stream_sid,
                "mark": { "name": name },
            }),
            Self::Clear { stream_sid } => json!({ "event": "clear", "streamSid": stream_sid }),
        }
        .to_string()
    }

    /// Parses what we sent, as Twilio reads it: any other event, or a
    /// missing `streamSid` / payload / name, is an error (Twilio: 31924).
    pub fn parse(frame: &str) -> Result<Self, SocketError> {
        let v: Value =
            serde_json::from_str(frame).map_err(|e| SocketError::NotJson(e.to_string()))?;
        if !v.is_object() {
            return Err(SocketError::NotJson("not an object".into()));
        }
        let event = match v.get("event") {
            Some(Value::String(e)) => e.clone(),
            _ => return Err(SocketError::MissingEvent),
        };
        let sid = |event: &'static str| required(event, "streamSid", v.get("streamSid"));
        match event.as_str() {
            "media" => {
                let m = object("media", "media", &v)?;
                let p = match m.get("payload") {
                    Some(Value::String(p)) => p,
                    _ => {
                        return Err(SocketError::Missing {
                            event: "media",
                            field: "media.payload",
                        });
                    }
                };
                let payload = B64.decode(p).map_err(|e| SocketError::Bad {
                    event: "media",
                    field: "media.payload",
                    why: format!("not base64: {e}"),
                })?;
                Ok(Self::Media {
                    stream_sid: sid("media")?,
                    payload,
                })
            }
            "mark" => {
                let m = object("mark", "mark", &v)?;
                Ok(Self::Mark {
                    stream_sid: sid("mark")?,
                    name: required("mark", "mark.name", m.get("name"))?,
                })
            }
            "clear" => Ok(Self::Clear {
                stream_sid: sid("clear")?,
            }),
            other => Err(SocketError::UnknownEvent(other.to_owned())),
        }
    }
}

/// `media` text frame of `payload` (raw μ-law).
pub fn media_message(stream_sid: &str, payload: &[u8]) -> String {
    Outbound::Media {
        stream_sid: stream_sid.into(),
        payload: payload.to_vec(),
    }
    .to_text()
}

/// `mark` text frame.
pub fn mark_message(stream_sid: &str, name: &str) -> String {
    Outbound::Mark {
        stream_sid: stream_sid.into(),
        name: name.into(),
    }
    .to_text()
}

/// `clear` text frame.
pub fn clear_message(stream_sid: &str) -> String {
    Outbound::Clear {
        stream_sid: stream_sid.into(),
    }
    .to_text()
}

/// Callee audio: 8 kHz μ-law payloads of any size in, whole 20 ms frames
/// of 16 kHz s16le (640 bytes) out. A partial frame waits for the next
/// payload.
#[derive(Debug, Default)]
pub struct InboundAudio {
    up: resample::Upsampler,
    samples: Vec<i16>,
    pcm: Vec<i16>,
}

impl InboundAudio {
    /// A fresh converter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts one payload; appends each frame it completes to `out`.
    pub fn push(&mut self, mulaw_payload: &[u8], out: &mut Vec<Vec<u8>>) {
        self.samples.clear();
        self.samples
            .extend(mulaw_payload.iter().map(|&b| mulaw::decode_sample(b)));
        self.up.process_into(&self.samples, &mut self.pcm);
        const SAMPLES: usize = PCM_FRAME_BYTES / 2;
        let whole = self.pcm.len() / SAMPLES * SAMPLES;
        for frame in self.pcm[..whole].chunks_exact(SAMPLES) {
            out.push(pcm::i16_to_bytes(frame));
        }
        self.pcm.drain(..whole);
    }

    /// 16 kHz samples waiting for the rest of their frame.
    pub fn pending_samples(&self) -> usize {
        self.pcm.len()
    }
}

/// Agent audio: 16 kHz s16le of any size in, 160-byte 8 kHz μ-law
/// payloads out. A partial payload waits for more audio, or is padded with
/// μ-law silence by [`Self::flush`] (before a mark, so the mark follows
/// every sample before it).
#[derive(Debug, Default)]
pub struct OutboundAudio {
    down: resample::Downsampler,
    /// An odd trailing byte of the last chunk (half a sample).
    carry: Option<u8>,
    samples: Vec<i16>,
    narrow: Vec<i16>,
    mulaw: Vec<u8>,
}

impl OutboundAudio {
    /// A fresh converter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts a chunk; appends each whole payload to `out`.
    pub fn push(&mut self, pcm16k: &[u8], out: &mut Vec<Vec<u8>>) {
        let mut bytes = pcm16k;
        self.samples.clear();
        if let Some(lo) = self.carry.take() {
            match bytes.split_first() {
                Some((&hi, rest)) => {
                    self.samples.push(i16::from_le_bytes([lo, hi]));
                    bytes = rest;
                }
                None => {
                    self.carry = Some(lo);
                    return;
                }
            }
        }
        let whole = bytes.len() / 2 * 2;
        self.samples.extend(
            bytes[..whole]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        if whole < bytes.len() {
            self.carry = Some(bytes[whole]);
        }
        self.narrow.clear();
        self.down.process_into(&self.samples, &mut self.narrow);
        self.mulaw
            .extend(self.narrow.iter().map(|&s| mulaw::encode_sample(s)));
        let full = self.mulaw.len() / MULAW_FRAME_BYTES * MULAW_FRAME_BYTES;
        for p in self.mulaw[..full].chunks_exact(MULAW_FRAME_BYTES) {
            out.push(p.to_vec());
        }
        self.mulaw.drain(..full);
    }

    /// The partial payload, padded with silence to 160 bytes; `None` when
    /// nothing waits. (A half sample carried over is dropped.)
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        self.carry = None;
        if self.mulaw.is_empty() {
            return None;
        }
        let mut p = std::mem::take(&mut self.mulaw);
        p.resize(MULAW_FRAME_BYTES, mulaw::SILENCE);
        Some(p)
    }

    /// Forgets everything waiting and the filter's history (after a
    /// `clear`: what follows starts afresh).
    pub fn clear(&mut self) {
        self.down.reset();
        self.carry = None;
        self.mulaw.clear();
    }

    /// μ-law bytes waiting for the rest of their payload.
    pub fn pending_bytes(&self) -> usize {
        self.mulaw.len()
    }
}

/// One Twilio stream after its `start`: Twilio's events to what the call
/// hears about ([`MediaIn`]), the call's [`MediaOut`] to Twilio messages.
#[derive(Debug)]
pub struct MediaBridge {
    stream_sid: String,
    inbound: InboundAudio,
    outbound: OutboundAudio,
    /// Marks sent and not yet echoed, oldest first; `true` once a `clear`
    /// discarded the audio before it.
    marks: VecDeque<(String, bool)>,
    scratch: Vec<Vec<u8>>,
}

impl MediaBridge {
    /// The bridge of the stream `start` describes; refuses any format but
    /// 8 kHz mono μ-law.
    pub fn new(start: &Start) -> Result<Self, SocketError> {
        let f = &start.media_format;
        if !f.is_supported() {
            return Err(SocketError::UnsupportedFormat {
                encoding: f.encoding.clone(),
                sample_rate: f.sample_rate,
                channels: f.channels,
            });
        }
        Ok(Self {
            stream_sid: start.stream_sid.clone(),
            inbound: InboundAudio::new(),
            outbound: OutboundAudio::new(),
            marks: VecDeque::new(),
            scratch: Vec::new(),
        })
    }

    /// The stream's `MZ...`.
    pub fn stream_sid(&self) -> &str {
        &self.stream_sid
    }

    /// What one event from Twilio means to the call: audio frames (zero or
    /// more per payload), a key, a mark whose audio was played. A mark
    /// echoed because a `clear` discarded its audio, `connected`, `start`
    /// and `stop` mean nothing to it (the route handles `stop`).
    pub fn inbound(&mut self, event: StreamEvent) -> Vec<MediaIn> {
        match event {
            StreamEvent::Media(m) => {
                // Only the callee's track (the only one `<Connect>` sends).
                if m.track
                    .as_deref()
                    .is_some_and(|t| !t.starts_with("inbound"))
                {
                    return Vec::new();
                }
                let mut frames = Vec::new();
                self.inbound.push(&m.payload, &mut frames);
                frames.into_iter().map(MediaIn::Audio).collect()
            }
            StreamEvent::Dtmf(d) => vec![MediaIn::Dtmf(d.digit)],
            StreamEvent::Mark(m) => match self.marks.iter().position(|(n, _)| *n == m.name) {
                Some(i) => match self.marks.remove(i) {
                    Some((name, false)) => vec![MediaIn::Mark(name)],
                    _ => Vec::new(),
                },
                // Not one we remember (forgotten past the cap): its audio
                // was played as far as we know.
                None => vec![MediaIn::Mark(m.name)],
            },
            StreamEvent::Connected(_) | StreamEvent::Start(_) | StreamEvent::Stop(_) => Vec::new(),
        }
    }

    /// The text frames one item from the call becomes: whole 20 ms
    /// payloads of audio (none while a payload is still partial); a mark
    /// after the partial payload padded out; a `clear` dropping what is
    /// still partial here too.
    pub fn outbound(&mut self, item: MediaOut) -> Vec<String> {
        match item {
            MediaOut::Audio(pcm) => {
                self.scratch.clear();
                self.outbound.push(&pcm, &mut self.scratch);
                self.scratch
                    .drain(..)
                    .map(|p| media_message(&self.stream_sid, &p))
                    .collect()
            }
            MediaOut::Mark(name) => {
                let mut out = Vec::with_capacity(2);
                if let Some(p) = self.outbound.flush() {
                    out.push(media_message(&self.stream_sid, &p));
                }
                if self.marks.len() >= MAX_PENDING_MARKS {
                    self.marks.pop_front();
                }
                out.push(mark_message(&self.stream_sid, &name));
                self.marks.push_back((name, false));
                out
            }
            MediaOut::Clear => {
                self.outbound.clear();
                for m in &mut self.marks {
                    m.1 = true;
                }
                vec![clear_message(&self.stream_sid)]
            }
        }
    }

    /// Marks sent and not yet echoed.
    pub fn pending_marks(&self) -> usize {
        self.marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

    fn start_frame() -> String {
        format!(
            r#"{{"event":"start","sequenceNumber":"1","streamSid":"{SID}",
 "start":{{"streamSid":"{SID}","accountSid":"AC0000","callSid":"CA0000",
   "tracks":["inbound"],"customParameters":{{"call_id":"c-123"}},
   "mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#
        )
    }

    fn start() -> Start {
        match StreamEvent::parse(&start_frame()).expect("start") {
            StreamEvent::Start(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spec_messages_parse() {
        assert_eq!(
            StreamEvent::parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
            Ok(StreamEvent::Connected(Connected {
                protocol: Some("Call".into()),
                version: Some("1.0.0".into()),
            }))
        );
        let s = start();
        assert_eq!(s.sequence_number, Some(1));
        assert_eq!(s.stream_sid, SID);
        assert_eq!(s.call_sid, "CA0000");
        assert_eq!(s.account_sid.as_deref(), Some("AC0000"));
        assert_eq!(s.tracks, vec!["inbound"]);
        assert_eq!(
            s.custom_parameters.get("call_id").map(String::as_str),
            Some("c-123")
        );
        assert_eq!(s.media_format, MediaFormat::default());

        let payload = vec![0xFFu8; 160];
        let media = format!(
            r#"{{"event":"media","sequenceNumber":"3","streamSid":"{SID}",
 "media":{{"track":"inbound","chunk":"2","timestamp":"40","payload":"{}"}}}}"#,
            B64.encode(&payload)
        );
        assert_eq!(B64.encode(&payload).len(), 216, "spec §8.1");
        assert_eq!(
            StreamEvent::parse(&media),
            Ok(StreamEvent::Media(Media {
                sequence_number: Some(3),
                stream_sid: Some(SID.into()),
                track: Some("inbound".into()),
                chunk: Some(2),
                timestamp_ms: Some(40),
                payload,
            }))
        );
        assert_eq!(
            StreamEvent::parse(
                r#"{"event":"dtmf","sequenceNumber":"5","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"1"}}"#
            ),
            Ok(StreamEvent::Dtmf(Dtmf {
                sequence_number: Some(5),
                stream_sid: Some("MZ1".into()),
                track: Some("inbound_track".into()),
                digit: '1',
            }))
        );
        assert_eq!(
            StreamEvent::parse(
                r#"{"event":"mark","sequenceNumber":"6","streamSid":"MZ1","mark":{"name":"reply-7"}}"#
            ),
            Ok(StreamEvent::Mark(Mark {
                sequence_number: Some(6),
                stream_sid: Some("MZ1".into()),
                name: "reply-7".into(),
            }))
        );
        assert_eq!(
            StreamEvent::parse(
                r#"{"event":"stop","sequenceNumber":"9","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#
            ),
            Ok(StreamEvent::Stop(Stop {
                sequence_number: Some(9),
                stream_sid: Some("MZ1".into()),
                account_sid: Some("AC1".into()),
                call_sid: Some("CA1".into()),
            }))
        );
    }

    #[test]
    fn tolerated_deviations() {
        // Numbers as numbers, no padding, streamSid only at the top, no
        // mediaFormat, a stop without its object.
        let e = StreamEvent::parse(
            r#"{"event":"start","sequenceNumber":1,"streamSid":"MZ2","start":{"callSid":"CA2","customParameters":{"n":7}}}"#,
        )
        .expect("start");
        let StreamEvent::Start(s) = e else { panic!() };
        assert_eq!(s.stream_sid, "MZ2");
        assert_eq!(s.custom_parameters.get("n").map(String::as_str), Some("7"));
        assert!(s.media_format.is_supported());
        let e = StreamEvent::parse(
            r#"{"event":"media","media":{"chunk":4,"timestamp":60,"payload":"/w"}}"#,
        )
        .expect("media");
        let StreamEvent::Media(m) = e else { panic!() };
        assert_eq!(
            (m.chunk, m.timestamp_ms, m.payload),
            (Some(4), Some(60), vec![0xFF])
        );
        assert_eq!(
            StreamEvent::parse(r#"{"event":"stop"}"#),
            Ok(StreamEvent::Stop(Stop::default()))
        );
        // Extra fields are ignored.
        assert!(StreamEvent::parse(r#"{"event":"connected","extra":[1,2]}"#).is_ok());
    }

    #[test]
    fn malformed_frames_are_clear_errors_never_panics() {
        use SocketError as E;
        let cases: Vec<(&str, E)> = vec![
            ("", E::NotJson(String::new())),
            ("not json", E::NotJson(String::new())),
            ("[1,2]", E::NotJson(String::new())),
            ("\"media\"", E::NotJson(String::new())),
            ("{}", E::MissingEvent),
            (r#"{"event":7}"#, E::MissingEvent),
            (r#"{"event":"closed"}"#, E::UnknownEvent("closed".into())),
            (
                r#"{"event":"start"}"#,
                E::Missing {
                    event: "start",
                    field: "start",
                },
            ),
            (
                r#"{"event":"start","start":{"streamSid":"MZ"}}"#,
                E::Missing {
                    event: "start",
                    field: "start.callSid",
                },
            ),
            (
                r#"{"event":"start","start":{"callSid":"CA"}}"#,
                E::Missing {
                    event: "start",
                    field: "streamSid",
                },
            ),
            (
                r#"{"event":"start","start":{"callSid":"CA","streamSid":"MZ","mediaFormat":"mulaw"}}"#,
                E::Bad {
                    event: "start",
                    field: "start.mediaFormat",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"start","start":{"callSid":"CA","streamSid":"MZ","mediaFormat":{"sampleRate":"fast"}}}"#,
                E::Bad {
                    event: "start",
                    field: "start.mediaFormat.sampleRate",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"start","start":{"callSid":"CA","streamSid":"MZ","tracks":"inbound"}}"#,
                E::Bad {
                    event: "start",
                    field: "start.tracks",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"start","start":{"callSid":"CA","streamSid":"MZ","customParameters":[]}}"#,
                E::Bad {
                    event: "start",
                    field: "start.customParameters",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"media"}"#,
                E::Missing {
                    event: "media",
                    field: "media",
                },
            ),
            (
                r#"{"event":"media","media":[]}"#,
                E::Bad {
                    event: "media",
                    field: "media",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"media","media":{}}"#,
                E::Missing {
                    event: "media",
                    field: "media.payload",
                },
            ),
            (
                r#"{"event":"media","media":{"payload":"@@@"}}"#,
                E::Bad {
                    event: "media",
                    field: "media.payload",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"media","media":{"payload":5}}"#,
                E::Bad {
                    event: "media",
                    field: "media.payload",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"media","media":{"payload":"","chunk":"-1"}}"#,
                E::Bad {
                    event: "media",
                    field: "media.chunk",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"media","sequenceNumber":1.5,"media":{"payload":""}}"#,
                E::Bad {
                    event: "media",
                    field: "sequenceNumber",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"dtmf","dtmf":{}}"#,
                E::Missing {
                    event: "dtmf",
                    field: "dtmf.digit",
                },
            ),
            (
                r#"{"event":"dtmf","dtmf":{"digit":"12"}}"#,
                E::Bad {
                    event: "dtmf",
                    field: "dtmf.digit",
                    why: String::new(),
                },
            ),
            (
                r#"{"event":"mark","mark":{"name":""}}"#,
                E::Missing {
                    event: "mark",
                    field: "mark.name",
                },
            ),
            (
                r#"{"event":"mark"}"#,
                E::Missing {
                    event: "mark",
                    field: "mark",
                },
            ),
        ];
        // Compare variants and fields, not the free-text reasons.
        fn shape(e: &SocketError) -> SocketError {
            match e {
                E::NotJson(_) => E::NotJson(String::new()),
                E::Bad { event, field, .. } => E::Bad {
                    event,
                    field,
                    why: String::new(),
                },
                other => other.clone(),
            }
        }
        for (frame, want) in cases {
            let got = StreamEvent::parse(frame).expect_err(frame);
            assert_eq!(shape(&got), want, "{frame}: {got}");
            assert!(!got.to_string().is_empty());
        }
        assert_eq!(
            StreamEvent::from_ws(&Message::binary(vec![0u8; 640])),
            Err(SocketError::Binary(640))
        );
        assert_eq!(StreamEvent::from_ws(&Message::close()), Ok(None));
        assert_eq!(
            StreamEvent::from_ws(&Message::text(r#"{"event":"stop"}"#)),
            Ok(Some(StreamEvent::Stop(Stop::default())))
        );
        assert!(StreamEvent::from_ws(&Message::text("{")).is_err());
        assert!(SocketError::Binary(640).to_string().contains("JSON text"));
    }

    #[test]
    fn events_round_trip_through_their_text() {
        let events = vec![
            StreamEvent::Connected(Connected {
                protocol: Some("Call".into()),
                version: Some("1.0.0".into()),
            }),
            StreamEvent::Start(start()),
            StreamEvent::Media(Media {
                sequence_number: Some(3),
                stream_sid: Some(SID.into()),
                track: Some("inbound".into()),
                chunk: Some(2),
                timestamp_ms: Some(40),
                payload: (0..160).map(|i| i as u8).collect(),
            }),
            StreamEvent::Dtmf(Dtmf {
                sequence_number: Some(5),
                stream_sid: Some(SID.into()),
                track: Some("inbound_track".into()),
                digit: '#',
            }),
            StreamEvent::Mark(Mark {
                sequence_number: Some(6),
                stream_sid: Some(SID.into()),
                name: "reply \"7\"".into(),
            }),
            StreamEvent::Stop(Stop {
                sequence_number: Some(9),
                stream_sid: Some(SID.into()),
                account_sid: Some("AC1".into()),
                call_sid: Some("CA1".into()),
            }),
        ];
        for e in events {
            let text = e.to_text();
            assert_eq!(StreamEvent::parse(&text).as_ref(), Ok(&e), "{text}");
        }
        // Counters are written as strings, as Twilio does.
        let v: Value = serde_json::from_str(&StreamEvent::Start(start()).to_text()).expect("json");
        assert_eq!(v["sequenceNumber"], "1");
        assert_eq!(v["start"]["mediaFormat"]["sampleRate"], 8000);
    }

    #[test]
    fn outbound_messages_are_exact_and_parse_back() {
        assert_eq!(
            media_message("MZ1", &[0xFF, 0x7F]),
            r#"{"event":"media","media":{"payload":"/38="},"streamSid":"MZ1"}"#
        );
        assert_eq!(
            mark_message("MZ1", "reply-7"),
            r#"{"event":"mark","mark":{"name":"reply-7"},"streamSid":"MZ1"}"#
        );
        assert_eq!(
            clear_message("MZ1"),
            r#"{"event":"clear","streamSid":"MZ1"}"#
        );
        for o in [
            Outbound::Media {
                stream_sid: "MZ1".into(),
                payload: vec![1; 160],
            },
            Outbound::Mark {
                stream_sid: "MZ1".into(),
                name: "m".into(),
            },
            Outbound::Clear {
                stream_sid: "MZ1".into(),
            },
        ] {
            assert_eq!(Outbound::parse(&o.to_text()), Ok(o));
        }
        for bad in [
            "",
            "{}",
            r#"{"event":"clear"}"#,
            r#"{"event":"media","streamSid":"MZ1"}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"!"}}"#,
            r#"{"event":"mark","streamSid":"MZ1","mark":{}}"#,
            r#"{"event":"play","streamSid":"MZ1"}"#,
        ] {
            assert!(Outbound::parse(bad).is_err(), "{bad}");
        }
    }

    fn tone_16k(n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin()) as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    #[test]
    fn inbound_payloads_become_whole_640_byte_frames() {
        let mut a = InboundAudio::new();
        let mut out = Vec::new();
        // One 20 ms payload: one frame, nothing left.
        a.push(&[mulaw::SILENCE; 160], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), PCM_FRAME_BYTES);
        assert!(out[0].iter().all(|&b| b == 0), "silence stays silence");
        assert_eq!(a.pending_samples(), 0);
        // Odd sizes: partial payloads wait for the rest of their frame.
        out.clear();
        a.push(&[mulaw::SILENCE; 100], &mut out);
        assert!(out.is_empty());
        assert_eq!(a.pending_samples(), 200);
        a.push(&[mulaw::SILENCE; 100], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(a.pending_samples(), 80);
        a.push(&[], &mut out);
        assert_eq!(out.len(), 1);
        a.push(&[mulaw::SILENCE; 280], &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(a.pending_samples(), 0);
        assert!(out.iter().all(|f| f.len() == PCM_FRAME_BYTES));
    }

    #[test]
    fn chunking_does_not_change_inbound_audio() {
        let narrow: Vec<u8> = mulaw::encode(
            &tone_16k(3200)
                .iter()
                .step_by(2)
                .copied()
                .collect::<Vec<_>>(),
        );
        let run = |sizes: &[usize]| {
            let mut a = InboundAudio::new();
            let mut out = Vec::new();
            let mut rest = &narrow[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                a.push(&rest[..n], &mut out);
                rest = &rest[n..];
                i += 1;
            }
            out.concat()
        };
        let whole = run(&[160]);
        assert_eq!(whole.len(), 1600 * 2 * 2);
        assert_eq!(run(&[1, 7, 333, 50]), whole);
    }

    #[test]
    fn outbound_frames_become_160_byte_payloads() {
        let mut a = OutboundAudio::new();
        let mut out = Vec::new();
        a.push(&vec![0u8; PCM_FRAME_BYTES], &mut out);
        assert_eq!(out, vec![vec![mulaw::SILENCE; MULAW_FRAME_BYTES]]);
        // Partial and odd-sized chunks (a sample split across chunks).
        out.clear();
        a.push(&[0u8; 333], &mut out);
        assert!(out.is_empty());
        assert_eq!(a.pending_bytes(), 83);
        a.push(&[0u8; 307], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(a.pending_bytes(), 0);
        a.push(&[0u8; 1], &mut out);
        a.push(&[], &mut out);
        a.push(&[0u8; 3], &mut out);
        assert_eq!(a.pending_bytes(), 1);
        let p = a.flush().expect("partial");
        assert_eq!(p.len(), MULAW_FRAME_BYTES);
        assert_eq!(a.flush(), None);
        a.push(&[0u8; 100], &mut out);
        a.clear();
        assert_eq!(a.pending_bytes(), 0);
        assert_eq!(a.flush(), None);
    }

    #[test]
    fn a_tone_survives_the_round_trip() {
        // 16 kHz -> μ-law 8 kHz (outbound), then back (inbound): the
        // 440 Hz tone keeps its level (G.711 + two half-band filters).
        let tone = tone_16k(16000);
        let mut down = OutboundAudio::new();
        let mut payloads = Vec::new();
        for frame in pcm::i16_to_bytes(&tone).chunks(PCM_FRAME_BYTES) {
            down.push(frame, &mut payloads);
        }
        assert_eq!(payloads.len(), 50);
        assert!(payloads.iter().all(|p| p.len() == MULAW_FRAME_BYTES));
        let mut up = InboundAudio::new();
        let mut frames = Vec::new();
        for p in &payloads {
            up.push(p, &mut frames);
        }
        assert_eq!(frames.len(), 50);
        let back = pcm::bytes_to_i16(&frames.concat());
        // Skip the filters' start-up; compare levels and the waveform
        // shifted by the two filters' delay.
        let delay = 2 * resample::DELAY_16K;
        let (a, b) = (&tone[1000..15000], &back[1000 + delay..15000 + delay]);
        let ratio = rms(b) / rms(a);
        assert!((0.95..1.05).contains(&ratio), "level ratio {ratio}");
        let err: Vec<i16> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let snr = 20.0 * (rms(a) / rms(&err)).log10();
        assert!(snr > 25.0, "SNR {snr} dB");
    }

    #[test]
    fn the_bridge_maps_both_directions() {
        let mut b = MediaBridge::new(&start()).expect("bridge");
        assert_eq!(b.stream_sid(), SID);
        let media = |track: Option<&str>, n: usize| {
            StreamEvent::Media(Media {
                sequence_number: None,
                stream_sid: Some(SID.into()),
                track: track.map(Into::into),
                chunk: None,
                timestamp_ms: None,
                payload: vec![mulaw::SILENCE; n],
            })
        };
        let got = b.inbound(media(Some("inbound"), 160));
        assert_eq!(got, vec![MediaIn::Audio(vec![0; PCM_FRAME_BYTES])]);
        assert!(b.inbound(media(Some("outbound"), 160)).is_empty());
        assert!(b.inbound(media(None, 80)).is_empty(), "half a frame waits");
        assert_eq!(b.inbound(media(None, 80)).len(), 1);
        assert_eq!(
            b.inbound(StreamEvent::Dtmf(Dtmf {
                sequence_number: None,
                stream_sid: None,
                track: None,
                digit: '5'
            })),
            vec![MediaIn::Dtmf('5')]
        );
        assert!(b.inbound(StreamEvent::Stop(Stop::default())).is_empty());

        // Outbound: a frame is one media message with a 160-byte payload.
        let out = b.outbound(MediaOut::Audio(vec![0; PCM_FRAME_BYTES]));
        assert_eq!(out.len(), 1);
        let Ok(Outbound::Media {
            stream_sid,
            payload,
        }) = Outbound::parse(&out[0])
        else {
            panic!("{out:?}")
        };
        assert_eq!(
            (stream_sid.as_str(), payload.len()),
            (SID, MULAW_FRAME_BYTES)
        );
        // Half a frame, then a mark: the half is padded out before the mark.
        assert!(b.outbound(MediaOut::Audio(vec![0; 320])).is_empty());
        let out = b.outbound(MediaOut::Mark("m1".into()));
        assert_eq!(out.len(), 2);
        assert!(
            matches!(Outbound::parse(&out[0]), Ok(Outbound::Media { payload, .. }) if payload.len() == 160)
        );
        assert_eq!(out[1], mark_message(SID, "m1"));
        assert_eq!(b.pending_marks(), 1);
    }

    #[test]
    fn marks_discarded_by_clear_are_not_reported_as_played() {
        let mut b = MediaBridge::new(&start()).expect("bridge");
        let echo = |name: &str| {
            StreamEvent::Mark(Mark {
                sequence_number: None,
                stream_sid: Some(SID.into()),
                name: name.into(),
            })
        };
        b.outbound(MediaOut::Mark("a".into()));
        b.outbound(MediaOut::Mark("b".into()));
        assert_eq!(b.inbound(echo("a")), vec![MediaIn::Mark("a".into())]);
        // Barge-in: "b" had not played; Twilio echoes it on clear.
        b.outbound(MediaOut::Audio(vec![0; 100]));
        assert_eq!(b.outbound(MediaOut::Clear), vec![clear_message(SID)]);
        b.outbound(MediaOut::Mark("c".into()));
        assert_eq!(b.inbound(echo("b")), vec![], "discarded, not played");
        assert_eq!(b.inbound(echo("c")), vec![MediaIn::Mark("c".into())]);
        // An echo we never asked for (or forgot) passes through.
        assert_eq!(b.inbound(echo("x")), vec![MediaIn::Mark("x".into())]);
        assert_eq!(b.pending_marks(), 0);
        // The clear dropped the partial payload: nothing to pad.
        assert_eq!(b.outbound(MediaOut::Mark("d".into())).len(), 1);
        // Memory stays bounded when Twilio never echoes.
        for i in 0..(MAX_PENDING_MARKS + 10) {
            b.outbound(MediaOut::Mark(format!("m{i}")));
        }
        assert_eq!(b.pending_marks(), MAX_PENDING_MARKS);
    }

    #[test]
    fn other_formats_are_refused() {
        let mut s = start();
        s.media_format.sample_rate = 16000;
        assert!(matches!(
            MediaBridge::new(&s),
            Err(SocketError::UnsupportedFormat {
                sample_rate: 16000,
                ..
            })
        ));
        let mut s = start();
        s.media_format.encoding = "audio/x-alaw".into();
        assert!(MediaBridge::new(&s).is_err());
        let mut s = start();
        s.media_format.channels = 2;
        assert!(MediaBridge::new(&s).is_err());
        let mut s = start();
        s.media_format.encoding = "AUDIO/X-MULAW".into();
        assert!(MediaBridge::new(&s).is_ok());
    }
}
