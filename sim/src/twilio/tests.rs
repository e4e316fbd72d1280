//! The Twilio emulator driven over HTTP and a tiny in-test "talky": status
//! callback receiver (whose signatures the tests verify with an HMAC of
//! their own), TwiML server and Media Streams peer with a scripted agent
//! speaking and hearing the in-band code at 8 kHz μ-law.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use warp::Filter;
use warp::filters::ws::{Message, WebSocket, Ws};

use super::*;
use crate::codec::{Decoded, Decoder, Encoder};
use crate::persona::{Outcome, Persona, Step};
use crate::telephony_tests::{AGENT_LINES, assert_conversation, serve, writer};
use talky::audio::mulaw;

const FROM: &str = "+447700900001";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What the agent does on the stream.
#[derive(Clone, Default)]
struct AgentScript {
    greeting: String,
    /// Said, one each, after each utterance of the persona ends.
    replies: Vec<String>,
    /// A mark named `utt-{n}` after each utterance's audio.
    mark_after_each: bool,
    /// Send the greeting at once (Twilio queues it), with a mark `g-{i}`
    /// after every this many frames.
    burst_marks_every: Option<usize>,
    /// Send `clear` when the persona starts speaking over queued audio.
    clear_on_barge: bool,
    /// Close the socket once the greeting has been sent.
    close_after_greeting: bool,
    /// Sent right after `start` (protocol error tests).
    raw_after_start: Vec<Message>,
}

impl AgentScript {
    /// Greets with `greeting` and does nothing else.
    fn saying(greeting: &str) -> Self {
        Self {
            greeting: greeting.into(),
            ..Self::default()
        }
    }
}

#[derive(Default)]
struct AgentLog {
    /// Every message but `media`, with when it came.
    messages: Vec<(Value, DateTime<Utc>)>,
    /// `X-Twilio-Signature` of the upgrade request and the URL it was for.
    upgrade: Option<(Option<String>, String)>,
    /// `media` messages received.
    media_in: u64,
    /// Problems seen in the numbering or payloads of what the emulator
    /// sent.
    wire_errors: Vec<String>,
    /// Persona utterances decoded on our side.
    heard: Vec<String>,
    /// (text, start, end) of what we sent.
    spoke: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    /// Marks we sent, in order.
    marks_sent: Vec<String>,
    /// When we sent `clear`.
    cleared_at: Option<DateTime<Utc>>,
    /// The event of the last message received.
    last_event: Option<String>,
    closed: bool,
}

impl AgentLog {
    fn events(&self, event: &str) -> Vec<(Value, DateTime<Utc>)> {
        self.messages
            .iter()
            .filter(|(v, _)| v["event"] == event)
            .cloned()
            .collect()
    }
}

/// One request the emulator made to us.
#[derive(Clone, Debug)]
struct Hook {
    /// The URL as the emulator requested it.
    url: String,
    signature: Option<String>,
    idempotency: Option<String>,
    params: Vec<(String, String)>,
}

