//! A loopback Vonage Voice API emulator (providers.md §1).
//!
//! - REST ([`api`]): `POST /v1/calls` (RS256 application JWT verified with
//!   the configured public key, body validated, `201` with the create
//!   response), `GET /v1/calls/{uuid}`, `PUT /v1/calls/{uuid}` (`hangup`,
//!   mute/earmuff no-ops; `204`, `404` for unknown or finished calls).
//!   Errors are RFC 7807 `application/problem+json` bodies.
//! - Each accepted call runs in its own task ([`call`]) per the
//!   [`Persona`] its `to` number selects: event webhooks in the real order
//!   (`started`, `ringing`, `answered` [`human`|`machine`] ... `completed`,
//!   or a failure status), then the media socket as the WebSocket client
//!   (`websocket:connected` first, 20 ms binary frames both ways in real
//!   time, `clear` / `notify` commands), the persona speaking and hearing
//!   through the in-band code ([`crate::codec`]).
//! - Knobs ([`VonageSimConfig`], changeable while running via
//!   [`VonageSimHandle::update`]) duplicate or reorder webhooks, sign them
//!   (§1.9), pace machine detection.
//! - The call log ([`VonageSimHandle::calls`]) records per call the create
//!   request, the webhooks posted and talky's answers, what the persona said
//!   and heard (with times), clears and notifies received, who hung up.

pub mod api;
pub mod call;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{Notify, watch};

pub use crate::callee::{Heard, Said};
/// The personas live in [`crate::persona`] (shared with the Twilio
/// emulator); `vonage::persona` keeps naming them for existing callers.
pub use crate::persona;
pub use crate::persona::{Outcome, Persona, PersonaError, Personas, Step};

/// The emulator's knobs.
#[derive(Clone, Debug)]
pub struct VonageSimConfig {
    /// The application id JWTs must carry.
    pub application_id: String,
    /// The application's public key (PEM) JWTs are verified with.
    pub public_key_pem: String,
    /// Who answers which number.
    pub personas: Personas,
    /// Post every webhook twice.
    pub duplicate_webhooks: bool,
    /// Swap consecutive webhooks of a call (one is held back until the next
    /// is posted, or for at most 300 ms).
    pub reorder_webhooks: bool,
    /// Post `completed` after a failure status (`busy`, `timeout`, ...).
    pub completed_after_failure: bool,
    /// Audio needed before the machine-detection verdict (spec: 4-5 s).
    pub machine_detection_delay: Duration,
    /// Sign webhooks (§1.9) with this `(api_key, signature_secret)`.
    pub signature: Option<(String, String)>,
    /// Time-out of each webhook request.
    pub webhook_timeout: Duration,
    /// Delay between `started` and `ringing`.
    pub started_to_ringing: Duration,
    /// Fault knob: a create-call is accepted (the call starts at once:
    /// webhooks, media) but its `201` is sent only after this long, as a
    /// slow API whose answer outlives the client's time-out.
    pub create_response_delay: Duration,
}

impl Default for VonageSimConfig {
    fn default() -> Self {
        Self {
            application_id: String::new(),
            public_key_pem: String::new(),
            personas: Personas::builtin(),
            duplicate_webhooks: false,
            reorder_webhooks: false,
            completed_after_failure: true,
            machine_detection_delay: Duration::from_secs(4),
            signature: None,
            webhook_timeout: Duration::from_secs(5),
            started_to_ringing: Duration::from_millis(50),
            create_response_delay: Duration::ZERO,
        }
    }
}

/// One webhook the emulator posted.
#[derive(Clone, Debug)]
pub struct WebhookRecord {
    /// The event's `status`.
    pub status: String,
    /// The URL.
    pub url: String,
    /// The JSON payload.
    pub body: Value,
    /// HTTP status talky answered (`None`: no answer / transport error).
    pub http_status: Option<u16>,
    /// When it was posted.
    pub at: DateTime<Utc>,
}

/// Who ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangUpSide {
    /// The persona hung up.
    Callee,
    /// talky: `PUT /v1/calls/{uuid}` hangup.
    Rest,
    /// talky closed the media socket.
    SocketClosed,
    /// The call never connected (busy, timeout, ...).
    NotConnected,
    /// The length timer ran out.
    LengthTimer,
    /// Opening the media socket failed.
    SocketFailed,
    /// Machine detection with `behavior: hangup` found a machine.
    MachineDetected,
    /// answer_url mode: the answer URL gave no usable NCCO (§1.4).
    AnswerFailed,
}

