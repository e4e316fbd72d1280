//! Vonage (providers.md §1): event webhooks, create call, NCCO, the media
//! socket's JSON messages.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use talky_actors::ids::CallId;
use talky_actors::ports::{
    MediaIn, MediaOut, PlaceCall, ProviderCallId, TelephonyEvent, TelephonyPort,
};
use warp::Filter;
use warp::filters::ws::{Message, WebSocket, Ws};

use super::{fixture, rename_key, same_shape, same_shape_except, set_value};
use crate::vonage::{Outcome, Persona, Personas, Step, VonageSim, VonageSimConfig, api};
use talky::config::Secret;
use talky::providers::vonage::ncco::{CreateCallResponse, MachineBehavior};
use talky::providers::vonage::socket as media;
use talky::providers::vonage::{
    MachineDetection, VonageClient, VonageConfig, VonageEvent, VonageStatus,
};

const PRIVATE_PEM: &str = include_str!("../../../src/providers/vonage/testdata/test_private.pem");
const PUBLIC_PEM: &str = include_str!("../../../src/providers/vonage/testdata/test_public.pem");
const APP_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
const UUID: &str = "63f61863-4a51-4f6b-86e1-46edebcf9356";
const CON: &str = "CON-f972836a-550f-45fa-956c-12a2ab5b7d22";

fn parse(v: &Value) -> VonageEvent {
    VonageEvent::from_json(v.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("the client rejects the spec's {v}: {e}"))
}

#[test]
fn client_parses_every_status_fixture() {
    use TelephonyEvent as T;
    use VonageStatus as S;
    let cases: Vec<(Value, S, Option<T>)> = vec![
        (fixture!("vonage/event_started.json"), S::Started, None),
        (
            fixture!("vonage/event_ringing.json"),
            S::Ringing,
            Some(T::Ringing),
        ),
        (
            fixture!("vonage/event_answered.json"),
            S::Answered,
            Some(T::Answered),
        ),
        (
            fixture!("vonage/event_human.json"),
            S::Human,
            Some(T::Human),
        ),
        (
            fixture!("vonage/event_human_standard.json"),
            S::Human,
            Some(T::Human),
        ),
        (
            fixture!("vonage/event_machine.json"),
            S::Machine,
            Some(T::Machine),
        ),
        (
            fixture!("vonage/event_machine_standard.json"),
            S::Machine,
            Some(T::Machine),
        ),
        (
            fixture!("vonage/event_machine_beep_start.json"),
            S::Machine,
            Some(T::Machine),
        ),
        (
            fixture!("vonage/event_machine_beep_timeout.json"),
            S::Machine,
            Some(T::Machine),
        ),
        (fixture!("vonage/event_busy.json"), S::Busy, Some(T::Busy)),
        (
            fixture!("vonage/event_cancelled.json"),
            S::Cancelled,
            Some(T::Cancelled),
        ),
        (
            fixture!("vonage/event_unanswered.json"),
            S::Unanswered,
            Some(T::NoAnswer),
        ),
        (
            fixture!("vonage/event_timeout.json"),
            S::Timeout,
            Some(T::NoAnswer),
        ),
        (
            fixture!("vonage/event_rejected.json"),
            S::Rejected,
            Some(T::Rejected),
        ),
        (
            fixture!("vonage/event_failed.json"),
            S::Failed,
            Some(T::Failed("cannot_route".into())),
        ),
        (
            fixture!("vonage/event_disconnected.json"),
            S::Disconnected,
            None,
        ),
        (
            fixture!("vonage/event_completed.json"),
            S::Completed,
            Some(T::Completed),
        ),
    ];
    for (v, status, event) in cases {
        let e = parse(&v);
        assert_eq!(e.status, status, "{v}");
        assert_eq!(e.telephony(), event, "{v}");
        // `call_uuid` (standard detection) is the leg id like `uuid`.
        assert_eq!(e.uuid.as_deref(), Some(UUID), "{v}");
        assert_eq!(e.conversation_uuid.as_deref(), Some(CON), "{v}");
        assert_eq!(e.from.as_deref(), Some("447700900001"), "{v}");
        let ts = v["timestamp"].as_str().expect("fixture timestamp");
        assert_eq!(
            e.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ts
        );
        for (key, got) in [
            ("detail", &e.detail),
            ("sub_state", &e.sub_state),
            ("start_time", &e.start_time),
            ("end_time", &e.end_time),
            ("duration", &e.duration),
            ("rate", &e.rate),
            ("price", &e.price),
            ("network", &e.network),
            ("direction", &e.direction),
        ] {
            assert_eq!(got.as_deref(), v[key].as_str(), "{key} of {v}");
        }
    }
    let d = parse(&fixture!("vonage/event_disconnected.json"));
    assert!(d.is_media_leg());
    assert_eq!(d.headers.get("call_id").map(String::as_str), Some("c-123"));
    let err = parse(&fixture!("vonage/event_error.json"));
    assert_eq!(err.status, VonageStatus::Error);
    assert_eq!(err.uuid, None);
    assert_eq!(
        err.reason.as_deref(),
        Some("Syntax error in NCCO. Invalid value type or action.")
    );
    assert_eq!(
        err.timestamp,
        Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0)
            .single()
            .expect("t")
    );
    assert_eq!(err.telephony(), None);
}

