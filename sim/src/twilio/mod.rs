//! A loopback Twilio Programmable Voice emulator (providers.md §2), wire
//! exact on the parts talky uses, with the same personas as the Vonage
//! emulator ([`crate::persona`], [`crate::callee`]).
//!
//! - REST ([`api`]), under `/2010-04-01/Accounts/{AccountSid}`: `POST
//!   Calls.json` (HTTP Basic auth with the account SID and auth token or an
//!   API key; the form checked like Twilio: `To`/`From` E.164, exactly one
//!   of `Url`/`Twiml`/`ApplicationSid`, callbacks, `Timeout`, `TimeLimit`,
//!   machine detection; `201` with the call resource), `GET Calls.json`
//!   (the list, filters `To`, `From`, `Status`, `StartTime`, paging),
//!   `GET`/`POST Calls/{CallSid}.json` (the resource; `Status=completed`
//!   or `canceled` hangs up). Errors are Twilio's
//!   `{"code","message","more_info","status"}`.
//! - Each accepted call runs in its own task ([`call`]) per the persona its
//!   `To` selects: status callbacks (form POSTs, signed with
//!   `X-Twilio-Signature`, [`signature`]) for the events asked for, in
//!   Twilio's order (`initiated`, `ringing`, `in-progress`, then one
//!   terminal status), the answering-machine verdict (synchronous, or
//!   posted to `AsyncAmdStatusCallback`), then the TwiML's
//!   `<Connect><Stream>` as the WebSocket client speaking Media Streams
//!   (`connected`, `start`, `media` every 20 ms in 8 kHz μ-law, `dtmf`,
//!   `mark` echoes, `stop`), the persona hearing what talky sends
//!   (`media`, `mark`, `clear`) in real time.
//! - Knobs ([`TwilioSimConfig`], changeable while running via
//!   [`TwilioSimHandle::update`]): personas, signing, slow or failed
//!   create, duplicated or reordered callbacks, socket drop, AMD timing
//!   and verdict, webhook time-out.
//! - The call log ([`TwilioSimHandle::calls`]): per call the create form,
//!   every callback posted with talky's answer, the TwiML run, what the
//!   persona said and heard (with times), marks and clears received,
//!   stream errors, who hung up.
//!
//! Items the spec marks unconfirmed are done as the spec says; where the
//! emulator had to choose, the choice is documented where it is made.

pub mod api;
pub mod call;
pub mod signature;
#[cfg(test)]
mod tests;
pub mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::callee::{Heard, Said};
pub(crate) use crate::calls::CallEntry;
use crate::calls::TelephonySim;
use crate::persona::Personas;
use crate::server::lock;

/// Twilio's REST API version, in every path and in `ApiVersion`.
pub const API_VERSION: &str = "2010-04-01";
/// The account the emulator serves unless configured otherwise.
pub const DEFAULT_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Its auth token (a fake: 32 hex digits like a real one).
pub const DEFAULT_AUTH_TOKEN: &str = "5a1e0f7c3b9d4e6f8a2b1c0d9e8f7a6b";

/// A create-call failure the emulator answers instead of creating the
/// call (fault knob).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateFailure {
    /// HTTP status (e.g. 429, 500, 503).
    pub status: u16,
    /// Twilio error code in the body (e.g. 20429, 20500).
    pub code: u32,
}

/// The emulator's knobs.
#[derive(Clone, Debug)]
pub struct TwilioSimConfig {
    /// The account (`AC` + 32 hex) in the paths and callbacks.
    pub account_sid: String,
    /// Its auth token: Basic auth password, and the key of every
    /// `X-Twilio-Signature`.
    pub auth_token: String,
    /// API keys that may authenticate instead: `(SK..., secret)`.
    pub api_keys: Vec<(String, String)>,
    /// `ApplicationSid`s the account has, with their voice URL (fetched
    /// with `POST` like a `Url`).
    pub applications: BTreeMap<String, String>,
    /// Who answers which number.
    pub personas: Personas,
    /// Sign callbacks, TwiML fetches and the stream's upgrade request with
    /// `X-Twilio-Signature` (Twilio always does; off: test that talky
    /// refuses unsigned callbacks).
    pub sign_requests: bool,
    /// Fault knob: a create-call is accepted (the call starts at once) but
    /// its `201` is sent only after this long.
    pub create_response_delay: Duration,
    /// Fault knob: every create-call fails with this, no call is made.
    pub fail_create: Option<CreateFailure>,
    /// Post every callback twice (same `SequenceNumber`).
    pub duplicate_callbacks: bool,
    /// Swap consecutive callbacks of a call (one is held back until the
    /// next is posted, or for at most 300 ms).
    pub reorder_callbacks: bool,
    /// Fault knob: drop the media socket (no `stop`, no close frame) this
    /// long after it opened; the call then completes.
    pub drop_socket_after: Option<Duration>,
    /// Audio needed before the machine-detection verdict.
    pub machine_detection_delay: Duration,
    /// Fault knob: the `AnsweredBy` to report whatever the persona is
    /// (`human`, `machine_start`, `machine_end_beep`,
    /// `machine_end_silence`, `machine_end_other`, `fax`, `unknown`).
    pub amd_verdict: Option<String>,
    /// Time-out of each callback and TwiML fetch.
    pub webhook_timeout: Duration,
    /// Delay between `initiated` and `ringing`.
    pub initiated_to_ringing: Duration,
}

