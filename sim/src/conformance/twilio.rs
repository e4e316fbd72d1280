//! Twilio (providers.md §2): the create-call response and error body,
//! status callbacks, TwiML, the Media Streams messages both ways.
//!
//! Emulator side only for now: talky's Twilio client
//! (`talky::providers::twilio`) is being written apart; its side (parse
//! every server -> client fixture, send the client -> server ones) joins
//! here when it lands, as `vonage.rs` does for Vonage.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use warp::Filter;
use warp::filters::ws::{Message, WebSocket, Ws};

use super::{fixture, rename_key, same_shape, set_value};
use crate::persona::{Outcome, Persona, Personas, Step};
use crate::twilio::wire::{self, Form, Inbound};
use crate::twilio::{TwilioSim, TwilioSimConfig, TwilioSimHandle, api};

/// The spec's TwiML (§2.2), the one fixture that is not JSON.
const TWIML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/spec/twilio/twiml_connect_stream.xml"
));

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A form as the JSON object the callback fixtures are written as (every
/// field a string; a repeated name keeps its first value).
fn form_json(form: &Form) -> Value {
    let mut m = Map::new();
    for (k, v) in form {
        m.entry(k.clone())
            .or_insert_with(|| Value::String(v.clone()));
    }
    Value::Object(m)
}

/// The spec's create parameters (§2.1 table), every one given.
fn spec_form(to: &str, twiml: &str, callbacks: &str) -> Form {
    let mut f: Form = [
        ("To", to),
        ("From", "+447700900001"),
        ("Twiml", twiml),
        ("StatusCallback", callbacks),
        ("StatusCallbackMethod", "POST"),
        ("Timeout", "30"),
        ("TimeLimit", "900"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for e in ["initiated", "ringing", "answered", "completed"] {
        f.push(("StatusCallbackEvent".into(), e.into()));
    }
    f
}

fn with_amd(mut f: Form, callback: &str) -> Form {
    for (k, v) in [
        ("MachineDetection", "Enable"),
        ("MachineDetectionTimeout", "30"),
        ("AsyncAmd", "false"),
        ("AsyncAmdStatusCallback", callback),
        ("AsyncAmdStatusCallbackMethod", "POST"),
        ("MachineDetectionSpeechThreshold", "2400"),
        ("MachineDetectionSpeechEndThreshold", "1200"),
        ("MachineDetectionSilenceTimeout", "5000"),
    ] {
        f.push((k.into(), v.into()));
    }
    f
}

#[test]
fn emulator_reads_the_spec_twiml_create_form_and_stream_messages() {
    let doc = wire::parse_twiml(TWIML).expect("the spec's TwiML parses");
    let target = wire::stream_target(&doc).expect("a <Connect><Stream>");
    assert_eq!(target.url, "wss://dialer.example.com/twilio/media");
    assert_eq!(
        target.parameters.get("call_id").map(String::as_str),
        Some("c-123")
    );
    let cfg = TwilioSimConfig::default();
    let form = with_amd(
        spec_form(
            "+447700900000",
            TWIML,
            "https://dialer.example.com/twilio/status",
        ),
        "https://dialer.example.com/twilio/amd",
    );
    let plan = api::validate(&form, &cfg).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    assert_eq!(plan.events.len(), 4);
    assert_eq!(plan.timeout, Duration::from_secs(30));
    assert_eq!(plan.time_limit, Duration::from_secs(900));
    assert!(plan.amd.is_some_and(|a| !a.asynchronous && !a.message_end));

    // What talky sends on the stream, verbatim.
    let read = |v: Value| serde_json::from_value::<Inbound>(v);
    let media = read(fixture!("twilio/ws_media_out.json")).expect("media");
    let Inbound::Media { media: m, .. } = &media else {
        panic!("{media:?}");
    };
    assert_eq!(m.payload.len(), 216);
    assert!(matches!(
        read(fixture!("twilio/ws_mark_out.json")),
        Ok(Inbound::Mark { ref mark, .. }) if mark.name == "reply-7"
    ));
    assert!(matches!(
        read(fixture!("twilio/ws_clear.json")),
        Ok(Inbound::Clear { .. })
    ));
    // And it is strict: a renamed key or another event is refused.
    let f = fixture!("twilio/ws_media_out.json");
    assert!(read(rename_key(&f, "/media/payload", "data")).is_err());
    assert!(read(rename_key(&f, "/streamSid", "stream_sid")).is_err());
    assert!(read(set_value(&f, "/event", json!("stop"))).is_err());
    let f = fixture!("twilio/ws_mark_out.json");
    assert!(read(rename_key(&f, "/mark/name", "label")).is_err());
}

/// A stand-in for talky: records the status callbacks and, on the stream,
/// every message; after `start` it sends the spec's `media`, `mark` and
/// `clear` (the spec's `"MZ..."` replaced by the stream's own sid, which
/// the emulator checks).
struct Receiver {
    addr: std::net::SocketAddr,
    hooks: Arc<Mutex<Vec<Form>>>,
    texts: Arc<Mutex<Vec<Value>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let texts = Arc::new(Mutex::new(Vec::new()));
        let h = hooks.clone();
        let status = warp::post()
            .and(warp::path!("twilio" / "status" / String))
            .and(warp::body::bytes())
            .map(move |_call: String, body: bytes::Bytes| {
                lock(&h).push(wire::parse_form(&body).expect("a form"));
                warp::reply()
            });
        let t = texts.clone();
        let media = warp::path!("twilio" / "media" / String)
            .and(warp::ws())
            .map(move |_call: String, ws: Ws| {
                let t = t.clone();
                ws.on_upgrade(move |s| peer(s, t))
            });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(warp::serve(status.or(media)).incoming(listener).run());
        Self {
            addr,
            hooks,
            texts,
            _task: task,
        }
    }

    fn twiml(&self) -> String {
        TWIML.replace(
            "wss://dialer.example.com/twilio/media",
            &format!("ws://{}/twilio/media/c-123", self.addr),
        )
    }

    fn callbacks(&self) -> String {
        format!("http://{}/twilio/status/c-123", self.addr)
    }

    fn hook(&self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        lock(&self.hooks).iter().map(form_json).find(|v| pred(v))
    }

    fn text(&self, event: &str) -> Option<Value> {
        lock(&self.texts)
            .iter()
            .find(|v| v["event"] == event)
            .cloned()
    }
}

async fn peer(socket: WebSocket, texts: Arc<Mutex<Vec<Value>>>) {
    let (mut sink, mut stream) = socket.split();
    while let Some(Ok(m)) = stream.next().await {
        let Ok(t) = m.to_str() else { continue };
        let v: Value = serde_json::from_str(t).expect("stream text is JSON");
        let start = v["event"] == "start";
        let sid = v["streamSid"].clone();
        if v["event"] != "media" || !lock(&texts).iter().any(|x| x["event"] == "media") {
            lock(&texts).push(v);
        }
        if start {
            for f in [
                fixture!("twilio/ws_media_out.json"),
                fixture!("twilio/ws_mark_out.json"),
                fixture!("twilio/ws_clear.json"),
            ] {
                let f = set_value(&f, "/streamSid", sid.clone());
                let _ = sink.send(Message::text(f.to_string())).await;
            }
        }
    }
}

async fn post(sim: &TwilioSimHandle, form: &Form) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/Calls.json", sim.account_url()))
        .basic_auth(sim.account_sid(), Some(sim.auth_token()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).expect("form"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("POST");
    (r.status().as_u16(), r.json().await.expect("JSON"))
}

/// What the emulator really sends, read off the wire, has the shape of
/// the spec's fixtures; the emulator takes the spec's TwiML and the
/// spec's stream messages.
#[tokio::test]
async fn emulator_on_the_wire() {
    let rx = Receiver::start().await;
    let personas = Personas::from_list(vec![Persona {
        name: "presses".into(),
        numbers: vec!["447700900300".into()],
        default: true,
        ring_ms: 10,
        outcome: Outcome::Answer,
        steps: vec![
            Step::Press { digits: "1".into() },
            Step::Pause { ms: 400 },
            Step::HangUp,
        ],
    }]);
    let sim = TwilioSim::start(TwilioSimConfig {
        personas,
        machine_detection_delay: Duration::from_millis(100),
        initiated_to_ringing: Duration::from_millis(10),
        ..TwilioSimConfig::default()
    })
    .await
    .expect("sim");
    let form = spec_form("+447700900300", &rx.twiml(), &rx.callbacks());
    let (status, created) = post(&sim, &form).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        same_shape(&fixture!("twilio/create_call_response.json"), &created),
        Ok(())
    );
    let sid = created["sid"].as_str().expect("sid").to_owned();
    let (status, amd_created) = post(&sim, &with_amd(form.clone(), &rx.callbacks())).await;
    assert_eq!(status, 201, "{amd_created}");
    let amd_sid = amd_created["sid"].as_str().expect("sid").to_owned();
    for s in [&sid, &amd_sid] {
        assert!(
            sim.wait_ended(s, Duration::from_secs(15)).await.is_some(),
            "{s} did not end"
        );
    }
    // The resource afterwards has the same shape.
    let got: Value = reqwest::Client::new()
        .get(format!("{}/Calls/{sid}.json", sim.account_url()))
        .basic_auth(sim.account_sid(), Some(sim.auth_token()))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        same_shape(&fixture!("twilio/create_call_response.json"), &got),
        Ok(())
    );
    // An error body.
    let mut bad = form.clone();
    bad[0].1 = "12".into();
    let (status, err) = post(&sim, &bad).await;
    assert_eq!(status, 400);
    assert_eq!(same_shape(&fixture!("twilio/error.json"), &err), Ok(()));
    assert_eq!(err["code"], 21211);

    // The status callbacks.
    let of = |s: &'static str, amd: bool| {
        let sid = if amd { amd_sid.clone() } else { sid.clone() };
        move |v: &Value| v["CallStatus"] == s && v["CallSid"] == sid.as_str()
    };
    for (name, fix, got) in [
        (
            "ringing",
            fixture!("twilio/status_callback.json"),
            rx.hook(of("ringing", false)),
        ),
        (
            "completed",
            fixture!("twilio/status_callback_completed.json"),
            rx.hook(of("completed", false)),
        ),
        (
            "completed with AMD",
            fixture!("twilio/status_callback_answered_by.json"),
            rx.hook(of("completed", true)),
        ),
    ] {
        let got = got.unwrap_or_else(|| panic!("no {name} callback"));
        assert_eq!(same_shape(&fix, &got), Ok(()), "{name}: {got}");
    }
    // Every field the spec names, on every callback.
    let common = fixture!("twilio/status_callback.json");
    for h in lock(&rx.hooks).iter().map(form_json) {
        assert_eq!(same_shape(&common, &h), Ok(()), "{h}");
    }

    // The stream.
    for (event, fix) in [
        ("connected", fixture!("twilio/ws_connected.json")),
        ("start", fixture!("twilio/ws_start.json")),
        ("media", fixture!("twilio/ws_media.json")),
        ("dtmf", fixture!("twilio/ws_dtmf.json")),
        ("mark", fixture!("twilio/ws_mark.json")),
        ("stop", fixture!("twilio/ws_stop.json")),
    ] {
        let got = rx
            .text(event)
            .unwrap_or_else(|| panic!("the emulator sent no {event}"));
        assert_eq!(same_shape(&fix, &got), Ok(()), "{event}: {got}");
    }
    // The spec's mark came back (returned by the spec's clear).
    assert_eq!(
        rx.text("mark").map(|v| v["mark"]["name"].clone()),
        Some(json!("reply-7"))
    );
    let rec = sim.call(&sid).expect("record");
    assert_eq!(rec.media_in, 1);
    assert_eq!(rec.clears.len(), 1);
    // Echoed once: returned by the clear, or played just before it.
    let echoed: Vec<&str> = rec.marks_echoed.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(echoed, vec!["reply-7"]);
    assert!(rec.errors.is_empty(), "{:?}", rec.errors);

    // The check can fail: mutated fixtures against the real output.
    let start = rx.text("start").expect("start");
    let fix = fixture!("twilio/ws_start.json");
    assert!(same_shape(&rename_key(&fix, "/start/callSid", "call_sid"), &start).is_err());
    assert!(same_shape(&set_value(&fix, "/sequenceNumber", json!(1)), &start).is_err());
    let done = rx.hook(of("completed", false)).expect("completed");
    let fix = fixture!("twilio/status_callback_answered_by.json");
    assert!(
        same_shape(&fix, &done).is_err(),
        "no AnsweredBy without AMD"
    );
    let fix = fixture!("twilio/create_call_response.json");
    assert!(same_shape(&set_value(&fix, "/status", json!(0)), &created).is_err());
    sim.stop().await;
}
