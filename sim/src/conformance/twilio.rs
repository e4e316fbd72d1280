//! Twilio (providers.md §2): the create-call request, response and error
//! body, status callbacks and their signature, TwiML, the Media Streams
//! messages both ways; each held against the emulator and against talky's
//! client (`talky::providers::twilio`), as `vonage.rs` does for Vonage.
//!
//! Client side: the create-call form our client sends (built, and as the
//! emulator received it over the wire) has the shape and values of
//! `create_call_request.json`; the client reads the call resource and maps
//! the error body to port errors; the status callback parser takes every
//! callback fixture; the signature verifier verifies the fixture's
//! signature; the media socket codec parses every inbound stream message
//! and writes `media` / `mark` / `clear` exactly as the fixtures show.
//! Where the spec says `(unconfirmed)`, a deviation is tolerated (tested
//! one each where the client is the one to tolerate it).

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
    // The spec's request (what talky sends), verbatim.
    let mut form = Form::new();
    for (k, v) in fixture!("twilio/create_call_request.json")
        .as_object()
        .expect("an object")
    {
        let values = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
        for v in values {
            form.push((k.clone(), v.as_str().expect("a string field").to_owned()));
        }
    }
    let plan = api::validate(&form, &cfg).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    assert_eq!(plan.events.len(), 4);
    assert_eq!(plan.timeout, Duration::from_secs(30));
    assert!(plan.amd.is_some_and(|a| a.asynchronous && a.message_end));

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

// ----- talky's client ------------------------------------------------------

mod client {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::{Map, Value, json};
    use talky::config::Secret;
    use talky::providers::breaker::CircuitBreaker;
    use talky::providers::retry::RetryPolicy;
    use talky::providers::twilio::socket::{self as codec, StreamEvent};
    use talky::providers::twilio::twiml::parse_stream;
    use talky::providers::twilio::{
        AnsweredBy, CallResource, MediaBridge, RequestValidator, SignatureError, TwilioCallback,
        TwilioClient, TwilioConfig, TwilioStatus,
    };
    use talky::providers::vonage::CallbackKey;
    use talky_actors::ids::CallId;
    use talky_actors::ports::{
        LegState, MediaIn, MediaOut, PlaceCall, PortError, ProviderCallId, TelephonyEvent,
        TelephonyPort,
    };
    use warp::Filter;

    use crate::conformance::{fixture, rename_key, same_shape, same_shape_except, set_value};
    use crate::persona::{Outcome, Persona, Personas};
    use crate::twilio::{HangUpSide, TwilioSim, TwilioSimConfig};

    const STREAM: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";
    const ACCOUNT: &str = "AC00000000000000000000000000000000";
    const CALL_SID: &str = "CA00000000000000000000000000000000";
    /// The spec's public host (§2.2's `wss://dialer.example.com`).
    const PUBLIC: &str = "https://dialer.example.com";
    /// Fields of the request fixture our client sends only when a call
    /// wants machine detection.
    const AMD_FIELDS: [&str; 4] = [
        "/MachineDetection",
        "/AsyncAmd",
        "/AsyncAmdStatusCallback",
        "/AsyncAmdStatusCallbackMethod",
    ];

    fn config(base: &str, account: &str, token: &str) -> TwilioConfig {
        TwilioConfig {
            api_base_url: base.into(),
            account_sid: account.into(),
            auth_token: Secret::new(token),
            public_url: PUBLIC.into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy::new(0, Duration::from_millis(10), Duration::from_secs(1)),
            callback_key: CallbackKey::new(b"conformance-key"),
            ..TwilioConfig::default()
        }
    }

    fn client(cfg: TwilioConfig) -> TwilioClient {
        let breaker = Arc::new(CircuitBreaker::new("twilio", 100, Duration::from_secs(30)));
        TwilioClient::new(cfg, breaker).expect("client")
    }

    /// The spec's call (§2.1's numbers, 30 s ring, 900 s talk).
    fn place(to: &str, amd: bool) -> PlaceCall {
        PlaceCall {
            call: CallId::new(),
            to: to.into(),
            from: "+447700900001".into(),
            ringing_timeout: Duration::from_secs(30),
            max_duration: Duration::from_secs(900),
            machine_detection: amd,
            media_token: "tk-secret-1".into(),
        }
    }