impl Default for TwilioSimConfig {
    fn default() -> Self {
        Self {
            account_sid: DEFAULT_ACCOUNT_SID.into(),
            auth_token: DEFAULT_AUTH_TOKEN.into(),
            api_keys: Vec::new(),
            applications: BTreeMap::new(),
            personas: Personas::builtin(),
            sign_requests: true,
            create_response_delay: Duration::ZERO,
            fail_create: None,
            duplicate_callbacks: false,
            reorder_callbacks: false,
            drop_socket_after: None,
            machine_detection_delay: Duration::from_secs(4),
            amd_verdict: None,
            webhook_timeout: Duration::from_secs(5),
            initiated_to_ringing: Duration::from_millis(50),
        }
    }
}

/// What a request the emulator made was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackKind {
    /// A status callback (`StatusCallback`).
    Status,
    /// The asynchronous AMD verdict (`AsyncAmdStatusCallback`).
    Amd,
    /// Fetching the call's TwiML (`Url`, or an application's voice URL).
    Twiml,
}

/// One request the emulator made to talky.
#[derive(Clone, Debug)]
pub struct CallbackRecord {
    /// What for.
    pub kind: CallbackKind,
    /// The URL (a `GET`'s parameters included).
    pub url: String,
    /// `POST` or `GET`.
    pub method: String,
    /// The parameters (the form of a `POST`, the query of a `GET`).
    pub params: wire::Form,
    /// The `X-Twilio-Signature` sent, if signing.
    pub signature: Option<String>,
    /// HTTP status talky answered (`None`: no answer / transport error).
    pub http_status: Option<u16>,
    /// When it was sent.
    pub at: DateTime<Utc>,
}

impl CallbackRecord {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        wire::first(&self.params, name)
    }

    /// `CallStatus` (status callbacks), `AnsweredBy` (AMD), or `twiml`.
    pub fn status(&self) -> String {
        match self.kind {
            CallbackKind::Status => self.param("CallStatus"),
            CallbackKind::Amd => self.param("AnsweredBy"),
            CallbackKind::Twiml => Some("twiml"),
        }
        .unwrap_or_default()
        .to_owned()
    }
}

/// Who ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangUpSide {
    /// The persona hung up.
    Callee,
    /// talky: `POST Calls/{sid}.json` with `Status=completed|canceled`.
    Rest,
    /// talky closed the media socket (`<Connect>` ends, the call with it).
    SocketClosed,
    /// The emulator dropped the socket (the `drop_socket_after` knob).
    SocketDropped,
    /// talky sent what a stream does not accept (error 31924): the
    /// emulator closed the stream.
    StreamError,
    /// The call never connected (busy, no-answer, failed).
    NotConnected,
    /// `TimeLimit` ran out.
    TimeLimit,
    /// Opening the media socket failed.
    SocketFailed,
    /// The TwiML could not be fetched, or bridges no media.
    TwimlFailed,
    /// talky transferred the call (`Twiml=<Dial>`): the stream sent `stop`
    /// and closed, the callee talked with the person, who hung up.
    Transferred,
}

/// A Media Streams error, as Twilio's debugger would log it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    /// Twilio's code: 31924 (a message the stream does not accept), 31950
    /// (a binary frame; spec §2.3).
    pub code: u32,
    /// What was wrong.
    pub message: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A mark received or echoed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkRecord {
    /// Its name.
    pub name: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A `clear` received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// The pending marks it returned, in order.
    pub returned_marks: Vec<String>,
}