#[test]
fn client_parses_the_create_response_and_socket_events() {
    let r: CreateCallResponse =
        serde_json::from_value(fixture!("vonage/create_call_response.json")).expect("parses");
    assert_eq!(r.uuid, UUID);
    assert_eq!(r.status.as_deref(), Some("started"));
    assert_eq!(r.direction.as_deref(), Some("outbound"));
    assert_eq!(r.conversation_uuid.as_deref(), Some(CON));
    let text = |v: Value| v.to_string();
    assert_eq!(
        media::event(&text(fixture!("vonage/ws_connected.json"))),
        None
    );
    assert_eq!(
        media::event(&text(fixture!("vonage/ws_cleared.json"))),
        None
    );
    assert_eq!(
        media::event(&text(fixture!("vonage/ws_dtmf.json"))),
        Some(MediaIn::Dtmf('5'))
    );
    assert_eq!(
        media::event(&text(fixture!("vonage/ws_notified.json"))),
        Some(MediaIn::Mark("seg-1".into()))
    );
}

#[test]
fn client_socket_commands_have_the_spec_shape() {
    let sent = |m: MediaOut| -> Value {
        let msg = media::outbound(m);
        serde_json::from_str(msg.to_str().expect("a text message")).expect("JSON")
    };
    assert_eq!(sent(MediaOut::Clear), fixture!("vonage/ws_clear.json"));
    let notify = sent(MediaOut::Mark("seg-1".into()));
    assert_eq!(
        same_shape(&fixture!("vonage/ws_notify.json"), &notify),
        Ok(())
    );
    assert_eq!(notify, fixture!("vonage/ws_notify.json"));
}

#[test]
fn emulator_accepts_the_spec_create_body_and_connect_action_verbatim() {
    let body = fixture!("vonage/create_call_request.json");
    let plan = api::validate(&body).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    assert_eq!(plan.to, "447700900000");
    assert_eq!(plan.sample_rate, 16_000);
    assert_eq!(plan.ringing_timer, Duration::from_secs(30));
    assert_eq!(plan.length_timer, Duration::from_secs(900));
    assert_eq!(
        plan.headers.get("campaign").map(String::as_str),
        Some("spring")
    );
    let mut with_connect = body.clone();
    with_connect["ncco"] = json!([fixture!("vonage/ncco_connect.json")]);
    let plan = api::validate(&with_connect).unwrap_or_else(|e| panic!("rejected: {e:?}"));
    assert_eq!(
        plan.leg_event_url,
        "https://dialer.example.com/vonage/events"
    );
    // And it is strict: a wrong type in the spec's body is refused.
    let bad = set_value(&body, "/ringing_timer", json!("30"));
    assert!(api::validate(&bad).is_err());
    let bad = rename_key(&body, "/ncco/0/endpoint/0/content-type", "content_type");
    assert!(api::validate(&bad).is_err());
}

