//! [`VonageClient`]: the [`TelephonyPort`] over the Vonage Voice REST API
//! (spec §1.2, §1.3, §1.11).
//!
//! - `place_call`: `POST /v1/calls` with the application JWT, an inline
//!   NCCO to our media socket (or, in answer_url mode, our answer
//!   webhook's URL: `super::answer`); the `uuid` of the `201` is the
//!   [`ProviderCallId`].
//! - `hang_up`: `PUT /v1/calls/{uuid}` `{"action":"hangup"}`; `404` (the
//!   call is already gone) counts as success.
//! - Errors (RFC 7807 bodies): 401/403 and other 4xx -> `Rejected`,
//!   429 -> `RateLimited` (with `Retry-After`), 5xx -> `Unavailable`,
//!   time-outs -> `Timeout`, connection failures -> `Unavailable`, a 2xx we
//!   cannot read -> `Protocol`. A create-call that was sent and then timed
//!   out or lost its connection is `Unknown`: the call may exist, so it is
//!   resolved (webhooks, [`VonageClient::find_call`]), never repeated.
//! - `transfer`: `PUT /v1/calls/{uuid}` with a `transfer` to an inline
//!   NCCO `connect` to the person's number ([`ncco::transfer_body`], which
//!   says what is unconfirmed). Sent once, never retried: a second
//!   transfer would restart the connect.
//! - `get_call` (`GET /v1/calls/{uuid}`) and `find_call` (`GET /v1/calls`
//!   filtered by time, matched on the number): what the reconciler asks
//!   after a crash.
//!
//! Every request has a connect and a total time-out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use percent_encoding::utf8_percent_encode;
use reqwest::StatusCode;
use serde::Deserialize;
use talky_actors::ids::CallId;
use talky_actors::ports::{
    LegState, PlaceCall, PortError, PortResult, ProviderCallId, TelephonyPort,
};

use super::answer::{AnswerMode, use_answer_url};
use super::callback::CallbackKey;
use super::jwt::AppJwt;
use super::ncco::{self, CreateCallResponse, DEFAULT_SAMPLE_RATE, MachineDetection, UNRESERVED};
use crate::config::Secret;
use crate::providers::build::{self, BuildError, HTTP_SCHEMES, HttpClient};
use crate::providers::observe;
use crate::providers::retry::{self, Answer, maybe_sent};

/// Vonage's REST base (regional hosts: `https://api-us.vonage.com`, ...).
pub const DEFAULT_API_BASE_URL: &str = "https://api.nexmo.com";
/// TCP + TLS connect time-out of every request.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request time-out (connect to last body byte).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the Vonage client.
#[derive(Clone, Debug)]
pub struct VonageConfig {
    /// REST scheme + host, e.g. [`DEFAULT_API_BASE_URL`] or an emulator's
    /// `http://127.0.0.1:<port>`.
    pub api_base_url: String,
    /// The Vonage application id.
    pub application_id: String,
    /// The application's private key, PEM inline (wins over the file).
    pub private_key: Secret,
    /// Or a file holding it.
    pub private_key_file: Option<PathBuf>,
    /// Our public base URL (`TALKY_PUBLIC_URL`): events and media URLs.
    pub public_url: String,
    /// Connect time-out of every request.
    pub connect_timeout: Duration,
    /// Total time-out of every request.
    pub request_timeout: Duration,
    /// Machine detection to ask for when a call wants it.
    pub machine_detection: MachineDetection,
    /// PCM rate on the media socket (8000, 16000 or 24000).
    pub sample_rate: u32,
    /// Inline NCCO or answer_url (`providers.vonage.answer_mode`).
    pub answer_mode: AnswerMode,
    /// Server key of the per-call keys in our callback URLs.
    pub callback_key: CallbackKey,
}

impl Default for VonageConfig {
    fn default() -> Self {
        Self {
            api_base_url: DEFAULT_API_BASE_URL.to_owned(),
            application_id: String::new(),
            private_key: Secret::default(),
            private_key_file: None,
            public_url: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            machine_detection: MachineDetection::default(),
            sample_rate: DEFAULT_SAMPLE_RATE,
            answer_mode: AnswerMode::Inline,
            callback_key: CallbackKey::from_config(&Default::default()),
        }
    }
}

