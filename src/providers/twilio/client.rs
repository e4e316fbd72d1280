//! [`TwilioClient`]: the [`TelephonyPort`] over Twilio's REST API
//! (spec §2.1), the second telephony provider beside
//! [`VonageClient`](crate::providers::vonage::VonageClient).
//!
//! - `place_call`: `POST /2010-04-01/Accounts/{AccountSid}/Calls.json`,
//!   form-encoded, HTTP Basic auth (account SID + auth token, or API key
//!   SID + secret), with the call's inline TwiML (`super::twiml`), our
//!   status callback (+ `StatusCallbackMethod=POST` and the events
//!   `initiated ringing answered completed`, one parameter each),
//!   `Timeout`, `TimeLimit`, and, when the call wants detection,
//!   `MachineDetection` + `AsyncAmd=true` + `AsyncAmdStatusCallback` (so
//!   the stream starts at once and the verdict arrives as a callback, as
//!   with Vonage's asynchronous detection). The `sid` of the `201` is the
//!   [`ProviderCallId`].
//! - `hang_up`: `POST .../Calls/{sid}.json` with `Status=completed`.
//!   Twilio's "modifying live calls" docs: `completed` hangs up a call
//!   even if it is already in progress, `canceled` only one queued or
//!   ringing and "does not affect calls in progress". `canceled` first
//!   would leave an answered call up whenever the answer raced our
//!   hang-up, and "completed then canceled" adds a request for nothing; so
//!   `completed` always, one request. `404` (the call is gone) is success,
//!   and so is `400` with code 21220 ("not in a state to be modified":
//!   already over, unconfirmed that Twilio answers an ended call this way).
//! - `transfer`: `POST .../Calls/{sid}.json` with `Twiml=` a `<Dial>` to
//!   the person's number (cold transfer; `twiml::dial_number`), once.
//! - `leg_state`: `GET .../Calls/{sid}.json` (404: unknown leg).
//! - `find_call`: `GET .../Calls.json?To=…&PageSize=100` (pages followed
//!   through `next_page_uri`). What Twilio's list returns (the Call
//!   resource, per the official SDK models): `sid`, `to`, `from`,
//!   `status`, `direction`, `date_created` / `start_time` (RFC 2822),
//!   `parent_call_sid`, ... but neither our `StatusCallback` nor our
//!   `Twiml`, so our call id cannot be matched in it (unconfirmed that no
//!   field echoes them). The leg is therefore matched as Vonage's is: an
//!   `outbound-api` parent leg to the same number created no earlier than
//!   5 s before our request, the earliest such. No `StartTime>=` filter:
//!   it is date-granular and a queued call has no start time yet, so it
//!   could hide exactly the leg we look for (unconfirmed how Twilio
//!   filters nulls).
//!
//! Errors: Twilio's `{code, message, more_info, status}` bodies, mapped as
//! Vonage's are: 401/403 and other 4xx -> `Rejected` (retrying will not
//! help), 429 -> `RateLimited` (with `Retry-After`), 5xx -> `Unavailable`,
//! a connect failure -> `Unavailable`, a 2xx we cannot read -> `Protocol`.
//! A create-call that was sent and then timed out, lost its connection or
//! answered a 2xx we cannot read is `Unknown`: the call may exist, so it is
//! resolved (callbacks, `find_call`), never repeated.
//!
//! Retries: 429, 5xx and connect failures are retried through the shared
//! retry module with back-off (honouring `Retry-After`) and the breaker,
//! but never past a budget: `place_budget` for a create-call, which must
//! end before the dialer's `place_timeout` (default
//! [`DEFAULT_PLACE_TIMEOUT`](talky_actors::call::config::DEFAULT_PLACE_TIMEOUT),
//! 15 s) so the dialer hears the client's own verdict (sent or not)
//! rather than its time-out; `port_budget` for the rest, under the
//! dialer's port timeout (5 s). Each request has a connect and a total
//! time-out shorter than either.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use percent_encoding::utf8_percent_encode;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};
use talky_actors::ids::CallId;
use talky_actors::ports::{
    LegState, PlaceCall, PortError, PortResult, ProviderCallId, TelephonyPort,
};

