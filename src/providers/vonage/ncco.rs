//! NCCO actions (spec §1.5) and the create-call body (§1.2), with the
//! builder that turns a [`PlaceCall`] into the request we send: an inline
//! NCCO that connects the callee straight to our media socket.
//!
//! Field names are Vonage's exactly: snake_case in the create-call body,
//! camelCase inside NCCO actions, `content-type` on websocket endpoints.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize, Serializer};
use talky_actors::ports::PlaceCall;

/// Everything but RFC 3986 unreserved characters is percent-encoded in
/// path segments and query values we build.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Default audio format on the media socket: 16-bit linear PCM at 16 kHz.
pub const DEFAULT_SAMPLE_RATE: u32 = 16_000;
/// Vonage's bounds of `ringing_timer` (seconds).
pub const RINGING_TIMER_RANGE: (u64, u64) = (1, 120);
/// Vonage's bounds of `length_timer` and connect `limit` (seconds).
pub const LENGTH_TIMER_RANGE: (u64, u64) = (1, 7200);

/// An endpoint object, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Endpoint {
    /// A phone number (E.164 digits, no `+`).
    Phone {
        /// The number.
        number: String,
        /// Digits sent on answer (`p` = pause).
        #[serde(
            rename = "dtmfAnswer",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        dtmf_answer: Option<String>,
    },
    /// A WebSocket Vonage opens to us.
    Websocket {
        /// `ws://` or `wss://` URI.
        uri: String,
        /// `audio/l16;rate=8000|16000|24000`.
        #[serde(rename = "content-type")]
        content_type: String,
        /// Flat metadata echoed in the first socket message (max 512 bytes).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

impl Endpoint {
    /// A phone endpoint.
    pub fn phone(number: impl Into<String>) -> Self {
        Endpoint::Phone {
            number: number.into(),
            dtmf_answer: None,
        }
    }
}

/// Standard or advanced detection behaviour on a machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineBehavior {
    /// Report the verdict and go on (we decide).
    #[default]
    Continue,
    /// Vonage hangs up on a machine.
    Hangup,
}

/// Advanced machine detection mode (§1.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdMode {
    /// Asynchronous with beep detection: the NCCO starts at once.
    #[default]
    Default,
    /// Synchronous, no beep detection.
    Detect,
    /// Synchronous with beep detection.
    DetectBeep,
}

/// The `advanced_machine_detection` object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvancedMachineDetection {
    /// What to do on a machine.
    pub behavior: MachineBehavior,
    /// Detection mode.
    pub mode: AmdMode,
    /// Max wait for the beep, 45..120 s.
    pub beep_timeout: u32,
}

/// Which machine detection to ask for when a call wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MachineDetection {
    /// Never ask, even when the call wants it.
    Off,
    /// Standard detection (free): `machine_detection`.
    Standard {
        /// What to do on a machine.
        behavior: MachineBehavior,
    },
    /// Advanced detection (paid): `advanced_machine_detection`.
    Advanced {
        /// What to do on a machine.
        behavior: MachineBehavior,
        /// Detection mode.
        mode: AmdMode,
        /// Max wait for the beep, clamped to 45..120 s.
        beep_timeout: u32,
    },
}

impl Default for MachineDetection {
    /// Advanced, asynchronous, continue: the verdict arrives while the
    /// agent already talks (the spec's example request).
    fn default() -> Self {
        MachineDetection::Advanced {
            behavior: MachineBehavior::Continue,
            mode: AmdMode::Default,
            beep_timeout: 45,
        }
    }
}

fn level_ser<S: Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        // Whole levels are written as integers, as the spec shows them.
        Some(l) if l.fract() == 0.0 => s.serialize_i64(*l as i64),
        Some(l) => s.serialize_f64(f64::from(*l)),
        None => s.serialize_none(),
    }
}

/// The `connect` action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connect {
    /// Caller id; always sent (§1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `"synchronous"` to have connection failures posted to `eventUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Where leg events go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_url: Option<Vec<String>>,
    /// `POST` or `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_method: Option<String>,
    /// Ring seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// Max leg seconds (<= 7200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The endpoints (we use one websocket).
    pub endpoint: Vec<Endpoint>,
}