/// An RFC 7807 problem body.
#[derive(Debug, Default, Deserialize)]
struct Problem {
    #[serde(rename = "type")]
    kind: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

impl Problem {
    /// How Vonage words a non-2xx answer ([`retry::Describe`]).
    fn describe(status: StatusCode, body: &[u8]) -> String {
        let p: Problem = serde_json::from_slice(body).unwrap_or_default();
        let code = p
            .kind
            .as_deref()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned());
        let mut s = status.as_u16().to_string();
        for part in [code, p.title, p.detail].into_iter().flatten() {
            s.push_str(": ");
            s.push_str(&part);
        }
        s
    }
}

/// The Vonage telephony client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct VonageClient {
    http: reqwest::Client,
    base: Arc<str>,
    public_url: Arc<str>,
    jwt: Arc<AppJwt>,
    machine_detection: MachineDetection,
    sample_rate: u32,
    answer_mode: AnswerMode,
    callback_key: CallbackKey,
}

fn http_base(key: &'static str, url: &str) -> Result<String, BuildError> {
    build::base_url("vonage", key, url.trim(), &HTTP_SCHEMES, "http(s)")
}

impl VonageClient {
    /// Builds the client: loads the key, checks the URLs.
    pub fn new(cfg: VonageConfig) -> Result<Self, BuildError> {
        let jwt = if !cfg.private_key.expose().trim().is_empty() {
            AppJwt::from_pem(&cfg.application_id, &cfg.private_key)?
        } else if let Some(path) = &cfg.private_key_file {
            AppJwt::from_pem_file(&cfg.application_id, path)?
        } else {
            return Err(BuildError::NoKey {
                provider: "vonage".into(),
                what: "private key (private_key or private_key_file)",
            });
        };
        let base = http_base("api_base_url", &cfg.api_base_url)?;
        let public_url = http_base("public_url", &cfg.public_url)?;
        let http = HttpClient::new("vonage", cfg.connect_timeout)
            .request_timeout(cfg.request_timeout)
            .user_agent()
            .build()?;
        Ok(Self {
            http,
            base: base.into(),
            public_url: public_url.into(),
            jwt: Arc::new(jwt),
            machine_detection: cfg.machine_detection,
            sample_rate: cfg.sample_rate,
            answer_mode: cfg.answer_mode,
            callback_key: cfg.callback_key,
        })
    }

    /// The JWT minter (shared with other Vonage requests, e.g. recordings).
    pub fn jwt(&self) -> &AppJwt {
        &self.jwt
    }

    fn bearer(&self) -> PortResult<String> {
        self.jwt
            .token(Utc::now())
            .map(|t| format!("Bearer {t}"))
            .map_err(|e| PortError::Rejected(e.to_string()))
    }

    /// Sends a request with a fresh JWT, reads the whole answer.
    async fn send(&self, what: &str, req: reqwest::RequestBuilder) -> PortResult<Answer> {
        let req = req.header(reqwest::header::AUTHORIZATION, self.bearer()?);
        retry::send("vonage", what, req).await
    }

    /// Creates the call (`POST /v1/calls`).
    pub async fn create_call(&self, req: &PlaceCall) -> PortResult<CreateCallResponse> {
        let call = req.call.to_string();
        let url_key = self.callback_key.for_call(&call);
        let body = ncco::create_call(
            req,
            &self.public_url,
            &url_key,
            self.machine_detection,
            self.sample_rate,
        )
        .and_then(|body| match self.answer_mode {
            AnswerMode::Inline => Ok(body),
            AnswerMode::AnswerUrl => use_answer_url(body, &self.public_url, &call, &url_key),
        })
        .map_err(|e| PortError::Rejected(e.to_string()))?;
        let url = format!("{}/v1/calls", self.base);
        // Sent (or maybe sent) and then lost: the call may exist.
        self.send("create call", self.http.post(url).json(&body))
            .await
            .map_err(maybe_sent)?
            .created(
                "vonage",
                Problem::describe,
                |c: &CreateCallResponse| &c.uuid,
                "uuid",
            )
    }

