//! One simulated Twilio call: dialling and ringing per the persona, status
//! callbacks (§2.1), machine detection, the TwiML (§2.2) and its
//! `<Connect><Stream>` as a Media Streams client (§2.3) with the persona
//! ([`crate::callee`]) on the line.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::signature::signature;
use super::wire::{self, Form, Inbound, StreamTarget};
use super::{
    API_VERSION, CallbackKind, CallbackRecord, ClearRecord, HangUpSide, MarkRecord, Shared,
    StreamError, new_sid, twilio_time,
};
use crate::callee::Conversation;
use crate::calls::post_in_order;
use crate::codec::symbols_duration;
use crate::persona::{Outcome, Persona};
use crate::vonage::stats::{dec, inc};
use talky::audio::mulaw;

/// μ-law bytes (= samples at 8 kHz) in 20 ms.
pub const FRAME_BYTES: usize = 160;
/// The stream's sample rate (§2.3: `audio/x-mulaw`, 8000 Hz, mono).
pub const SAMPLE_RATE: u32 = 8_000;
/// Largest TwiML document accepted (Twilio's limit is 64 KB).
pub const MAX_TWIML_BYTES: usize = 64 * 1024;
/// Callbacks of one call waiting to be posted (a call makes fewer than
/// ten; the bound only guards against a bug).
const CALLBACK_QUEUE: usize = 64;
/// Error code of a message a stream does not accept (§2.3).
pub const ERR_BAD_MESSAGE: u32 = 31924;
/// Error code of a binary frame (§2.3: Twilio warns and drops it).
pub const ERR_BINARY: u32 = 31950;

/// Where the call's TwiML comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instructions {
    /// Inline `Twiml` (already checked to be a `<Response>` document).
    Twiml(String),
    /// Fetched on answer from `Url` (or an application's voice URL) with
    /// `method`.
    Url {
        /// The URL.
        url: String,
        /// `POST` (default) or `GET`.
        method: String,
    },
}

/// Answering-machine detection as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Amd {
    /// `DetectMessageEnd` (else `Enable`): wait for the greeting's end.
    pub message_end: bool,
    /// `AsyncAmd=true`: TwiML runs at once, the verdict is posted to
    /// `callback`.
    pub asynchronous: bool,
    /// `AsyncAmdStatusCallback` and its method.
    pub callback: Option<(String, String)>,
    /// `MachineDetectionTimeout`: no verdict by then is `unknown`.
    pub timeout: Duration,
}

/// A validated create request: what the call task needs.
#[derive(Clone, Debug)]
pub struct CallPlan {
    /// `CA...`.
    pub sid: String,
    /// `AC...`.
    pub account_sid: String,
    /// Callee (E.164).
    pub to: String,
    /// Caller id (E.164).
    pub from: String,
    /// The TwiML's source.
    pub instructions: Instructions,
    /// `StatusCallback` and `StatusCallbackMethod`.
    pub status_callback: Option<(String, String)>,
    /// `StatusCallbackEvent`s (default: `completed` only).
    pub events: Vec<String>,
    /// `Timeout`: ring limit.
    pub timeout: Duration,
    /// `TimeLimit`: talk limit.
    pub time_limit: Duration,
    /// Machine detection, if asked for.
    pub amd: Option<Amd>,
}

/// One request to talky waiting to be sent.
struct Hook {
    kind: CallbackKind,
    url: String,
    method: String,
    params: Form,
    /// `I-Twilio-Idempotency-Token`: the same on a duplicate.
    token: String,
}

/// The call's status callbacks: the common fields, the sequence number
/// and the events asked for.
struct Callbacks {
    tx: mpsc::Sender<Hook>,
    shared: Arc<Shared>,
    plan: Arc<CallPlan>,
    /// `SequenceNumber` of the next status callback (from 0).
    seq: u32,
    /// `AnsweredBy`, once known: added to later callbacks.
    answered_by: Option<String>,
}