use super::callback::{self, http_base};
use super::status::{TwilioStatus, parse_date};
use super::twiml::{self, SEGMENT};
use crate::config::Secret;
use crate::providers::breaker::CircuitBreaker;
use crate::providers::build::{self, BuildError, HTTP_SCHEMES, HttpClient};
use crate::providers::observe;
use crate::providers::retry::{self, Answer, Deadline, RetryPolicy, maybe_sent, with_retries_by};
use crate::providers::vonage::CallbackKey;

/// Twilio's REST base.
pub const DEFAULT_API_BASE_URL: &str = "https://api.twilio.com";
/// The API version in every path.
pub const API_VERSION: &str = "2010-04-01";
/// TCP + TLS connect time-out of every request.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request time-out (connect to last body byte): below the dialer's
/// port timeout (5 s), so a hang-up or status query ends here first.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// Everything one create-call may take, retries included: below the
/// dialer's place timeout (15 s).
pub const DEFAULT_PLACE_BUDGET: Duration = Duration::from_secs(12);
/// Everything one hang-up, status query or call-list look-up may take,
/// retries included: below the dialer's port timeout (5 s).
pub const DEFAULT_PORT_BUDGET: Duration = Duration::from_millis(4500);
/// Retries of a 429 / 5xx / connect failure.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_retries: 2,
    backoff_base: Duration::from_millis(250),
    max_retry_wait: Duration::from_secs(3),
};
/// Twilio's ring time range (seconds, unconfirmed).
const TIMEOUT_RANGE: (u64, u64) = (5, 600);
/// Twilio's longest `TimeLimit` (4 h).
const MAX_TIME_LIMIT: u64 = 14_400;
/// The events our status callback asks for.
pub const STATUS_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];
/// Code of "call not in a state to be modified" (unconfirmed for ended calls).
const NOT_MODIFIABLE: u64 = 21220;

/// Which answering-machine detection to ask for when a call wants it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwilioMachineDetection {
    /// Never ask, even when the call wants it.
    Off,
    /// `Enable`: the verdict as soon as it is known (`machine_start`).
    Enable,
    /// `DetectMessageEnd`: a machine's verdict after its greeting ends
    /// (`machine_end_beep` ...), the moment to leave a voicemail; a
    /// person's as soon as known. The default: the dialer leaves messages
    /// on a machine verdict.
    #[default]
    DetectMessageEnd,
}

impl TwilioMachineDetection {
    /// The `MachineDetection` value, if any.
    pub fn wire(self) -> Option<&'static str> {
        match self {
            Self::Off => None,
            Self::Enable => Some("Enable"),
            Self::DetectMessageEnd => Some("DetectMessageEnd"),
        }
    }
}

/// Settings of the Twilio client. `Debug` shows no secret.
#[derive(Clone, Debug)]
pub struct TwilioConfig {
    /// REST scheme + host, e.g. [`DEFAULT_API_BASE_URL`] or an emulator's
    /// `http://127.0.0.1:<port>`.
    pub api_base_url: String,
    /// `AC...`: the account whose `Calls` we create (always in the path).
    pub account_sid: String,
    /// The account's auth token: Basic auth when no API key is set, and
    /// the key of `X-Twilio-Signature`.
    pub auth_token: Secret,
    /// `SK...`: an API key to authenticate with instead of the token.
    pub api_key_sid: Option<String>,
    /// The API key's secret.
    pub api_key_secret: Secret,
    /// Our public base URL (`TALKY_PUBLIC_URL`): status and media URLs.
    pub public_url: String,
    /// Connect time-out of every request.
    pub connect_timeout: Duration,
    /// Total time-out of every request.
    pub request_timeout: Duration,
    /// Everything one create-call may take (keep below the dialer's place
    /// timeout).
    pub place_budget: Duration,
    /// Everything one other request may take (keep below the dialer's
    /// port timeout).
    pub port_budget: Duration,
    /// Retries of 429 / 5xx / connect failures.
    pub retry: RetryPolicy,
    /// Detection to ask for when a call wants it.
    pub machine_detection: TwilioMachineDetection,
    /// `MachineDetectionTimeout` in seconds (unset: Twilio's 30).
    pub machine_detection_timeout_secs: Option<u32>,
    /// Server key of the per-call keys in our callback URLs.
    pub callback_key: CallbackKey,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            account_sid: String::new(),
            auth_token: Secret::default(),
            api_key_sid: None,
            api_key_secret: Secret::default(),
            public_url: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            place_budget: DEFAULT_PLACE_BUDGET,
            port_budget: DEFAULT_PORT_BUDGET,
            retry: DEFAULT_RETRY,
            machine_detection: TwilioMachineDetection::default(),
            machine_detection_timeout_secs: None,
            callback_key: CallbackKey::from_config(&Default::default()),
        }
    }
}