    /// A form as the request fixture is written: one JSON string per
    /// field, an array for a repeated one.
    fn form_json<K: AsRef<str>>(form: &[(K, String)]) -> Value {
        let mut m = Map::new();
        for (k, v) in form {
            let v = Value::String(v.clone());
            match m.get_mut(k.as_ref()) {
                Some(Value::Array(all)) => all.push(v),
                Some(one) => *one = Value::Array(vec![one.clone(), v]),
                None => {
                    m.insert(k.as_ref().to_owned(), v);
                }
            }
        }
        Value::Object(m)
    }

    /// The create form of `req` has the fixture's shape, and the values
    /// the spec asks for: E.164 numbers, `<Connect><Stream>` to our media
    /// socket with the per-call secret in its path (not its query) and the
    /// call id as a `<Parameter>`, the status callback with every event,
    /// ring and talk limits, and asynchronous detection when asked.
    fn check_create_form(sent: &Value, req: &PlaceCall, amd: bool) {
        let fix = fixture!("twilio/create_call_request.json");
        if amd {
            assert_eq!(same_shape(&fix, sent), Ok(()), "{sent}");
        } else {
            assert_eq!(same_shape_except(&fix, sent, &AMD_FIELDS), Ok(()), "{sent}");
            for f in AMD_FIELDS {
                assert!(sent.pointer(f).is_none(), "{f} without detection: {sent}");
            }
        }
        assert_eq!(sent["To"], fix["To"]);
        assert_eq!(sent["From"], fix["From"]);
        let twiml = sent["Twiml"].as_str().expect("Twiml");
        let stream = parse_stream(twiml).expect("our TwiML parses");
        let spec = parse_stream(fix["Twiml"].as_str().expect("fixture TwiML")).expect("spec");
        let call = req.call.to_string();
        assert_eq!(
            stream.url,
            format!("{}/{call}/{}", spec.url, req.media_token),
            "the spec's stream URL, our call and its secret below it"
        );
        assert!(!stream.url.contains('?'), "no query (§2.2: maybe dropped)");
        assert_eq!(stream.parameter("call_id"), Some(call.as_str()));
        assert_eq!(
            stream.parameters.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            spec.parameters.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "the spec's parameters"
        );
        let status_url = sent["StatusCallback"].as_str().expect("StatusCallback");
        assert!(
            status_url.starts_with(&format!("{PUBLIC}/twilio/status/{call}/")),
            "{status_url}"
        );
        assert_eq!(sent["StatusCallbackMethod"], "POST");
        assert_eq!(sent["StatusCallbackEvent"], fix["StatusCallbackEvent"]);
        assert_eq!(sent["Timeout"], fix["Timeout"]);
        assert_eq!(sent["TimeLimit"], fix["TimeLimit"]);
        if amd {
            assert_eq!(sent["MachineDetection"], fix["MachineDetection"]);
            assert_eq!(sent["AsyncAmd"], "true");
            assert_eq!(sent["AsyncAmdStatusCallback"], status_url);
            assert_eq!(sent["AsyncAmdStatusCallbackMethod"], "POST");
        }
    }

    #[test]
    fn client_create_form_is_the_spec_request() {
        let c = client(config("http://127.0.0.1:1", ACCOUNT, "token"));
        for amd in [true, false] {
            let req = place("+447700900000", amd);
            let form = c.create_call_form(&req).expect("form");
            check_create_form(&form_json(&form), &req, amd);
        }
        // The check can fail.
        let req = place("+447700900000", true);
        let sent = form_json(&c.create_call_form(&req).expect("form"));
        let fix = fixture!("twilio/create_call_request.json");
        assert!(same_shape(&rename_key(&fix, "/Timeout", "RingTimeout"), &sent).is_err());
        assert!(
            same_shape(
                &set_value(&fix, "/StatusCallbackEvent", json!("all")),
                &sent
            )
            .is_err()
        );
    }