/// The `talk` action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Talk {
    /// Text, max 1500 chars.
    pub text: String,
    /// BCP 47 language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Voice style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<u32>,
    /// Premium voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premium: Option<bool>,
    /// Whether keypad input stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barge_in: Option<bool>,
    /// Repetitions, 0 = forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#loop: Option<u32>,
    /// Volume -1..1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "level_ser"
    )]
    pub level: Option<f32>,
}

/// The `stream` action (play an audio file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    /// One mp3 or 16-bit wav URL.
    pub stream_url: Vec<String>,
    /// Volume -1..1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "level_ser"
    )]
    pub level: Option<f32>,
    /// Whether keypad input stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barge_in: Option<bool>,
    /// Repetitions, 0 = forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#loop: Option<u32>,
}

/// The `notify` action: posts `payload` to `eventUrl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notify {
    /// Any JSON.
    pub payload: serde_json::Value,
    /// Where it goes.
    pub event_url: Vec<String>,
    /// `POST` or `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_method: Option<String>,
}

/// One NCCO action, tagged by `action`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum NccoAction {
    /// Connect to an endpoint.
    Connect(Connect),
    /// Speak text.
    Talk(Talk),
    /// Play a file.
    Stream(Stream),
    /// Post a payload to us.
    Notify(Notify),
}

/// The body of `POST /v1/calls`: exactly one of `ncco` (inline) and
/// `answer_url` (Vonage fetches the NCCO on answer, see `super::answer`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateCall {
    /// One phone endpoint.
    pub to: Vec<Endpoint>,
    /// Caller id (phone endpoint).
    pub from: Endpoint,
    /// Inline NCCO (inline mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ncco: Option<Vec<NccoAction>>,
    /// One URL Vonage fetches the NCCO from on answer (answer_url mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_url: Option<Vec<String>>,
    /// `GET` (default) or `POST`, with `answer_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_method: Option<String>,
    /// One URL.
    pub event_url: Vec<String>,
    /// `POST` (default) or `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_method: Option<String>,
    /// Standard detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_detection: Option<MachineBehavior>,
    /// Advanced detection (wins over `machine_detection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_machine_detection: Option<AdvancedMachineDetection>,
    /// Seconds of ringing before giving up, 1..120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringing_timer: Option<u32>,
    /// Seconds after `answered` before Vonage hangs up, 1..7200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_timer: Option<u32>,
}

/// The `201 Created` answer to `POST /v1/calls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCallResponse {
    /// The call leg's id: [`ProviderCallId`](talky_actors::ports::ProviderCallId).
    pub uuid: String,
    /// `started`.
    #[serde(default)]
    pub status: Option<String>,
    /// `outbound`.
    #[serde(default)]
    pub direction: Option<String>,
    /// `CON-...`.
    #[serde(default)]
    pub conversation_uuid: Option<String>,
}

/// Why a create-call body could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NccoError {
    /// The public URL is not `http://` or `https://`.
    #[error("public url must start with http:// or https://: {0:?}")]
    PublicUrl(String),
    /// A number is not E.164 digits.
    #[error("not an E.164 number: {0:?}")]
    Number(String),
}

/// Our public base URL without a trailing slash, checked.
pub(crate) fn public_base(public_url: &str) -> Result<&str, NccoError> {
    base(public_url)
}

fn base(public_url: &str) -> Result<&str, NccoError> {
    let b = public_url.trim().trim_end_matches('/');
    if (b.starts_with("http://") && b.len() > 7) || (b.starts_with("https://") && b.len() > 8) {
        Ok(b)
    } else {
        Err(NccoError::PublicUrl(public_url.to_owned()))
    }
}

/// Event webhook URL of a call: `{public}/vonage/events/{call_id}/{key}`,
/// `key` the call's callback key ([`super::callback::CallbackKey::for_call`]).
pub fn event_url(public_url: &str, call: &str, key: &str) -> Result<String, NccoError> {
    Ok(format!("{}/vonage/events/{call}/{key}", base(public_url)?))
}