/// Twilio's error body.
#[derive(Debug, Default, Deserialize)]
struct TwilioError {
    code: Option<serde_json::Value>,
    message: Option<String>,
    more_info: Option<String>,
}

impl TwilioError {
    fn read(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    fn code(&self) -> Option<u64> {
        match self.code.as_ref()? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// How Twilio words a non-2xx answer ([`retry::Describe`]).
    fn describe(status: StatusCode, body: &[u8]) -> String {
        Self::read(body).describe_as(status)
    }

    fn describe_as(&self, status: StatusCode) -> String {
        let mut s = format!("twilio {}", status.as_u16());
        if let Some(code) = self.code() {
            s.push_str(&format!(": {code}"));
        }
        if let Some(m) = &self.message {
            s.push_str(&format!(": {m}"));
        }
        if let Some(i) = &self.more_info {
            s.push_str(&format!(" ({i})"));
        }
        s
    }
}

/// A Call resource (spec §2.1; the fields we read).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct CallResource {
    /// `CA` + 32 hex.
    pub sid: String,
    /// `queued`, `ringing`, `in-progress`, `completed`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// The callee, E.164.
    #[serde(default)]
    pub to: Option<String>,
    /// Our caller id.
    #[serde(default)]
    pub from: Option<String>,
    /// `outbound-api` for calls we created.
    #[serde(default)]
    pub direction: Option<String>,
    /// Set on child legs (`<Dial>`), never on ours.
    #[serde(default)]
    pub parent_call_sid: Option<String>,
    /// RFC 2822.
    #[serde(default)]
    pub date_created: Option<String>,
    /// RFC 2822; null until dialled.
    #[serde(default)]
    pub start_time: Option<String>,
}

impl CallResource {
    /// Its status, typed.
    pub fn call_status(&self) -> TwilioStatus {
        TwilioStatus::parse(self.status.as_deref().unwrap_or(""))
    }

    /// When it was created (or started), if readable.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.date_created
            .as_deref()
            .and_then(parse_date)
            .or_else(|| self.start_time.as_deref().and_then(parse_date))
    }
}

#[derive(Deserialize)]
struct CallPage {
    #[serde(default)]
    calls: Vec<CallResource>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

/// Calls per page asked of the list.
const PAGE_SIZE: u32 = 100;
/// Pages read at most by one [`TwilioClient::find_leg`].
const MAX_PAGES: usize = 3;
/// How much earlier than our request a leg may look created (clock skew,
/// second-granular dates).
const CREATED_SKEW: chrono::Duration = chrono::Duration::seconds(5);

/// `+` then 7..=15 digits; bare digits get their `+`.
pub fn e164(number: &str) -> Result<String, PortError> {
    let n = number.trim();
    let digits = n.strip_prefix('+').unwrap_or(n);
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("+{digits}"))
    } else {
        Err(PortError::Rejected(format!(
            "twilio: {number:?} is not an E.164 number"
        )))
    }
}

