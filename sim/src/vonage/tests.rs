//! The Vonage emulator driven by the real [`VonageClient`] and a tiny
//! in-test "talky" (webhook receiver + media socket + scripted agent).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};
use talky_actors::ids::CallId;
use talky_actors::ports::{PlaceCall, ProviderCallId, TelephonyPort};
use tokio::sync::mpsc;
use warp::Filter;
use warp::filters::ws::{Message, WebSocket, Ws};

use super::*;
use crate::codec::{Decoded, Decoder, Encoder};
use crate::telephony_tests::{AGENT_LINES, assert_conversation, serve, writer};
use talky::audio::pcm::{bytes_to_i16, i16_to_bytes};
use talky::config::Secret;
use talky::providers::vonage::{AppJwt, VonageClient, VonageConfig};

const PRIVATE_PEM: &str = include_str!("../../../src/providers/vonage/testdata/test_private.pem");
const PUBLIC_PEM: &str = include_str!("../../../src/providers/vonage/testdata/test_public.pem");
const APP_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
const FROM: &str = "+447700900001";

/// What the agent does on the media socket.
#[derive(Clone, Default)]
struct AgentScript {
    greeting: String,
    /// Said, one each, after each utterance of the persona ends.
    replies: Vec<String>,
    /// Close the socket once the greeting has been sent.
    close_after_greeting: bool,
    /// Send a notify marker after the greeting.
    notify_after_greeting: bool,
    /// Send the greeting as fast as possible (Vonage buffers it).
    burst: bool,
    /// Send `clear` this long after the greeting was sent.
    clear_after: Option<Duration>,
}

#[derive(Default)]
struct AgentLog {
    connected: Vec<Value>,
    /// Persona utterances decoded on our side.
    heard: Vec<String>,
    /// Text events received after the first.
    texts: Vec<(Value, DateTime<Utc>)>,
    /// (text, start, end) of what we sent.
    spoke: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    frames_in: u64,
    closed: bool,
    /// Our side of the media socket, to close it when a test says.
    out: Option<mpsc::UnboundedSender<Message>>,
}

/// (Authorization header, raw body).
type RawHook = (Option<String>, Vec<u8>);