    /// Our client against the emulator: the emulator takes the form and
    /// the Basic auth, our client reads its `201` (the sid), the form as
    /// the emulator received it is the spec's request, and the hang-up
    /// and the call resource work on the same call.
    #[tokio::test]
    async fn client_places_reads_and_hangs_up_on_the_emulator() {
        let personas = Personas::from_list(vec![Persona {
            name: "rings".into(),
            numbers: vec!["447700900000".into()],
            default: true,
            ring_ms: 20_000,
            outcome: Outcome::Answer,
            steps: vec![],
        }]);
        let sim = TwilioSim::start(TwilioSimConfig {
            personas,
            initiated_to_ringing: Duration::from_millis(10),
            ..TwilioSimConfig::default()
        })
        .await
        .expect("sim");
        let c = client(config(
            &sim.base_url(),
            &sim.account_sid(),
            &sim.auth_token(),
        ));
        let req = place("+447700900000", true);
        let ProviderCallId(sid) = c.place_call(req.clone()).await.expect("201");
        let rec = sim
            .wait_for(&sid, Duration::from_secs(5), |r| r.status == "ringing")
            .await
            .expect("rings");
        check_create_form(&form_json(&rec.request), &req, true);
        assert_eq!(
            c.leg_state(ProviderCallId(sid.clone())).await,
            Ok(Some(LegState::Live { answered: false }))
        );
        c.hang_up(ProviderCallId(sid.clone()))
            .await
            .expect("hang up");
        let over = sim
            .wait_ended(&sid, Duration::from_secs(5))
            .await
            .expect("ended");
        assert_eq!(over.hang_up, Some(HangUpSide::Rest));
        assert_eq!(over.status, "canceled");
        assert_eq!(
            c.leg_state(ProviderCallId(sid)).await,
            Ok(Some(LegState::Ended("canceled".into())))
        );
        sim.stop().await;
    }