/// The Twilio telephony client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TwilioClient {
    http: reqwest::Client,
    /// `{base}/2010-04-01/Accounts/{AccountSid}`.
    account_url: Arc<str>,
    /// `{base}`, for following `next_page_uri`.
    base: Arc<str>,
    auth: HeaderValue,
    public_url: Arc<str>,
    cfg: Arc<TwilioConfig>,
    breaker: Arc<CircuitBreaker>,
}

impl TwilioClient {
    /// Builds the client: checks the URLs and the credentials.
    pub fn new(cfg: TwilioConfig, breaker: Arc<CircuitBreaker>) -> Result<Self, BuildError> {
        let account = cfg.account_sid.trim();
        if account.is_empty() {
            return Err(BuildError::NoKey {
                provider: "twilio".into(),
                what: "account_sid",
            });
        }
        let (user, pass) = match (&cfg.api_key_sid, &cfg.api_key_secret) {
            (Some(sid), secret) if !sid.trim().is_empty() && !secret.is_empty() => {
                (sid.trim(), secret.expose().trim())
            }
            (Some(sid), _) if !sid.trim().is_empty() => {
                return Err(BuildError::NoKey {
                    provider: "twilio".into(),
                    what: "api_key_secret (api_key_sid is set)",
                });
            }
            _ if !cfg.auth_token.is_empty() => (account, cfg.auth_token.expose().trim()),
            _ => {
                return Err(BuildError::NoKey {
                    provider: "twilio".into(),
                    what: "auth_token (or api_key_sid and api_key_secret)",
                });
            }
        };
        let basic = Secret::new(BASE64.encode(format!("{user}:{pass}")));
        let auth = build::key_header("twilio", "Basic ", &basic)?;
        let base = build::base_url(
            "twilio",
            "api_base_url",
            cfg.api_base_url.trim(),
            &HTTP_SCHEMES,
            "http(s)",
        )?;
        let public_url = http_base(&cfg.public_url)
            .map_err(|_| BuildError::BadSetting {
                provider: "twilio".into(),
                setting: "public_url",
                value: cfg.public_url.clone(),
                expected: "http(s)://host",
            })?
            .to_owned();
        let http = HttpClient::new("twilio", cfg.connect_timeout)
            .request_timeout(cfg.request_timeout)
            .user_agent()
            .build()?;
        let account_url = format!(
            "{base}/{API_VERSION}/Accounts/{}",
            utf8_percent_encode(account, SEGMENT)
        );
        Ok(Self {
            http,
            account_url: account_url.into(),
            base: base.into(),
            auth,
            public_url: public_url.into(),
            cfg: Arc::new(cfg),
            breaker,
        })
    }