/// Everything about one call.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// `CA` + 32 hex.
    pub sid: String,
    /// The create-call form, as received.
    pub request: wire::Form,
    /// Persona name.
    pub persona: String,
    /// `To` (E.164).
    pub to: String,
    /// `From` (E.164).
    pub from: String,
    /// The resource's status: `queued`, `ringing`, `in-progress`,
    /// `completed`, `busy`, `no-answer`, `failed`, `canceled`.
    pub status: String,
    /// Every request the emulator made for this call, in sending order.
    pub callbacks: Vec<CallbackRecord>,
    /// The TwiML run on answer (inline or fetched).
    pub twiml: Option<String>,
    /// Why the TwiML could not be run.
    pub twiml_error: Option<String>,
    /// The machine-detection verdict, once known.
    pub answered_by: Option<String>,
    /// The stream (`MZ` + 32 hex), once it started.
    pub stream_sid: Option<String>,
    /// The `<Stream url>` connected to.
    pub stream_url: Option<String>,
    /// The media socket was opened.
    pub socket_opened: bool,
    /// The `start` message sent.
    pub start_message: Option<serde_json::Value>,
    /// Lines the persona said.
    pub said: Vec<Said>,
    /// Agent utterances heard.
    pub heard: Vec<Heard>,
    /// Marks received from talky.
    pub marks_received: Vec<MarkRecord>,
    /// Marks echoed to talky (played out, or returned by a clear).
    pub marks_echoed: Vec<MarkRecord>,
    /// `clear` messages received.
    pub clears: Vec<ClearRecord>,
    /// `media` messages received from talky.
    pub media_in: u64,
    /// Of those, payloads not a multiple of 160 bytes (20 ms).
    pub media_bad_size: u64,
    /// 20 ms frames dropped because the play queue was full.
    pub media_dropped: u64,
    /// `media` messages sent to talky.
    pub media_out: u64,
    /// Keys pressed (sent as `dtmf`).
    pub dtmf_sent: Vec<char>,
    /// Stream errors (each is also why a stream closed, but 31950).
    pub errors: Vec<StreamError>,
    /// Who ended the call.
    pub hang_up: Option<HangUpSide>,
    /// The call is over (its terminal status reached).
    pub ended: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started dialling.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Talk time in whole seconds, once over.
    pub duration: Option<u64>,
    /// The transfer talky asked for (`Twiml=<Dial>`), once accepted.
    pub transfer: Option<crate::calls::Transfer>,
}

impl CallRecord {
    /// The `CallStatus` of each status callback, in posting order.
    pub fn statuses(&self) -> Vec<String> {
        self.callbacks
            .iter()
            .filter(|c| c.kind == CallbackKind::Status)
            .map(CallbackRecord::status)
            .collect()
    }

    /// The status callbacks, in posting order.
    pub fn status_callbacks(&self) -> Vec<&CallbackRecord> {
        self.callbacks
            .iter()
            .filter(|c| c.kind == CallbackKind::Status)
            .collect()
    }
}

crate::calls::call_brief!(sid, "Its sid.", "The number called (E.164).");

/// What the handlers share.
pub(crate) type Shared = crate::calls::Shared<TwilioSimConfig, CallRecord>;

/// Reads a running emulator's counters and call list (for a stats server).
pub type StatsSource = crate::calls::StatsSource<CallRecord>;

/// The emulator.
pub struct TwilioSim;

/// A running emulator; stops when dropped or [`stop`](TelephonySim::stop)ped.
pub type TwilioSimHandle = TelephonySim<TwilioSimConfig, CallRecord>;

impl TwilioSim {
    /// Binds 127.0.0.1:0 and serves until the handle goes.
    pub async fn start(cfg: TwilioSimConfig) -> std::io::Result<TwilioSimHandle> {
        Self::start_on(cfg, 0).await
    }

    /// Binds 127.0.0.1:`port` (0: any free port) and serves until the
    /// handle goes.
    pub async fn start_on(cfg: TwilioSimConfig, port: u16) -> std::io::Result<TwilioSimHandle> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // Twilio does not follow redirects for webhooks either
            // (unconfirmed); a redirect shows up as its 3xx.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        TelephonySim::start(port, cfg, http, api::routes).await
    }
}

/// What only the Twilio emulator's handle tells.
impl TwilioSimHandle {
    /// `{base}/2010-04-01/Accounts/{AccountSid}`: where `Calls.json` is.
    pub fn account_url(&self) -> String {
        format!(
            "{}/{API_VERSION}/Accounts/{}",
            self.base_url(),
            self.account_sid()
        )
    }

    /// The account SID the emulator serves.
    pub fn account_sid(&self) -> String {
        lock(&self.shared.cfg).account_sid.clone()
    }

    /// The account's auth token (Basic auth, signatures).
    pub fn auth_token(&self) -> String {
        lock(&self.shared.cfg).auth_token.clone()
    }
}

/// Twilio's time format in resources and callbacks (RFC 2822, UTC):
/// `Tue, 31 Aug 2010 20:36:28 +0000`.
pub fn twilio_time(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// A new sid: `prefix` and 32 random lowercase hex digits.
pub fn new_sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