impl Callbacks {
    /// The fields every request about the call carries.
    fn common(&self, call_status: &str) -> Form {
        let p = &self.plan;
        let f = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        vec![
            f("AccountSid", &p.account_sid),
            f("ApiVersion", API_VERSION),
            f("CallSid", &p.sid),
            f("CallStatus", call_status),
            f("Direction", "outbound-api"),
            f("From", &p.from),
            f("To", &p.to),
        ]
    }

    /// Moves the call to `call_status` (the resource's status, `queued`
    /// for `initiated`) and posts a status callback if `event` was asked
    /// for (§2.1: `initiated`, `ringing`, `answered`, `completed`; the
    /// terminal statuses all come under `completed`).
    async fn status(&mut self, event: &str, call_status: &str, duration: Option<u64>) {
        let resource = if call_status == "initiated" {
            "queued"
        } else {
            call_status
        };
        self.shared
            .calls
            .with_call(&self.plan.sid, |r| r.status = resource.to_owned());
        let Some((url, method)) = self.plan.status_callback.clone() else {
            return;
        };
        if !self.plan.events.iter().any(|e| e == event) {
            return;
        }
        let mut params = self.common(call_status);
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("SequenceNumber".into(), self.seq.to_string()));
        params.push(("Timestamp".into(), twilio_time(Utc::now())));
        if let Some(d) = duration {
            params.push(("CallDuration".into(), d.to_string()));
        }
        if let Some(a) = &self.answered_by {
            params.push(("AnsweredBy".into(), a.clone()));
        }
        self.seq += 1;
        self.send(CallbackKind::Status, url, method, params).await;
    }

    /// Posts the asynchronous AMD verdict (fields unconfirmed: those of
    /// Twilio's docs, `AnsweredBy` and `MachineDetectionDuration` in ms).
    async fn amd(&mut self, answered_by: &str, detection: Duration) {
        self.answered_by = Some(answered_by.to_owned());
        self.shared.calls.with_call(&self.plan.sid, |r| {
            r.answered_by = Some(answered_by.to_owned())
        });
        let Some((url, method)) = self.plan.amd.as_ref().and_then(|a| a.callback.clone()) else {
            return;
        };
        let p = &self.plan;
        let f = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let params = vec![
            f("AccountSid", &p.account_sid),
            f("AnsweredBy", answered_by),
            f("CallSid", &p.sid),
            f(
                "MachineDetectionDuration",
                &detection.as_millis().to_string(),
            ),
        ];
        self.send(CallbackKind::Amd, url, method, params).await;
    }

    async fn send(&self, kind: CallbackKind, url: String, method: String, params: Form) {
        let hook = Hook {
            kind,
            url,
            method,
            params,
            token: new_sid(""),
        };
        // Bounded: a call makes a handful; if the poster were gone the
        // call is over anyway.
        let _ = self.tx.send(hook).await;
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
    let (tx, rx) = mpsc::channel(CALLBACK_QUEUE);
    let poster = tokio::spawn(post_loop(shared.clone(), plan.sid.clone(), rx));
    let mut cb = Callbacks {
        tx,
        shared: shared.clone(),
        plan: plan.clone(),
        seq: 0,
        answered_by: None,
    };
    let side = lifecycle(&shared, &plan, &persona, &hangup, &mut cb).await;
    shared
        .calls
        .with_call(&plan.sid, |r| r.hang_up = Some(side));
    drop(cb);
    let _ = poster.await;
    shared.calls.with_call(&plan.sid, |r| r.ended = true);
    inc(&shared.calls.counters.ended, 1);
}

/// How a wait before the answer ended.
enum Waited {
    Elapsed,
    HungUp,
    Stopped,
}

async fn wait(shared: &Shared, hangup: &Notify, d: Duration) -> Waited {
    tokio::select! {
        _ = tokio::time::sleep(d) => Waited::Elapsed,
        _ = hangup.notified() => Waited::HungUp,
        _ = shared.shutdown.wait() => Waited::Stopped,
    }
}