struct Talky {
    addr: std::net::SocketAddr,
    events: Arc<Mutex<Vec<Value>>>,
    /// (Authorization header, raw body) of each webhook.
    raw: Arc<Mutex<Vec<RawHook>>>,
    log: Arc<Mutex<AgentLog>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Talky {
    async fn start(script: AgentScript) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::new(Mutex::new(AgentLog::default()));
        let ev = events.clone();
        let rw = raw.clone();
        let hooks = warp::post()
            .and(warp::path!("vonage" / "events" / String / ..))
            // The call's callback key follows, when the URL has one.
            .and(warp::path::tail())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::bytes())
            .map(
                move |_call: String, _key, auth: Option<String>, body: bytes::Bytes| {
                    lock(&ev).push(serde_json::from_slice(&body).unwrap_or_default());
                    lock(&rw).push((auth, body.to_vec()));
                    warp::reply()
                },
            );
        let lg = log.clone();
        let media = warp::path!("vonage" / "media" / String)
            .and(warp::ws())
            .map(move |_call: String, ws: Ws| {
                let lg = lg.clone();
                let script = script.clone();
                ws.on_upgrade(move |socket| agent(socket, script, lg))
            });
        let (addr, task) = serve(hooks.or(media)).await;
        Self {
            addr,
            events,
            raw,
            log,
            _task: task,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn statuses(&self) -> Vec<String> {
        lock(&self.events)
            .iter()
            .map(|e| e["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// The scripted agent: greeting on connect, a reply after each persona
/// utterance, all as real-time 20 ms frames.
async fn agent(socket: WebSocket, script: AgentScript, log: Arc<Mutex<AgentLog>>) {
    let (sink, mut stream) = socket.split();
    let (say_tx, mut say_rx) = mpsc::unbounded_channel::<String>();
    let (out_tx, writer) = writer(sink);
    lock(&log).out = Some(out_tx.clone());
    // Speaker: paced real time.
    let lg = log.clone();
    let out = out_tx.clone();
    let close_after = script.close_after_greeting;
    let notify_after = script.notify_after_greeting;
    let burst = script.burst;
    let clear_after = script.clear_after;
    let speaker = tokio::spawn(async move {
        let mut enc = Encoder::new(16_000);
        let mut first = true;
        while let Some(text) = say_rx.recv().await {
            if !first {
                // A pause between utterances, as a real agent makes.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let pcm = enc.encode(&text);
            let start = Utc::now();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            // Like talky's playout, run 200 ms (10 frames) ahead of real
            // time, so a busy machine delaying this task by a frame or two
            // does not put silence into a word.
            for (i, chunk) in pcm.chunks(320).enumerate() {
                if !burst && i >= 10 {
                    tick.tick().await;
                }
                let mut f = chunk.to_vec();
                f.resize(320, 0);
                if out.send(Message::binary(i16_to_bytes(&f))).is_err() {
                    return;
                }
            }
            lock(&lg).spoke.push((text, start, Utc::now()));
            if first {
                first = false;
                if notify_after {
                    let _ = out.send(Message::text(
                        json!({"action": "notify", "payload": {"mark": "greeting"}}).to_string(),
                    ));
                }
                if let Some(after) = clear_after {
                    tokio::time::sleep(after).await;
                    let _ = out.send(Message::text(r#"{"action":"clear"}"#));
                }
                if close_after {
                    let _ = out.send(Message::close());
                    return;
                }
            }
        }
    });
    let mut replies = script.replies.into_iter();
    let mut dec = Decoder::new(16_000);
    let mut cur = String::new();
    let mut greeted = false;
    while let Some(Ok(msg)) = stream.next().await {
        if msg.is_text() {
            let v: Value = serde_json::from_str(msg.to_str().unwrap_or("null")).unwrap_or_default();
            if !greeted {
                greeted = true;
                lock(&log).connected.push(v);
                let _ = say_tx.send(script.greeting.clone());
            } else {
                lock(&log).texts.push((v, Utc::now()));
            }
        } else if msg.is_binary() {
            lock(&log).frames_in += 1;
            for ev in dec.push(&bytes_to_i16(msg.as_bytes())) {
                match ev {
                    Decoded::Char { c, .. } => cur.push(c),
                    Decoded::UtteranceEnd { .. } if !cur.is_empty() => {
                        lock(&log).heard.push(std::mem::take(&mut cur));
                        if let Some(r) = replies.next() {
                            let _ = say_tx.send(r);
                        }
                    }
                    _ => {}
                }
            }
        } else if msg.is_close() {
            break;
        }
    }
    lock(&log).closed = true;
    drop(say_tx);
    speaker.abort();
    drop(out_tx);
    let _ = writer.await;
}

async fn sim() -> VonageSimHandle {
    VonageSim::start(VonageSimConfig {
        application_id: APP_ID.into(),
        public_key_pem: PUBLIC_PEM.into(),
        machine_detection_delay: Duration::from_millis(500),
        ..Default::default()
    })
    .await
    .expect("sim")
}

fn client(sim: &VonageSimHandle, talky: &Talky, app_id: &str) -> VonageClient {
    VonageClient::new(VonageConfig {
        api_base_url: sim.base_url(),
        application_id: app_id.into(),
        private_key: Secret::new(PRIVATE_PEM),
        public_url: talky.base_url(),
        ..Default::default()
    })
    .expect("client")
}

fn place(to: &str) -> PlaceCall {
    PlaceCall {
        call: CallId::new(),
        to: format!("+{to}"),
        from: FROM.into(),
        ringing_timeout: Duration::from_secs(1),
        max_duration: Duration::from_secs(60),
        machine_detection: false,
        media_token: "tok-123".into(),
    }
}

fn number(sim: &VonageSimHandle, persona: &str) -> String {
    sim.config()
        .personas
        .number_of(persona)
        .expect("persona number")
}

async fn call(sim: &VonageSimHandle, talky: &Talky, persona: &str) -> String {
    let c = client(sim, talky, APP_ID);
    let ProviderCallId(uuid) = c
        .place_call(place(&number(sim, persona)))
        .await
        .expect("placed");
    uuid
}

async fn ended(sim: &VonageSimHandle, uuid: &str, secs: u64) -> CallRecord {
    sim.wait_ended(uuid, Duration::from_secs(secs))
        .await
        .unwrap_or_else(|| panic!("call did not end: {:?}", sim.call(uuid)))
}

/// The statuses with consecutive duplicates removed.
fn dedup(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = v.to_vec();
    out.dedup();
    out
}

#[tokio::test]
async fn jwt_is_required_and_verified() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/calls", sim.base_url());
    let body = json!({"to":[{"type":"phone","number":"447700900100"}]});
    // No token.
    let r = http.post(&url).json(&body).send().await.expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["content-type"].to_str().expect("ct"),
        "application/problem+json"
    );
    let p: Value = r.json().await.expect("json");
    assert!(p["type"].as_str().expect("type").ends_with("#unauthorized"));
    assert!(p["title"].is_string() && p["detail"].is_string() && p["instance"].is_string());
    // Tampered signature.
    let jwt = AppJwt::from_pem(APP_ID, &Secret::new(PRIVATE_PEM)).expect("jwt");
    let token = jwt.token(Utc::now()).expect("token");
    let (head, sig) = token.rsplit_once('.').expect("jwt parts");
    let flipped: String = sig.chars().rev().collect::<String>();
    let r = http
        .post(&url)
        .bearer_auth(format!("{head}.{flipped}"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // Expired.
    let (old, _) = jwt
        .sign(Utc::now() - chrono::Duration::hours(2))
        .expect("sign");
    let r = http
        .post(&url)
        .bearer_auth(old)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let p: Value = r.json().await.expect("json");
    assert!(p["type"].as_str().expect("type").ends_with("#jwt-expired"));
    // Wrong application id, through the real client.
    let wrong = client(&sim, &talky, "00000000-0000-0000-0000-000000000000");
    let e = wrong
        .place_call(place("447700900100"))
        .await
        .expect_err("refused");
    assert!(format!("{e:?}").contains("Rejected"), "{e:?}");
    // A key the application does not know: the sim holds another public key.
    sim.update(|c| {
        c.public_key_pem = "-----BEGIN PUBLIC KEY-----\nMFww\n-----END PUBLIC KEY-----\n".into()
    });
    let r = http
        .post(&url)
        .bearer_auth(jwt.token(Utc::now()).expect("token"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert!(sim.calls().is_empty());
}

#[tokio::test]
async fn create_validates_the_body() {
    let sim = sim().await;
    let jwt = AppJwt::from_pem(APP_ID, &Secret::new(PRIVATE_PEM)).expect("jwt");
    let http = reqwest::Client::new();
    let url = format!("{}/v1/calls", sim.base_url());
    let token = jwt.token(Utc::now()).expect("token");
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"to":[{"type":"phone","number":"12"}],"from":{"type":"phone","number":"447700900001"}}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.expect("json");
    let names: Vec<&str> = p["invalid_parameters"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"to[0].number"), "{names:?}");
    assert!(names.contains(&"ncco"), "{names:?}");
    // Wrong content type.
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    // Unknown call: 404 on PUT.
    let r = http
        .put(format!("{}/v1/calls/nope", sim.base_url()))
        .bearer_auth(&token)
        .json(&json!({"action":"hangup"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn interested_persona_full_call() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript {
        greeting: AGENT_LINES[0].into(),
        replies: AGENT_LINES[1..].iter().map(|l| l.to_string()).collect(),
        notify_after_greeting: true,
        ..Default::default()
    })
    .await;
    let uuid = call(&sim, &talky, "interested").await;
    let rec = ended(&sim, &uuid, 30).await;
    assert_eq!(rec.persona, "interested");
    assert_eq!(rec.hang_up, Some(HangUpSide::Callee));
    assert_eq!(
        rec.statuses(),
        vec!["started", "ringing", "answered", "completed"]
    );
    assert!(rec.webhooks.iter().all(|w| w.http_status == Some(200)));
    assert_eq!(talky.statuses(), rec.statuses());
    // Shapes.
    let evs = lock(&talky.events).clone();
    for e in &evs {
        assert_eq!(e["uuid"], uuid.as_str());
        assert_eq!(e["direction"], "outbound");
        assert_eq!(e["to"], number(&sim, "interested").as_str());
        assert_eq!(e["from"], "447700900001");
        assert!(
            e["conversation_uuid"]
                .as_str()
                .expect("con")
                .starts_with("CON-")
        );
        let ts = e["timestamp"].as_str().expect("ts");
        assert!(
            DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z') && ts.len() == 24,
            "{ts}"
        );
    }
    let done = &evs[3];
    for k in [
        "start_time",
        "end_time",
        "duration",
        "rate",
        "price",
        "network",
    ] {
        assert!(done[k].is_string(), "{k} in {done}");
    }
    assert!(
        done["duration"]
            .as_str()
            .expect("d")
            .parse::<u64>()
            .expect("n")
            >= 5
    );
    // The first socket message.
    let l = lock(&talky.log);
    let first = &l.connected[0];
    assert_eq!(first["event"], "websocket:connected");
    assert_eq!(first["content-type"], "audio/l16;rate=16000");
    assert!(first["call_id"].is_string());
    // Both directions decoded exactly.
    assert_conversation(&rec.heard, &rec.said, &l.heard);
    // The notify marker came back after the greeting had been played.
    let (n, at) = l
        .texts
        .iter()
        .find(|(v, _)| v["event"] == "websocket:notify")
        .expect("notify echo");
    assert_eq!(n["payload"]["mark"], "greeting");
    assert!(*at >= l.spoke[0].2);
    assert_eq!(rec.notifies.len(), 1);
    assert!(l.closed);
    assert!(rec.frames_in > 100 && rec.frames_out > 100);
}

#[tokio::test]
async fn busy_and_no_answer_never_open_the_socket() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript {
        greeting: "Hello.".into(),
        ..Default::default()
    })
    .await;
    let busy = call(&sim, &talky, "busy").await;
    let none = call(&sim, &talky, "no_answer").await;
    let b = ended(&sim, &busy, 10).await;
    let n = ended(&sim, &none, 10).await;
    assert_eq!(
        b.statuses(),
        vec!["started", "ringing", "busy", "completed"]
    );
    assert_eq!(
        n.statuses(),
        vec!["started", "ringing", "timeout", "completed"]
    );
    for r in [&b, &n] {
        assert!(!r.socket_opened);
        assert_eq!(r.hang_up, Some(HangUpSide::NotConnected));
        assert_eq!(r.webhooks.last().expect("last").body["duration"], "0");
    }
    assert!(lock(&talky.log).connected.is_empty());
    // Terminal without completed when the knob says so.
    sim.update(|c| c.completed_after_failure = false);
    let busy2 = call(&sim, &talky, "busy").await;
    let b2 = ended(&sim, &busy2, 10).await;
    assert_eq!(b2.statuses(), vec!["started", "ringing", "busy"]);
}

#[tokio::test]
async fn duplicate_and_reorder_knobs() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript::default()).await;
    sim.update(|c| c.duplicate_webhooks = true);
    let uuid = call(&sim, &talky, "busy").await;
    let r = ended(&sim, &uuid, 10).await;
    assert_eq!(
        r.statuses(),
        vec![
            "started",
            "started",
            "ringing",
            "ringing",
            "busy",
            "busy",
            "completed",
            "completed"
        ]
    );
    assert_eq!(talky.statuses(), r.statuses());
    sim.update(|c| {
        c.duplicate_webhooks = false;
        c.reorder_webhooks = true;
    });
    let uuid = call(&sim, &talky, "busy").await;
    let r = ended(&sim, &uuid, 10).await;
    let s = r.statuses();
    assert_eq!(s.len(), 4);
    assert_ne!(s, vec!["started", "ringing", "busy", "completed"]);
    let mut sorted = s.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["busy", "completed", "ringing", "started"]);
    // Timestamps still tell the real order.
    let mut by_time: Vec<_> = r
        .webhooks
        .iter()
        .map(|w| {
            (
                w.body["timestamp"].as_str().expect("ts").to_owned(),
                w.status.clone(),
            )
        })
        .collect();
    by_time.sort();
    assert_eq!(by_time.first().map(|x| x.1.as_str()), Some("started"));
    assert_eq!(dedup(&s).len(), 4);
}

#[tokio::test]
async fn hang_up_through_the_client() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript {
        greeting: "Hello?".into(),
        ..Default::default()
    })
    .await;
    let c = client(&sim, &talky, APP_ID);
    let ProviderCallId(uuid) = c
        .place_call(place(&number(&sim, "silent")))
        .await
        .expect("placed");
    // Wait for the socket.
    for _ in 0..200 {
        if sim.call(&uuid).is_some_and(|r| r.socket_opened) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.hang_up(ProviderCallId(uuid.clone()))
        .await
        .expect("hang up");
    let r = ended(&sim, &uuid, 10).await;
    assert_eq!(r.hang_up, Some(HangUpSide::Rest));
    assert_eq!(
        r.statuses(),
        vec!["started", "ringing", "answered", "completed"]
    );
    assert_eq!(r.heard.first().map(|h| h.text.as_str()), Some("Hello?"));
    assert!(r.said.is_empty());
    // Gone: 404, which the client counts as success.
    c.hang_up(ProviderCallId(uuid)).await.expect("idempotent");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(lock(&talky.log).closed);
}

#[tokio::test]
async fn talky_closing_the_socket_posts_disconnected() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript {
        greeting: "Bye now.".into(),
        close_after_greeting: true,
        ..Default::default()
    })
    .await;
    let uuid = call(&sim, &talky, "silent").await;
    let r = ended(&sim, &uuid, 10).await;
    assert_eq!(r.hang_up, Some(HangUpSide::SocketClosed));
    assert_eq!(
        r.statuses(),
        vec![
            "started",
            "ringing",
            "answered",
            "disconnected",
            "completed"
        ]
    );
    let d = &r.webhooks[3].body;
    assert!(d["to"].as_str().expect("to").starts_with("ws://"));
    assert!(d["headers"]["call_id"].is_string());
}

#[tokio::test]
async fn barge_in_persona_talks_over_the_agent() {
    let sim = sim().await;
    let greeting = "Hello there, this is Anna from Acme Energy calling about your bill.";
    let talky = Talky::start(AgentScript {
        greeting: greeting.into(),
        replies: vec!["It is Anna.".into()],
        ..Default::default()
    })
    .await;
    let uuid = call(&sim, &talky, "barge_in").await;
    let r = ended(&sim, &uuid, 30).await;
    assert_eq!(r.hang_up, Some(HangUpSide::Callee));
    let l = lock(&talky.log);
    let (text, start, end) = l.spoke[0].clone();
    assert_eq!(text, greeting);
    let said = &r.said[0];
    assert_eq!(said.text, "Sorry, who is this?");
    assert!(
        said.at > start && said.at < end,
        "said at {} outside {start}..{end}",
        said.at
    );
    // After the third word ("Hello there, this "), well before the end.
    assert!(said.at - start < chrono::Duration::milliseconds(2500));
    assert_eq!(l.heard, vec!["Sorry, who is this?"]);
    assert_eq!(r.heard[0].text, greeting);
}

#[tokio::test]
async fn hangs_up_mid_sentence_and_machine_detection() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript {
        greeting: "Good morning, I am calling about your account today.".into(),
        ..Default::default()
    })
    .await;
    let uuid = call(&sim, &talky, "hangs_up_mid_sentence").await;
    let r = ended(&sim, &uuid, 20).await;
    assert_eq!(r.hang_up, Some(HangUpSide::Callee));
    let heard = &r.heard[0].text;
    assert!(
        "Good morning, I am calling about your account today.".starts_with(heard.as_str())
            && heard.len() < 25,
        "{heard}"
    );
    // Voicemail with machine detection.
    let c = client(&sim, &talky, APP_ID);
    let mut req = place(&number(&sim, "voicemail"));
    req.machine_detection = true;
    let ProviderCallId(vm) = c.place_call(req).await.expect("placed");
    let r = ended(&sim, &vm, 30).await;
    let s = r.statuses();
    assert!(s.contains(&"machine".to_owned()), "{s:?}");
    let m = &r
        .webhooks
        .iter()
        .find(|w| w.status == "machine")
        .expect("machine")
        .body;
    // The client asks for advanced detection (mode default): the verdict
    // names the leg `uuid`, a beep event follows the greeting.
    assert_eq!(m["uuid"], vm.as_str());
    assert!(
        r.webhooks
            .iter()
            .any(|w| w.status == "machine" && w.body["sub_state"] == "beep_start")
    );
    assert_eq!(s.last().map(String::as_str), Some("completed"));
    assert_eq!(r.said[0].text, "Please leave a message after the tone.");
    // Standard detection with hangup: `machine` names the leg `call_uuid`,
    // and the call ends there.
    use talky::providers::vonage::ncco::{MachineBehavior, MachineDetection};
    let std_client = VonageClient::new(VonageConfig {
        api_base_url: sim.base_url(),
        application_id: APP_ID.into(),
        private_key: Secret::new(PRIVATE_PEM),
        public_url: talky.base_url(),
        machine_detection: MachineDetection::Standard {
            behavior: MachineBehavior::Hangup,
        },
        ..Default::default()
    })
    .expect("client");
    let mut req = place(&number(&sim, "voicemail"));
    req.machine_detection = true;
    let ProviderCallId(vm) = std_client.place_call(req).await.expect("placed");
    let r = ended(&sim, &vm, 30).await;
    assert_eq!(r.hang_up, Some(HangUpSide::MachineDetected));
    assert_eq!(
        r.statuses(),
        vec!["started", "ringing", "answered", "machine", "completed"]
    );
    let m = &r.webhooks[3].body;
    assert_eq!(m["call_uuid"], vm.as_str());
    assert!(m.get("uuid").is_none(), "{m}");
}

