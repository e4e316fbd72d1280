//! One simulated call: ringing, the outcome, event webhooks (§1.7), the
//! media socket (§1.6) and the persona on it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use super::persona::{Outcome, Persona, Step};
use super::stats::{dec, inc};
use super::{HangUpSide, Heard, Said, Shared, WebhookRecord, timestamp};
use crate::codec::{Decoded, Decoder, Encoder};
use talky::audio::pcm::{bytes_to_i16, i16_to_bytes};
use talky_actors::media::{Vad, VadConfig, VadEvent};

/// Machine detection the create request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detection {
    /// `advanced_machine_detection` (else standard `machine_detection`).
    pub advanced: bool,
    /// `behavior: hangup`.
    pub hangup: bool,
    /// Beep detection (`default` / `detect_beep` modes).
    pub beep: bool,
}

/// A validated create request: what the call task needs.
#[derive(Clone, Debug)]
pub struct CallPlan {
    /// Call leg uuid.
    pub uuid: String,
    /// `CON-...`.
    pub conversation_uuid: String,
    /// Callee number.
    pub to: String,
    /// Caller id.
    pub from: String,
    /// Call progress events go here.
    pub event_url: String,
    /// `POST` or `GET`.
    pub event_method: String,
    /// The connect action's `eventUrl` (websocket leg events); empty: none.
    pub leg_event_url: String,
    /// Its method.
    pub leg_event_method: String,
    /// The media socket URI.
    pub ws_uri: String,
    /// `audio/l16;rate=...`.
    pub content_type: String,
    /// Flat headers echoed in the first socket message and leg events.
    pub headers: BTreeMap<String, String>,
    /// From the content type.
    pub sample_rate: u32,
    /// Ringing limit.
    pub ringing_timer: Duration,
    /// Talk-time limit.
    pub length_timer: Duration,
    /// Machine detection, if asked for.
    pub detection: Option<Detection>,
    /// answer_url mode: (URL, `GET`|`POST`) the NCCO is fetched from on
    /// answer; the websocket fields above are empty until then.
    pub answer: Option<(String, String)>,
}

/// The websocket leg of a validated NCCO's `connect` action.
#[derive(Clone, Debug)]
pub struct Leg {
    /// `ws://` or `wss://` URI.
    pub ws_uri: String,
    /// `audio/l16;rate=...`.
    pub content_type: String,
    /// Flat headers.
    pub headers: BTreeMap<String, String>,
    /// From the content type.
    pub sample_rate: u32,
    /// The connect action's `eventUrl`, if any.
    pub event_url: Option<String>,
    /// Its `eventMethod`, if any.
    pub event_method: Option<String>,
}

impl CallPlan {
    /// Takes the websocket leg of the call's NCCO.
    pub fn connect(&mut self, leg: Leg) {
        self.ws_uri = leg.ws_uri;
        self.content_type = leg.content_type;
        self.headers = leg.headers;
        self.sample_rate = leg.sample_rate;
        self.leg_event_url = leg.event_url.unwrap_or_default();
        self.leg_event_method = leg.event_method.unwrap_or(self.event_method.clone());
    }
}

struct Hook {
    url: String,
    method: String,
    body: Value,
}

struct Events {
    tx: mpsc::UnboundedSender<Hook>,
    shared: Arc<Shared>,
    plan: Arc<CallPlan>,
}

impl Events {
    /// Queues a call event with the common fields plus `extra`.
    fn call_event(&self, status: &str, extra: Value) {
        let p = &self.plan;
        let mut body = json!({
            "from": p.from,
            "to": p.to,
            "uuid": p.uuid,
            "conversation_uuid": p.conversation_uuid,
            "status": status,
            "direction": "outbound",
            "timestamp": timestamp(Utc::now()),
        });
        merge(&mut body, extra);
        if let Some(m) = body.as_object_mut()
            && m.contains_key("call_uuid")
        {
            // Standard machine detection names the leg `call_uuid`.
            m.remove("uuid");
        }
        self.send(p.event_url.clone(), p.event_method.clone(), status, body);
    }