/// Everything about one call.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// The call leg's uuid.
    pub uuid: String,
    /// `CON-...`.
    pub conversation_uuid: String,
    /// The create request body.
    pub request: Value,
    /// Persona name.
    pub persona: String,
    /// The `to` number.
    pub to: String,
    /// Current status (last event posted).
    pub status: String,
    /// Webhooks posted, in posting order.
    pub webhooks: Vec<WebhookRecord>,
    /// The media socket was opened.
    pub socket_opened: bool,
    /// The first text message sent on the socket.
    pub connected_message: Option<Value>,
    /// Lines the persona said.
    pub said: Vec<Said>,
    /// Agent utterances heard.
    pub heard: Vec<Heard>,
    /// When `clear` commands arrived. Like Vonage, a clear drops the audio
    /// received but not yet played and is answered `websocket:cleared`.
    pub clears: Vec<DateTime<Utc>>,
    /// Notify payloads echoed, with the time of the echo.
    pub notifies: Vec<(Value, DateTime<Utc>)>,
    /// Binary frames received from talky.
    pub frames_in: u64,
    /// Of those, frames not exactly 20 ms long (talky must send 640 bytes
    /// at 16 kHz).
    pub frames_bad_size: u64,
    /// Text messages received from talky (raw).
    pub texts_in: Vec<String>,
    /// Binary frames sent to talky.
    pub frames_out: u64,
    /// Who ended the call.
    pub hang_up: Option<HangUpSide>,
    /// The call is over (`completed` or a terminal failure posted).
    pub ended: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// answer_url mode: why the answer URL's NCCO was not usable.
    pub answer_error: Option<String>,
    /// The figures of its `completed` event, once posted: what the call
    /// resource (`GET /v1/calls/{uuid}`, §1.3) adds once the call is over.
    pub completion: Option<Completion>,
}

/// How a call completed, as its `completed` event and its resource say.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// When it was answered (its end, when it never was).
    pub start: DateTime<Utc>,
    /// When it ended.
    pub end: DateTime<Utc>,
    /// Talk time, whole seconds.
    pub duration: u64,
    /// Per-minute rate, EUR.
    pub rate: f64,
    /// What it cost, EUR.
    pub price: f64,
}

/// The network every leg of the emulator is on.
pub const NETWORK: &str = "GB-FIXED";

impl CallRecord {
    /// The statuses of the webhooks posted, in order.
    pub fn statuses(&self) -> Vec<String> {
        self.webhooks.iter().map(|w| w.status.clone()).collect()
    }
}

pub(crate) struct CallEntry {
    pub(crate) record: CallRecord,
    pub(crate) hangup: Arc<Notify>,
}

pub(crate) struct Shared {
    pub(crate) cfg: Mutex<VonageSimConfig>,
    pub(crate) calls: Mutex<Vec<CallEntry>>,
    /// uuid -> position in `calls` (append-only), so per-frame updates of
    /// one call do not walk every call.
    pub(crate) index: Mutex<HashMap<String, usize>>,
    pub(crate) counters: stats::Counters,
    pub(crate) http: reqwest::Client,
    pub(crate) shutdown: watch::Receiver<bool>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn cfg(&self) -> VonageSimConfig {
        lock(&self.cfg).clone()
    }

    /// Runs `f` on the record of call `uuid`.
    pub(crate) fn with_call<R>(
        &self,
        uuid: &str,
        f: impl FnOnce(&mut CallRecord) -> R,
    ) -> Option<R> {
        let at = lock(&self.index).get(uuid).copied()?;
        let mut calls = lock(&self.calls);
        calls.get_mut(at).map(|c| f(&mut c.record))
    }

    /// Appends a call to the log (and the index).
    pub(crate) fn push_call(&self, entry: CallEntry) {
        let uuid = entry.record.uuid.clone();
        let mut calls = lock(&self.calls);
        calls.push(entry);
        lock(&self.index).insert(uuid, calls.len() - 1);
        stats::inc(&self.counters.created, 1);
    }