/// Ends a call that never connected with a terminal status.
async fn not_connected(shared: &Shared, cb: &mut Callbacks, status: &str) {
    let now = Utc::now();
    shared.calls.with_call(&cb.plan.sid, |r| {
        r.ended_at = Some(now);
        r.duration = Some(0);
    });
    cb.status("completed", status, Some(0)).await;
}

async fn lifecycle(
    shared: &Arc<Shared>,
    plan: &Arc<CallPlan>,
    persona: &Persona,
    hangup: &Notify,
    cb: &mut Callbacks,
) -> HangUpSide {
    let cfg = shared.cfg();
    shared
        .calls
        .with_call(&plan.sid, |r| r.started_at = Some(Utc::now()));
    cb.status("initiated", "initiated", None).await;
    match wait(shared, hangup, cfg.initiated_to_ringing).await {
        Waited::Elapsed => {}
        Waited::HungUp => {
            not_connected(shared, cb, "canceled").await;
            return HangUpSide::Rest;
        }
        Waited::Stopped => return HangUpSide::NotConnected,
    }
    cb.status("ringing", "ringing", None).await;
    let ring = match persona.outcome {
        Outcome::NoAnswer => plan.timeout,
        _ => Duration::from_millis(persona.ring_ms),
    };
    let timed_out = ring >= plan.timeout;
    match wait(shared, hangup, ring.min(plan.timeout)).await {
        Waited::Elapsed => {}
        Waited::HungUp => {
            not_connected(shared, cb, "canceled").await;
            return HangUpSide::Rest;
        }
        Waited::Stopped => return HangUpSide::NotConnected,
    }
    let failure = if timed_out {
        Some("no-answer")
    } else {
        match persona.outcome {
            Outcome::Answer | Outcome::Machine => None,
            Outcome::Busy | Outcome::Rejected => Some("busy"),
            Outcome::NoAnswer | Outcome::Unanswered => Some("no-answer"),
            Outcome::Failed => Some("failed"),
        }
    };
    if let Some(status) = failure {
        not_connected(shared, cb, status).await;
        return HangUpSide::NotConnected;
    }
    let answered = Instant::now();
    let answered_utc = Utc::now();
    shared.calls.with_call(&plan.sid, |r| {
        r.status = "in-progress".into();
        r.answered_at = Some(answered_utc);
    });
    let machine = persona.outcome == Outcome::Machine;
    // Synchronous detection: Twilio listens before it runs the TwiML, and
    // the `answered` callback carries the verdict (unconfirmed: the
    // emulator posts `in-progress` once the verdict is known).
    let mut skip_greeting = false;
    if let Some(amd) = plan.amd.as_ref().filter(|a| !a.asynchronous) {
        let mut listen = cfg.machine_detection_delay;
        if machine && amd.message_end {
            // Twilio waits out the greeting: the stream opens after it.
            let greeting = persona.lines().first().map_or(0, |l| l.chars().count());
            listen += symbols_duration(greeting);
            skip_greeting = true;
        }
        match wait(shared, hangup, listen.min(amd.timeout)).await {
            Waited::Elapsed => {}
            Waited::HungUp => {
                completed(shared, cb, answered).await;
                return HangUpSide::Rest;
            }
            Waited::Stopped => return HangUpSide::Rest,
        }
        let verdict = if listen > amd.timeout {
            "unknown"
        } else {
            natural_verdict(machine, amd.message_end)
        };
        let verdict = cfg
            .amd_verdict
            .clone()
            .unwrap_or_else(|| verdict.to_owned());
        cb.answered_by = Some(verdict.clone());
        shared
            .calls
            .with_call(&plan.sid, |r| r.answered_by = Some(verdict));
    }
    cb.status("answered", "in-progress", None).await;
    let twiml = match &plan.instructions {
        Instructions::Twiml(t) => Ok(t.clone()),
        Instructions::Url { url, method } => fetch_twiml(shared, cb, url, method).await,
    };
    let target = twiml.and_then(|t| {
        shared
            .calls
            .with_call(&plan.sid, |r| r.twiml = Some(t.clone()));
        wire::parse_twiml(&t)
            .map_err(|e| format!("12100 Document parse failure: {e}"))
            .and_then(|doc| wire::stream_target(&doc))
    });
    let side = match target {
        Ok(target) => {
            media(
                shared,
                plan,
                persona,
                hangup,
                cb,
                &target,
                answered,
                skip_greeting,
            )
            .await
        }
        Err(why) => {
            // Twilio runs what it can of the TwiML and hangs up; the
            // emulator runs nothing but the stream.
            tracing::debug!(sid = %plan.sid, why, "twiml bridges no media");
            shared
                .calls
                .with_call(&plan.sid, |r| r.twiml_error = Some(why));
            HangUpSide::TwimlFailed
        }
    };
    if side == HangUpSide::Transferred {
        crate::calls::person_talks(&shared.shutdown, hangup).await;
    }
    completed(shared, cb, answered).await;
    side
}

