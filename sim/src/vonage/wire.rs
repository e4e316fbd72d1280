//! The emulator's own reading of what talky sends Vonage: the endpoint
//! objects of the create-call body (spec: providers.md §1.2) and the NCCO
//! actions (§1.5), written from the spec, not from talky's client types,
//! so a client that drifts from the spec is caught here, not copied.
//! `conformance` holds both sides to the spec's JSON examples.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// An endpoint object, tagged by `type` (§1.2: `phone`, `sip`,
/// `websocket`, `vbc`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Endpoint {
    /// E.164 digits without `+`; `dtmfAnswer` digits sent on answer.
    Phone {
        /// The number.
        number: String,
        /// Digits sent on answer (`p` = pause).
        #[serde(rename = "dtmfAnswer", default)]
        dtmf_answer: Option<String>,
    },
    /// A SIP URI.
    Sip {
        /// The URI.
        uri: String,
        /// SIP headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A WebSocket Vonage opens.
    Websocket {
        /// `ws://` or `wss://`.
        uri: String,
        /// `audio/l16;rate=8000|16000|24000`.
        #[serde(rename = "content-type")]
        content_type: String,
        /// Flat metadata, at most 512 bytes.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A Vonage Business Communications extension.
    Vbc {
        /// The extension.
        extension: String,
    },
}

/// One NCCO action, tagged by `action` (the ones of §1.5).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Connect the call to endpoints.
    Connect(Connect),
    /// Speak text.
    Talk(Talk),
    /// Play an audio file.
    Stream(Stream),
    /// Record the call.
    Record(Record),
    /// Collect DTMF (or speech).
    Input(Input),
    /// Post a payload to `eventUrl`.
    Notify(Notify),
}

/// `connect`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connect {
    /// Caller id.
    #[serde(default)]
    pub from: Option<String>,
    /// `synchronous` or `asynchronous`.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Where leg events go.
    #[serde(default)]
    pub event_url: Option<Vec<String>>,
    /// `POST` or `GET`.
    #[serde(default)]
    pub event_method: Option<String>,
    /// Ring seconds.
    #[serde(default)]
    pub timeout: Option<u32>,
    /// Max leg seconds.
    #[serde(default)]
    pub limit: Option<u32>,
    /// The endpoints.
    pub endpoint: Vec<Endpoint>,
}

/// `talk`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Talk {
    /// At most 1500 characters.
    pub text: String,
    /// BCP 47 language.
    #[serde(default)]
    pub language: Option<String>,
    /// Voice style.
    #[serde(default)]
    pub style: Option<u32>,
    /// Premium voice.
    #[serde(default)]
    pub premium: Option<bool>,
    /// Keypad input stops it.
    #[serde(default)]
    pub barge_in: Option<bool>,
    /// Repetitions, 0 = forever.
    #[serde(default)]
    pub r#loop: Option<u32>,
    /// Volume -1..1.
    #[serde(default)]
    pub level: Option<f32>,
}

/// `stream`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    /// One mp3 or wav URL.
    pub stream_url: Vec<String>,
    /// Volume -1..1.
    #[serde(default)]
    pub level: Option<f32>,
    /// Keypad input stops it.
    #[serde(default)]
    pub barge_in: Option<bool>,
    /// Repetitions, 0 = forever.
    #[serde(default)]
    pub r#loop: Option<u32>,
}

/// `record` (every field optional).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// `mp3`, `wav` or `ogg`.
    #[serde(default)]
    pub format: Option<String>,
    /// `conversation`.
    #[serde(default)]
    pub split: Option<String>,
    /// 1..32.
    #[serde(default)]
    pub channels: Option<u32>,
    /// Where the completion goes.
    #[serde(default)]
    pub event_url: Option<Vec<String>>,
}

/// `input`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    /// `dtmf` and/or `speech`.
    pub r#type: Vec<String>,
    /// DTMF settings.
    #[serde(default)]
    pub dtmf: Option<Value>,
    /// Where the result goes.
    #[serde(default)]
    pub event_url: Option<Vec<String>>,
}

/// `notify`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notify {
    /// Any JSON.
    pub payload: Value,
    /// Where it goes.
    pub event_url: Vec<String>,
    /// `POST` or `GET`.
    #[serde(default)]
    pub event_method: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_spec_connect_and_refuses_what_the_spec_does_not_name() {
        // The spec's connect (the fixture), then a talk and an input of §1.5.
        let ncco = serde_json::json!([
            crate::conformance::fixture!("vonage/ncco_connect.json"),
            {"action":"talk","text":"Hello","language":"en-US","style":0,"premium":false,
             "bargeIn":false,"loop":1,"level":0},
            {"action":"input","type":["dtmf"],"dtmf":{"maxDigits":4}},
        ]);
        let actions: Vec<Action> = serde_json::from_value(ncco).expect("the spec's NCCO");
        let Action::Connect(c) = &actions[0] else {
            panic!("connect first: {actions:?}");
        };
        assert_eq!(
            c.endpoint,
            vec![Endpoint::Websocket {
                uri: "wss://dialer.example.com/vonage/media".into(),
                content_type: "audio/l16;rate=16000".into(),
                headers: [("call_id".to_string(), "c-123".to_string())].into(),
            }]
        );
        assert_eq!(c.event_method.as_deref(), Some("POST"));
        let unknown = serde_json::json!([{"action":"dance"}]);
        assert!(serde_json::from_value::<Vec<Action>>(unknown).is_err());
        let no_endpoint = serde_json::json!([{"action":"connect"}]);
        assert!(serde_json::from_value::<Vec<Action>>(no_endpoint).is_err());
        let phone: Endpoint =
            serde_json::from_value(serde_json::json!({"type":"phone","number":"447700900000"}))
                .expect("phone");
        assert_eq!(
            phone,
            Endpoint::Phone {
                number: "447700900000".into(),
                dtmf_answer: None
            }
        );
    }
}