/// A stand-in for talky: records the webhooks and, on the media socket,
/// the first message, sends the spec's `clear` and `notify` verbatim,
/// records every text message, and closes after `hold`.
struct Receiver {
    addr: std::net::SocketAddr,
    hooks: Arc<Mutex<Vec<Value>>>,
    texts: Arc<Mutex<Vec<Value>>>,
    _task: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Receiver {
    async fn start(hold: Duration) -> Self {
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let texts = Arc::new(Mutex::new(Vec::new()));
        let h = hooks.clone();
        let events = warp::post()
            .and(warp::path!("vonage" / "events" / String / ..))
            // The call's callback key follows, when the URL has one.
            .and(warp::path::tail())
            .and(warp::body::bytes())
            .map(move |_call: String, _key, body: bytes::Bytes| {
                let v: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
                lock(&h).push(v);
                warp::reply()
            });
        let t = texts.clone();
        let sockets = warp::path!("vonage" / "media" / String)
            .and(warp::ws())
            .map(move |_call: String, ws: Ws| {
                let t = t.clone();
                ws.on_upgrade(move |s| media_peer(s, t, hold))
            });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(warp::serve(events.or(sockets)).incoming(listener).run());
        Self {
            addr,
            hooks,
            texts,
            _task: task,
        }
    }

    fn hook(&self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        lock(&self.hooks).iter().find(|v| pred(v)).cloned()
    }

    fn text(&self, event: &str) -> Option<Value> {
        lock(&self.texts)
            .iter()
            .find(|v| v["event"] == event)
            .cloned()
    }
}

async fn media_peer(socket: WebSocket, texts: Arc<Mutex<Vec<Value>>>, hold: Duration) {
    let (mut sink, mut stream) = socket.split();
    let deadline = tokio::time::Instant::now() + hold;
    let mut first = true;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, stream.next()).await {
        let Ok(t) = m.to_str() else { continue };
        lock(&texts).push(serde_json::from_str(t).expect("socket text is JSON"));
        if first {
            first = false;
            for f in [
                fixture!("vonage/ws_clear.json"),
                fixture!("vonage/ws_notify.json"),
            ] {
                let _ = sink.send(Message::text(f.to_string())).await;
            }
        }
    }
    let _ = sink.send(Message::close()).await;
}

/// Picks one webhook among those posted.
type Pick = Box<dyn Fn(&Value) -> bool>;

fn persona(name: &str, number: &str, outcome: Outcome, ring_ms: u64, steps: Vec<Step>) -> Persona {
    Persona {
        name: name.into(),
        numbers: vec![number.into()],
        default: false,
        ring_ms,
        outcome,
        steps,
    }
}

fn place(to: &str, ring_s: u64) -> PlaceCall {
    PlaceCall {
        call: CallId::new(),
        to: format!("+{to}"),
        from: "+447700900001".into(),
        ringing_timeout: Duration::from_secs(ring_s),
        max_duration: Duration::from_secs(900),
        machine_detection: true,
        media_token: "tok-1".into(),
    }
}

