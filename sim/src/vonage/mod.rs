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

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub(crate) use crate::calls::CallEntry;
use crate::calls::TelephonySim;
pub(crate) use crate::server::lock;

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
    /// Fault knob: a transfer (`PUT` with `action: transfer`) is carried
    /// out at once (socket closed, `transfer` posted, the person on the
    /// line) but its `204` is sent only after this long, so a test can
    /// stop talky between the provider's acceptance and talky's record.
    pub transfer_response_delay: Duration,
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
            transfer_response_delay: Duration::ZERO,
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
    /// talky transferred the call (`PUT` transfer): the media socket was
    /// closed, the callee talked with the person, who hung up.
    Transferred,
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
    /// The transfer talky asked for, once accepted.
    pub transfer: Option<crate::calls::Transfer>,
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

crate::calls::call_brief!(uuid, "Its uuid.", "The number called (digits).");

/// What the handlers share.
pub(crate) type Shared = crate::calls::Shared<VonageSimConfig, CallRecord>;

/// Reads a running emulator's load counters and calls (for a stats
/// server).
pub type StatsSource = crate::calls::StatsSource<CallRecord>;

/// The emulator.
pub struct VonageSim;

/// A running emulator; stops when dropped or [`stop`](TelephonySim::stop)ped.
pub type VonageSimHandle = TelephonySim<VonageSimConfig, CallRecord>;

impl VonageSim {
    /// Binds 127.0.0.1:0 and serves until the handle goes.
    pub async fn start(cfg: VonageSimConfig) -> std::io::Result<VonageSimHandle> {
        Self::start_on(cfg, 0).await
    }

    /// Binds 127.0.0.1:`port` (0: any free port) and serves until the
    /// handle goes.
    pub async fn start_on(cfg: VonageSimConfig, port: u16) -> std::io::Result<VonageSimHandle> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(std::io::Error::other)?;
        TelephonySim::start(port, cfg, http, api::routes).await
    }
}

/// ISO 8601 UTC with milliseconds, as Vonage's `timestamp`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
