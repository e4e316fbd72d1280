//! One simulated call: ringing, the outcome, event webhooks (§1.7), the
//! media socket (§1.6) and the persona on it (the persona itself is
//! [`crate::callee`], shared with the Twilio emulator).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use super::stats::{dec, inc};
use super::{HangUpSide, Shared, WebhookRecord, timestamp};
use crate::callee::Conversation;
use crate::calls::post_in_order;
use crate::persona::{Outcome, Persona};
use talky::audio::pcm::{bytes_to_i16, i16_to_bytes};

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
            .calls
            .with_call(&self.plan.uuid, |r| r.status = status.to_owned());
        let _ = self.tx.send(Hook { url, method, body });
    }
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
    shared
        .calls
        .with_call(&plan.uuid, |r| r.hang_up = Some(side));
    drop(events);
    let _ = poster.await;
    shared.calls.with_call(&plan.uuid, |r| r.ended = true);
    inc(&shared.calls.counters.ended, 1);
}

async fn lifecycle(
    shared: &Arc<Shared>,
    plan: &Arc<CallPlan>,
    persona: &Persona,
    hangup: &Notify,
    events: &Events,
) -> HangUpSide {
    let cfg = shared.cfg();
    events.call_event("started", json!({}));
    tokio::select! {
        _ = tokio::time::sleep(cfg.started_to_ringing) => {}
        _ = hangup.notified() => return cancelled(events, cfg.completed_after_failure),
        _ = shared.shutdown.wait() => return HangUpSide::NotConnected,
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
        _ = shared.shutdown.wait() => return HangUpSide::NotConnected,
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
                shared
                    .calls
                    .with_call(&plan.uuid, |r| r.answer_error = Some(why));
                completed(events, Some(start));
                return HangUpSide::AnswerFailed;
            }
        },
    };
    let side = media(shared, plan, persona, hangup, events).await;
    if side == HangUpSide::SocketClosed {
        leg_event(events, "disconnected");
    }
    if side == HangUpSide::Transferred {
        transferred(events);
        crate::calls::person_talks(&shared.shutdown, hangup).await;
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

/// The `transfer` event (§1.7 "other event types": no `status`) to the
/// call's event URL, after its NCCO was replaced. Unconfirmed that Vonage
/// posts it for a REST transfer; talky records it and needs it for
/// nothing.
fn transferred(events: &Events) {
    let p = &events.plan;
    let body = json!({
        "conversation_uuid_from": p.conversation_uuid,
        "conversation_uuid_to": format!("CON-{}", uuid::Uuid::new_v4()),
        "uuid": p.uuid,
        "timestamp": timestamp(Utc::now()),
    });
    let _ = events.tx.send(Hook {
        url: p.event_url.clone(),
        method: p.event_method.clone(),
        body,
    });
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
    events.shared.calls.with_call(&events.plan.uuid, |r| {
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
async fn post_loop(shared: Arc<Shared>, uuid: String, rx: mpsc::UnboundedReceiver<Hook>) {
    let (shared, uuid) = (&shared, &uuid);
    post_in_order(
        rx,
        || shared.cfg().reorder_webhooks,
        |h| async move { post(shared, uuid, &h).await },
    )
    .await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn post(shared: &Shared, uuid: &str, hook: &Hook) {
    let cfg = shared.cfg();
    let copies = if cfg.duplicate_webhooks { 2 } else { 1 };
    for _ in 0..copies {
        let status = match hook.body["status"].as_str() {
            Some(s) => s.to_owned(),
            None if hook.body.get("conversation_uuid_from").is_some() => "transfer".to_owned(),
            None => String::new(),
        };
        let index = shared.calls.with_call(uuid, |r| {
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
            shared
                .calls
                .with_call(uuid, |r| r.webhooks[i].http_status = answered);
        }
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
    shared.calls.with_call(uuid, |r| {
        r.socket_opened = true;
        r.connected_message = Some(first.clone());
    });
    let counters = &shared.calls.counters;
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
    if sink
        .send(Message::Text(first.to_string().into()))
        .await
        .is_err()
    {
        return HangUpSide::SocketClosed;
    }
    let mut conv: Conversation<'_, Value> =
        Conversation::new(persona, plan.sample_rate, &shared.calls.counters);
    let frame = conv.frame_len();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let answered_at = Instant::now();
    let length_deadline = answered_at + plan.length_timer;
    let mut verdict_due = plan
        .detection
        .map(|_| answered_at + cfg.machine_detection_delay);
    let mut beep_pending = false;
    let machine = persona.outcome == Outcome::Machine;
    let side = loop {
        tokio::select! {
            _ = hangup.notified() => break HangUpSide::Rest,
            _ = tokio::time::sleep_until(length_deadline) => break HangUpSide::LengthTimer,
            _ = shared.shutdown.wait() => break HangUpSide::Rest,
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let bad = b.len() != frame * 2;
                    conv.received(bytes_to_i16(&b));
                    shared.calls.with_call(uuid, |r| {
                        r.frames_in += 1;
                        r.frames_bad_size += u64::from(bad);
                    });
                }
                Some(Ok(Message::Text(t))) => {
                    shared.calls.with_call(uuid, |r| r.texts_in.push(t.as_str().to_owned()));
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    match v["action"].as_str() {
                        Some("clear") => {
                            // Markers queued behind the dropped audio are
                            // echoed after the `cleared` (spec §1.6: whether
                            // Vonage discards them instead is unconfirmed).
                            let pending = conv.clear();
                            shared.calls.with_call(uuid, |r| r.clears.push(Utc::now()));
                            let _ = sink.send(Message::Text(json!({"event": "websocket:cleared"}).to_string().into())).await;
                            for payload in pending {
                                notified(shared, uuid, &mut sink, payload).await;
                            }
                        }
                        Some("notify") => {
                            let payload = v.get("payload").cloned().unwrap_or(Value::Null);
                            if let Some(early) = conv.mark(payload) {
                                notified(shared, uuid, &mut sink, early).await;
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break HangUpSide::SocketClosed,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                let out = conv.tick();
                for payload in out.marks {
                    notified(shared, uuid, &mut sink, payload).await;
                }
                let bytes = i16_to_bytes(&out.frame);
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    break HangUpSide::SocketClosed;
                }
                let transfer = shared.calls.with_call(uuid, |r| {
                    r.frames_out += 1;
                    r.transfer.is_some()
                });
                if transfer == Some(true) {
                    // The NCCO was replaced: Vonage closes our socket
                    // (assumed; unconfirmed) and connects the person.
                    break HangUpSide::Transferred;
                }
                for digit in out.dtmf {
                    let msg = json!({"event": "websocket:dtmf", "digit": digit.to_string(), "duration": 260});
                    let _ = sink.send(Message::Text(msg.to_string().into())).await;
                }
                flush_logs(shared, uuid, &mut conv);
                if out.hang_up {
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
                if beep_pending && conv.lines_said() > 0 && !conv.speaking() {
                    beep_pending = false;
                    events.call_event("machine", json!({"sub_state": "beep_start"}));
                }
            }
        }
    };
    let side = if side == HangUpSide::SocketClosed && shared.calls.transfer_accepted(uuid) {
        HangUpSide::Transferred
    } else {
        side
    };
    if side != HangUpSide::SocketClosed {
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    }
    conv.finish();
    flush_logs(shared, uuid, &mut conv);
    side
}

/// Echoes a notify marker whose audio has played (or was cleared).
async fn notified(shared: &Shared, uuid: &str, sink: &mut WsSink, payload: Value) {
    shared
        .calls
        .with_call(uuid, |r| r.notifies.push((payload.clone(), Utc::now())));
    let msg = json!({"event": "websocket:notify", "payload": payload});
    let _ = sink.send(Message::Text(msg.to_string().into())).await;
}

/// Moves what the persona said and heard into the call's record.
fn flush_logs(shared: &Shared, uuid: &str, conv: &mut Conversation<'_, Value>) {
    let (mut heard, mut said) = conv.take_logs();
    if heard.is_empty() && said.is_empty() {
        return;
    }
    shared.calls.with_call(uuid, |r| {
        r.heard.append(&mut heard);
        r.said.append(&mut said);
    });
}