/// Every status the emulator can post, over the wire, from calls our
/// client places; the create body our client sends; the media socket.
#[tokio::test]
async fn client_and_emulator_on_the_wire() {
    let rx = Receiver::start(Duration::from_millis(2500)).await;
    let personas = Personas::from_list(vec![
        persona(
            "answer",
            "447700900200",
            Outcome::Answer,
            10,
            vec![Step::Press { digits: "5".into() }],
        ),
        persona(
            "machine",
            "447700900201",
            Outcome::Machine,
            10,
            vec![Step::Say { text: "Hi".into() }],
        ),
        persona("busy", "447700900202", Outcome::Busy, 10, vec![]),
        persona("no_answer", "447700900203", Outcome::NoAnswer, 10, vec![]),
        persona(
            "unanswered",
            "447700900204",
            Outcome::Unanswered,
            10,
            vec![],
        ),
        persona("rejected", "447700900205", Outcome::Rejected, 10, vec![]),
        persona("failed", "447700900206", Outcome::Failed, 10, vec![]),
        persona("cancel", "447700900207", Outcome::Answer, 20_000, vec![]),
        persona("human", "447700900208", Outcome::Answer, 10, vec![]),
        persona("machine_std", "447700900209", Outcome::Machine, 10, vec![]),
    ]);
    let sim = VonageSim::start(VonageSimConfig {
        application_id: APP_ID.into(),
        public_key_pem: PUBLIC_PEM.into(),
        personas,
        machine_detection_delay: Duration::from_millis(100),
        started_to_ringing: Duration::from_millis(10),
        ..VonageSimConfig::default()
    })
    .await
    .expect("sim");
    let client = |md: MachineDetection| {
        VonageClient::new(VonageConfig {
            api_base_url: sim.base_url(),
            application_id: APP_ID.into(),
            private_key: Secret::new(PRIVATE_PEM),
            public_url: format!("http://{}", rx.addr),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            machine_detection: md,
            ..VonageConfig::default()
        })
        .expect("client")
    };
    let amd = client(MachineDetection::default());
    let std = client(MachineDetection::Standard {
        behavior: MachineBehavior::Continue,
    });
    let mut uuids = Vec::new();
    for (c, to, ring) in [
        (&std, "447700900200", 30),
        (&amd, "447700900201", 30),
        (&amd, "447700900202", 30),
        (&amd, "447700900203", 1),
        (&amd, "447700900204", 30),
        (&amd, "447700900205", 30),
        (&amd, "447700900206", 30),
        (&amd, "447700900208", 30),
        (&std, "447700900209", 30),
    ] {
        let r = c.create_call(&place(to, ring)).await.expect("201");
        uuids.push(r.uuid);
    }
    // Cancelled: hung up while it rings.
    let cancel = amd
        .place_call(place("447700900207", 30))
        .await
        .expect("201");
    let ringing = async {
        while sim.call(&cancel.0).is_none_or(|r| r.status != "ringing") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), ringing)
        .await
        .expect("rings");
    amd.hang_up(ProviderCallId(cancel.0.clone()))
        .await
        .expect("hang up");
    uuids.push(cancel.0);
    // The spec's body itself, pointed at the receiver, over HTTP.
    let mut body = fixture!("vonage/create_call_request.json");
    body["to"][0]["number"] = json!("447700900202");
    body["event_url"][0] = json!(format!("http://{}/vonage/events/c-123", rx.addr));
    body["ncco"][0]["endpoint"][0]["uri"] = json!(format!("ws://{}/vonage/media/c-123", rx.addr));
    let token = amd.jwt().token(Utc::now()).expect("jwt");
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/calls", sim.base_url()))
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.expect("JSON");
    assert_eq!(
        same_shape(&fixture!("vonage/create_call_response.json"), &created),
        Ok(())
    );
    uuids.push(created["uuid"].as_str().expect("uuid").to_owned());
    for u in &uuids {
        assert!(
            sim.wait_ended(u, Duration::from_secs(15)).await.is_some(),
            "call {u} did not end"
        );
    }

    // What our client sent, as the emulator received it.
    let sent = sim.call(&uuids[1]).expect("record").request;
    // `headers` is free metadata: we send `call_id`, not the example's
    // `campaign`.
    assert_eq!(
        same_shape_except(
            &fixture!("vonage/create_call_request.json"),
            &sent,
            &["/ncco/0/endpoint/0/headers/campaign"]
        ),
        Ok(())
    );
    // `timeout` (ring seconds of a phone leg) means nothing for a
    // websocket endpoint; the call's `ringing_timer` is sent instead.
    assert_eq!(
        same_shape_except(
            &fixture!("vonage/ncco_connect.json"),
            &sent["ncco"][0],
            &["/timeout"]
        ),
        Ok(())
    );

    // What the emulator posted.
    let status = |s: &'static str| move |v: &Value| v["status"] == s;
    let amd_leg = |s: &'static str| {
        move |v: &Value| {
            v["status"] == s && v.get("call_uuid").is_none() && v.get("sub_state").is_none()
        }
    };
    let checks: Vec<(&str, Value, Pick)> = vec![
        (
            "started",
            fixture!("vonage/event_started.json"),
            Box::new(status("started")),
        ),
        (
            "ringing",
            fixture!("vonage/event_ringing.json"),
            Box::new(status("ringing")),
        ),
        (
            "answered",
            fixture!("vonage/event_answered.json"),
            Box::new(status("answered")),
        ),
        (
            "human",
            fixture!("vonage/event_human.json"),
            Box::new(amd_leg("human")),
        ),
        (
            "human standard",
            fixture!("vonage/event_human_standard.json"),
            Box::new(|v: &Value| v["status"] == "human" && v.get("call_uuid").is_some()),
        ),
        (
            "machine",
            fixture!("vonage/event_machine.json"),
            Box::new(amd_leg("machine")),
        ),
        (
            "machine standard",
            fixture!("vonage/event_machine_standard.json"),
            Box::new(|v: &Value| v["status"] == "machine" && v.get("call_uuid").is_some()),
        ),
        (
            "machine beep_start",
            fixture!("vonage/event_machine_beep_start.json"),
            Box::new(|v: &Value| v["sub_state"] == "beep_start"),
        ),
        (
            "busy",
            fixture!("vonage/event_busy.json"),
            Box::new(status("busy")),
        ),
        (
            "cancelled",
            fixture!("vonage/event_cancelled.json"),
            Box::new(status("cancelled")),
        ),
        (
            "unanswered",
            fixture!("vonage/event_unanswered.json"),
            Box::new(status("unanswered")),
        ),
        (
            "timeout",
            fixture!("vonage/event_timeout.json"),
            Box::new(status("timeout")),
        ),
        (
            "rejected",
            fixture!("vonage/event_rejected.json"),
            Box::new(status("rejected")),
        ),
        (
            "failed",
            fixture!("vonage/event_failed.json"),
            Box::new(status("failed")),
        ),
        (
            "disconnected",
            fixture!("vonage/event_disconnected.json"),
            Box::new(status("disconnected")),
        ),
        (
            "completed",
            fixture!("vonage/event_completed.json"),
            Box::new(|v: &Value| v["status"] == "completed" && v["duration"] != "0"),
        ),
    ];
    for (name, fix, pred) in &checks {
        let got = rx
            .hook(pred)
            .unwrap_or_else(|| panic!("the emulator posted no {name} event"));
        assert_eq!(same_shape(fix, &got), Ok(()), "{name}: {got}");
        // And the client takes what the emulator really posted.
        assert_eq!(parse(&got).status, parse(fix).status, "{name}");
    }
    // The socket: first message, replies to the spec's commands, DTMF.
    for (event, fix) in [
        ("websocket:connected", fixture!("vonage/ws_connected.json")),
        ("websocket:cleared", fixture!("vonage/ws_cleared.json")),
        ("websocket:notify", fixture!("vonage/ws_notified.json")),
        ("websocket:dtmf", fixture!("vonage/ws_dtmf.json")),
    ] {
        let got = rx
            .text(event)
            .unwrap_or_else(|| panic!("the emulator sent no {event}"));
        assert_eq!(same_shape(&fix, &got), Ok(()), "{event}: {got}");
    }
    assert_eq!(
        rx.text("websocket:notify").map(|v| v["payload"].clone()),
        Some(fixture!("vonage/ws_notify.json")["payload"].clone()),
        "notify echoes the payload"
    );

    // The check can fail: mutated fixtures against the real output.
    let completed = rx.hook(|v| v["status"] == "completed").expect("completed");
    let fix = fixture!("vonage/event_completed.json");
    assert!(same_shape(&rename_key(&fix, "/status", "state"), &completed).is_err());
    assert!(same_shape(&set_value(&fix, "/duration", json!(7)), &completed).is_err());
    let connected = rx.text("websocket:connected").expect("connected");
    let fix = fixture!("vonage/ws_connected.json");
    assert!(
        same_shape(
            &rename_key(&fix, "/content-type", "content_type"),
            &connected
        )
        .is_err()
    );
}