/// Media socket URI of a call: the public URL with `http`->`ws` /
/// `https`->`wss`, plus `/vonage/media/{call_id}?token={media_token}`.
pub fn media_uri(public_url: &str, call: &str, media_token: &str) -> Result<String, NccoError> {
    let b = base(public_url)?;
    let ws = match b.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", &b["http://".len()..]),
    };
    let token = utf8_percent_encode(media_token, UNRESERVED);
    Ok(format!("{ws}/vonage/media/{call}?token={token}"))
}

/// `+447700900000` -> `447700900000`, checked against `\d{7,15}`.
pub fn vonage_number(e164: &str) -> Result<String, NccoError> {
    let n = e164.trim().trim_start_matches('+');
    if (7..=15).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) {
        Ok(n.to_owned())
    } else {
        Err(NccoError::Number(e164.to_owned()))
    }
}

/// The body of `PUT /v1/calls/{uuid}` that hands a live leg to a person
/// (spec §1.3, a cold transfer): the running NCCO (our websocket
/// `connect`) is replaced by an inline one that `connect`s the leg to
/// `number`, showing `caller_id`:
///
/// ```json
/// {"action":"transfer","destination":{"type":"ncco","ncco":[
///   {"action":"connect","from":"14155550100","endpoint":[{"type":"phone","number":"14155550199"}]}]}}
/// ```
///
/// Both numbers are sent as E.164 digits without `+`, as in the
/// create-call body (unconfirmed for `from` inside a transfer NCCO; the
/// create-call's `from` is the same shape). Unconfirmed too: that the
/// websocket leg of the replaced NCCO is closed by Vonage (we assume it
/// is, and end our side once the request is accepted either way) and that
/// a `transfer` event is posted to the event URL (we assume it is, and
/// need it for nothing).
pub fn transfer_body(number: &str, caller_id: &str) -> Result<TransferRequest, NccoError> {
    Ok(TransferRequest {
        action: "transfer".into(),
        destination: TransferDestination {
            kind: "ncco".into(),
            ncco: vec![NccoAction::Connect(Connect {
                from: Some(vonage_number(caller_id)?),
                endpoint: vec![Endpoint::phone(vonage_number(number)?)],
                ..Connect::default()
            })],
        },
    })
}

/// `PUT /v1/calls/{uuid}` `{"action":"transfer",...}` ([`transfer_body`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// `"transfer"`.
    pub action: String,
    /// Where the leg goes.
    pub destination: TransferDestination,
}

/// A transfer's destination: an inline NCCO.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferDestination {
    /// `"ncco"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The NCCO that replaces the running one.
    pub ncco: Vec<NccoAction>,
}

/// `audio/l16;rate={rate}`.
pub fn content_type(sample_rate: u32) -> String {
    format!("audio/l16;rate={sample_rate}")
}

fn clamp_secs(d: std::time::Duration, (lo, hi): (u64, u64)) -> u32 {
    d.as_secs().clamp(lo, hi) as u32
}

/// The NCCO that connects the callee to our media socket: one
/// synchronous `connect` to `media_uri` (headers carry `call_id`), leg
/// events to the call's event URL, `limit` = the length timer (seconds).
/// The inline create-call body and the answer webhook both send it.
pub fn connect_ncco(
    public_url: &str,
    call: &str,
    url_key: &str,
    media_token: &str,
    from: &str,
    limit_secs: u32,
    sample_rate: u32,
) -> Result<Vec<NccoAction>, NccoError> {
    let events = event_url(public_url, call, url_key)?;
    let uri = media_uri(public_url, call, media_token)?;
    let connect = Connect {
        from: Some(from.to_owned()),
        event_type: Some("synchronous".into()),
        event_url: Some(vec![events]),
        event_method: Some("POST".into()),
        timeout: None,
        limit: Some(limit_secs.clamp(LENGTH_TIMER_RANGE.0 as u32, LENGTH_TIMER_RANGE.1 as u32)),
        endpoint: vec![Endpoint::Websocket {
            uri,
            content_type: content_type(sample_rate),
            headers: BTreeMap::from([("call_id".to_owned(), call.to_owned())]),
        }],
    };
    Ok(vec![NccoAction::Connect(connect)])
}