    /// Hangs up at a given REST host (the call's `region_url`, when the
    /// answer webhook named one); 404 counts as success.
    pub async fn hang_up_at(&self, base_url: &str, id: &ProviderCallId) -> PortResult<()> {
        let base = base_url.trim().trim_end_matches('/');
        let url = format!("{base}/v1/calls/{}", utf8_percent_encode(&id.0, UNRESERVED));
        let body = serde_json::json!({"action": "hangup"});
        let answer = self.send("hang up", self.http.put(url).json(&body)).await?;
        if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(answer.error(Problem::describe))
        }
    }
}

/// A call leg as `GET /v1/calls/{uuid}` describes it (spec §1.3).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct CallInfo {
    /// The leg's id.
    pub uuid: String,
    /// `started`, `ringing`, `answered`, `machine`, `completed`, `busy`,
    /// `timeout`, `unanswered`, `rejected`, `failed`, `cancelled`.
    #[serde(default)]
    pub status: String,
    /// The callee's endpoint (`{"type":"phone","number":"..."}`).
    #[serde(default)]
    pub to: Option<serde_json::Value>,
    /// `YYYY-MM-DD HH:MM:SS` (UTC), when present.
    #[serde(default)]
    pub start_time: Option<String>,
}

impl CallInfo {
    /// Whether the leg is over, by its status.
    pub fn is_over(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "started" | "ringing" | "answered" | "machine" | "human" | ""
        )
    }

    /// The number called (digits), if the leg is a phone leg.
    pub fn to_number(&self) -> Option<&str> {
        self.to.as_ref()?.get("number")?.as_str()
    }

    /// The start time, if given in Vonage's format.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        let t = self.start_time.as_deref()?;
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|n| n.and_utc())
            .or_else(|| DateTime::parse_from_rfc3339(t).ok().map(|d| d.to_utc()))
    }
}

#[derive(Deserialize)]
struct CallPage {
    #[serde(default)]
    count: u64,
    #[serde(default, rename = "_embedded")]
    embedded: Option<Embedded>,
}

#[derive(Deserialize)]
struct Embedded {
    #[serde(default)]
    calls: Vec<CallInfo>,
}

/// Calls per page asked of `GET /v1/calls` (the API's maximum).
const PAGE_SIZE: u64 = 100;
/// Pages read at most by one [`VonageClient::find_call`].
const MAX_PAGES: u64 = 10;

impl VonageClient {
    /// `GET /v1/calls/{uuid}`: the leg's state; `None` when Vonage does not
    /// know it (404).
    pub async fn get_call(&self, id: &ProviderCallId) -> PortResult<Option<CallInfo>> {
        let url = format!(
            "{}/v1/calls/{}",
            self.base,
            utf8_percent_encode(&id.0, UNRESERVED)
        );
        self.send("get call", self.http.get(url)).await?.found_json(
            "vonage",
            "get call",
            Problem::describe,
        )
    }

    /// The leg Vonage placed to `to` (E.164, `+` optional) since `since`,
    /// from `GET /v1/calls` (oldest first): how a create-call whose answer
    /// was lost is resolved. Legs in `exclude` (already known as other
    /// calls') are skipped. `None` when there is none.
    pub async fn find_leg(
        &self,
        to: &str,
        since: DateTime<Utc>,
        exclude: &[String],
    ) -> PortResult<Option<CallInfo>> {
        let digits = to.trim_start_matches('+');
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let start = fmt(since - chrono::Duration::seconds(60));
        let end = fmt(Utc::now() + chrono::Duration::seconds(60));
        for page in 0..MAX_PAGES {
            let query = [
                ("date_start", start.clone()),
                ("date_end", end.clone()),
                ("page_size", PAGE_SIZE.to_string()),
                ("record_index", (page * PAGE_SIZE).to_string()),
                ("order", "asc".to_string()),
            ];
            let query = serde_urlencoded::to_string(query)
                .map_err(|e| PortError::Protocol(format!("vonage list calls: {e}")))?;
            let url = format!("{}/v1/calls?{query}", self.base);
            let answer = self
                .send("list calls", self.http.get(url))
                .await?
                .success(Problem::describe)?;
            let page_of: CallPage = serde_json::from_slice(&answer.body)
                .map_err(|e| PortError::Protocol(format!("vonage list calls: {e}")))?;
            let calls = page_of.embedded.map(|e| e.calls).unwrap_or_default();
            let n = calls.len() as u64;
            let found = calls.into_iter().find(|c| {
                c.to_number() == Some(digits)
                    && !exclude.contains(&c.uuid)
                    && c.started_at()
                        .is_none_or(|at| at + chrono::Duration::seconds(5) >= since)
            });
            if found.is_some() {
                return Ok(found);
            }
            if n < PAGE_SIZE || (page + 1) * PAGE_SIZE >= page_of.count {
                return Ok(None);
            }
        }
        Ok(None)
    }
}