// ----- the call resource and the call list (§1.3) --------------------------

/// The spec's query parameters of `GET /v1/calls`.
const LIST_PARAMS: [&str; 7] = [
    "status",
    "date_start",
    "date_end",
    "page_size",
    "record_index",
    "order",
    "conversation_uuid",
];

/// Whether a query string of ours is one §1.3 allows: known parameters
/// only, `page_size` 1..100, `order` asc|desc, times ISO 8601.
fn spec_list_query(query: &str) -> Result<(), String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| format!("{query}: {e}"))?;
    for (k, v) in pairs {
        let ok = match k.as_str() {
            "page_size" => v.parse::<u32>().is_ok_and(|n| (1..=100).contains(&n)),
            "record_index" => v.parse::<u64>().is_ok(),
            "order" => v == "asc" || v == "desc",
            "date_start" | "date_end" => chrono::DateTime::parse_from_rfc3339(&v).is_ok(),
            k => LIST_PARAMS.contains(&k),
        };
        if !ok {
            return Err(format!("{k}={v} in {query}"));
        }
    }
    Ok(())
}

/// A stand-in for Vonage's REST API serving the spec's call resources:
/// `GET /v1/calls/{uuid}` answers the resource of that uuid (404 for
/// others), `GET /v1/calls` answers `list`; each list query is recorded.
async fn call_resources(resources: Vec<Value>, list: Value) -> (String, Arc<Mutex<Vec<String>>>) {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let q = queries.clone();
    let one = warp::get()
        .and(warp::path!("v1" / "calls" / String))
        .map(move |uuid: String| {
            match resources.iter().find(|r| r["uuid"] == uuid.as_str()) {
                Some(r) => warp::reply::with_status(warp::reply::json(r), warp::http::StatusCode::OK),
                None => warp::reply::with_status(
                    warp::reply::json(&json!({"type": "https://developer.nexmo.com/api-errors#not-found", "title": "Not Found", "detail": "no such call", "instance": "t"})),
                    warp::http::StatusCode::NOT_FOUND,
                ),
            }
        });
    let all = warp::get()
        .and(warp::path!("v1" / "calls"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |query: String| {
            lock(&q).push(query);
            warp::reply::json(&list)
        });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(all.or(one)).incoming(listener).run());
    (format!("http://{addr}"), queries)
}