/// The verdict a persona earns: a human is `human`; a machine is
/// `machine_start` with `Enable`, `machine_end_beep` with
/// `DetectMessageEnd`.
fn natural_verdict(machine: bool, message_end: bool) -> &'static str {
    match (machine, message_end) {
        (false, _) => "human",
        (true, false) => "machine_start",
        (true, true) => "machine_end_beep",
    }
}

/// The answered call's end: `completed` with its talk time.
async fn completed(shared: &Shared, cb: &mut Callbacks, answered: Instant) {
    let secs = answered.elapsed().as_secs_f64().round() as u64;
    let now = Utc::now();
    shared.calls.with_call(&cb.plan.sid, |r| {
        r.ended_at = Some(now);
        r.duration = Some(secs);
    });
    cb.status("completed", "completed", Some(secs)).await;
}

/// Fetches the TwiML from `url` as Twilio does on answer: `POST` with the
/// call's fields as a form (signed), or `GET` with them in the query
/// (signed over the URL alone). A 200 whose body is a TwiML document
/// within [`MAX_TWIML_BYTES`], else the reason.
async fn fetch_twiml(
    shared: &Shared,
    cb: &Callbacks,
    url: &str,
    method: &str,
) -> Result<String, String> {
    let cfg = shared.cfg();
    let mut params = cb.common("in-progress");
    if let Some(a) = &cb.answered_by {
        params.push(("AnsweredBy".into(), a.clone()));
    }
    let (full_url, signed_params) = if method == "GET" {
        (with_query(url, &params), Vec::new())
    } else {
        (url.to_owned(), params.clone())
    };
    let sig = cfg
        .sign_requests
        .then(|| signature(&cfg.auth_token, &full_url, &signed_params));
    let index = shared.calls.with_call(&cb.plan.sid, |r| {
        r.callbacks.push(CallbackRecord {
            kind: CallbackKind::Twiml,
            url: full_url.clone(),
            method: method.to_owned(),
            params: params.clone(),
            signature: sig.clone(),
            http_status: None,
            at: Utc::now(),
        });
        r.callbacks.len() - 1
    });
    let mut req = if method == "GET" {
        shared.http.get(&full_url)
    } else {
        form_post(shared, &full_url, &params)
    };
    req = req
        .timeout(cfg.webhook_timeout)
        .header("user-agent", "TwilioProxy/1.1");
    if let Some(sig) = &sig {
        req = req.header("x-twilio-signature", sig);
    }
    let resp = req.send().await;
    let status = resp.as_ref().ok().map(|r| r.status().as_u16());
    if let Some(i) = index {
        shared.calls.with_call(&cb.plan.sid, |r| {
            if let Some(c) = r.callbacks.get_mut(i) {
                c.http_status = status;
            }
        });
    }
    let resp = resp.map_err(|e| format!("11200 HTTP retrieval failure: {e}"))?;
    if resp.status().as_u16() != 200 {
        return Err(format!(
            "11200 HTTP retrieval failure: the TwiML URL answered {}",
            resp.status().as_u16()
        ));
    }
    // Twilio runs only markup it knows (12300 otherwise; the set of types
    // is Twilio's docs', unconfirmed).
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !["text/xml", "application/xml", "text/html"]
        .iter()
        .any(|t| ct.starts_with(t))
    {
        return Err(format!("12300 Invalid Content-Type: {ct:?}"));
    }
    let body = read_limited(resp, MAX_TWIML_BYTES).await?;
    String::from_utf8(body).map_err(|_| "12100 Document parse failure: not UTF-8".to_owned())
}