/// The `provider` label of Vonage's metrics (its breaker's name in the
/// telephony chain).
const PROVIDER: &str = "vonage";

/// Every operation is timed and its failure counted (`observe`).
impl TelephonyPort for VonageClient {
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        observe::timed(PROVIDER, "create_call", self.create_call(&req))
            .await
            .map(|created| ProviderCallId(created.uuid))
    }

    async fn hang_up(&self, id: ProviderCallId) -> PortResult<()> {
        let base = Arc::clone(&self.base);
        observe::timed(PROVIDER, "hang_up", self.hang_up_at(&base, &id)).await
    }

    async fn find_call(
        &self,
        _call: CallId,
        to: &str,
        since: DateTime<Utc>,
    ) -> PortResult<Option<ProviderCallId>> {
        let find = self.find_leg(to, since, &[]);
        Ok(observe::timed(PROVIDER, "find_call", find)
            .await?
            .map(|info| ProviderCallId(info.uuid)))
    }

    async fn transfer(&self, id: ProviderCallId, number: &str, caller_id: &str) -> PortResult<()> {
        observe::timed(
            PROVIDER,
            "transfer",
            self.transfer_to(id, number, caller_id),
        )
        .await
    }

    async fn leg_state(&self, id: ProviderCallId) -> PortResult<Option<LegState>> {
        let info = observe::timed(PROVIDER, "get_call", self.get_call(&id)).await?;
        Ok(info.map(|info| {
            if info.is_over() {
                LegState::Ended(info.status)
            } else {
                LegState::Live {
                    answered: matches!(info.status.as_str(), "answered" | "machine" | "human"),
                }
            }
        }))
    }
}

impl VonageClient {
    /// Puts the transfer NCCO on the leg (`TelephonyPort::transfer`).
    async fn transfer_to(
        &self,
        id: ProviderCallId,
        number: &str,
        caller_id: &str,
    ) -> PortResult<()> {
        let body = ncco::transfer_body(number, caller_id)
            .map_err(|e| PortError::Rejected(e.to_string()))?;
        let url = format!(
            "{}/v1/calls/{}",
            self.base,
            utf8_percent_encode(&id.0, UNRESERVED)
        );
        let answer = self
            .send("transfer", self.http.put(url).json(&body))
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(answer.error(Problem::describe))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::rest_stub::{Canned, Seen, canned, closed_port, server};
    use crate::providers::vonage::jwt::tests::{APP_ID, TEST_PRIVATE_PEM, decode};
    use std::sync::Mutex;
    use talky_actors::ids::CallId;

    fn config(base: &str) -> VonageConfig {
        VonageConfig {
            api_base_url: base.to_owned(),
            application_id: APP_ID.to_owned(),
            private_key: Secret::new(TEST_PRIVATE_PEM),
            public_url: "https://dialer.example.com".to_owned(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_millis(500),
            callback_key: CallbackKey::new(b"test-callback-key"),
            ..VonageConfig::default()
        }
    }

    fn place() -> PlaceCall {
        PlaceCall {
            call: CallId::new(),
            to: "+447700900000".into(),
            from: "+447700900001".into(),
            ringing_timeout: Duration::from_secs(30),
            max_duration: Duration::from_secs(900),
            machine_detection: true,
            media_token: "tok".into(),
        }
    }

    const CREATED: &str = r#"{"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356",
 "status":"started","direction":"outbound",
 "conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22"}"#;

    fn problem(code: &str) -> String {
        format!(
            r#"{{"type":"https://developer.nexmo.com/api-errors#{code}","title":"{code} title","detail":"{code} detail","instance":"trace-1"}}"#
        )
    }

    fn check_jwt(s: &Seen) {
        let auth = s.auth.as_deref().expect("authorization header");
        let token = auth.strip_prefix("Bearer ").expect("bearer");
        let claims = decode(token);
        assert_eq!(claims.application_id, APP_ID);
        let now = Utc::now().timestamp();
        assert!(claims.exp > now && claims.iat <= now + 1, "{claims:?}");
        assert!(!claims.jti.is_empty());
    }

    #[tokio::test]
    async fn place_call_posts_the_body_with_the_jwt_and_returns_the_uuid() {
        let (base, seen) = server(Arc::new(|_| canned(201, CREATED))).await;
        let client = VonageClient::new(config(&base)).expect("client");
        let req = place();
        let call = req.call;
        let id = client.place_call(req).await.expect("placed");
        assert_eq!(
            id,
            ProviderCallId("63f61863-4a51-4f6b-86e1-46edebcf9356".into())
        );

        let seen = seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 1);
        let s = &seen[0];
        assert_eq!((s.method.as_str(), s.path.as_str()), ("POST", "/v1/calls"));
        assert!(
            s.content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json"))
        );
        check_jwt(s);
        let b = &s.body;
        assert_eq!(
            b["to"],
            serde_json::json!([{"type":"phone","number":"447700900000"}])
        );
        assert_eq!(
            b["from"],
            serde_json::json!({"type":"phone","number":"447700900001"})
        );
        assert_eq!(
            b["event_url"],
            serde_json::json!([format!(
                "https://dialer.example.com/vonage/events/{call}/{}",
                CallbackKey::new(b"test-callback-key").for_call(&call.to_string())
            )])
        );
        assert_eq!(b["ringing_timer"], 30);
        assert_eq!(b["length_timer"], 900);
        assert_eq!(b["advanced_machine_detection"]["behavior"], "continue");
        let ep = &b["ncco"][0]["endpoint"][0];
        assert_eq!(b["ncco"][0]["action"], "connect");
        assert_eq!(ep["type"], "websocket");
        assert_eq!(
            ep["uri"],
            format!("wss://dialer.example.com/vonage/media/{call}?token=tok")
        );
        assert_eq!(ep["content-type"], "audio/l16;rate=16000");
        assert_eq!(ep["headers"]["call_id"], call.to_string());
    }