#[test]
fn personas_load_from_the_config_dir() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/personas");
    let loaded = Personas::load_dir(dir).expect("load");
    assert_eq!(loaded, Personas::builtin());
    let missing = Personas::load_dir("/nonexistent/personas").expect("defaults");
    assert_eq!(missing, Personas::builtin());
    let p = loaded.for_number("+447700900103");
    assert_eq!(p.name, "busy");
    assert_eq!(p.outcome, Outcome::Busy);
    assert_eq!(loaded.for_number("449999999999").name, "interested");
    let barge = loaded.get("barge_in").expect("barge_in");
    assert_eq!(
        barge.steps[0],
        Step::WaitForAgentWords {
            n: 3,
            timeout_ms: None
        }
    );
    assert!(
        Persona::from_toml("name = \"x\"\noutcome = \"answer\"\n[[steps]]\ndo = \"dance\"\n")
            .is_err()
    );
}

#[tokio::test]
async fn clear_drops_unplayed_audio() {
    let sim = sim().await;
    let greeting = "One two three four five six seven eight nine ten.";
    let talky = Talky::start(AgentScript {
        greeting: greeting.into(),
        burst: true,
        clear_after: Some(Duration::from_millis(1000)),
        ..Default::default()
    })
    .await;
    let c = client(&sim, &talky, APP_ID);
    let ProviderCallId(uuid) = c
        .place_call(place(&number(&sim, "silent")))
        .await
        .expect("placed");
    for _ in 0..300 {
        if sim.call(&uuid).is_some_and(|r| !r.clears.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.hang_up(ProviderCallId(uuid.clone()))
        .await
        .expect("hang up");
    let r = ended(&sim, &uuid, 10).await;
    assert_eq!(r.clears.len(), 1);
    assert_eq!(r.frames_bad_size, 0);
    let heard = &r.heard[0].text;
    assert!(
        greeting.starts_with(heard.as_str()) && heard.len() >= 5 && heard.len() < 25,
        "{heard}"
    );
    let l = lock(&talky.log);
    assert!(
        l.texts
            .iter()
            .any(|(v, _)| v["event"] == "websocket:cleared")
    );
}

#[tokio::test]
async fn declining_personas_and_dtmf() {
    let sim = sim().await;
    sim.update(|c| {
        c.personas.insert(
            Persona::from_toml(
                "name = \"presser\"\nnumbers = [\"447700900199\"]\noutcome = \"answer\"\n\
                 [[steps]]\ndo = \"wait_for_agent_utterance_end\"\n\
                 [[steps]]\ndo = \"press\"\ndigits = \"1#\"\n\
                 [[steps]]\ndo = \"pause\"\nms = 300\n[[steps]]\ndo = \"hang_up\"\n",
            )
            .expect("persona"),
        )
    });
    let talky = Talky::start(AgentScript {
        greeting: "Hi, Anna here.".into(),
        replies: vec!["Sorry to bother you.".into()],
        ..Default::default()
    })
    .await;
    let a = call(&sim, &talky, "not_interested").await;
    let b = call(&sim, &talky, "remove_me").await;
    let d = call(&sim, &talky, "presser").await;
    let ra = ended(&sim, &a, 30).await;
    let rb = ended(&sim, &b, 30).await;
    let rd = ended(&sim, &d, 30).await;
    for r in [&ra, &rb, &rd] {
        assert_eq!(r.hang_up, Some(HangUpSide::Callee));
        assert_eq!(r.heard[0].text, "Hi, Anna here.");
    }
    assert_eq!(ra.heard[1].text, "Sorry to bother you.");
    let mut heard = lock(&talky.log).heard.clone();
    heard.sort();
    assert_eq!(
        heard,
        vec![
            "No thanks, I am not interested.",
            "Please remove me from your list."
        ]
    );
    let digits: Vec<Value> = lock(&talky.log)
        .texts
        .iter()
        .filter(|(v, _)| v["event"] == "websocket:dtmf")
        .map(|(v, _)| v["digit"].clone())
        .collect();
    assert_eq!(digits, vec![json!("1"), json!("#")]);
}

#[tokio::test]
async fn signed_webhooks_verify_with_talkys_verifier() {
    use talky::providers::vonage::SignatureVerifier;
    let sim = sim().await;
    sim.update(|c| c.signature = Some(("api-key-1".into(), "s3cret-signature".into())));
    let talky = Talky::start(AgentScript::default()).await;
    let uuid = call(&sim, &talky, "busy").await;
    ended(&sim, &uuid, 10).await;
    let raw = lock(&talky.raw).clone();
    assert_eq!(raw.len(), 4);
    let good = SignatureVerifier::new(&Secret::new("s3cret-signature"));
    let bad = SignatureVerifier::new(&Secret::new("another-secret"));
    for (auth, body) in &raw {
        good.verify(auth.as_deref(), body, Utc::now())
            .expect("signed");
        assert!(bad.verify(auth.as_deref(), body, Utc::now()).is_err());
    }
}

/// A call of the `asks_for_human` persona, its media socket up.
async fn asking_for_a_person() -> (VonageSimHandle, Talky, String) {
    let sim = sim().await;
    let talky = Talky::start(AgentScript {
        greeting: AGENT_LINES[0].into(),
        ..Default::default()
    })
    .await;
    let uuid = call(&sim, &talky, "asks_for_human").await;
    sim.wait_for(&uuid, Duration::from_secs(20), |r| r.socket_opened)
        .await
        .expect("socket up");
    (sim, talky, uuid)
}

/// `PUT /v1/calls/{uuid}` with `body`, as talky's client signs it.
async fn put_call(sim: &VonageSimHandle, uuid: &str, body: Value) -> reqwest::Response {
    let jwt = AppJwt::from_pem(APP_ID, &Secret::new(PRIVATE_PEM)).expect("jwt");
    reqwest::Client::new()
        .put(format!("{}/v1/calls/{uuid}", sim.base_url()))
        .bearer_auth(jwt.token(Utc::now()).expect("token"))
        .json(&body)
        .send()
        .await
        .expect("send")
}

/// A transfer (§1.3) of a connected call: a body the emulator does not
/// run is refused (400, naming the parameter), the spec's is taken (204):
/// the target is recorded, the media socket closed, `transfer` posted,
/// and once the person hangs up, `completed`; the call is over then.
#[tokio::test]
async fn a_transfer_is_recorded_and_the_call_goes_to_the_person() {
    let (sim, _talky, uuid) = asking_for_a_person().await;
    let put = |body: Value| put_call(&sim, &uuid, body);
    let body = talky::providers::vonage::ncco::transfer_body("+14155550199", "+447700900001")
        .expect("body");
    let mut by_url = serde_json::to_value(&body).expect("json");
    by_url["destination"] = json!({"type": "ncco", "url": ["https://example.com/ncco"]});
    let r = put(by_url).await;
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["invalid_parameters"][0]["name"], "destination", "{p}");
    assert_eq!(sim.call(&uuid).and_then(|r| r.transfer), None);

    let r = put(serde_json::to_value(&body).expect("json")).await;
    assert_eq!(r.status(), 204);
    let rec = ended(&sim, &uuid, 30).await;
    assert_eq!(rec.hang_up, Some(HangUpSide::Transferred));
    let t = rec.transfer.clone().expect("recorded");
    assert_eq!(t.number, "14155550199");
    assert_eq!(t.caller_id.as_deref(), Some("447700900001"));
    let statuses = rec.statuses();
    let at = |s: &str| statuses.iter().position(|x| x == s);
    assert!(at("answered") < at("transfer"), "{statuses:?}");
    assert_eq!(statuses.last().map(String::as_str), Some("completed"));
    let transfer = rec
        .webhooks
        .iter()
        .find(|w| w.status == "transfer")
        .expect("transfer event");
    assert_eq!(
        transfer.body["conversation_uuid_from"],
        rec.conversation_uuid
    );
    assert_eq!(transfer.body["uuid"], uuid.as_str());
    // Over: a second transfer finds no call.
    let r = put(serde_json::to_value(&body).expect("json")).await;
    assert_eq!(r.status(), 404);
}

/// talky's socket closing right after the provider accepted its transfer
/// (a crash just after asking) does not end the person's leg: the call is
/// counted transferred, not hung up by talky, and goes on to the person.
#[tokio::test]
async fn a_socket_closed_after_an_accepted_transfer_leaves_the_call_to_the_person() {
    let (sim, talky, uuid) = asking_for_a_person().await;
    let body = talky::providers::vonage::ncco::transfer_body("+14155550199", "+447700900001")
        .expect("body");
    let out = lock(&talky.log).out.clone().expect("socket");
    let r = put_call(&sim, &uuid, serde_json::to_value(&body).expect("json")).await;
    assert_eq!(r.status(), 204);
    let _ = out.send(Message::close());
    let rec = ended(&sim, &uuid, 30).await;
    assert_eq!(rec.hang_up, Some(HangUpSide::Transferred));
    let statuses = rec.statuses();
    assert!(statuses.iter().any(|s| s == "transfer"), "{statuses:?}");
    assert_eq!(statuses.last().map(String::as_str), Some("completed"));
}