fn rest_client(base: &str, public_url: &str) -> VonageClient {
    VonageClient::new(VonageConfig {
        api_base_url: base.into(),
        application_id: APP_ID.into(),
        private_key: Secret::new(PRIVATE_PEM),
        public_url: public_url.into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..VonageConfig::default()
    })
    .expect("client")
}

#[tokio::test]
async fn client_reads_the_spec_call_resource_and_call_list() {
    const LIVE: &str = "aaaaaaaa-4a51-4f6b-86e1-46edebcf9356";
    let completed = fixture!("vonage/get_call.json");
    let live = set_value(&fixture!("vonage/get_call_live.json"), "/uuid", json!(LIVE));
    let (base, queries) =
        call_resources(vec![completed, live], fixture!("vonage/list_calls.json")).await;
    let client = rest_client(&base, "https://dialer.example.com");

    let info = client
        .get_call(&ProviderCallId(UUID.into()))
        .await
        .expect("200")
        .expect("known");
    assert_eq!(info.uuid, UUID);
    assert_eq!(info.status, "completed");
    assert!(info.is_over());
    assert_eq!(info.to_number(), Some("447700900000"));
    assert_eq!(
        info.started_at(),
        Utc.with_ymd_and_hms(2020, 1, 1, 12, 0, 0).single()
    );
    use talky_actors::ports::LegState;
    assert_eq!(
        client.leg_state(ProviderCallId(UUID.into())).await,
        Ok(Some(LegState::Ended("completed".into())))
    );
    assert_eq!(
        client.leg_state(ProviderCallId(LIVE.into())).await,
        Ok(Some(LegState::Live { answered: true })),
        "an answered call is up"
    );
    assert_eq!(
        client.leg_state(ProviderCallId("unknown".into())).await,
        Ok(None),
        "404: the provider does not know the leg"
    );

    // The list: the leg to that number since then, none to another.
    let since = Utc
        .with_ymd_and_hms(2020, 1, 1, 12, 0, 0)
        .single()
        .expect("t");
    let found = client
        .find_call(CallId::new(), "+447700900000", since)
        .await
        .expect("list");
    assert_eq!(found, Some(ProviderCallId(UUID.into())));
    let other = client
        .find_call(CallId::new(), "+447700900999", since)
        .await
        .expect("list");
    assert_eq!(other, None);
    // What our client asked is a query of the spec.
    let asked = lock(&queries).clone();
    assert!(!asked.is_empty());
    for q in &asked {
        assert_eq!(spec_list_query(q), Ok(()));
    }
    // And the check can fail.
    assert!(spec_list_query("page_size=500").is_err());
    assert!(spec_list_query("sort=asc").is_err());
}