    /// The hang-up signal of a live call.
    pub(crate) fn live_hangup(&self, uuid: &str) -> Option<Arc<Notify>> {
        let at = lock(&self.index).get(uuid).copied()?;
        lock(&self.calls)
            .get(at)
            .filter(|c| !c.record.ended)
            .map(|c| c.hangup.clone())
    }
}

/// Reads a running emulator's load counters.
#[derive(Clone)]
pub struct StatsSource(Arc<Shared>);

impl StatsSource {
    /// The counters now (`with_samples`: also every barge-in sample).
    pub fn snapshot(&self, with_samples: bool) -> stats::SimStats {
        self.0.counters.snapshot(with_samples)
    }

    /// Every call created so far, in brief (`GET /stats/calls`): what
    /// process tests count legs with.
    pub fn calls(&self) -> Vec<CallBrief> {
        lock(&self.0.calls)
            .iter()
            .map(|c| CallBrief {
                uuid: c.record.uuid.clone(),
                to: c.record.to.clone(),
                status: c.record.status.clone(),
                socket_opened: c.record.socket_opened,
                ended: c.record.ended,
                hung_up_by_talky: matches!(
                    c.record.hang_up,
                    Some(HangUpSide::Rest | HangUpSide::SocketClosed)
                ),
                created_at: c.record.created_at,
            })
            .collect()
    }
}

/// One call of the emulator, in brief.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CallBrief {
    /// Its uuid.
    pub uuid: String,
    /// The number called (digits).
    pub to: String,
    /// Its last status.
    pub status: String,
    /// Its media socket connected.
    pub socket_opened: bool,
    /// It is over.
    pub ended: bool,
    /// talky hung it up (REST `hangup` or closing the socket).
    pub hung_up_by_talky: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The emulator.
pub struct VonageSim;

/// A running emulator; stops when dropped or [`stop`](Self::stop)ped.
pub struct VonageSimHandle {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl VonageSim {
    /// Binds 127.0.0.1:0 and serves until the handle goes.
    pub async fn start(cfg: VonageSimConfig) -> std::io::Result<VonageSimHandle> {
        Self::start_on(cfg, 0).await
    }

    /// Binds 127.0.0.1:`port` (0: any free port) and serves until the
    /// handle goes.
    pub async fn start_on(cfg: VonageSimConfig, port: u16) -> std::io::Result<VonageSimHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (stop, shutdown) = watch::channel(false);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            cfg: Mutex::new(cfg),
            calls: Mutex::new(Vec::new()),
            index: Mutex::new(HashMap::new()),
            counters: stats::Counters::default(),
            http,
            shutdown: shutdown.clone(),
        });
        let routes = api::routes(shared.clone());
        let mut sig = shutdown;
        let task = tokio::spawn(async move {
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move {
                    let _ = sig.wait_for(|s| *s).await;
                })
                .run()
                .await;
        });
        Ok(VonageSimHandle {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }
}

impl VonageSimHandle {
    /// `http://127.0.0.1:<port>`: the client's `api_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of the knobs.
    pub fn config(&self) -> VonageSimConfig {
        self.shared.cfg()
    }

    /// Changes knobs (for calls created afterwards; webhook knobs apply at
    /// once).
    pub fn update(&self, f: impl FnOnce(&mut VonageSimConfig)) {
        f(&mut lock(&self.shared.cfg));
    }

    /// Every call so far, in creation order.
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.shared.calls)
            .iter()
            .map(|c| c.record.clone())
            .collect()
    }

    /// The load counters (`with_samples`: also every barge-in sample).
    pub fn stats(&self, with_samples: bool) -> stats::SimStats {
        self.shared.counters.snapshot(with_samples)
    }

    /// A cloneable reader of the load counters (for a stats server).
    pub fn stats_source(&self) -> StatsSource {
        StatsSource(self.shared.clone())
    }

    /// One call by uuid.
    pub fn call(&self, uuid: &str) -> Option<CallRecord> {
        self.shared.with_call(uuid, |r| r.clone())
    }

    /// Waits until call `uuid` has ended; its record (`None` on time-out or
    /// unknown call).
    pub async fn wait_ended(&self, uuid: &str, timeout: Duration) -> Option<CallRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.call(uuid) {
                Some(r) if r.ended => return Some(r),
                None => return None,
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops serving (running calls are abandoned) and waits for the server.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for VonageSimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// ISO 8601 UTC with milliseconds, as Vonage's `timestamp`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