    /// The breaker every request asks first.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    fn deadline(&self, budget: Duration) -> Deadline {
        Deadline {
            at: tokio::time::Instant::now() + budget,
            attempt: self.cfg.request_timeout,
        }
    }

    /// Sends one request, reads the whole answer.
    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> PortResult<Answer> {
        let req = req.header(AUTHORIZATION, self.auth.clone());
        retry::send("twilio", what, req).await
    }

    /// A form POST.
    fn post_form(&self, url: &str, form: &[(&str, String)]) -> PortResult<reqwest::RequestBuilder> {
        let body = serde_urlencoded::to_string(form)
            .map_err(|e| PortError::Rejected(format!("twilio: form: {e}")))?;
        Ok(self
            .http
            .post(url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(body))
    }

    /// The create-call form of `req` (exactly what is POSTed).
    pub fn create_call_form(&self, req: &PlaceCall) -> PortResult<Vec<(&'static str, String)>> {
        let call = req.call.to_string();
        let rejected = |e: twiml::TwimlError| PortError::Rejected(format!("twilio: {e}"));
        let twiml =
            twiml::call_twiml(&self.public_url, &call, &req.media_token).map_err(rejected)?;
        let key = callback::call_key(&self.cfg.callback_key, &call);
        let status_url = callback::status_url(&self.public_url, &call, &key).map_err(rejected)?;
        let timeout = req
            .ringing_timeout
            .as_secs()
            .clamp(TIMEOUT_RANGE.0, TIMEOUT_RANGE.1);
        let time_limit = req.max_duration.as_secs().clamp(1, MAX_TIME_LIMIT);
        let mut form: Vec<(&'static str, String)> = vec![
            ("To", e164(&req.to)?),
            ("From", e164(&req.from)?),
            ("Twiml", twiml),
            ("StatusCallback", status_url.clone()),
            ("StatusCallbackMethod", "POST".into()),
        ];
        form.extend(STATUS_EVENTS.map(|e| ("StatusCallbackEvent", e.to_owned())));
        form.push(("Timeout", timeout.to_string()));
        form.push(("TimeLimit", time_limit.to_string()));
        if req.machine_detection
            && let Some(mode) = self.cfg.machine_detection.wire()
        {
            form.push(("MachineDetection", mode.into()));
            if let Some(t) = self.cfg.machine_detection_timeout_secs {
                form.push(("MachineDetectionTimeout", t.to_string()));
            }
            form.push(("AsyncAmd", "true".into()));
            form.push(("AsyncAmdStatusCallback", status_url));
            form.push(("AsyncAmdStatusCallbackMethod", "POST".into()));
        }
        Ok(form)
    }

    /// Creates the call (`POST .../Calls.json`): the created resource.
    pub async fn create_call(&self, req: &PlaceCall) -> PortResult<CallResource> {
        let form = self.create_call_form(req)?;
        let url = format!("{}/Calls.json", self.account_url);
        let deadline = self.deadline(self.cfg.place_budget);
        let (url, form) = (&url, &form);
        let (created, guard) = with_retries_by(
            &self.cfg.retry,
            &self.breaker,
            "twilio",
            "create call",
            Some(deadline),
            || async move {
                self.send("create call", self.post_form(url, form)?)
                    .await
                    .map_err(maybe_sent)?
                    .created(
                        "twilio",
                        TwilioError::describe,
                        |c: &CallResource| &c.sid,
                        "sid",
                    )
            },
        )
        .await?;
        guard.success();
        Ok(created)
    }

    fn call_url(&self, id: &ProviderCallId) -> String {
        format!(
            "{}/Calls/{}.json",
            self.account_url,
            utf8_percent_encode(&id.0, SEGMENT)
        )
    }

    /// Ends the call (`Status=completed`, module docs); gone counts as
    /// success.
    pub async fn end_call(&self, id: &ProviderCallId) -> PortResult<()> {
        let url = self.call_url(id);
        let form = [("Status", "completed".to_owned())];
        let deadline = self.deadline(self.cfg.port_budget);
        let (url, form) = (&url, &form);
        let ((), guard) = with_retries_by(
            &self.cfg.retry,
            &self.breaker,
            "twilio",
            "hang up",
            Some(deadline),
            || async move {
                let answer = self.send("hang up", self.post_form(url, form)?).await?;
                let status = answer.status;
                let gone = status == StatusCode::NOT_FOUND
                    || (status == StatusCode::BAD_REQUEST
                        && TwilioError::read(&answer.body).code() == Some(NOT_MODIFIABLE));
                if status.is_success() || gone {
                    Ok(())
                } else {
                    Err(answer.error(TwilioError::describe))
                }
            },
        )
        .await?;
        guard.success();
        Ok(())
    }

    /// Hands the call to a person: `POST .../Calls/{sid}.json` with
    /// `Twiml=<Response><Dial callerId><Number>` ([`twiml::dial_number`]).
    /// Sent once, never retried (a second update would restart the dial);
    /// any non-2xx (a 404 above all: the call is gone) is a failure.
    pub async fn transfer_call(
        &self,
        id: &ProviderCallId,
        number: &str,
        caller_id: &str,
    ) -> PortResult<()> {
        let url = self.call_url(id);
        let form = [("Twiml", twiml::dial_number(number, caller_id))];
        let answer = self.send("transfer", self.post_form(&url, &form)?).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(answer.error(TwilioError::describe))
        }
    }

    /// `GET .../Calls/{sid}.json`; `None` when Twilio does not know it.
    pub async fn get_call(&self, id: &ProviderCallId) -> PortResult<Option<CallResource>> {
        let url = self.call_url(id);
        let deadline = self.deadline(self.cfg.port_budget);
        let (found, guard) = with_retries_by(
            &self.cfg.retry,
            &self.breaker,
            "twilio",
            "get call",
            Some(deadline),
            || self.get_json::<CallResource>("get call", &url),
        )
        .await?;
        guard.success();
        Ok(found)
    }

    /// One GET of JSON; 404 is `None`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
    ) -> PortResult<Option<T>> {
        self.send(what, self.http.get(url))
            .await?
            .found_json("twilio", what, TwilioError::describe)
    }

    /// Our leg to `to` created since `since` (module docs: how it is
    /// matched), skipping `exclude`d sids.
    pub async fn find_leg(
        &self,
        to: &str,
        since: DateTime<Utc>,
        exclude: &[String],
    ) -> PortResult<Option<CallResource>> {
        let to = e164(to)?;
        let query = serde_urlencoded::to_string([
            ("To", to.as_str()),
            ("PageSize", &PAGE_SIZE.to_string()),
        ])
        .map_err(|e| PortError::Protocol(format!("twilio list calls: {e}")))?;
        let mut url = format!("{}/Calls.json?{query}", self.account_url);
        let deadline = self.deadline(self.cfg.port_budget);
        let mut best: Option<(DateTime<Utc>, CallResource)> = None;
        for _ in 0..MAX_PAGES {
            let (page, guard) = with_retries_by(
                &self.cfg.retry,
                &self.breaker,
                "twilio",
                "list calls",
                Some(deadline),
                || self.get_json::<CallPage>("list calls", &url),
            )
            .await?;
            guard.success();
            let Some(page) = page else {
                return Err(PortError::Rejected("twilio list calls: 404".into()));
            };
            for c in page.calls {
                let ours = c.to.as_deref() == Some(to.as_str())
                    && c.direction.as_deref().is_none_or(|d| d == "outbound-api")
                    && c.parent_call_sid.as_deref().is_none_or(str::is_empty)
                    && !exclude.contains(&c.sid)
                    && !c.sid.is_empty();
                let Some(at) = c.created_at() else { continue };
                if ours && at + CREATED_SKEW >= since && best.as_ref().is_none_or(|(b, _)| at < *b)
                {
                    best = Some((at, c));
                }
            }
            // Follow only a path on the same host (never a URL Twilio's
            // answer could point elsewhere).
            match page.next_page_uri.as_deref() {
                Some(next) if next.starts_with(&format!("/{API_VERSION}/")) => {
                    url = format!("{}{next}", self.base);
                }
                _ => break,
            }
        }
        Ok(best.map(|(_, c)| c))
    }
}