/// What the emulator answers to `GET /v1/calls/{uuid}` and `GET
/// /v1/calls` has the spec's shape; our client reads it and the emulator
/// takes our client's list query.
#[tokio::test]
async fn emulator_call_resource_and_call_list_have_the_spec_shape() {
    let rx = Receiver::start(Duration::from_secs(2)).await;
    let personas = Personas::from_list(vec![
        persona("rings", "447700900210", Outcome::NoAnswer, 10, vec![]),
        persona(
            "hangs_up",
            "447700900211",
            Outcome::Answer,
            10,
            vec![Step::HangUp],
        ),
    ]);
    let sim = VonageSim::start(VonageSimConfig {
        application_id: APP_ID.into(),
        public_key_pem: PUBLIC_PEM.into(),
        personas,
        started_to_ringing: Duration::from_millis(10),
        ..VonageSimConfig::default()
    })
    .await
    .expect("sim");
    let client = rest_client(&sim.base_url(), &format!("http://{}", rx.addr));
    let since = Utc::now();
    let live = client
        .place_call(place("447700900210", 60))
        .await
        .expect("201");
    let done = client
        .place_call(place("447700900211", 30))
        .await
        .expect("201");
    let completed = sim
        .wait_ended(&done.0, Duration::from_secs(15))
        .await
        .expect("the call that hangs up ends");
    assert_eq!(completed.status, "completed");
    let ringing = async {
        while sim.call(&live.0).is_none_or(|r| r.status != "ringing") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), ringing)
        .await
        .expect("rings");

    let token = client.jwt().token(Utc::now()).expect("jwt");
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http
            .get(format!("{}{path}", sim.base_url()))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(5));
        async move {
            let resp = req.send().await.expect("GET");
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<Value>().await.expect("JSON")
        }
    };
    let resource_time = |v: &Value, key: &str| {
        let t = v[key].as_str().unwrap_or_default();
        assert!(
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok(),
            "{key} {t:?} is not YYYY-MM-DD HH:MM:SS"
        );
    };

    let up = get(format!("/v1/calls/{}", live.0)).await;
    assert_eq!(
        same_shape(&fixture!("vonage/get_call_live.json"), &up),
        Ok(())
    );
    resource_time(&up, "start_time");
    for cost in ["rate", "price", "duration", "end_time"] {
        assert!(up.get(cost).is_none(), "{cost} before the end: {up}");
    }
    let over = get(format!("/v1/calls/{}", done.0)).await;
    assert_eq!(same_shape(&fixture!("vonage/get_call.json"), &over), Ok(()));
    resource_time(&over, "start_time");
    resource_time(&over, "end_time");
    let list = get("/v1/calls?page_size=10&record_index=0&order=asc".into()).await;
    assert_eq!(
        same_shape(&fixture!("vonage/list_calls.json"), &list),
        Ok(())
    );
    assert_eq!(list["count"], 2, "{list}");

    // Our client reads what the emulator really answers.
    use talky_actors::ports::LegState;
    assert_eq!(
        client.leg_state(live.clone()).await,
        Ok(Some(LegState::Live { answered: false }))
    );
    assert_eq!(
        client.leg_state(done.clone()).await,
        Ok(Some(LegState::Ended("completed".into())))
    );
    assert_eq!(
        client.leg_state(ProviderCallId("unknown".into())).await,
        Ok(None)
    );
    // The emulator takes our client's list query, and finds by number.
    for (to, leg) in [("+447700900210", &live), ("+447700900211", &done)] {
        assert_eq!(
            client.find_call(CallId::new(), to, since).await,
            Ok(Some(leg.clone())),
            "{to}"
        );
    }

    // The check can fail: mutated fixtures against the real output.
    let fix = fixture!("vonage/get_call.json");
    assert!(same_shape(&rename_key(&fix, "/end_time", "ended_at"), &over).is_err());
    assert!(same_shape(&set_value(&fix, "/duration", json!(7)), &over).is_err());
    assert!(
        same_shape(&fix, &up).is_err(),
        "a live call has no cost fields"
    );
    let fix = fixture!("vonage/list_calls.json");
    assert!(same_shape(&rename_key(&fix, "/_embedded", "embedded"), &list).is_err());
    sim.stop().await;
}