/// Reads a response body of at most `max` bytes.
async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("11200 HTTP retrieval failure: {e}"))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!(
                "11750 TwiML response body too large: over {max} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A `POST` of `params` as `application/x-www-form-urlencoded`.
fn form_post(shared: &Shared, url: &str, params: &Form) -> reqwest::RequestBuilder {
    shared
        .http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(params).unwrap_or_default())
}

/// `url` with `params` appended to its query.
fn with_query(url: &str, params: &Form) -> String {
    let qs = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{qs}")
}

/// Posts the call's requests in order (with the duplicate / reorder
/// knobs).
async fn post_loop(shared: Arc<Shared>, sid: String, rx: mpsc::Receiver<Hook>) {
    let (shared, sid) = (&shared, &sid);
    post_in_order(
        rx,
        || shared.cfg().reorder_callbacks,
        |h| async move { post(shared, sid, &h).await },
    )
    .await;
}

/// Sends one request (twice with `duplicate_callbacks`): a form `POST`, or
/// a `GET` with the parameters in the query; signed when the knob says so.
async fn post(shared: &Shared, sid: &str, hook: &Hook) {
    let cfg = shared.cfg();
    let copies = if cfg.duplicate_callbacks { 2 } else { 1 };
    let get = hook.method == "GET";
    let url = if get {
        with_query(&hook.url, &hook.params)
    } else {
        hook.url.clone()
    };
    let sig = cfg.sign_requests.then(|| {
        let signed: &[(String, String)] = if get { &[] } else { &hook.params };
        signature(&cfg.auth_token, &url, signed)
    });
    for _ in 0..copies {
        let index = shared.calls.with_call(sid, |r| {
            r.callbacks.push(CallbackRecord {
                kind: hook.kind,
                url: url.clone(),
                method: hook.method.clone(),
                params: hook.params.clone(),
                signature: sig.clone(),
                http_status: None,
                at: Utc::now(),
            });
            r.callbacks.len() - 1
        });
        let mut req = if get {
            shared.http.get(&url)
        } else {
            form_post(shared, &url, &hook.params)
        };
        req = req
            .timeout(cfg.webhook_timeout)
            .header("user-agent", "TwilioProxy/1.1")
            .header("i-twilio-idempotency-token", &hook.token);
        if let Some(sig) = &sig {
            req = req.header("x-twilio-signature", sig);
        }
        let answered = req.send().await.ok().map(|r| r.status().as_u16());
        if let Some(i) = index {
            shared.calls.with_call(sid, |r| {
                if let Some(c) = r.callbacks.get_mut(i) {
                    c.http_status = answered;
                }
            });
        }
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the stream's socket (signed upgrade when signing: over the URL,
/// no parameters; unconfirmed) within 5 s.
async fn connect(shared: &Shared, url: &str) -> Result<WsStream, String> {
    let cfg = shared.cfg();
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if cfg.sign_requests {
        let sig = signature(&cfg.auth_token, url, &[]);
        let v = HeaderValue::from_str(&sig).map_err(|e| e.to_string())?;
        req.headers_mut().insert("x-twilio-signature", v);
    }
    let connecting = tokio_tungstenite::connect_async_with_config(
        req,
        Some(talky::net::ws::media_config(
            talky::config::DEFAULT_MEDIA_MAX_MESSAGE_BYTES as usize,
        )),
        false,
    );
    match tokio::time::timeout(Duration::from_secs(5), connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("time-out".into()),
    }
}

/// The stream for the life of the answered call.
#[allow(clippy::too_many_arguments)]
async fn media(
    shared: &Arc<Shared>,
    plan: &Arc<CallPlan>,
    persona: &Persona,
    hangup: &Notify,
    cb: &mut Callbacks,
    target: &StreamTarget,
    answered: Instant,
    skip_greeting: bool,
) -> HangUpSide {
    shared
        .calls
        .with_call(&plan.sid, |r| r.stream_url = Some(target.url.clone()));
    let ws = match connect(shared, &target.url).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(sid = %plan.sid, error = %e, "stream socket failed");
            shared.calls.with_call(&plan.sid, |r| {
                r.twiml_error = Some(format!("31920 Stream - WebSocket - Handshake Error: {e}"))
            });
            return HangUpSide::SocketFailed;
        }
    };
    let counters = &shared.calls.counters;
    inc(&counters.media_opened, 1);
    inc(&counters.media_live, 1);
    let mut s = Stream {
        shared,
        sid: &plan.sid,
        stream_sid: new_sid("MZ"),
        ws,
        seq: 0,
    };
    shared.calls.with_call(&plan.sid, |r| {
        r.socket_opened = true;
        r.stream_sid = Some(s.stream_sid.clone());
    });
    let side = stream_loop(
        &mut s,
        plan,
        persona,
        hangup,
        cb,
        target,
        answered,
        skip_greeting,
    )
    .await;
    dec(&counters.media_live);
    side
}