    #[tokio::test]
    async fn the_jwt_is_reused_across_requests() {
        let (base, seen) = server(Arc::new(|_| canned(201, CREATED))).await;
        let client = VonageClient::new(config(&base)).expect("client");
        client.place_call(place()).await.expect("1");
        client.place_call(place()).await.expect("2");
        let seen = seen.lock().expect("log").clone();
        assert_eq!(seen[0].auth, seen[1].auth);
    }

    #[tokio::test]
    async fn create_call_errors_map_to_port_errors() {
        type Check = fn(&PortError) -> bool;
        let cases: Vec<(Canned, Check)> = vec![
            (
                canned(401, &problem("unauthorized")),
                |e| matches!(e, PortError::Rejected(m) if m.contains("401") && m.contains("unauthorized")),
            ),
            (
                canned(403, &problem("forbidden")),
                |e| matches!(e, PortError::Rejected(m) if m.contains("forbidden")),
            ),
            (canned(400, &problem("invalid-params")), |e| {
                matches!(e, PortError::Rejected(_))
            }),
            (
                Canned {
                    headers: vec![("retry-after", "7".into())],
                    ..canned(429, &problem("throttled"))
                },
                |e| {
                    *e == PortError::RateLimited {
                        retry_after: Some(Duration::from_secs(7)),
                    }
                },
            ),
            (canned(429, ""), |e| {
                *e == PortError::RateLimited { retry_after: None }
            }),
            (
                canned(500, "oops"),
                |e| matches!(e, PortError::Unavailable(m) if m.contains("500")),
            ),
            (canned(503, &problem("unavailable")), |e| {
                matches!(e, PortError::Unavailable(_))
            }),
            // Created, but which call is unreadable: unknown, not failed.
            (canned(201, "not json"), |e| {
                matches!(e, PortError::Unknown(_))
            }),
            (canned(201, r#"{"uuid":""}"#), |e| {
                matches!(e, PortError::Unknown(_))
            }),
            (
                Canned {
                    delay: Duration::from_secs(3),
                    ..canned(201, CREATED)
                },
                // Sent, then no answer in time: the call may exist.
                |e| matches!(e, PortError::Unknown(_)),
            ),
        ];
        for (c, check) in cases {
            let c = Arc::new(Mutex::new(Some(c)));
            let (base, _) = server(Arc::new(move |_| {
                c.lock().expect("c").take().expect("one request")
            }))
            .await;
            let client = VonageClient::new(config(&base)).expect("client");
            let err = client.place_call(place()).await.expect_err("fails");
            assert!(check(&err), "{err:?}");
        }
    }