/// The create-call body for one call: inline NCCO connecting the callee to
/// our media socket (headers carry `call_id`), events to our per-call URL
/// (call id and its callback key `url_key`),
/// timers from the request, machine detection per `md` when the call wants it.
pub fn create_call(
    req: &PlaceCall,
    public_url: &str,
    url_key: &str,
    md: MachineDetection,
    sample_rate: u32,
) -> Result<CreateCall, NccoError> {
    let call = req.call.to_string();
    let to = vonage_number(&req.to)?;
    let from = vonage_number(&req.from)?;
    let events = event_url(public_url, &call, url_key)?;
    let ringing = clamp_secs(req.ringing_timeout, RINGING_TIMER_RANGE);
    let length = clamp_secs(req.max_duration, LENGTH_TIMER_RANGE);
    let (machine_detection, advanced_machine_detection) = match (req.machine_detection, md) {
        (false, _) | (true, MachineDetection::Off) => (None, None),
        (true, MachineDetection::Standard { behavior }) => (Some(behavior), None),
        (
            true,
            MachineDetection::Advanced {
                behavior,
                mode,
                beep_timeout,
            },
        ) => (
            None,
            Some(AdvancedMachineDetection {
                behavior,
                mode,
                beep_timeout: beep_timeout.clamp(45, 120),
            }),
        ),
    };
    let ncco = connect_ncco(
        public_url,
        &call,
        url_key,
        &req.media_token,
        &from,
        length,
        sample_rate,
    )?;
    Ok(CreateCall {
        to: vec![Endpoint::phone(to)],
        from: Endpoint::phone(from),
        ncco: Some(ncco),
        answer_url: None,
        answer_method: None,
        event_url: vec![events],
        event_method: Some("POST".into()),
        machine_detection,
        advanced_machine_detection,
        ringing_timer: Some(ringing),
        length_timer: Some(length),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::Duration;
    use talky_actors::ids::CallId;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).expect("fixture json")
    }

    fn ws(uri: &str, headers: &[(&str, &str)]) -> Endpoint {
        Endpoint::Websocket {
            uri: uri.into(),
            content_type: "audio/l16;rate=16000".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn spec_example_request_1_2() {
        let fixture = parse(
            r#"{"to":[{"type":"phone","number":"447700900000"}],
 "from":{"type":"phone","number":"447700900001"},
 "event_url":["https://dialer.example.com/vonage/events"],
 "advanced_machine_detection":{"behavior":"continue","mode":"default","beep_timeout":45},
 "ringing_timer":30, "length_timer":900,
 "ncco":[{"action":"connect","from":"447700900001",
   "endpoint":[{"type":"websocket","uri":"wss://dialer.example.com/vonage/media",
     "content-type":"audio/l16;rate=16000","headers":{"call_id":"c-123","campaign":"spring"}}]}]}"#,
        );
        let body = CreateCall {
            to: vec![Endpoint::phone("447700900000")],
            from: Endpoint::phone("447700900001"),
            ncco: Some(vec![NccoAction::Connect(Connect {
                from: Some("447700900001".into()),
                endpoint: vec![ws(
                    "wss://dialer.example.com/vonage/media",
                    &[("call_id", "c-123"), ("campaign", "spring")],
                )],
                ..Connect::default()
            })]),
            answer_url: None,
            answer_method: None,
            event_url: vec!["https://dialer.example.com/vonage/events".into()],
            event_method: None,
            machine_detection: None,
            advanced_machine_detection: Some(AdvancedMachineDetection {
                behavior: MachineBehavior::Continue,
                mode: AmdMode::Default,
                beep_timeout: 45,
            }),
            ringing_timer: Some(30),
            length_timer: Some(900),
        };
        assert_eq!(serde_json::to_value(&body).expect("ser"), fixture);
        let back: CreateCall = serde_json::from_value(fixture).expect("de");
        assert_eq!(back, body);
    }

    #[test]
    fn spec_connect_action_1_5() {
        let fixture = parse(
            r#"{"action":"connect","from":"447700900001","eventType":"synchronous",
 "eventUrl":["https://dialer.example.com/vonage/events"],"eventMethod":"POST",
 "timeout":30,"limit":7200,
 "endpoint":[{"type":"websocket","uri":"wss://dialer.example.com/vonage/media",
   "content-type":"audio/l16;rate=16000","headers":{"call_id":"c-123"}}]}"#,
        );
        let action = NccoAction::Connect(Connect {
            from: Some("447700900001".into()),
            event_type: Some("synchronous".into()),
            event_url: Some(vec!["https://dialer.example.com/vonage/events".into()]),
            event_method: Some("POST".into()),
            timeout: Some(30),
            limit: Some(7200),
            endpoint: vec![ws(
                "wss://dialer.example.com/vonage/media",
                &[("call_id", "c-123")],
            )],
        });
        assert_eq!(serde_json::to_value(&action).expect("ser"), fixture);
        assert_eq!(
            serde_json::from_value::<NccoAction>(fixture).expect("de"),
            action
        );
    }

    #[test]
    fn spec_talk_stream_notify_1_5() {
        let talk = parse(
            r#"{"action":"talk","text":"Hello","language":"en-US","style":0,"premium":false,"bargeIn":false,"loop":1,"level":0}"#,
        );
        let a = NccoAction::Talk(Talk {
            text: "Hello".into(),
            language: Some("en-US".into()),
            style: Some(0),
            premium: Some(false),
            barge_in: Some(false),
            r#loop: Some(1),
            level: Some(0.0),
        });
        assert_eq!(serde_json::to_value(&a).expect("ser"), talk);
        assert_eq!(serde_json::from_value::<NccoAction>(talk).expect("de"), a);

        let stream = parse(
            r#"{"action":"stream","streamUrl":["https://.../prompt.mp3"],"level":0,"bargeIn":false,"loop":1}"#,
        );
        let s = NccoAction::Stream(Stream {
            stream_url: vec!["https://.../prompt.mp3".into()],
            level: Some(0.0),
            barge_in: Some(false),
            r#loop: Some(1),
        });
        assert_eq!(serde_json::to_value(&s).expect("ser"), stream);
        assert_eq!(serde_json::from_value::<NccoAction>(stream).expect("de"), s);

        let n = NccoAction::Notify(Notify {
            payload: json!({"mark": "m1"}),
            event_url: vec!["https://x/e".into()],
            event_method: None,
        });
        assert_eq!(
            serde_json::to_value(&n).expect("ser"),
            json!({"action":"notify","payload":{"mark":"m1"},"eventUrl":["https://x/e"]})
        );
        let half = NccoAction::Talk(Talk {
            text: "x".into(),
            level: Some(0.5),
            ..Talk::default()
        });
        assert_eq!(
            serde_json::to_value(&half).expect("ser"),
            json!({"action":"talk","text":"x","level":0.5})
        );
    }

    #[test]
    fn spec_create_call_response_1_2() {
        let r: CreateCallResponse = serde_json::from_str(
            r#"{"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356",
 "status":"started","direction":"outbound",
 "conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22"}"#,
        )
        .expect("de");
        assert_eq!(r.uuid, "63f61863-4a51-4f6b-86e1-46edebcf9356");
        assert_eq!(r.status.as_deref(), Some("started"));
    }

    fn place(md: bool) -> PlaceCall {
        PlaceCall {
            call: CallId::new(),
            to: "+447700900000".into(),
            from: "+447700900001".into(),
            ringing_timeout: Duration::from_secs(30),
            max_duration: Duration::from_secs(900),
            machine_detection: md,
            media_token: "t0k/en+=".into(),
        }
    }

    #[test]
    fn built_from_place_call() {
        let req = place(true);
        let c = req.call;
        let body = create_call(
            &req,
            "https://dialer.example.com/",
            "k3y",
            MachineDetection::default(),
            16_000,
        )
        .expect("build");
        let expected = json!({
            "to":[{"type":"phone","number":"447700900000"}],
            "from":{"type":"phone","number":"447700900001"},
            "event_url":[format!("https://dialer.example.com/vonage/events/{c}/k3y")],
            "event_method":"POST",
            "advanced_machine_detection":{"behavior":"continue","mode":"default","beep_timeout":45},
            "ringing_timer":30, "length_timer":900,
            "ncco":[{"action":"connect","from":"447700900001","eventType":"synchronous",
                "eventUrl":[format!("https://dialer.example.com/vonage/events/{c}/k3y")],
                "eventMethod":"POST","limit":900,
                "endpoint":[{"type":"websocket",
                    "uri":format!("wss://dialer.example.com/vonage/media/{c}?token=t0k%2Fen%2B%3D"),
                    "content-type":"audio/l16;rate=16000","headers":{"call_id":c.to_string()}}]}]
        });
        assert_eq!(serde_json::to_value(&body).expect("ser"), expected);
    }

    #[test]
    fn machine_detection_choices_and_clamps() {
        let mut req = place(false);
        let b = create_call(
            &req,
            "http://127.0.0.1:8080",
            "k",
            MachineDetection::default(),
            8000,
        )
        .expect("build");
        assert_eq!(b.machine_detection, None);
        assert_eq!(b.advanced_machine_detection, None);
        let NccoAction::Connect(conn) = &b.ncco.as_deref().unwrap_or_default()[0] else {
            panic!("connect")
        };
        let Endpoint::Websocket {
            uri, content_type, ..
        } = &conn.endpoint[0]
        else {
            panic!("websocket")
        };
        assert!(
            uri.starts_with("ws://127.0.0.1:8080/vonage/media/"),
            "{uri}"
        );
        assert_eq!(content_type, "audio/l16;rate=8000");

        req.machine_detection = true;
        req.ringing_timeout = Duration::from_secs(500);
        req.max_duration = Duration::from_millis(10);
        let std = MachineDetection::Standard {
            behavior: MachineBehavior::Hangup,
        };
        let b = create_call(&req, "http://h", "k", std, 16_000).expect("build");
        assert_eq!(b.machine_detection, Some(MachineBehavior::Hangup));
        assert_eq!(b.ringing_timer, Some(120));
        assert_eq!(b.length_timer, Some(1));
        let v = serde_json::to_value(&b).expect("ser");
        assert_eq!(v["machine_detection"], json!("hangup"));

        let b = create_call(&req, "http://h", "k", MachineDetection::Off, 16_000).expect("build");
        assert_eq!(b.machine_detection, None);
        let amd = MachineDetection::Advanced {
            behavior: MachineBehavior::Continue,
            mode: AmdMode::DetectBeep,
            beep_timeout: 500,
        };
        let b = create_call(&req, "http://h", "k", amd, 16_000).expect("build");
        let v = serde_json::to_value(&b).expect("ser");
        assert_eq!(
            v["advanced_machine_detection"],
            json!({"behavior":"continue","mode":"detect_beep","beep_timeout":120})
        );
    }

    #[test]
    fn bad_urls_and_numbers_are_errors() {
        let req = place(false);
        for url in ["", "ftp://x", "dialer.example.com", "https://"] {
            assert!(matches!(
                create_call(&req, url, "k", MachineDetection::Off, 16_000),
                Err(NccoError::PublicUrl(_))
            ));
        }
        let mut bad = place(false);
        bad.to = "+44 7700".into();
        assert!(matches!(
            create_call(&bad, "https://x", "k", MachineDetection::Off, 16_000),
            Err(NccoError::Number(_))
        ));
        assert_eq!(
            vonage_number("+447700900000").as_deref(),
            Ok("447700900000")
        );
    }
}