/// The open stream: the socket and the numbering of what is sent on it.
struct Stream<'a> {
    shared: &'a Shared,
    sid: &'a str,
    stream_sid: String,
    ws: WsStream,
    /// `sequenceNumber` of the last message sent (`start` is 1).
    seq: u64,
}

impl Stream<'_> {
    /// Sends a message; false when the socket is gone.
    async fn send(&mut self, v: Value) -> bool {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .is_ok()
    }

    /// Sends `event` with the next `sequenceNumber`, the `streamSid` and
    /// `body` under the event's own key.
    async fn event(&mut self, event: &str, body: Value) -> bool {
        self.seq += 1;
        let mut v = json!({
            "event": event,
            "sequenceNumber": self.seq.to_string(),
            "streamSid": self.stream_sid,
        });
        v[event] = body;
        self.send(v).await
    }

    /// Echoes a mark (played out or cleared).
    async fn mark(&mut self, name: String) -> bool {
        let ok = self.event("mark", json!({"name": name})).await;
        self.shared.calls.with_call(self.sid, |r| {
            r.marks_echoed.push(MarkRecord {
                name,
                at: Utc::now(),
            })
        });
        ok
    }

    /// Logs a stream error in the call record.
    fn error(&self, code: u32, message: String) {
        tracing::debug!(sid = %self.sid, code, message, "media stream error");
        self.shared.calls.with_call(self.sid, |r| {
            r.errors.push(StreamError {
                code,
                message,
                at: Utc::now(),
            })
        });
    }
}

/// The async AMD verdict's progress.
struct AmdWatch {
    due: Instant,
    deadline: Instant,
    message_end: bool,
}