    /// A stand-in for Twilio's REST API answering every request with
    /// `status` and `body`.
    async fn answering(status: u16, body: Value) -> String {
        let route = warp::any().map(move || {
            warp::reply::with_status(
                warp::reply::json(&body),
                warp::http::StatusCode::from_u16(status).expect("status"),
            )
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(warp::serve(route).incoming(listener).run());
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn client_reads_the_spec_call_resource_and_error_body() {
        let r: CallResource =
            serde_json::from_value(fixture!("twilio/create_call_response.json")).expect("parses");
        assert_eq!(r.sid, CALL_SID);
        assert_eq!(r.call_status(), TwilioStatus::Queued);
        assert_eq!(r.to.as_deref(), Some("+447700900000"));
        assert_eq!(r.from.as_deref(), Some("+447700900001"));
        assert_eq!(r.direction.as_deref(), Some("outbound-api"));

        // Over HTTP: the 201 gives the sid, the resource the leg's state.
        let base = answering(201, fixture!("twilio/create_call_response.json")).await;
        let c = client(config(&base, ACCOUNT, "token"));
        let id = c.place_call(place("+447700900000", true)).await;
        assert_eq!(id, Ok(ProviderCallId(CALL_SID.into())));
        assert_eq!(
            c.leg_state(ProviderCallId(CALL_SID.into())).await,
            Ok(Some(LegState::Live { answered: false })),
            "queued: not yet answered"
        );

        // The error body: code, message and more_info in a refusal.
        let err = fixture!("twilio/error.json");
        let base = answering(400, err.clone()).await;
        let c = client(config(&base, ACCOUNT, "token"));
        match c.place_call(place("+447700900000", true)).await {
            Err(PortError::Rejected(m)) => {
                for part in ["code", "message", "more_info"] {
                    let want = err[part].to_string();
                    let want = want.trim_matches('"');
                    assert!(m.contains(want), "{part} {want:?} not in {m:?}");
                }
            }
            other => panic!("a 400 is a refusal: {other:?}"),
        }
        // The same body on a 429 and a 5xx: rate limited, unavailable.
        let base = answering(429, set_value(&err, "/status", json!(429))).await;
        let c = client(config(&base, ACCOUNT, "token"));
        assert_eq!(
            c.place_call(place("+447700900000", true)).await,
            Err(PortError::RateLimited { retry_after: None })
        );
        let base = answering(503, set_value(&err, "/status", json!(503))).await;
        let c = client(config(&base, ACCOUNT, "token"));
        assert!(matches!(
            c.place_call(place("+447700900000", true)).await,
            Err(PortError::Unavailable(m)) if m.contains("21211")
        ));
    }

    /// A callback fixture (a JSON object of its string fields) as the form
    /// Twilio posts.
    fn params(v: &Value) -> Vec<(String, String)> {
        v.as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string field").to_owned()))
            .collect()
    }

    fn callback(v: &Value) -> TwilioCallback {
        TwilioCallback::from_params(&params(v))
            .unwrap_or_else(|e| panic!("the client rejects the spec's {v}: {e}"))
    }

    #[test]
    fn client_parses_every_status_callback_fixture() {
        use TelephonyEvent as T;
        let cases = [
            (
                fixture!("twilio/status_callback.json"),
                TwilioStatus::Ringing,
                None,
                None,
                vec![T::Ringing],
            ),
            (
                fixture!("twilio/status_callback_completed.json"),
                TwilioStatus::Completed,
                Some(12),
                None,
                vec![T::Completed],
            ),
            (
                fixture!("twilio/status_callback_answered_by.json"),
                TwilioStatus::Completed,
                Some(12),
                Some(AnsweredBy::MachineEndBeep),
                // The verdict before the end it came with.
                vec![T::Machine, T::Completed],
            ),
        ];
        for (v, status, duration, answered_by, events) in cases {
            let cb = callback(&v);
            assert_eq!(cb.call_sid, CALL_SID, "{v}");
            assert_eq!(cb.account_sid.as_deref(), Some(ACCOUNT), "{v}");
            assert_eq!(cb.status, Some(status), "{v}");
            assert_eq!(cb.call_duration_secs, duration, "{v}");
            assert_eq!(cb.answered_by, answered_by, "{v}");
            assert_eq!(cb.telephony(), events, "{v}");
            assert_eq!(cb.from.as_deref(), Some("+447700900001"));
            assert_eq!(cb.to.as_deref(), Some("+447700900000"));
            assert_eq!(cb.direction.as_deref(), Some("outbound-api"));
            assert_eq!(cb.callback_source.as_deref(), Some("call-progress-events"));
            let seq: u64 = v["SequenceNumber"]
                .as_str()
                .expect("seq")
                .parse()
                .expect("n");
            assert_eq!(cb.sequence_number, Some(seq));
            assert_eq!(
                cb.timestamp.map(|t| t.to_rfc2822()),
                Some("Wed, 1 Jan 2020 12:00:00 +0000".to_owned())
            );
            assert!(!cb.is_amd());
        }
        // Every status and verdict the spec lists is read as itself.
        for s in [
            "queued",
            "initiated",
            "ringing",
            "in-progress",
            "completed",
            "busy",
            "failed",
            "no-answer",
            "canceled",
        ] {
            let v = set_value(
                &fixture!("twilio/status_callback.json"),
                "/CallStatus",
                json!(s),
            );
            let cb = callback(&v);
            assert_eq!(cb.status.as_ref().map(TwilioStatus::as_str), Some(s));
            assert!(!matches!(cb.status, Some(TwilioStatus::Unknown(_))), "{s}");
        }
        for a in [
            "human",
            "machine_start",
            "machine_end_beep",
            "machine_end_silence",
            "machine_end_other",
            "fax",
            "unknown",
        ] {
            let v = set_value(
                &fixture!("twilio/status_callback_answered_by.json"),
                "/AnsweredBy",
                json!(a),
            );
            let by = callback(&v).answered_by.expect("a verdict");
            assert_eq!(by.as_str(), a);
            assert!(!matches!(by, AnsweredBy::Other(_)), "{a}");
        }
        // And it can fail: no CallSid is no callback.
        let v = rename_key(&fixture!("twilio/status_callback.json"), "/CallSid", "Sid");
        assert!(TwilioCallback::from_params(&params(&v)).is_err());
    }

    #[test]
    fn client_verifies_the_signature_fixture() {
        let f = fixture!("twilio/signed_status_callback.json");
        let v = RequestValidator::new(&Secret::new(f["auth_token"].as_str().expect("token")));
        let url = f["url"].as_str().expect("url");
        let p = params(&f["params"]);
        let sig = f["signature"].as_str().expect("signature");
        assert_eq!(v.verify(url, &p, Some(sig)), Ok(()));
        assert_eq!(v.sign(url, &p), sig);
        // §2.4.4: the URL with its explicit default port verifies too.
        let ported = url.replacen("dialer.example.com", "dialer.example.com:443", 1);
        assert_eq!(v.verify(&ported, &p, Some(sig)), Ok(()));
        // The form order does not matter (sorted by name).
        let mut reversed = p.clone();
        reversed.reverse();
        assert_eq!(v.verify(url, &reversed, Some(sig)), Ok(()));
        // And it can fail.
        let mut tampered = p.clone();
        tampered[0].1.push('x');
        assert_eq!(
            v.verify(url, &tampered, Some(sig)),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            v.verify(&format!("{url}x"), &p, Some(sig)),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(v.verify(url, &p, None), Err(SignatureError::MissingHeader));
    }

    fn event(v: &Value) -> StreamEvent {
        StreamEvent::parse(&v.to_string())
            .unwrap_or_else(|e| panic!("the client rejects the spec's {v}: {e}"))
    }

    #[test]
    fn client_parses_every_inbound_stream_message() {
        let StreamEvent::Connected(c) = event(&fixture!("twilio/ws_connected.json")) else {
            panic!("connected");
        };
        assert_eq!(c.protocol.as_deref(), Some("Call"));
        assert_eq!(c.version.as_deref(), Some("1.0.0"));
        let StreamEvent::Start(start) = event(&fixture!("twilio/ws_start.json")) else {
            panic!("start");
        };
        assert_eq!(start.sequence_number, Some(1));
        assert_eq!(start.stream_sid, STREAM);
        assert_eq!(start.account_sid.as_deref(), Some(ACCOUNT));
        assert_eq!(start.call_sid, CALL_SID);
        assert_eq!(start.tracks, ["inbound"]);
        assert_eq!(
            start.custom_parameters.get("call_id").map(String::as_str),
            Some("c-123")
        );
        assert!(start.media_format.is_supported());
        let StreamEvent::Media(m) = event(&fixture!("twilio/ws_media.json")) else {
            panic!("media");
        };
        assert_eq!(
            (m.sequence_number, m.chunk, m.timestamp_ms),
            (Some(3), Some(2), Some(40))
        );
        assert_eq!(m.stream_sid.as_deref(), Some(STREAM));
        assert_eq!(m.track.as_deref(), Some("inbound"));
        assert_eq!(m.payload, vec![0xFF; 160], "160 bytes of μ-law silence");
        let StreamEvent::Dtmf(d) = event(&fixture!("twilio/ws_dtmf.json")) else {
            panic!("dtmf");
        };
        assert_eq!((d.digit, d.sequence_number), ('1', Some(5)));
        let StreamEvent::Mark(k) = event(&fixture!("twilio/ws_mark.json")) else {
            panic!("mark");
        };
        assert_eq!((k.name.as_str(), k.sequence_number), ("reply-7", Some(6)));
        let StreamEvent::Stop(s) = event(&fixture!("twilio/ws_stop.json")) else {
            panic!("stop");
        };
        assert_eq!(s.sequence_number, Some(9));
        assert_eq!(s.call_sid.as_deref(), Some(CALL_SID));
        assert_eq!(s.account_sid.as_deref(), Some(ACCOUNT));

        // Through the bridge: 20 ms of the callee at 16 kHz, the key, the
        // mark we sent.
        let mut bridge = MediaBridge::new(&start).expect("the spec's format");
        let audio = bridge.inbound(event(&fixture!("twilio/ws_media.json")));
        assert!(
            matches!(audio.as_slice(), [MediaIn::Audio(f)] if f.len() == 640),
            "{} items",
            audio.len()
        );
        assert_eq!(
            bridge.inbound(event(&fixture!("twilio/ws_dtmf.json"))),
            [MediaIn::Dtmf('1')]
        );
        bridge.outbound(MediaOut::Mark("reply-7".into()));
        assert_eq!(
            bridge.inbound(event(&fixture!("twilio/ws_mark.json"))),
            [MediaIn::Mark("reply-7".into())]
        );
        // And it can fail: a renamed field is refused.
        let f = fixture!("twilio/ws_start.json");
        assert!(
            StreamEvent::parse(&rename_key(&f, "/start/callSid", "call_sid").to_string()).is_err()
        );
    }

    /// Payloads that are not multiples of 160 bytes (the spec: good
    /// practice, unconfirmed as a rule): the client takes them and makes
    /// whole frames of what arrives.
    #[test]
    fn client_tolerates_payloads_of_any_size() {
        let StreamEvent::Start(start) = event(&fixture!("twilio/ws_start.json")) else {
            panic!("start");
        };
        let mut bridge = MediaBridge::new(&start).expect("bridge");
        let odd = |n: usize| {
            use base64::Engine;
            let payload = base64::engine::general_purpose::STANDARD.encode(vec![0xFFu8; n]);
            set_value(
                &fixture!("twilio/ws_media.json"),
                "/media/payload",
                json!(payload),
            )
        };
        let first = bridge.inbound(event(&odd(100)));
        assert!(first.is_empty(), "12.5 ms: no whole frame yet");
        let second = bridge.inbound(event(&odd(100)));
        assert!(
            matches!(second.as_slice(), [MediaIn::Audio(f)] if f.len() == 640),
            "200 bytes: one 20 ms frame"
        );
    }

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).expect("JSON")
    }

    #[test]
    fn client_writes_media_mark_and_clear_as_the_spec_shows() {
        assert_eq!(
            parsed(&codec::media_message(STREAM, &[0xFF; 160])),
            fixture!("twilio/ws_media_out.json")
        );
        assert_eq!(
            parsed(&codec::mark_message(STREAM, "reply-7")),
            fixture!("twilio/ws_mark_out.json")
        );
        assert_eq!(
            parsed(&codec::clear_message(STREAM)),
            fixture!("twilio/ws_clear.json")
        );
        // What the bridge writes for the call: whole 160-byte payloads,
        // the mark, the clear, with the stream's sid.
        let StreamEvent::Start(start) = event(&fixture!("twilio/ws_start.json")) else {
            panic!("start");
        };
        let mut bridge = MediaBridge::new(&start).expect("bridge");
        let out = bridge.outbound(MediaOut::Audio(vec![0; 640 * 3]));
        assert_eq!(out.len(), 3, "three 20 ms frames");
        for m in &out {
            let v = parsed(m);
            assert_eq!(
                same_shape(&fixture!("twilio/ws_media_out.json"), &v),
                Ok(())
            );
            assert_eq!(v["streamSid"], STREAM);
            let len = v["media"]["payload"].as_str().map_or(0, str::len);
            assert_eq!(len, 216, "160 bytes, base64");
        }
        let mark = bridge.outbound(MediaOut::Mark("reply-7".into()));
        assert_eq!(
            mark.iter().map(|m| parsed(m)).collect::<Vec<_>>(),
            [fixture!("twilio/ws_mark_out.json")]
        );
        let clear = bridge.outbound(MediaOut::Clear);
        assert_eq!(
            clear.iter().map(|m| parsed(m)).collect::<Vec<_>>(),
            [fixture!("twilio/ws_clear.json")]
        );
        // And each is what Twilio accepts (the emulator's strict reader).
        for m in out.iter().chain(&mark).chain(&clear) {
            assert!(
                serde_json::from_str::<crate::twilio::wire::Inbound>(m).is_ok(),
                "{m}"
            );
        }
    }
}

/// The cold transfer (spec §2: `POST …/Calls/{CallSid}.json` with
/// `Twiml=<Response><Dial callerId><Number>`): talky's TwiML reads as the
/// fixture's, and the emulator takes the fixture and refuses anything
/// else.
#[test]
fn transfer_twiml_on_both_sides() {
    use talky::providers::twilio::twiml::{dial_number, parse_dial};
    let spec = fixture!("twilio/update_call_transfer.json");
    let twiml = spec["Twiml"].as_str().expect("Twiml");
    let ours = dial_number("+447700900000", "+447700900001");
    assert_eq!(parse_dial(&ours), parse_dial(twiml));
    let dial = api::validate_transfer(twiml).unwrap_or_else(|e| panic!("rejected: {e}"));
    assert_eq!(dial.number, "+447700900000");
    assert_eq!(dial.caller_id.as_deref(), Some("+447700900001"));
    for bad in [
        twiml.replace("+447700900000", "447700900000"),
        twiml.replace("Dial", "Connect"),
        twiml
            .replace("<Number>", "<Sip>")
            .replace("</Number>", "</Sip>"),
        twiml.replace("</Dial>", "</Dial><Hangup/>"),
    ] {
        assert!(api::validate_transfer(&bad).is_err(), "{bad}");
    }
}