impl Hook {
    fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

fn lk<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Talky {
    addr: std::net::SocketAddr,
    status: Arc<Mutex<Vec<Hook>>>,
    amd: Arc<Mutex<Vec<Hook>>>,
    twiml: Arc<Mutex<Vec<Hook>>>,
    log: Arc<Mutex<AgentLog>>,
    _task: tokio::task::JoinHandle<()>,
}

type Hooks = Arc<Mutex<Vec<Hook>>>;

fn hook_route(
    base: Arc<Mutex<String>>,
    name: &'static str,
    store: Hooks,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::post()
        .and(warp::path("twilio"))
        .and(warp::path(name))
        .and(warp::path::full())
        .and(warp::header::optional::<String>("x-twilio-signature"))
        .and(warp::header::optional::<String>(
            "i-twilio-idempotency-token",
        ))
        .and(warp::body::bytes())
        .map(
            move |path: warp::path::FullPath,
                  signature: Option<String>,
                  idempotency: Option<String>,
                  body: bytes::Bytes| {
                let url = format!("{}{}", lk(&base), path.as_str());
                let params = serde_urlencoded::from_bytes(&body).unwrap_or_default();
                lk(&store).push(Hook {
                    url,
                    signature,
                    idempotency,
                    params,
                });
                use warp::Reply;
                warp::reply().into_response()
            },
        )
}

impl Talky {
    async fn start(script: AgentScript) -> Self {
        let status: Hooks = Arc::default();
        let amd: Hooks = Arc::default();
        let twiml: Hooks = Arc::default();
        let log = Arc::new(Mutex::new(AgentLog::default()));
        let base = Arc::new(Mutex::new(String::new()));
        let tw = twiml.clone();
        let b = base.clone();
        let twiml_route = warp::post()
            .and(warp::path!("twilio" / "twiml" / String))
            .and(warp::header::optional::<String>("x-twilio-signature"))
            .and(warp::body::bytes())
            .map(
                move |call: String, signature: Option<String>, body: bytes::Bytes| {
                    let base = lk(&b).clone();
                    lk(&tw).push(Hook {
                        url: format!("{base}/twilio/twiml/{call}"),
                        signature,
                        idempotency: None,
                        params: serde_urlencoded::from_bytes(&body).unwrap_or_default(),
                    });
                    let ws = base.replacen("http://", "ws://", 1);
                    warp::http::Response::builder()
                        .header("content-type", "text/xml")
                        .body(twiml_for(&ws, &call))
                        .unwrap_or_default()
                },
            );
        let lg = log.clone();
        let b = base.clone();
        let media = warp::path!("twilio" / "media" / String / String)
            .and(warp::header::optional::<String>("x-twilio-signature"))
            .and(warp::ws())
            .map(
                move |call: String, token: String, sig: Option<String>, ws: Ws| {
                    let lg = lg.clone();
                    let url = format!(
                        "{}/twilio/media/{call}/{token}",
                        lk(&b).replacen("http://", "ws://", 1)
                    );
                    lk(&lg).upgrade = Some((sig, url));
                    let script = script.clone();
                    ws.on_upgrade(move |socket| agent(socket, script, lg))
                },
            );
        let routes = hook_route(base.clone(), "status", status.clone())
            .or(hook_route(base.clone(), "amd", amd.clone()))
            .or(twiml_route)
            .or(media);
        let (addr, task) = serve(routes).await;
        *lk(&base) = format!("http://{addr}");
        Self {
            addr,
            status,
            amd,
            twiml,
            log,
            _task: task,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn statuses(&self) -> Vec<String> {
        lk(&self.status)
            .iter()
            .map(|h| h.param("CallStatus").unwrap_or_default().to_owned())
            .collect()
    }
}

/// The TwiML talky sends: `<Connect><Stream>` to our media socket with
/// the per-call secret in the path and the call id as a `<Parameter>`.
fn twiml_for(ws_base: &str, call: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{ws_base}/twilio/media/{call}/tok-1"><Parameter name="call_id" value="{call}"/></Stream></Connect></Response>"#
    )
}

/// μ-law frames (160 bytes, 20 ms) of `text` in the in-band code.
fn frames_of(enc: &mut Encoder, text: &str) -> Vec<Vec<u8>> {
    enc.encode(text)
        .chunks(160)
        .map(|c| {
            let mut f = c.to_vec();
            f.resize(160, 0);
            mulaw::encode(&f)
        })
        .collect()
}

fn media_msg(stream: &str, frame: &[u8]) -> Message {
    Message::text(
        json!({"event": "media", "streamSid": stream, "media": {"payload": B64.encode(frame)}})
            .to_string(),
    )
}

fn mark_msg(stream: &str, name: &str) -> Message {
    Message::text(json!({"event": "mark", "streamSid": stream, "mark": {"name": name}}).to_string())
}

/// Checks the numbering of one message from the emulator.
fn check_wire(v: &Value, seq: &mut u64, chunk: &mut u64, errors: &mut Vec<String>) {
    let event = v["event"].as_str().unwrap_or_default();
    if event == "connected" {
        if *seq != 0 {
            errors.push("connected is not first".into());
        }
        return;
    }
    *seq += 1;
    if v["sequenceNumber"] != Value::String(seq.to_string()) {
        errors.push(format!(
            "sequenceNumber {} where {seq} was due",
            v["sequenceNumber"]
        ));
    }
    if event == "media" {
        *chunk += 1;
        let m = &v["media"];
        if m["chunk"] != Value::String(chunk.to_string()) {
            errors.push(format!("chunk {} where {chunk} was due", m["chunk"]));
        }
        let timestamp_ok = m["timestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<u64>().is_ok());
        if m["track"] != "inbound" || !timestamp_ok {
            errors.push(format!("media fields: {m}"));
        }
        let len = m["payload"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .map_or(0, |b| b.len());
        if len != 160 {
            errors.push(format!("payload of {len} bytes"));
        }
    }
}

/// The scripted agent: greeting on `start`, a reply after each persona
/// utterance, all as real-time 20 ms μ-law frames.
async fn agent(socket: WebSocket, script: AgentScript, log: Arc<Mutex<AgentLog>>) {
    let (sink, mut stream) = socket.split();
    let (say_tx, mut say_rx) = mpsc::unbounded_channel::<String>();
    let (out_tx, writer) = writer(sink);
    let stream_sid = Arc::new(Mutex::new(String::new()));
    // Until when our queued audio plays (burst mode).
    let speaking_until = Arc::new(Mutex::new(None::<tokio::time::Instant>));
    let lg = log.clone();
    let out = out_tx.clone();
    let sid = stream_sid.clone();
    let until = speaking_until.clone();
    let s = script.clone();
    let speaker = tokio::spawn(async move {
        let mut enc = Encoder::new(8_000);
        let mut n = 0;
        while let Some(text) = say_rx.recv().await {
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let stream = lk(&sid).clone();
            let frames = frames_of(&mut enc, &text);
            let start = Utc::now();
            if n == 0
                && let Some(every) = s.burst_marks_every
            {
                *lk(&until) = Some(
                    tokio::time::Instant::now() + Duration::from_millis(20 * frames.len() as u64),
                );
                for (i, f) in frames.iter().enumerate() {
                    let _ = out.send(media_msg(&stream, f));
                    if (i + 1) % every == 0 {
                        let name = format!("g-{}", i / every);
                        lk(&lg).marks_sent.push(name.clone());
                        let _ = out.send(mark_msg(&stream, &name));
                    }
                }
            } else {
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                for (i, f) in frames.iter().enumerate() {
                    // 200 ms ahead of real time, like talky's playout.
                    if i >= 10 {
                        tick.tick().await;
                    }
                    if out.send(media_msg(&stream, f)).is_err() {
                        return;
                    }
                }
            }
            lk(&lg).spoke.push((text, start, Utc::now()));
            if s.mark_after_each {
                let name = format!("utt-{n}");
                lk(&lg).marks_sent.push(name.clone());
                let _ = out.send(mark_msg(&stream, &name));
            }
            if n == 0 && s.close_after_greeting {
                let _ = out.send(Message::close());
                return;
            }
            n += 1;
        }
    });
    let mut replies = script.replies.clone().into_iter();
    let mut dec = Decoder::new(8_000);
    let mut cur = String::new();
    let (mut seq, mut chunk) = (0u64, 0u64);
    while let Some(Ok(msg)) = stream.next().await {
        if msg.is_close() {
            break;
        }
        if msg.is_binary() {
            lk(&log)
                .wire_errors
                .push("binary frame from the emulator".into());
            continue;
        }
        let Ok(text) = msg.to_str() else { continue };
        let v: Value = serde_json::from_str(text).unwrap_or_default();
        {
            let mut l = lk(&log);
            let l = &mut *l;
            check_wire(&v, &mut seq, &mut chunk, &mut l.wire_errors);
            l.last_event = v["event"].as_str().map(str::to_owned);
        }
        match v["event"].as_str() {
            Some("media") => {
                lk(&log).media_in += 1;
                let bytes = v["media"]["payload"]
                    .as_str()
                    .and_then(|p| B64.decode(p).ok())
                    .unwrap_or_default();
                for ev in dec.push(&mulaw::decode(&bytes)) {
                    match ev {
                        Decoded::SpeechStart { .. } if script.clear_on_barge => {
                            let playing = lk(&speaking_until)
                                .is_some_and(|u| tokio::time::Instant::now() < u);
                            if playing && lk(&log).cleared_at.is_none() {
                                *lk(&speaking_until) = None;
                                lk(&log).cleared_at = Some(Utc::now());
                                let clear =
                                    json!({"event": "clear", "streamSid": lk(&stream_sid).clone()});
                                let _ = out_tx.send(Message::text(clear.to_string()));
                            }
                        }
                        Decoded::Char { c, .. } => cur.push(c),
                        Decoded::UtteranceEnd { .. } if !cur.is_empty() => {
                            lk(&log).heard.push(std::mem::take(&mut cur));
                            if let Some(r) = replies.next() {
                                let _ = say_tx.send(r);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some("start") => {
                *lk(&stream_sid) = v["streamSid"].as_str().unwrap_or_default().to_owned();
                lk(&log).messages.push((v, Utc::now()));
                for m in &script.raw_after_start {
                    let _ = out_tx.send(m.clone());
                }
                let _ = say_tx.send(script.greeting.clone());
            }
            _ => lk(&log).messages.push((v, Utc::now())),
        }
    }
    lk(&log).closed = true;
    drop(say_tx);
    speaker.abort();
    drop(out_tx);
    let _ = writer.await;
}

// ----- helpers -----------------------------------------------------------

async fn sim() -> TwilioSimHandle {
    TwilioSim::start(TwilioSimConfig {
        machine_detection_delay: Duration::from_millis(500),
        initiated_to_ringing: Duration::from_millis(20),
        ..Default::default()
    })
    .await
    .expect("sim")
}

fn number(sim: &TwilioSimHandle, persona: &str) -> String {
    format!(
        "+{}",
        sim.config()
            .personas
            .number_of(persona)
            .expect("persona number")
    )
}

/// The create form talky sends (issue 14): inline TwiML, every status
/// event, ring and talk limits; `extra` appended.
fn form(
    sim: &TwilioSimHandle,
    talky: &Talky,
    persona: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let call = "c-1";
    let mut f: Vec<(String, String)> = vec![
        ("To".into(), number(sim, persona)),
        ("From".into(), FROM.into()),
        (
            "Twiml".into(),
            twiml_for(&talky.base_url().replacen("http://", "ws://", 1), call),
        ),
        (
            "StatusCallback".into(),
            format!("{}/twilio/status/{call}", talky.base_url()),
        ),
        ("StatusCallbackMethod".into(), "POST".into()),
    ];
    for e in ["initiated", "ringing", "answered", "completed"] {
        f.push(("StatusCallbackEvent".into(), e.into()));
    }
    f.push(("Timeout".into(), "2".into()));
    f.push(("TimeLimit".into(), "60".into()));
    for (k, v) in extra {
        f.push(((*k).into(), (*v).into()));
    }
    f
}

/// POSTs a form with the account's credentials.
async fn post_form(sim: &TwilioSimHandle, path: &str, form: &[(String, String)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", sim.account_url()))
        .basic_auth(sim.account_sid(), Some(sim.auth_token()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).expect("form"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(sim: &TwilioSimHandle, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", sim.account_url()))
        .basic_auth(sim.account_sid(), Some(sim.auth_token()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create(sim: &TwilioSimHandle, form: &[(String, String)]) -> String {
    let (status, body) = post_form(sim, "/Calls.json", form).await;
    assert_eq!(status, 201, "{body}");
    body["sid"].as_str().expect("sid").to_owned()
}

async fn ended(sim: &TwilioSimHandle, sid: &str, secs: u64) -> CallRecord {
    sim.wait_ended(sid, Duration::from_secs(secs))
        .await
        .unwrap_or_else(|| panic!("call did not end: {:?}", sim.call(sid)))
}

/// `X-Twilio-Signature` computed here, independently of the emulator:
/// aws-lc's HMAC-SHA1 over the URL and the sorted parameters.
fn expected_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    use aws_lc_rs::hmac;
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(&k);
        data.push_str(&v);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.as_bytes());
    B64.encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

fn verify(token: &str, hook: &Hook) {
    let sig = hook.signature.as_deref().expect("signed");
    assert_eq!(
        sig,
        expected_signature(token, &hook.url, &hook.params),
        "{hook:?}"
    );
    assert_ne!(
        sig,
        expected_signature("another-token", &hook.url, &hook.params)
    );
}

fn persona(name: &str, number: &str, outcome: Outcome, steps: Vec<Step>) -> Persona {
    Persona {
        name: name.into(),
        numbers: vec![number.into()],
        default: false,
        ring_ms: 50,
        outcome,
        steps,
    }
}

// ----- REST ----------------------------------------------------------------

#[tokio::test]
async fn rest_refuses_bad_auth_and_bad_forms_with_twilio_codes() {
    let sim = sim().await;
    sim.update(|c| c.api_keys = vec![("SK0123".into(), "key-secret".into())]);
    let talky = Talky::start(AgentScript::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/Calls.json", sim.account_url());
    let good = form(&sim, &talky, "busy", &[]);
    let body = serde_urlencoded::to_string(&good).expect("form");
    let send = |user: Option<(&str, &str)>, url: String| {
        let mut req = http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        async move { req.send().await.expect("send") }
    };
    // No auth, a wrong token, the right token on another account's path.
    let sid = sim.account_sid();
    let other = format!(
        "{}/2010-04-01/Accounts/AC{}/Calls.json",
        sim.base_url(),
        "f".repeat(32)
    );
    for (user, url) in [
        (None, url.clone()),
        (Some((sid.as_str(), "wrong")), url.clone()),
        (Some(("SK0123", "wrong")), url.clone()),
        (Some((sid.as_str(), DEFAULT_AUTH_TOKEN)), other),
    ] {
        let r = send(user, url).await;
        assert_eq!(r.status().as_u16(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["code"], 20003);
        assert_eq!(e["status"], 401);
        assert!(e["message"].is_string());
        assert_eq!(e["more_info"], "https://www.twilio.com/docs/errors/20003");
    }
    assert!(sim.calls().is_empty());
    // An API key is accepted.
    let r = send(Some(("SK0123", "key-secret")), url.clone()).await;
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.expect("json");
    let ca = created["sid"].as_str().expect("sid");
    assert!(wire::is_sid("CA", ca), "{ca}");
    assert_eq!(created["account_sid"], sid.as_str());
    assert_eq!(created["status"], "queued");
    assert_eq!(created["direction"], "outbound-api");
    assert_eq!(created["to"], number(&sim, "busy").as_str());
    assert_eq!(created["from"], FROM);
    assert_eq!(
        created["uri"],
        format!("/2010-04-01/Accounts/{sid}/Calls/{ca}.json").as_str()
    );

    // Form errors, one code each.
    let set = |k: &str, v: Option<&str>| {
        let mut f: Vec<(String, String)> = good.iter().filter(|(n, _)| n != k).cloned().collect();
        if let Some(v) = v {
            f.push((k.into(), v.into()));
        }
        f
    };
    let with = |k: &str, v: &str| {
        let mut f = good.clone();
        f.push((k.into(), v.into()));
        f
    };
    let cases: Vec<(Vec<(String, String)>, u32)> = vec![
        (set("To", None), 21201),
        (set("To", Some("447700900100")), 21211),
        (set("To", Some("+44 7700")), 21211),
        (set("From", None), 21213),
        (set("From", Some("acme")), 21212),
        (set("Twiml", None), 21205),
        (with("Url", "https://dialer.example.com/twiml"), 21200),
        (
            {
                let mut f = set("Twiml", None);
                f.push(("Url".into(), "not a url".into()));
                f
            },
            21205,
        ),
        (set("Twiml", Some("<Response><Connect></Response>")), 12100),
        (set("Twiml", Some("<Reply/>")), 12100),
        (
            {
                let mut f = set("Twiml", None);
                f.push(("ApplicationSid".into(), format!("AP{}", "0".repeat(32))));
                f
            },
            21218,
        ),
        (set("StatusCallback", Some("ftp://x/y")), 21205),
        (set("StatusCallbackMethod", Some("PUT")), 21200),
        (with("StatusCallbackEvent", "hangup"), 21200),
        (set("Timeout", Some("soon")), 21200),
        (set("TimeLimit", Some("0")), 21200),
        (with("MachineDetection", "Maybe"), 21200),
        (
            {
                let mut f = with("MachineDetection", "Enable");
                f.push(("AsyncAmd".into(), "yes".into()));
                f
            },
            21200,
        ),
        (
            {
                let mut f = with("MachineDetection", "Enable");
                f.push(("MachineDetectionTimeout".into(), "99".into()));
                f
            },
            21200,
        ),
    ];
    for (f, code) in cases {
        let (status, e) = post_form(&sim, "/Calls.json", &f).await;
        assert_eq!(
            (status, e["code"].as_u64()),
            (400, Some(u64::from(code))),
            "{e}"
        );
        assert_eq!(e["status"], 400);
        assert_eq!(
            e["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}").as_str()
        );
    }
    // A JSON body is no form: no `To`.
    let r = http
        .post(&url)
        .basic_auth(&sid, Some(DEFAULT_AUTH_TOKEN))
        .json(&json!({"To": number(&sim, "busy")}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], 21201);
    assert_eq!(sim.calls().len(), 1, "only the API-key call was created");

    // Unknown calls: 404 20404 on fetch and update; the list answers.
    let (status, e) = get(&sim, &format!("/Calls/CA{}.json", "0".repeat(32))).await;
    assert_eq!((status, e["code"].as_u64()), (404, Some(20404)));
    let (status, e) = post_form(
        &sim,
        &format!("/Calls/CA{}.json", "0".repeat(32)),
        &[("Status".into(), "completed".into())],
    )
    .await;
    assert_eq!((status, e["code"].as_u64()), (404, Some(20404)));
    // The failed-create knob: no call, Twilio's error.
    sim.update(|c| {
        c.fail_create = Some(CreateFailure {
            status: 503,
            code: 20503,
        })
    });
    let (status, e) = post_form(&sim, "/Calls.json", &good).await;
    assert_eq!((status, e["code"].as_u64()), (503, Some(20503)));
    assert_eq!(sim.calls().len(), 1);
}

// ----- whole calls --------------------------------------------------------------

#[tokio::test]
async fn interested_persona_over_media_streams_with_signed_callbacks() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript {
        greeting: AGENT_LINES[0].into(),
        replies: AGENT_LINES[1..].iter().map(|l| l.to_string()).collect(),
        mark_after_each: true,
        ..Default::default()
    })
    .await;
    let sid = create(&sim, &form(&sim, &talky, "interested", &[])).await;
    let rec = ended(&sim, &sid, 40).await;
    assert_eq!(rec.persona, "interested");
    assert_eq!(rec.hang_up, Some(HangUpSide::Callee));
    assert_eq!(
        rec.statuses(),
        vec!["initiated", "ringing", "in-progress", "completed"]
    );
    assert_eq!(talky.statuses(), rec.statuses());
    assert!(rec.callbacks.iter().all(|c| c.http_status == Some(200)));
    // The callbacks: fields of §2.1, in order, signed.
    let hooks = lk(&talky.status).clone();
    for (i, h) in hooks.iter().enumerate() {
        verify(DEFAULT_AUTH_TOKEN, h);
        assert_eq!(h.param("AccountSid"), Some(DEFAULT_ACCOUNT_SID));
        assert_eq!(h.param("CallSid"), Some(sid.as_str()));
        assert_eq!(h.param("From"), Some(FROM));
        assert_eq!(h.param("To"), Some(number(&sim, "interested").as_str()));
        assert_eq!(h.param("Direction"), Some("outbound-api"));
        assert_eq!(h.param("ApiVersion"), Some("2010-04-01"));
        assert_eq!(h.param("CallbackSource"), Some("call-progress-events"));
        assert_eq!(h.param("SequenceNumber"), Some(i.to_string().as_str()));
        let ts = h.param("Timestamp").expect("Timestamp");
        assert!(DateTime::parse_from_rfc2822(ts).is_ok(), "{ts}");
        assert!(h.idempotency.is_some());
        assert_eq!(h.param("AnsweredBy"), None, "no AMD asked for");
    }
    let done = &hooks[3];
    let secs: u64 = done
        .param("CallDuration")
        .expect("CallDuration")
        .parse()
        .expect("n");
    assert!(secs >= 5, "{secs}");
    assert!(hooks[..3].iter().all(|h| h.param("CallDuration").is_none()));
    // The resource afterwards.
    let (status, r) = get(&sim, &format!("/Calls/{sid}.json")).await;
    assert_eq!(status, 200);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["duration"], secs.to_string().as_str());
    assert!(r["end_time"].is_string() && r["start_time"].is_string());
    // The upgrade request is signed too (over the URL).
    let (up_sig, up_url) = lk(&talky.log).upgrade.clone().expect("upgraded");
    assert_eq!(
        up_sig.as_deref(),
        Some(expected_signature(DEFAULT_AUTH_TOKEN, &up_url, &[]).as_str())
    );

    let l = lk(&talky.log);
    assert!(l.wire_errors.is_empty(), "{:?}", l.wire_errors);
    // connected, start, ..., stop last.
    let first = &l.messages[0].0;
    assert_eq!(
        first,
        &json!({"event":"connected","protocol":"Call","version":"1.0.0"})
    );
    let start = &l.messages[1].0;
    assert_eq!(start["event"], "start");
    assert_eq!(start["sequenceNumber"], "1");
    let stream_sid = start["streamSid"].as_str().expect("streamSid");
    assert!(wire::is_sid("MZ", stream_sid), "{stream_sid}");
    assert_eq!(start["start"]["streamSid"], stream_sid);
    assert_eq!(start["start"]["callSid"], sid.as_str());
    assert_eq!(start["start"]["accountSid"], DEFAULT_ACCOUNT_SID);
    assert_eq!(start["start"]["tracks"], json!(["inbound"]));
    assert_eq!(
        start["start"]["customParameters"],
        json!({"call_id": "c-1"})
    );
    assert_eq!(
        start["start"]["mediaFormat"],
        json!({"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1})
    );
    assert_eq!(l.last_event.as_deref(), Some("stop"));
    let stop = &l.events("stop")[0].0;
    assert_eq!(
        stop["stop"],
        json!({"accountSid": DEFAULT_ACCOUNT_SID, "callSid": sid})
    );
    assert_eq!(rec.stream_sid.as_deref(), Some(stream_sid));
    // Both directions decoded exactly.
    assert_conversation(&rec.heard, &rec.said, &l.heard);
    // Each mark came back once its utterance had been played.
    let echoed = l.events("mark");
    let names: Vec<&str> = echoed
        .iter()
        .map(|(v, _)| v["mark"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["utt-0", "utt-1", "utt-2"]);
    for ((_, at), (_, _, sent_end)) in echoed.iter().zip(&l.spoke) {
        assert!(at >= sent_end, "mark echoed before its audio ended");
    }
    assert_eq!(rec.marks_received.len(), 3);
    assert_eq!(rec.marks_echoed.len(), 3);
    assert!(rec.media_in > 100 && rec.media_out > 100);
    assert_eq!(rec.media_bad_size, 0);
    assert!(rec.errors.is_empty(), "{:?}", rec.errors);
    assert!(l.closed);
}

#[tokio::test]
async fn barge_in_clear_returns_the_pending_marks() {
    let sim = sim().await;
    let greeting = "Hello there, this is Anna from Acme Energy calling about your bill.";
    let talky = Talky::start(AgentScript {
        greeting: greeting.into(),
        replies: vec!["It is Anna.".into()],
        burst_marks_every: Some(10),
        clear_on_barge: true,
        ..Default::default()
    })
    .await;
    let sid = create(&sim, &form(&sim, &talky, "barge_in", &[])).await;
    let rec = ended(&sim, &sid, 40).await;
    assert_eq!(rec.hang_up, Some(HangUpSide::Callee));
    let l = lk(&talky.log);
    let cleared_at = l.cleared_at.expect("we cleared");
    assert_eq!(rec.clears.len(), 1);
    let returned = &rec.clears[0].returned_marks;
    assert!(!returned.is_empty(), "marks were pending at the clear");
    // Every mark came back exactly once: the played ones before the
    // clear, the discarded ones right after it, in order.
    let echoed = l.events("mark");
    let names: Vec<String> = echoed
        .iter()
        .map(|(v, _)| v["mark"]["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, l.marks_sent);
    let after: Vec<String> = echoed
        .iter()
        .filter(|(_, at)| *at >= cleared_at)
        .map(|(v, _)| v["mark"]["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(&after, returned);
    // The persona heard the greeting up to the clear, and spoke over it.
    let said = &rec.said[0];
    assert_eq!(said.text, "Sorry, who is this?");
    let cut = &rec.heard[0].text;
    assert!(
        greeting.starts_with(cut.as_str())
            && cut.len() >= "Hello there, this".len()
            && cut.len() < greeting.len() - 10,
        "{cut}"
    );
    // The persona heard three words (over a second, one mark per 200 ms)
    // before it spoke: those marks were played, not returned.
    let played = l.marks_sent.len() - returned.len();
    assert!(played >= 3, "{played} marks played before the clear");
    assert_eq!(l.heard, vec!["Sorry, who is this?"]);
    assert_eq!(rec.heard[1].text, "It is Anna.");
    assert_eq!(sim.stats(true).clears, 1);
    assert_eq!(sim.stats(true).barge_in_ms.len(), 1);
}

#[tokio::test]
async fn busy_and_no_answer_status_sequences() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript::saying("Hello.")).await;
    let busy = create(&sim, &form(&sim, &talky, "busy", &[])).await;
    let none = create(&sim, &form(&sim, &talky, "no_answer", &[])).await;
    let b = ended(&sim, &busy, 10).await;
    let n = ended(&sim, &none, 10).await;
    assert_eq!(b.statuses(), vec!["initiated", "ringing", "busy"]);
    assert_eq!(n.statuses(), vec!["initiated", "ringing", "no-answer"]);
    for r in [&b, &n] {
        assert!(!r.socket_opened);
        assert_eq!(r.hang_up, Some(HangUpSide::NotConnected));
        let last = r.status_callbacks().last().cloned().expect("terminal");
        assert_eq!(last.param("CallDuration"), Some("0"));
        assert_eq!(last.param("SequenceNumber"), Some("2"));
    }
    // no-answer waited out `Timeout` (2 s).
    let ring = n.ended_at.expect("ended") - n.created_at;
    assert!(ring >= chrono::Duration::milliseconds(1900), "{ring}");
    assert!(lk(&talky.log).messages.is_empty());
    // The resource shows the terminal status, no duration.
    let (_, r) = get(&sim, &format!("/Calls/{busy}.json")).await;
    assert_eq!(r["status"], "busy");
    assert_eq!(r["duration"], Value::Null);
    // Only `completed` asked for (the default): one callback.
    let mut f = form(&sim, &talky, "busy", &[]);
    f.retain(|(k, _)| k != "StatusCallbackEvent");
    let quiet = create(&sim, &f).await;
    assert_eq!(ended(&sim, &quiet, 10).await.statuses(), vec!["busy"]);
}

#[tokio::test]
async fn async_amd_posts_the_machine_verdict() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript::saying("Hello, this is a message from Acme.")).await;
    let amd_url = format!("{}/twilio/amd/c-1", talky.base_url());
    let f = form(
        &sim,
        &talky,
        "voicemail",
        &[
            ("MachineDetection", "DetectMessageEnd"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", amd_url.as_str()),
            ("AsyncAmdStatusCallbackMethod", "POST"),
        ],
    );
    let sid = create(&sim, &f).await;
    let rec = ended(&sim, &sid, 40).await;
    assert_eq!(rec.answered_by.as_deref(), Some("machine_end_beep"));
    let amd = lk(&talky.amd).clone();
    assert_eq!(amd.len(), 1);
    verify(DEFAULT_AUTH_TOKEN, &amd[0]);
    assert_eq!(amd[0].param("AnsweredBy"), Some("machine_end_beep"));
    assert_eq!(amd[0].param("CallSid"), Some(sid.as_str()));
    assert_eq!(amd[0].param("AccountSid"), Some(DEFAULT_ACCOUNT_SID));
    let ms: u64 = amd[0]
        .param("MachineDetectionDuration")
        .expect("duration")
        .parse()
        .expect("ms");
    // After the greeting ("Please leave a message after the tone.", 2.7 s).
    assert!(ms >= 2500, "{ms}");
    // The TwiML ran at once: the greeting reached the agent.
    assert_eq!(
        lk(&talky.log).heard,
        vec!["Please leave a message after the tone."]
    );
    // `in-progress` came before the verdict, `completed` carries it.
    let hooks = lk(&talky.status).clone();
    assert_eq!(hooks[2].param("AnsweredBy"), None);
    assert_eq!(hooks[3].param("AnsweredBy"), Some("machine_end_beep"));
    assert_eq!(rec.hang_up, Some(HangUpSide::Callee));

    // Synchronous `Enable` on a human: the verdict before the stream, in
    // `in-progress`; the knob can force another.
    let sid = create(
        &sim,
        &form(&sim, &talky, "silent", &[("MachineDetection", "Enable")]),
    )
    .await;
    let r = sim
        .wait_for(&sid, Duration::from_secs(10), |r| {
            r.socket_opened && r.statuses().len() >= 3
        })
        .await
        .expect("stream open, in-progress posted");
    assert_eq!(r.answered_by.as_deref(), Some("human"));
    let st = r.status_callbacks().last().cloned().expect("in-progress");
    assert_eq!(st.param("CallStatus"), Some("in-progress"));
    assert_eq!(st.param("AnsweredBy"), Some("human"));
    let (_, res) = get(&sim, &format!("/Calls/{sid}.json")).await;
    assert_eq!(res["answered_by"], "human");
    post_form(
        &sim,
        &format!("/Calls/{sid}.json"),
        &[("Status".into(), "completed".into())],
    )
    .await;
    ended(&sim, &sid, 10).await;
    sim.update(|c| c.amd_verdict = Some("fax".into()));
    let sid = create(
        &sim,
        &form(&sim, &talky, "silent", &[("MachineDetection", "Enable")]),
    )
    .await;
    let r = sim
        .wait_for(&sid, Duration::from_secs(10), |r| r.answered_by.is_some())
        .await
        .expect("verdict");
    assert_eq!(r.answered_by.as_deref(), Some("fax"));
}

#[tokio::test]
async fn hang_up_through_rest() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript::saying("Hello?")).await;
    let sid = create(&sim, &form(&sim, &talky, "silent", &[])).await;
    sim.wait_for(&sid, Duration::from_secs(10), |r| r.socket_opened)
        .await
        .expect("stream open");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, r) = post_form(
        &sim,
        &format!("/Calls/{sid}.json"),
        &[("Status".into(), "completed".into())],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        r["status"], "completed",
        "the reply shows the call over: {r}"
    );
    let rec = ended(&sim, &sid, 10).await;
    assert_eq!(rec.hang_up, Some(HangUpSide::Rest));
    assert_eq!(
        rec.statuses(),
        vec!["initiated", "ringing", "in-progress", "completed"]
    );
    assert_eq!(rec.heard.first().map(|h| h.text.as_str()), Some("Hello?"));
    assert!(rec.said.is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        let l = lk(&talky.log);
        assert_eq!(l.last_event.as_deref(), Some("stop"));
        assert!(l.closed);
    }
    // Again: the call is over, the resource comes back unchanged.
    let (status, again) = post_form(
        &sim,
        &format!("/Calls/{sid}.json"),
        &[("Status".into(), "completed".into())],
    )
    .await;
    assert_eq!((status, again["status"].as_str()), (200, Some("completed")));
    // Canceled while ringing.
    sim.update(|c| {
        c.personas.insert(Persona {
            ring_ms: 20_000,
            ..persona("slow", "447700900299", Outcome::Answer, vec![])
        })
    });
    let mut f = form(&sim, &talky, "slow", &[]);
    f.retain(|(k, _)| k != "Timeout");
    let ringing = create(&sim, &f).await;
    sim.wait_for(&ringing, Duration::from_secs(5), |r| r.status == "ringing")
        .await
        .expect("rings");
    let (status, r) = post_form(
        &sim,
        &format!("/Calls/{ringing}.json"),
        &[("Status".into(), "canceled".into())],
    )
    .await;
    assert_eq!((status, r["status"].as_str()), (200, Some("canceled")));
    let rec = ended(&sim, &ringing, 5).await;
    assert_eq!(rec.statuses(), vec!["initiated", "ringing", "canceled"]);
    assert_eq!(rec.hang_up, Some(HangUpSide::Rest));
}

#[tokio::test]
async fn url_twiml_is_fetched_signed_and_the_list_filters() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript {
        close_after_greeting: true,
        ..AgentScript::saying("Bye now.")
    })
    .await;
    let since = Utc::now() - chrono::Duration::seconds(1);
    let mut f = form(&sim, &talky, "silent", &[]);
    f.retain(|(k, _)| k != "Twiml");
    f.push((
        "Url".into(),
        format!("{}/twilio/twiml/c-9", talky.base_url()),
    ));
    let sid = create(&sim, &f).await;
    let rec = ended(&sim, &sid, 20).await;
    // talky closed the socket: the call completed.
    assert_eq!(rec.hang_up, Some(HangUpSide::SocketClosed));
    assert_eq!(
        rec.statuses(),
        vec!["initiated", "ringing", "in-progress", "completed"]
    );
    let fetched = lk(&talky.twiml).clone();
    assert_eq!(fetched.len(), 1);
    verify(DEFAULT_AUTH_TOKEN, &fetched[0]);
    assert_eq!(fetched[0].param("CallSid"), Some(sid.as_str()));
    assert_eq!(fetched[0].param("CallStatus"), Some("in-progress"));
    assert!(rec.twiml.as_deref().is_some_and(|t| t.contains("c-9")));
    // Closing the socket ends the stream: what was still queued is not
    // played.
    let heard = &rec.heard[0].text;
    assert!(
        !heard.is_empty() && "Bye now.".starts_with(heard.as_str()),
        "{heard}"
    );
    // A busy call to another number, then the list.
    let other = create(&sim, &form(&sim, &talky, "busy", &[])).await;
    ended(&sim, &other, 10).await;
    let to = number(&sim, "silent");
    let q = serde_urlencoded::to_string([
        ("To", to.as_str()),
        (
            "StartTime>",
            &since.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
        ("PageSize", "20"),
    ])
    .expect("query");
    let (status, list) = get(&sim, &format!("/Calls.json?{q}")).await;
    assert_eq!(status, 200, "{list}");
    let calls = list["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{list}");
    assert_eq!(calls[0]["sid"], sid.as_str());
    assert_eq!(list["page_size"], 20);
    assert_eq!(list["next_page_uri"], Value::Null);
    let (_, all) = get(&sim, "/Calls.json?Status=busy").await;
    assert_eq!(all["calls"].as_array().map(Vec::len), Some(1));
    let later = (Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let (_, none) = get(&sim, &format!("/Calls.json?StartTime%3E={later}")).await;
    assert_eq!(none["calls"], json!([]));
    // Paging: one a page, newest first.
    let (_, p0) = get(&sim, "/Calls.json?PageSize=1").await;
    assert_eq!(p0["calls"][0]["sid"], other.as_str());
    let next = p0["next_page_uri"].as_str().expect("next page");
    let r = reqwest::Client::new()
        .get(format!("{}{next}", sim.base_url()))
        .basic_auth(sim.account_sid(), Some(sim.auth_token()))
        .send()
        .await
        .expect("send");
    let p1: Value = r.json().await.expect("json");
    assert_eq!(p1["calls"][0]["sid"], sid.as_str());
    assert_eq!(p1["next_page_uri"], Value::Null);
    let (status, _) = get(&sim, "/Calls.json?StartTime%3E=yesterday").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn stream_refuses_what_twilio_refuses() {
    let sim = sim().await;
    // A binary frame is logged and dropped; an unknown event closes.
    let talky = Talky::start(AgentScript {
        raw_after_start: vec![
            Message::binary(vec![0u8; 160]),
            Message::text(r#"{"event":"dance","streamSid":"MZ1"}"#),
        ],
        ..AgentScript::saying("Hello.")
    })
    .await;
    let sid = create(&sim, &form(&sim, &talky, "silent", &[])).await;
    let rec = ended(&sim, &sid, 10).await;
    assert_eq!(rec.hang_up, Some(HangUpSide::StreamError));
    let codes: Vec<u32> = rec.errors.iter().map(|e| e.code).collect();
    assert_eq!(codes, vec![31950, 31924]);
    assert_eq!(rec.statuses().last().map(String::as_str), Some("completed"));
    assert_eq!(lk(&talky.log).last_event.as_deref(), Some("stop"));
    // A streamSid that is not the stream's closes it too.
    let talky = Talky::start(AgentScript {
        raw_after_start: vec![Message::text(
            json!({"event":"clear","streamSid": format!("MZ{}", "0".repeat(32))}).to_string(),
        )],
        ..AgentScript::saying("Hello.")
    })
    .await;
    let sid = create(&sim, &form(&sim, &talky, "silent", &[])).await;
    let rec = ended(&sim, &sid, 10).await;
    assert_eq!(rec.hang_up, Some(HangUpSide::StreamError));
    assert!(
        rec.errors[0].message.contains("streamSid"),
        "{:?}",
        rec.errors
    );
    // TwiML without <Connect><Stream>: answered, nothing bridged, over.
    let mut f = form(&sim, &talky, "silent", &[]);
    f.retain(|(k, _)| k != "Twiml");
    f.push(("Twiml".into(), "<Response><Say>Hi</Say></Response>".into()));
    let sid = create(&sim, &f).await;
    let rec = ended(&sim, &sid, 10).await;
    assert_eq!(rec.hang_up, Some(HangUpSide::TwimlFailed));
    assert!(rec.twiml_error.is_some());
    assert_eq!(rec.statuses().last().map(String::as_str), Some("completed"));
}

#[tokio::test]
async fn callback_and_socket_knobs() {
    let sim = sim().await;
    let talky = Talky::start(AgentScript::saying("Hello.")).await;
    // Duplicates keep their SequenceNumber and idempotency token.
    sim.update(|c| c.duplicate_callbacks = true);
    let sid = create(&sim, &form(&sim, &talky, "busy", &[])).await;
    let r = ended(&sim, &sid, 10).await;
    assert_eq!(
        r.statuses(),
        vec![
            "initiated",
            "initiated",
            "ringing",
            "ringing",
            "busy",
            "busy"
        ]
    );
    let hooks = lk(&talky.status).clone();
    assert_eq!(hooks.len(), 6);
    for pair in hooks.chunks(2) {
        assert_eq!(
            pair[0].param("SequenceNumber"),
            pair[1].param("SequenceNumber")
        );
        assert_eq!(pair[0].idempotency, pair[1].idempotency);
        verify(DEFAULT_AUTH_TOKEN, &pair[1]);
    }
    lk(&talky.status).clear();
    // Reordered: the sequence numbers still tell the real order.
    sim.update(|c| {
        c.duplicate_callbacks = false;
        c.reorder_callbacks = true;
    });
    let sid = create(&sim, &form(&sim, &talky, "busy", &[])).await;
    let r = ended(&sim, &sid, 10).await;
    assert_ne!(r.statuses(), vec!["initiated", "ringing", "busy"]);
    let mut by_seq: Vec<(String, String)> = lk(&talky.status)
        .iter()
        .map(|h| {
            (
                h.param("SequenceNumber").unwrap_or_default().to_owned(),
                h.param("CallStatus").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    by_seq.sort();
    let order: Vec<&str> = by_seq.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(order, vec!["initiated", "ringing", "busy"]);
    // Unsigned when the knob says so.
    sim.update(|c| {
        c.reorder_callbacks = false;
        c.sign_requests = false;
    });
    lk(&talky.status).clear();
    let sid = create(&sim, &form(&sim, &talky, "busy", &[])).await;
    ended(&sim, &sid, 10).await;
    assert!(lk(&talky.status).iter().all(|h| h.signature.is_none()));
    // The socket dropped: no stop, the call completes.
    sim.update(|c| {
        c.sign_requests = true;
        c.drop_socket_after = Some(Duration::from_millis(600));
    });
    let sid = create(&sim, &form(&sim, &talky, "silent", &[])).await;
    let r = ended(&sim, &sid, 10).await;
    assert_eq!(r.hang_up, Some(HangUpSide::SocketDropped));
    assert_eq!(r.statuses().last().map(String::as_str), Some("completed"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(lk(&talky.log).events("stop").is_empty());
    // A slow create: the call runs before the 201 arrives.
    sim.update(|c| {
        c.drop_socket_after = None;
        c.create_response_delay = Duration::from_millis(800);
    });
    let t0 = std::time::Instant::now();
    let sid = create(&sim, &form(&sim, &talky, "busy", &[])).await;
    assert!(t0.elapsed() >= Duration::from_millis(800));
    let r = sim.call(&sid).expect("record");
    assert!(
        r.status != "queued",
        "the call went on meanwhile: {}",
        r.status
    );
}

#[test]
fn signature_matches_an_independent_hmac() {
    let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let params = vec![
        p("CallSid", "CA1"),
        p("To", "+447700900100"),
        p("StatusCallbackEvent", "ringing"),
        p("StatusCallbackEvent", "answered"),
        p("Caller", "é&=+ x"),
    ];
    let url = "https://dialer.example.com/twilio/status/c-1?k=v";
    assert_eq!(
        signature::signature("token-1", url, &params),
        expected_signature("token-1", url, &params)
    );
}