/// Every operation is timed and its failure counted (`observe`) under the
/// breaker's name.
impl TelephonyPort for TwilioClient {
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        observe::timed(self.breaker.name(), "create_call", self.create_call(&req))
            .await
            .map(|created| ProviderCallId(created.sid))
    }

    async fn hang_up(&self, id: ProviderCallId) -> PortResult<()> {
        observe::timed(self.breaker.name(), "hang_up", self.end_call(&id)).await
    }

    async fn transfer(&self, id: ProviderCallId, number: &str, caller_id: &str) -> PortResult<()> {
        let transfer = self.transfer_call(&id, number, caller_id);
        observe::timed(self.breaker.name(), "transfer", transfer).await
    }

    async fn find_call(
        &self,
        _call: CallId,
        to: &str,
        since: DateTime<Utc>,
    ) -> PortResult<Option<ProviderCallId>> {
        let find = self.find_leg(to, since, &[]);
        Ok(observe::timed(self.breaker.name(), "find_call", find)
            .await?
            .map(|c| ProviderCallId(c.sid)))
    }

    async fn leg_state(&self, id: ProviderCallId) -> PortResult<Option<LegState>> {
        Ok(
            observe::timed(self.breaker.name(), "get_call", self.get_call(&id))
                .await?
                .map(|c| c.call_status().leg_state()),
        )
    }
}

#[cfg(test)]
mod tests;