    fn send(&self, url: String, method: String, status: &str, body: Value) {
        self.shared
            .with_call(&self.plan.uuid, |r| r.status = status.to_owned());
        let _ = self.tx.send(Hook { url, method, body });
    }
}

async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn merge(body: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (body, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// Runs the call to its end.
pub(crate) async fn run(
    shared: Arc<Shared>,
    plan: CallPlan,
    persona: Persona,
    hangup: Arc<Notify>,
) {
    let plan = Arc::new(plan);
    let (tx, rx) = mpsc::unbounded_channel();
    let poster = tokio::spawn(post_loop(shared.clone(), plan.uuid.clone(), rx));
    let events = Events {
        tx,
        shared: shared.clone(),
        plan: plan.clone(),
    };
    let side = lifecycle(&shared, &plan, &persona, &hangup, &events).await;
    shared.with_call(&plan.uuid, |r| r.hang_up = Some(side));
    drop(events);
    let _ = poster.await;
    shared.with_call(&plan.uuid, |r| r.ended = true);
    inc(&shared.counters.ended, 1);
}

async fn lifecycle(
    shared: &Arc<Shared>,
    plan: &Arc<CallPlan>,
    persona: &Persona,
    hangup: &Notify,
    events: &Events,
) -> HangUpSide {
    let cfg = shared.cfg();
    let mut shutdown = shared.shutdown.clone();
    events.call_event("started", json!({}));
    tokio::select! {
        _ = tokio::time::sleep(cfg.started_to_ringing) => {}
        _ = hangup.notified() => return cancelled(events, cfg.completed_after_failure),
        _ = stopped(&mut shutdown) => return HangUpSide::NotConnected,
    }
    events.call_event("ringing", json!({}));
    let ring = match persona.outcome {
        Outcome::NoAnswer => plan.ringing_timer,
        _ => Duration::from_millis(persona.ring_ms),
    };
    let timed_out = ring >= plan.ringing_timer;
    tokio::select! {
        _ = tokio::time::sleep(ring.min(plan.ringing_timer)) => {}
        _ = hangup.notified() => return cancelled(events, cfg.completed_after_failure),
        _ = stopped(&mut shutdown) => return HangUpSide::NotConnected,
    }
    let failure = if timed_out {
        Some(("timeout", json!({})))
    } else {
        match persona.outcome {
            Outcome::Answer | Outcome::Machine => None,
            Outcome::Busy => Some(("busy", json!({}))),
            Outcome::NoAnswer => Some(("timeout", json!({}))),
            Outcome::Unanswered => Some(("unanswered", json!({"detail": "unavailable"}))),
            Outcome::Rejected => Some(("rejected", json!({"detail": "declined"}))),
            Outcome::Failed => Some(("failed", json!({"detail": "cannot_route"}))),
        }
    };
    if let Some((status, extra)) = failure {
        events.call_event(status, extra);
        if cfg.completed_after_failure {
            completed(events, None);
        }
        return HangUpSide::NotConnected;
    }
    let start = Utc::now();
    events.call_event(
        "answered",
        json!({"start_time": "", "rate": "", "network": ""}),
    );
    let fetched;
    let (plan, events) = match &plan.answer {
        None => (plan, events),
        Some((url, method)) => match fetch_ncco(shared, plan, url, method).await {
            Ok(leg) => {
                let mut p = (**plan).clone();
                p.connect(leg);
                let p = Arc::new(p);
                fetched = Events {
                    tx: events.tx.clone(),
                    shared: shared.clone(),
                    plan: p,
                };
                (&fetched.plan, &fetched)
            }
            Err(why) => {
                // Vonage ends a call whose answer URL gave no usable NCCO
                // (§1.4); the emulator reports it as a zero-talk completion.
                tracing::debug!(uuid = %plan.uuid, why, "answer url gave no usable NCCO");
                shared.with_call(&plan.uuid, |r| r.answer_error = Some(why));
                completed(events, Some(start));
                return HangUpSide::AnswerFailed;
            }
        },
    };
    let side = media(shared, plan, persona, hangup, events).await;
    if side == HangUpSide::SocketClosed {
        leg_event(events, "disconnected");
    }
    completed(events, Some(start));
    side
}

/// Fetches the NCCO from the answer URL (§1.4: `GET` with the query
/// `to`, `from`, `uuid`, `conversation_uuid`, `region_url`, or `POST`
/// with them as JSON; signed like the event webhooks when the emulator
/// signs, over the body, empty for `GET`) and validates it. One attempt,
/// under the webhook time-out: a 200 `application/json` NCCO with a
/// websocket `connect`, else the reason.
async fn fetch_ncco(
    shared: &Shared,
    plan: &CallPlan,
    url: &str,
    method: &str,
) -> Result<Leg, String> {
    let cfg = shared.cfg();
    let fields = json!({
        "to": plan.to,
        "from": plan.from,
        "uuid": plan.uuid,
        "conversation_uuid": plan.conversation_uuid,
        "region_url": "https://api-eu.vonage.com",
    });
    let (mut req, raw) = if method == "POST" {
        let raw = serde_json::to_vec(&fields).unwrap_or_default();
        let req = shared
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(raw.clone());
        (req, raw)
    } else {
        let q: Vec<(&str, &str)> = ["to", "from", "uuid", "conversation_uuid", "region_url"]
            .iter()
            .map(|k| (*k, fields[*k].as_str().unwrap_or_default()))
            .collect();
        let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
        let sep = if url.contains('?') { '&' } else { '?' };
        (shared.http.get(format!("{url}{sep}{qs}")), Vec::new())
    };
    req = req.timeout(cfg.webhook_timeout);
    if let Some(token) = sign(&cfg, &raw) {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| format!("answer url: {e}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(format!("answer url answered {status}"));
    }
    let json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err("answer url: not application/json".into());
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("answer url body: {e}"))?;
    let ncco: Value =
        serde_json::from_slice(&body).map_err(|e| format!("answer url: invalid JSON: {e}"))?;
    super::api::validate_ncco(&ncco).map_err(|errors| {
        let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("answer url: invalid NCCO: {}", parts.join("; "))
    })
}

/// The webhook signature JWT over `raw` (§1.9) when the emulator signs.
fn sign(cfg: &super::VonageSimConfig, raw: &[u8]) -> Option<String> {
    let (api_key, secret) = cfg.signature.as_ref()?;
    let claims = json!({
        "api_key": api_key,
        "application_id": cfg.application_id,
        "iat": Utc::now().timestamp(),
        "jti": uuid::Uuid::new_v4().to_string(),
        "payload_hash": hex(&Sha256::digest(raw)),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .ok()
}

fn cancelled(events: &Events, then_completed: bool) -> HangUpSide {
    events.call_event("cancelled", json!({}));
    if then_completed {
        completed(events, None);
    }
    HangUpSide::Rest
}

/// A websocket leg event (`to` = the socket URI, `headers` echoed) to the
/// connect action's event URL (the call's when it has none).
fn leg_event(events: &Events, status: &str) {
    let p = &events.plan;
    let body = json!({
        "from": p.from,
        "to": p.ws_uri,
        "uuid": p.uuid,
        "conversation_uuid": p.conversation_uuid,
        "status": status,
        "direction": "outbound",
        "timestamp": timestamp(Utc::now()),
        "headers": p.headers,
    });
    let (url, method) = if p.leg_event_url.is_empty() {
        (p.event_url.clone(), p.event_method.clone())
    } else {
        (p.leg_event_url.clone(), p.leg_event_method.clone())
    };
    events.send(url, method, status, body);
}

/// Per-minute rate in EUR the emulator charges.
const RATE: f64 = 0.0045;

fn completed(events: &Events, start: Option<DateTime<Utc>>) {
    let end = Utc::now();
    let (start, duration) = match start {
        Some(s) => {
            let d = (end - s).num_milliseconds().max(0) as f64 / 1000.0;
            (s, d.round() as u64)
        }
        None => (end, 0),
    };
    let (start_s, network) = (timestamp(start), super::NETWORK);
    let price = RATE * duration as f64 / 60.0;
    events.shared.with_call(&events.plan.uuid, |r| {
        r.completion = Some(super::Completion {
            start,
            end,
            duration,
            rate: RATE,
            price,
        })
    });
    events.call_event(
        "completed",
        json!({
            "start_time": start_s,
            "end_time": timestamp(end),
            "duration": duration.to_string(),
            "rate": format!("{RATE:.8}"),
            "price": format!("{price:.8}"),
            "network": network,
        }),
    );
}

/// Posts the call's webhooks in order (with the duplicate / reorder knobs).
async fn post_loop(shared: Arc<Shared>, uuid: String, mut rx: mpsc::UnboundedReceiver<Hook>) {
    let mut held: Option<Hook> = None;
    loop {
        let next = if held.is_some() {
            tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep(Duration::from_millis(300)) => {
                    if let Some(h) = held.take() {
                        post(&shared, &uuid, &h).await;
                    }
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        let Some(hook) = next else {
            if let Some(h) = held.take() {
                post(&shared, &uuid, &h).await;
            }
            break;
        };
        if shared.cfg().reorder_webhooks {
            match held.take() {
                Some(h) => {
                    post(&shared, &uuid, &hook).await;
                    post(&shared, &uuid, &h).await;
                }
                None => held = Some(hook),
            }
        } else {
            post(&shared, &uuid, &hook).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn post(shared: &Shared, uuid: &str, hook: &Hook) {
    let cfg = shared.cfg();
    let copies = if cfg.duplicate_webhooks { 2 } else { 1 };
    for _ in 0..copies {
        let status = hook.body["status"].as_str().unwrap_or_default().to_owned();
        let index = shared.with_call(uuid, |r| {
            r.webhooks.push(WebhookRecord {
                status,
                url: hook.url.clone(),
                body: hook.body.clone(),
                http_status: None,
                at: Utc::now(),
            });
            r.webhooks.len() - 1
        });
        let raw = serde_json::to_vec(&hook.body).unwrap_or_default();
        let mut req = if hook.method == "GET" {
            let q: Vec<(String, String)> = hook
                .body
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let s = v
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string());
                            (k.clone(), s)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
            let sep = if hook.url.contains('?') { '&' } else { '?' };
            shared.http.get(format!("{}{sep}{qs}", hook.url))
        } else {
            shared
                .http
                .post(&hook.url)
                .header("content-type", "application/json")
                .body(raw.clone())
        };
        req = req.timeout(cfg.webhook_timeout);
        if let Some(token) = sign(&cfg, &raw) {
            req = req.bearer_auth(token);
        }
        let answered = req.send().await.ok().map(|r| r.status().as_u16());
        if let Some(i) = index {
            shared.with_call(uuid, |r| r.webhooks[i].http_status = answered);
        }
    }
}

/// The persona on the line: its script's progress and its ears.
struct Callee {
    steps: Vec<Step>,
    idx: usize,
    step_started: Instant,
    step_begun: bool,
    base_ends: u64,
    base_words: u64,
    out: VecDeque<i16>,
    encoder: Encoder,
    decoder: Decoder,
    cur_text: String,
    cur_start: Option<DateTime<Utc>>,
    utter_ends: u64,
    words_done: u64,
    last_agent_sound: Instant,
    lines_said: usize,
    dtmf: Vec<char>,
    /// A line began while the agent was speaking: its first frame starts
    /// the barge-in clock.
    barge_pending: bool,
}

enum Act {
    Continue,
    HangUp,
}

fn completed_words(t: &str) -> u64 {
    let words = t.split_whitespace().count() as u64;
    if words == 0 || t.ends_with(char::is_whitespace) {
        words
    } else {
        words - 1
    }
}

impl Callee {
    fn new(persona: &Persona, rate: u32) -> Self {
        let now = Instant::now();
        Self {
            steps: persona.steps.clone(),
            idx: 0,
            step_started: now,
            step_begun: false,
            base_ends: 0,
            base_words: 0,
            out: VecDeque::new(),
            encoder: Encoder::new(rate),
            decoder: Decoder::new(rate),
            cur_text: String::new(),
            cur_start: None,
            utter_ends: 0,
            words_done: 0,
            last_agent_sound: now,
            lines_said: 0,
            dtmf: Vec::new(),
            barge_pending: false,
        }
    }

    fn words(&self) -> u64 {
        self.words_done + completed_words(&self.cur_text)
    }

    /// Hears one played frame; finished utterances go to `heard`.
    fn hear(&mut self, pcm: &[i16], heard: &mut Vec<Heard>) {
        for ev in self.decoder.push(pcm) {
            match ev {
                Decoded::SpeechStart { .. } => {
                    self.cur_start.get_or_insert_with(Utc::now);
                }
                Decoded::Char { c, .. } => {
                    self.cur_start.get_or_insert_with(Utc::now);
                    self.cur_text.push(c);
                }
                Decoded::UtteranceEnd { .. } => self.end_utterance(heard),
            }
        }
        if self.decoder.in_speech() {
            self.last_agent_sound = Instant::now();
        }
    }

    fn end_utterance(&mut self, heard: &mut Vec<Heard>) {
        let text = std::mem::take(&mut self.cur_text);
        let started = self.cur_start.take();
        self.words_done += text.split_whitespace().count() as u64;
        if text.is_empty() && started.is_none() {
            return;
        }
        self.utter_ends += 1;
        heard.push(Heard {
            text,
            started: started.unwrap_or_else(Utc::now),
            ended: Utc::now(),
        });
    }

    /// Runs the script as far as it can go now.
    fn advance(&mut self, said: &mut Vec<Said>) -> Act {
        while let Some(step) = self.steps.get(self.idx).cloned() {
            let now = Instant::now();
            if !self.step_begun {
                self.step_begun = true;
                self.step_started = now;
                self.base_ends = self.utter_ends;
                self.base_words = self.words();
                if let Step::Say { text } = &step {
                    self.barge_pending = self.cur_start.is_some() || self.decoder.in_speech();
                    let pcm = self.encoder.encode(text);
                    self.out.extend(pcm);
                    self.lines_said += 1;
                    said.push(Said {
                        text: text.clone(),
                        at: Utc::now(),
                    });
                }
            }
            let elapsed = now - self.step_started;
            let timed_out =
                |t: Option<u64>| t.is_some_and(|ms| elapsed >= Duration::from_millis(ms));
            let done = match &step {
                Step::WaitForAgentUtteranceEnd { timeout_ms } => {
                    self.utter_ends > self.base_ends || timed_out(*timeout_ms)
                }
                Step::WaitForAgentWords { n, timeout_ms } => {
                    self.words() >= self.base_words + *n as u64 || timed_out(*timeout_ms)
                }
                Step::WaitForSilence { ms } => {
                    let since = self.last_agent_sound.max(self.step_started);
                    !self.decoder.in_speech() && now - since >= Duration::from_millis(*ms)
                }
                Step::Say { .. } => self.out.is_empty(),
                Step::Pause { ms } => elapsed >= Duration::from_millis(*ms),
                Step::Press { digits } => {
                    self.dtmf.extend(
                        digits
                            .chars()
                            .filter(|c| c.is_ascii_digit() || *c == '*' || *c == '#'),
                    );
                    true
                }
                Step::HangUp => return Act::HangUp,
            };
            if !done {
                return Act::Continue;
            }
            self.idx += 1;
            self.step_begun = false;
        }
        Act::Continue
    }
}

/// The media socket for the life of the answered call.
async fn media(
    shared: &Arc<Shared>,
    plan: &Arc<CallPlan>,
    persona: &Persona,
    hangup: &Notify,
    events: &Events,
) -> HangUpSide {
    let uuid = plan.uuid.as_str();
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async_with_config(
            plan.ws_uri.as_str(),
            Some(talky::net::ws::media_config(
                talky::config::DEFAULT_MEDIA_MAX_MESSAGE_BYTES as usize,
            )),
            false,
        ),
    )
    .await;
    let ws = match connected {
        Ok(Ok((ws, _))) => ws,
        _ => {
            leg_event(events, "failed");
            return HangUpSide::SocketFailed;
        }
    };
    let (sink, stream) = ws.split();
    let mut first = json!({"event": "websocket:connected", "content-type": plan.content_type});
    for (k, v) in &plan.headers {
        first[k.as_str()] = Value::String(v.clone());
    }
    shared.with_call(uuid, |r| {
        r.socket_opened = true;
        r.connected_message = Some(first.clone());
    });
    let counters = &shared.counters;
    inc(&counters.media_opened, 1);
    inc(&counters.media_live, 1);
    let side = media_loop(shared, plan, persona, hangup, events, sink, stream, first).await;
    dec(&counters.media_live);
    side
}

type WsSink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;
type WsStream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// Gaps and barge-in timing of one call's media, fed per tick.
#[derive(Default)]
struct Meter {
    /// Empty ticks since the last agent frame inside the utterance.
    gap: u64,
    /// A `clear` cut the current utterance: its trailing silence is no gap.
    cleared: bool,
    /// When the callee's barging line sent its first frame.
    barge_started: Option<Instant>,
    /// talky's VAD (same code, same barge-in minimum) over the barging
    /// line's frames: when it fires, talky can know the speech started.
    barge_vad: Option<Vad>,
    /// When the frame went out with which that VAD fired.
    barge_event: Option<Instant>,
}

impl Meter {
    fn barge_begins(&mut self, rate: u32) {
        self.barge_started = Some(Instant::now());
        self.barge_event = None;
        self.barge_vad = Some(Vad::new(
            VadConfig {
                min_speech: talky_actors::call::config::DEFAULT_BARGE_IN_MIN_SPEECH,
                ..VadConfig::default()
            },
            rate,
        ));
    }

    fn barge_forgotten(&mut self) {
        self.barge_started = None;
        self.barge_event = None;
        self.barge_vad = None;
    }

    /// A frame of the callee's about to go out.
    fn callee_frame(&mut self, bytes: &[u8]) {
        if self.barge_event.is_none()
            && let Some(vad) = &mut self.barge_vad
            && let Some(VadEvent::SpeechStart) = vad.push_frame(bytes)
        {
            self.barge_event = Some(Instant::now());
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn media_loop(
    shared: &Arc<Shared>,
    plan: &Arc<CallPlan>,
    persona: &Persona,
    hangup: &Notify,
    events: &Events,
    mut sink: WsSink,
    mut stream: WsStream,
    first: Value,
) -> HangUpSide {
    let cfg = shared.cfg();
    let uuid = plan.uuid.as_str();
    let counters = &shared.counters;
    let mut meter = Meter::default();
    if sink
        .send(Message::Text(first.to_string().into()))
        .await
        .is_err()
    {
        return HangUpSide::SocketClosed;
    }
    let frame = (plan.sample_rate / 50) as usize;
    let silence = vec![0i16; frame];
    let mut callee = Callee::new(persona, plan.sample_rate);
    let mut inbox: VecDeque<Vec<i16>> = VecDeque::new();
    let mut received: u64 = 0;
    let mut played: u64 = 0;
    let mut markers: VecDeque<(u64, Value)> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let answered_at = Instant::now();
    let length_deadline = answered_at + plan.length_timer;
    let mut verdict_due = plan
        .detection
        .map(|_| answered_at + cfg.machine_detection_delay);
    let mut beep_pending = false;
    let machine = persona.outcome == Outcome::Machine;
    let mut shutdown = shared.shutdown.clone();
    let mut heard = Vec::new();
    let mut said = Vec::new();
    let side = loop {
        tokio::select! {
            _ = hangup.notified() => break HangUpSide::Rest,
            _ = tokio::time::sleep_until(length_deadline) => break HangUpSide::LengthTimer,
            _ = stopped(&mut shutdown) => break HangUpSide::Rest,
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    received += 1;
                    let bad = b.len() != frame * 2;
                    inbox.push_back(bytes_to_i16(&b));
                    shared.with_call(uuid, |r| {
                        r.frames_in += 1;
                        r.frames_bad_size += u64::from(bad);
                    });
                }
                Some(Ok(Message::Text(t))) => {
                    shared.with_call(uuid, |r| r.texts_in.push(t.as_str().to_owned()));
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    match v["action"].as_str() {
                        Some("clear") => {
                            inbox.clear();
                            played = received;
                            inc(&counters.clears, 1);
                            meter.gap = 0;
                            meter.cleared = true;
                            if let Some(t) = meter.barge_started.take() {
                                let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
                                counters.barge(ms(t), meter.barge_event.map(ms));
                            }
                            meter.barge_forgotten();
                            shared.with_call(uuid, |r| r.clears.push(Utc::now()));
                            let _ = sink.send(Message::Text(json!({"event": "websocket:cleared"}).to_string().into())).await;
                        }
                        Some("notify") => {
                            markers.push_back((received, v.get("payload").cloned().unwrap_or(Value::Null)));
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break HangUpSide::SocketClosed,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                // Play one received frame (silence when none is queued).
                let ends_before = callee.utter_ends;
                match inbox.pop_front() {
                    Some(f) => {
                        played += 1;
                        inc(&counters.agent_frames, 1);
                        if meter.gap > 0 && callee.cur_start.is_some() && !meter.cleared {
                            inc(&counters.underrun_gaps, 1);
                            inc(&counters.underrun_frames, meter.gap);
                        }
                        meter.gap = 0;
                        callee.hear(&f, &mut heard);
                    }
                    None => {
                        if callee.cur_start.is_some() && !meter.cleared {
                            meter.gap += 1;
                        }
                        callee.hear(&silence, &mut heard);
                    }
                }
                if callee.utter_ends > ends_before {
                    // The utterance is over: its trailing silence was no gap,
                    // and a barge-in that got no clear is not timed.
                    meter.gap = 0;
                    meter.cleared = false;
                    meter.barge_forgotten();
                }
                while markers.front().is_some_and(|(at, _)| *at <= played) {
                    let (_, payload) = markers.pop_front().expect("front");
                    shared.with_call(uuid, |r| r.notifies.push((payload.clone(), Utc::now())));
                    let msg = json!({"event": "websocket:notify", "payload": payload});
                    let _ = sink.send(Message::Text(msg.to_string().into())).await;
                }
                // Speak: one frame of the persona's voice or silence.
                let n = callee.out.len().min(frame);
                if callee.barge_pending && n > 0 {
                    callee.barge_pending = false;
                    inc(&counters.barge_attempts, 1);
                    meter.barge_begins(plan.sample_rate);
                }
                let mut out: Vec<i16> = callee.out.drain(..n).collect();
                out.resize(frame, 0);
                let bytes = i16_to_bytes(&out);
                meter.callee_frame(&bytes);
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    break HangUpSide::SocketClosed;
                }
                shared.with_call(uuid, |r| r.frames_out += 1);
                let act = callee.advance(&mut said);
                for digit in std::mem::take(&mut callee.dtmf) {
                    let msg = json!({"event": "websocket:dtmf", "digit": digit.to_string(), "duration": 260});
                    let _ = sink.send(Message::Text(msg.to_string().into())).await;
                }
                flush_logs(shared, uuid, &mut heard, &mut said);
                if let Act::HangUp = act {
                    break HangUpSide::Callee;
                }
                if let (Some(due), Some(d)) = (verdict_due, plan.detection)
                    && Instant::now() >= due
                {
                    verdict_due = None;
                    let status = if machine { "machine" } else { "human" };
                    let extra = if d.advanced { json!({}) } else { json!({"call_uuid": plan.uuid}) };
                    events.call_event(status, extra);
                    if machine && d.hangup {
                        break HangUpSide::MachineDetected;
                    }
                    beep_pending = machine && d.advanced && d.beep;
                }
                if beep_pending && callee.lines_said > 0 && callee.out.is_empty() {
                    beep_pending = false;
                    events.call_event("machine", json!({"sub_state": "beep_start"}));
                }
            }
        }
    };
    if side != HangUpSide::SocketClosed {
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    }
    for ev in callee.decoder.flush() {
        if let Decoded::Char { c, .. } = ev {
            callee.cur_text.push(c);
        }
    }
    if !callee.cur_text.is_empty() {
        callee.end_utterance(&mut heard);
    }
    flush_logs(shared, uuid, &mut heard, &mut said);
    side
}

fn flush_logs(shared: &Shared, uuid: &str, heard: &mut Vec<Heard>, said: &mut Vec<Said>) {
    if heard.is_empty() && said.is_empty() {
        return;
    }
    shared.with_call(uuid, |r| {
        r.heard.append(heard);
        r.said.append(said);
    });
}