    #[tokio::test]
    async fn unreachable_host_is_unavailable_and_bad_numbers_rejected() {
        let client =
            VonageClient::new(config(&format!("http://{}", closed_port()))).expect("client");
        let err = client.place_call(place()).await.expect_err("refused");
        assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");

        let mut bad = place();
        bad.to = "12".into();
        let err = client.place_call(bad).await.expect_err("bad number");
        assert!(matches!(err, PortError::Rejected(_)), "{err:?}");
    }

    #[tokio::test]
    async fn hang_up_puts_hangup_and_tolerates_404() {
        for (status, ok) in [
            (204, true),
            (200, true),
            (404, true),
            (401, false),
            (500, false),
        ] {
            let (base, seen) = server(Arc::new(move |_| canned(status, ""))).await;
            let client = VonageClient::new(config(&base)).expect("client");
            let res = client
                .hang_up(ProviderCallId(
                    "63f61863-4a51-4f6b-86e1-46edebcf9356".into(),
                ))
                .await;
            assert_eq!(res.is_ok(), ok, "{status}: {res:?}");
            let seen = seen.lock().expect("log").clone();
            let s = &seen[0];
            assert_eq!(s.method, "PUT");
            assert_eq!(s.path, "/v1/calls/63f61863-4a51-4f6b-86e1-46edebcf9356");
            assert_eq!(s.body, serde_json::json!({"action":"hangup"}));
            check_jwt(s);
        }
    }

    #[tokio::test]
    async fn transfer_puts_an_ncco_connect_to_the_number_and_reports_a_refusal() {
        for (status, ok) in [(204, true), (404, false), (401, false), (500, false)] {
            let (base, seen) = server(Arc::new(move |_| canned(status, ""))).await;
            let client = VonageClient::new(config(&base)).expect("client");
            let res = client
                .transfer(
                    ProviderCallId("63f61863-4a51-4f6b-86e1-46edebcf9356".into()),
                    "+14155550199",
                    "+447700900001",
                )
                .await;
            assert_eq!(res.is_ok(), ok, "{status}: {res:?}");
            let seen = seen.lock().expect("log").clone();
            assert_eq!(seen.len(), 1, "sent once, never retried");
            let s = &seen[0];
            assert_eq!(s.method, "PUT");
            assert_eq!(s.path, "/v1/calls/63f61863-4a51-4f6b-86e1-46edebcf9356");
            assert_eq!(
                s.body,
                serde_json::json!({"action":"transfer","destination":{"type":"ncco","ncco":[
                    {"action":"connect","from":"447700900001",
                     "endpoint":[{"type":"phone","number":"14155550199"}]}]}})
            );
            check_jwt(s);
        }
        let client = VonageClient::new(config("http://127.0.0.1:1")).expect("client");
        let bad = client
            .transfer(ProviderCallId("x".into()), "not a number", "+447700900001")
            .await;
        assert!(matches!(bad, Err(PortError::Rejected(_))), "{bad:?}");
    }

    #[test]
    fn config_errors_and_redaction() {
        let mut c = config("http://127.0.0.1:1");
        c.private_key = Secret::default();
        assert!(matches!(
            VonageClient::new(c),
            Err(BuildError::NoKey { .. })
        ));
        let mut c = config("ftp://x");
        assert!(matches!(
            VonageClient::new(c.clone()),
            Err(BuildError::BadSetting {
                setting: "api_base_url",
                ..
            })
        ));
        c.api_base_url = DEFAULT_API_BASE_URL.into();
        c.public_url = "dialer.example.com".into();
        assert!(matches!(
            VonageClient::new(c),
            Err(BuildError::BadSetting {
                setting: "public_url",
                ..
            })
        ));
        let dbg = format!("{:?}", config("http://x"));
        assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
        let client = VonageClient::new(config("http://x")).expect("client");
        assert!(!format!("{client:?}").contains("PRIVATE KEY"));
    }
}