/// The cold transfer (§1.3 `PUT /v1/calls/{uuid}` `transfer` to an inline
/// NCCO, the `transfer` event of §1.7): talky's body is the fixture's,
/// the emulator takes it verbatim and refuses what the emulator does not
/// run, and the client reads the event as no call progress.
#[test]
fn transfer_body_and_event_on_both_sides() {
    let spec = fixture!("vonage/transfer_request.json");
    let ours = talky::providers::vonage::ncco::transfer_body("+447700900000", "+447700900001")
        .expect("body");
    assert_eq!(serde_json::to_value(&ours).expect("json"), spec);
    assert_eq!(
        api::validate_transfer(&spec),
        Ok(("447700900000".to_owned(), Some("447700900001".to_owned())))
    );
    for bad in [
        set_value(&spec, "/destination/type", json!("url")),
        set_value(&spec, "/action", json!("hangup")),
        set_value(
            &spec,
            "/destination/ncco/0/endpoint/0/number",
            json!("+447700900000"),
        ),
        set_value(&spec, "/destination/ncco/0/endpoint/0/type", json!("sip")),
        rename_key(&spec, "/destination/ncco/0/endpoint", "endpoints"),
        set_value(&spec, "/destination/ncco", json!([])),
    ] {
        assert!(api::validate_transfer(&bad).is_err(), "{bad}");
    }
    let event = parse(&fixture!("vonage/event_transfer.json"));
    assert_eq!(event.status, VonageStatus::Transfer);
    assert_eq!(event.uuid.as_deref(), Some(UUID));
    assert_eq!(event.telephony(), None, "not call progress");
}