#[allow(clippy::too_many_arguments)]
async fn stream_loop(
    s: &mut Stream<'_>,
    plan: &Arc<CallPlan>,
    persona: &Persona,
    hangup: &Notify,
    cb: &mut Callbacks,
    target: &StreamTarget,
    answered: Instant,
    skip_greeting: bool,
) -> HangUpSide {
    let shared = s.shared;
    let cfg = shared.cfg();
    let sid = plan.sid.as_str();
    let connected = json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
    let start = json!({
        "streamSid": s.stream_sid,
        "accountSid": plan.account_sid,
        "callSid": plan.sid,
        "tracks": ["inbound"],
        "customParameters": target.parameters,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": SAMPLE_RATE, "channels": 1},
    });
    if !s.send(connected).await || !s.event("start", start.clone()).await {
        return HangUpSide::SocketClosed;
    }
    let started = Instant::now();
    shared.calls.with_call(sid, |r| {
        r.start_message = Some(json!({
            "event": "start", "sequenceNumber": "1", "streamSid": s.stream_sid, "start": start,
        }))
    });
    let mut conv: Conversation<'_, String> =
        Conversation::new(persona, SAMPLE_RATE, &shared.calls.counters);
    if skip_greeting {
        conv.skip_greeting();
    }
    // Agent audio short of a whole frame (payloads need not be multiples
    // of 160 bytes); at most one frame's worth is kept here.
    let mut partial: Vec<i16> = Vec::with_capacity(FRAME_BYTES);
    let mut chunk: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let limit = answered + plan.time_limit;
    let drop_at = cfg.drop_socket_after.map(|d| started + d);
    let machine = persona.outcome == Outcome::Machine;
    let mut amd = plan
        .amd
        .as_ref()
        .filter(|a| a.asynchronous)
        .map(|a| AmdWatch {
            due: answered + cfg.machine_detection_delay,
            deadline: answered + a.timeout,
            message_end: a.message_end,
        });
    let side = loop {
        tokio::select! {
            _ = hangup.notified() => break HangUpSide::Rest,
            _ = tokio::time::sleep_until(limit) => break HangUpSide::TimeLimit,
            _ = shared.shutdown.wait() => break HangUpSide::Rest,
            _ = sleep_until_opt(drop_at) => break HangUpSide::SocketDropped,
            msg = s.ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Err(e) = inbound(s, &mut conv, &mut partial, t.as_str()).await {
                        s.error(ERR_BAD_MESSAGE, e);
                        break HangUpSide::StreamError;
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    s.error(ERR_BINARY, format!("binary frame of {} bytes refused", b.len()));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break HangUpSide::SocketClosed,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                if conv.queued() == 0 && !partial.is_empty() {
                    // A sender running late: play what there is.
                    flush_partial(s, &mut conv, &mut partial);
                }
                let out = conv.tick();
                let mut alive = true;
                for name in out.marks {
                    alive &= s.mark(name).await;
                }
                chunk += 1;
                let payload = base64::engine::general_purpose::STANDARD.encode(mulaw::encode(&out.frame));
                let media = json!({
                    "track": "inbound",
                    "chunk": chunk.to_string(),
                    "timestamp": started.elapsed().as_millis().to_string(),
                    "payload": payload,
                });
                alive &= s.event("media", media).await;
                if !alive {
                    break HangUpSide::SocketClosed;
                }
                let transfer = shared.calls.with_call(sid, |r| {
                    r.media_out += 1;
                    r.transfer.is_some()
                });
                if transfer == Some(true) {
                    // The `<Connect>` was replaced by the `<Dial>`: the
                    // stream ends (`stop`, then the close).
                    break HangUpSide::Transferred;
                }
                for digit in out.dtmf {
                    let _ = s.event("dtmf", json!({"track": "inbound_track", "digit": digit.to_string()})).await;
                    shared.calls.with_call(sid, |r| r.dtmf_sent.push(digit));
                }
                flush_logs(shared, sid, &mut conv);
                if out.hang_up {
                    break HangUpSide::Callee;
                }
                if let Some(w) = &amd {
                    let now = Instant::now();
                    let greeting_over = conv.lines_said() > 0 && !conv.speaking();
                    let verdict = if now >= w.deadline {
                        Some("unknown")
                    } else if now < w.due || (machine && w.message_end && !greeting_over) {
                        None
                    } else {
                        Some(natural_verdict(machine, w.message_end))
                    };
                    if let Some(v) = verdict {
                        amd = None;
                        let v = cfg.amd_verdict.clone().unwrap_or_else(|| v.to_owned());
                        cb.amd(&v, now - answered).await;
                    }
                }
            }
        }
    };
    let side = if side == HangUpSide::SocketClosed && shared.calls.transfer_accepted(sid) {
        HangUpSide::Transferred
    } else {
        side
    };
    match side {
        // Gone without a word: no `stop`, no close frame.
        HangUpSide::SocketDropped => {}
        // talky closed it: nothing more can be sent.
        HangUpSide::SocketClosed => {}
        _ => {
            let stop = json!({"accountSid": plan.account_sid, "callSid": plan.sid});
            let _ = s.event("stop", stop).await;
            let _ = s.ws.close(None).await;
        }
    }
    conv.finish();
    flush_logs(shared, sid, &mut conv);
    side
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Queues what is left of the agent's audio as one silence-padded frame.
fn flush_partial(s: &Stream<'_>, conv: &mut Conversation<'_, String>, partial: &mut Vec<i16>) {
    if partial.is_empty() {
        return;
    }
    let mut f = std::mem::take(partial);
    f.resize(FRAME_BYTES, 0);
    if !conv.received(f) {
        s.shared.calls.with_call(s.sid, |r| r.media_dropped += 1);
    }
}

/// Handles one text message from talky; `Err` is a message a stream does
/// not accept (error 31924: the stream closes).
async fn inbound(
    s: &mut Stream<'_>,
    conv: &mut Conversation<'_, String>,
    partial: &mut Vec<i16>,
    text: &str,
) -> Result<(), String> {
    let msg: Inbound = serde_json::from_str(text).map_err(|e| {
        let shown: String = text.chars().take(200).collect();
        format!("invalid message ({e}): {shown}")
    })?;
    if msg.stream_sid() != s.stream_sid {
        return Err(format!(
            "streamSid {:?} is not this stream's {:?}",
            msg.stream_sid(),
            s.stream_sid
        ));
    }
    let sid = s.sid;
    match msg {
        Inbound::Media { media, .. } => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(media.payload.as_bytes())
                .map_err(|e| format!("media payload is not base64: {e}"))?;
            let bad = bytes.is_empty() || bytes.len() % FRAME_BYTES != 0;
            let mut dropped = 0;
            for b in bytes {
                partial.push(mulaw::decode_sample(b));
                if partial.len() == FRAME_BYTES {
                    let frame = std::mem::replace(partial, Vec::with_capacity(FRAME_BYTES));
                    if !conv.received(frame) {
                        dropped += 1;
                    }
                }
            }
            s.shared.calls.with_call(sid, |r| {
                r.media_in += 1;
                r.media_bad_size += u64::from(bad);
                r.media_dropped += dropped;
            });
        }
        Inbound::Mark { mark, .. } => {
            // The mark follows all audio sent before it, a partial frame
            // included.
            flush_partial(s, conv, partial);
            s.shared.calls.with_call(sid, |r| {
                r.marks_received.push(MarkRecord {
                    name: mark.name.clone(),
                    at: Utc::now(),
                })
            });
            if let Some(early) = conv.mark(mark.name) {
                s.mark(early).await;
            }
        }
        Inbound::Clear { .. } => {
            partial.clear();
            let returned = conv.clear();
            s.shared.calls.with_call(sid, |r| {
                r.clears.push(ClearRecord {
                    at: Utc::now(),
                    returned_marks: returned.clone(),
                })
            });
            for name in returned {
                s.mark(name).await;
            }
        }
    }
    Ok(())
}

/// Moves what the persona said and heard into the call's record.
fn flush_logs(shared: &Shared, sid: &str, conv: &mut Conversation<'_, String>) {
    let (mut heard, mut said) = conv.take_logs();
    if heard.is_empty() && said.is_empty() {
        return;
    }
    shared.calls.with_call(sid, |r| {
        r.heard.append(&mut heard);
        r.said.append(&mut said);
    });
}
