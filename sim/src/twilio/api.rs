//! The REST side (providers.md §2.1), under
//! `/2010-04-01/Accounts/{AccountSid}`: `POST Calls.json` (create),
//! `GET Calls.json` (list), `GET Calls/{CallSid}.json` (fetch),
//! `POST Calls/{CallSid}.json` (hang up).
//!
//! Strict like Twilio: HTTP Basic auth (the account's SID and auth token,
//! or an API key and its secret) or `401` `20003`; the form read only
//! when it is `application/x-www-form-urlencoded` (Twilio reads no other
//! body, so a JSON body is a request without `To`); one error per reply,
//! the first found, with Twilio's code. Codes the spec does not name are
//! Twilio's documented ones where known (21201, 21211, 21212, 21213,
//! 21205, 21218, 20003, 20404); the rest use the Calls resource's
//! catch-all 21200 (unconfirmed).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use tokio::sync::Notify;
use warp::Filter;
use warp::http::{HeaderMap, Response, StatusCode};

use super::call::{self, Amd, CallPlan, Instructions};
use super::wire::{self, Form, all, first, is_e164, is_http_url};
use super::{API_VERSION, CallEntry, CallRecord, Shared, new_sid, twilio_time};
use crate::server::lock;

type Reply = warp::reply::Response;

/// The events a `StatusCallbackEvent` may name (§2.1).
pub const EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];
/// Longest inline `Twiml` accepted, characters (Twilio's documented
/// limit is 4000; unconfirmed).
pub const MAX_INLINE_TWIML: usize = 4000;
/// `Timeout` is capped here (Twilio's documented maximum ring time).
pub const MAX_TIMEOUT_SECS: u64 = 600;
/// Longest `TimeLimit`, seconds (24 h).
pub const MAX_TIME_LIMIT_SECS: u64 = 86_400;
/// How long a hang-up waits for the call to end before answering, so the
/// resource it returns shows the final status.
const HANGUP_SETTLE: Duration = Duration::from_secs(1);

pub(crate) fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Reply,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
{
    let s1 = shared.clone();
    let create = warp::post()
        .and(warp::path!(
            "2010-04-01" / "Accounts" / String / "Calls.json"
        ))
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .then(move |account: String, h: HeaderMap, b: Bytes| {
            let shared = s1.clone();
            async move {
                let (reply, delay) = create(&shared, &account, &h, &b);
                if !delay.is_zero() {
                    shared.shutdown.pause(delay).await;
                }
                reply
            }
        });
    let s2 = shared.clone();
    let list = warp::get()
        .and(warp::path!(
            "2010-04-01" / "Accounts" / String / "Calls.json"
        ))
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |account: String, h: HeaderMap, q: String| list(&s2, &account, &h, &q));
    let s3 = shared.clone();
    let fetch = warp::get()
        .and(warp::path!(
            "2010-04-01" / "Accounts" / String / "Calls" / String
        ))
        .and(warp::header::headers_cloned())
        .map(move |account: String, call: String, h: HeaderMap| fetch(&s3, &account, &call, &h));
    let s4 = shared;
    let modify = warp::post()
        .and(warp::path!(
            "2010-04-01" / "Accounts" / String / "Calls" / String
        ))
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .then(
            move |account: String, call: String, h: HeaderMap, b: Bytes| {
                let shared = s4.clone();
                async move { modify(&shared, &account, &call, &h, &b).await }
            },
        );
    let fallback = warp::path::full().map(|p: warp::path::FullPath| {
        error(
            404,
            20404,
            &format!("The requested resource {} was not found", p.as_str()),
        )
    });
    create
        .recover(too_large)
        .unify()
        .or(list)
        .unify()
        .or(fetch)
        .unify()
        .or(modify.recover(too_large).unify())
        .unify()
        .or(fallback)
        .unify()
}

/// A body over the limit gets a Twilio error (other rejections go on to
/// the next route).
async fn too_large(r: warp::Rejection) -> Result<Reply, warp::Rejection> {
    if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        return Ok(error(413, 21200, "The request body is too large"));
    }
    Err(r)
}

/// Twilio's error body: `{"code","message","more_info","status"}`.
pub fn error_body(status: u16, code: u32, message: &str) -> Value {
    json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
}

fn error(status: u16, code: u32, message: &str) -> Reply {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", "application/json");
    if status == 401 {
        b = b.header("www-authenticate", "Basic realm=\"Twilio API\"");
    }
    if status == 429 {
        b = b.header("retry-after", "1");
    }
    b.body(error_body(status, code, message).to_string().into())
        .unwrap_or_default()
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header("content-type", "application/json")
        .body(body.to_string().into())
        .unwrap_or_default()
}

/// Checks HTTP Basic auth against the account (SID and auth token, or an
/// API key SID and secret) and that the path names that account; Twilio's
/// `401` `20003` otherwise.
#[allow(clippy::result_large_err)]
fn authorize(shared: &Shared, account: &str, headers: &HeaderMap) -> Result<(), Reply> {
    let refused = || error(401, 20003, "Authenticate");
    let creds = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(refused)?;
    let (user, pass) = creds.split_once(':').ok_or_else(refused)?;
    let cfg = lock(&shared.cfg);
    let by_token = user == cfg.account_sid && pass == cfg.auth_token && !pass.is_empty();
    let by_key = cfg
        .api_keys
        .iter()
        .any(|(sid, secret)| user == sid && pass == secret && !secret.is_empty());
    if !(by_token || by_key) || account != cfg.account_sid {
        return Err(refused());
    }
    Ok(())
}

/// The form of a request, if its content type says it is one (Twilio
/// reads no other body: anything else is a request without parameters).
fn form_of(headers: &HeaderMap, body: &[u8]) -> Result<Form, String> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Ok(Form::new());
    }
    wire::parse_form(body)
}

/// A request error: HTTP 400, Twilio's code, the message.
type Invalid = (u32, String);

fn bad(code: u32, message: impl Into<String>) -> Invalid {
    (code, message.into())
}

/// `GET` or `POST` (default `POST`) for the method parameter `name`.
fn method(form: &Form, name: &str) -> Result<String, Invalid> {
    match first(form, name) {
        None | Some("") => Ok("POST".into()),
        Some(m) if m.eq_ignore_ascii_case("POST") => Ok("POST".into()),
        Some(m) if m.eq_ignore_ascii_case("GET") => Ok("GET".into()),
        Some(m) => Err(bad(
            21200,
            format!("{name} {m:?} is not valid: use GET or POST"),
        )),
    }
}

/// An optional absolute http(s) URL parameter (21205 when invalid).
fn url(form: &Form, name: &str) -> Result<Option<String>, Invalid> {
    match first(form, name) {
        None | Some("") => Ok(None),
        Some(u) if is_http_url(u) => Ok(Some(u.to_owned())),
        Some(u) => Err(bad(21205, format!("{name} is not a valid URL: {u}"))),
    }
}

/// An optional integer parameter within `lo..=hi`.
fn int(form: &Form, name: &str, lo: u64, hi: u64) -> Result<Option<u64>, Invalid> {
    match first(form, name) {
        None | Some("") => Ok(None),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(bad(
                21200,
                format!("{name} must be an integer between {lo} and {hi}: {v:?}"),
            )),
        },
    }
}

/// Validates a create-call form into what the call task needs (§2.1).
pub(crate) fn validate(
    form: &Form,
    cfg: &super::TwilioSimConfig,
) -> Result<CallPlan, (u32, String)> {
    let to = match first(form, "To") {
        None | Some("") => return Err(bad(21201, "No 'To' number is specified")),
        Some(t) if !is_e164(t) => {
            return Err(bad(
                21211,
                format!("The 'To' number {t} is not a valid phone number."),
            ));
        }
        Some(t) => t.to_owned(),
    };
    let from = match first(form, "From") {
        None | Some("") => return Err(bad(21213, "No 'From' number is specified")),
        Some(f) if !is_e164(f) => {
            return Err(bad(
                21212,
                format!("The 'From' number {f} is not a valid phone number."),
            ));
        }
        Some(f) => f.to_owned(),
    };
    let given: Vec<&str> = ["Url", "Twiml", "ApplicationSid"]
        .into_iter()
        .filter(|k| first(form, k).is_some_and(|v| !v.is_empty()))
        .collect();
    let instructions = match given.as_slice() {
        [] => {
            return Err(bad(
                21205,
                "Either a 'Url', 'Twiml' or 'ApplicationSid' parameter is required",
            ));
        }
        ["Url"] => Instructions::Url {
            url: url(form, "Url")?.unwrap_or_default(),
            method: method(form, "Method")?,
        },
        ["Twiml"] => {
            let t = first(form, "Twiml").unwrap_or_default();
            if t.chars().count() > MAX_INLINE_TWIML {
                return Err(bad(
                    21200,
                    format!("Twiml is longer than {MAX_INLINE_TWIML} characters"),
                ));
            }
            wire::parse_twiml(t).map_err(|e| bad(12100, format!("Document parse failure: {e}")))?;
            Instructions::Twiml(t.to_owned())
        }
        ["ApplicationSid"] => {
            let sid = first(form, "ApplicationSid").unwrap_or_default();
            match cfg.applications.get(sid) {
                Some(voice_url) => Instructions::Url {
                    url: voice_url.clone(),
                    method: "POST".into(),
                },
                None => return Err(bad(21218, format!("Invalid ApplicationSid {sid}"))),
            }
        }
        many => {
            return Err(bad(
                21200,
                format!("Only one of Url, Twiml, ApplicationSid may be given: {many:?}"),
            ));
        }
    };
    let status_callback = url(form, "StatusCallback")?;
    let status_method = method(form, "StatusCallbackMethod")?;
    let mut events = Vec::new();
    for e in all(form, "StatusCallbackEvent") {
        // One value may also list several, space separated (Twilio's
        // helper libraries send them repeated; both are accepted).
        for e in e.split_whitespace() {
            if !EVENTS.contains(&e) {
                return Err(bad(
                    21200,
                    format!("StatusCallbackEvent {e:?} is not one of {EVENTS:?}"),
                ));
            }
            if !events.iter().any(|x| x == e) {
                events.push(e.to_owned());
            }
        }
    }
    if events.is_empty() {
        events.push("completed".into());
    }
    let timeout = int(form, "Timeout", 0, u64::from(u32::MAX))?
        .unwrap_or(60)
        .min(MAX_TIMEOUT_SECS);
    let time_limit = int(form, "TimeLimit", 1, MAX_TIME_LIMIT_SECS)?.unwrap_or(14_400);
    let amd = match first(form, "MachineDetection") {
        None | Some("") => None,
        Some(mode @ ("Enable" | "DetectMessageEnd")) => {
            let asynchronous = match first(form, "AsyncAmd") {
                None | Some("") | Some("false") => false,
                Some("true") => true,
                Some(v) => {
                    return Err(bad(21200, format!("AsyncAmd must be true or false: {v:?}")));
                }
            };
            let callback = url(form, "AsyncAmdStatusCallback")?;
            let callback_method = method(form, "AsyncAmdStatusCallbackMethod")?;
            let timeout = int(form, "MachineDetectionTimeout", 3, 59)?.unwrap_or(30);
            for k in [
                "MachineDetectionSpeechThreshold",
                "MachineDetectionSpeechEndThreshold",
                "MachineDetectionSilenceTimeout",
            ] {
                int(form, k, 0, 60_000)?;
            }
            Some(Amd {
                message_end: mode == "DetectMessageEnd",
                asynchronous,
                callback: callback.map(|u| (u, callback_method)),
                timeout: Duration::from_secs(timeout),
            })
        }
        Some(v) => {
            return Err(bad(
                21200,
                format!("MachineDetection must be Enable or DetectMessageEnd: {v:?}"),
            ));
        }
    };
    Ok(CallPlan {
        sid: String::new(),
        account_sid: cfg.account_sid.clone(),
        to,
        from,
        instructions,
        status_callback: status_callback.map(|u| (u, status_method)),
        events,
        timeout: Duration::from_secs(timeout),
        time_limit: Duration::from_secs(time_limit),
        amd,
    })
}

/// A create-call's reply, and how long to hold it back (the
/// `create_response_delay` knob; only for calls that were created).
fn create(
    shared: &Arc<Shared>,
    account: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Reply, Duration) {
    if let Err(r) = authorize(shared, account, headers) {
        return (r, Duration::ZERO);
    }
    let cfg = shared.cfg();
    if let Some(f) = &cfg.fail_create {
        let message = match f.status {
            429 => "Too Many Requests",
            500..=599 => "Internal Server Error (emulated)",
            _ => "Request failed (emulated)",
        };
        return (error(f.status, f.code, message), Duration::ZERO);
    }
    let form = match form_of(headers, body) {
        Ok(f) => f,
        Err(e) => {
            return (
                error(400, 21200, &format!("Invalid form: {e}")),
                Duration::ZERO,
            );
        }
    };
    let mut plan = match validate(&form, &cfg) {
        Ok(p) => p,
        Err((code, message)) => return (error(400, code, &message), Duration::ZERO),
    };
    plan.sid = new_sid("CA");
    let persona = cfg.personas.for_number(&plan.to);
    let hangup = Arc::new(Notify::new());
    let record = CallRecord {
        sid: plan.sid.clone(),
        request: form,
        persona: persona.name.clone(),
        to: plan.to.clone(),
        from: plan.from.clone(),
        status: "queued".into(),
        callbacks: Vec::new(),
        twiml: None,
        twiml_error: None,
        answered_by: None,
        stream_sid: None,
        stream_url: None,
        socket_opened: false,
        start_message: None,
        said: Vec::new(),
        heard: Vec::new(),
        marks_received: Vec::new(),
        marks_echoed: Vec::new(),
        clears: Vec::new(),
        media_in: 0,
        media_bad_size: 0,
        media_dropped: 0,
        media_out: 0,
        dtmf_sent: Vec::new(),
        errors: Vec::new(),
        hang_up: None,
        ended: false,
        created_at: Utc::now(),
        started_at: None,
        answered_at: None,
        ended_at: None,
        duration: None,
        transfer: None,
    };
    let reply = call_json(&cfg.account_sid, &record);
    shared.calls.push_entry(CallEntry {
        record,
        hangup: hangup.clone(),
    });
    tokio::spawn(call::run(shared.clone(), plan, persona, hangup));
    (json_reply(201, &reply), cfg.create_response_delay)
}

/// `/2010-04-01/Accounts/{account}/Calls/{sid}.json`.
fn call_uri(account: &str, sid: &str) -> String {
    format!("/{API_VERSION}/Accounts/{account}/Calls/{sid}.json")
}

/// One call as the resource shows it (§2.1 names `sid`, `account_sid`,
/// `to`, `from`, `status`, `direction`, `uri`; the rest are the fields of
/// Twilio's Call resource, `null` where the emulator has nothing).
pub(crate) fn call_json(account: &str, r: &CallRecord) -> Value {
    let t = |x: Option<DateTime<Utc>>| x.map(twilio_time).map_or(Value::Null, Value::String);
    let updated = [r.ended_at, r.answered_at, r.started_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(r.created_at);
    let uri = call_uri(account, &r.sid);
    let base = uri.trim_end_matches(".json");
    let duration = match (r.answered_at, r.duration) {
        (Some(_), Some(d)) => Value::String(d.to_string()),
        _ => Value::Null,
    };
    json!({
        "sid": r.sid,
        "account_sid": account,
        "parent_call_sid": null,
        "date_created": twilio_time(r.created_at),
        "date_updated": twilio_time(updated),
        "to": r.to,
        "to_formatted": r.to,
        "from": r.from,
        "from_formatted": r.from,
        "phone_number_sid": null,
        "status": r.status,
        "start_time": t(r.started_at),
        "end_time": t(r.ended_at),
        "duration": duration,
        "price": null,
        "price_unit": "USD",
        "direction": "outbound-api",
        "answered_by": r.answered_by,
        "annotation": null,
        "api_version": API_VERSION,
        "forwarded_from": null,
        "group_sid": null,
        "caller_name": null,
        "queue_time": "0",
        "trunk_sid": null,
        "uri": uri,
        "subresource_uris": {
            "notifications": format!("{base}/Notifications.json"),
            "recordings": format!("{base}/Recordings.json"),
            "streams": format!("{base}/Streams.json"),
            "events": format!("{base}/Events.json"),
        },
    })
}

/// The call sid of a `{CallSid}.json` path segment.
fn sid_of(segment: &str) -> Option<&str> {
    segment.strip_suffix(".json")
}

fn not_found(account: &str, segment: &str) -> Reply {
    error(
        404,
        20404,
        &format!(
            "The requested resource /{API_VERSION}/Accounts/{account}/Calls/{segment} was not found"
        ),
    )
}

fn fetch(shared: &Arc<Shared>, account: &str, segment: &str, headers: &HeaderMap) -> Reply {
    if let Err(r) = authorize(shared, account, headers) {
        return r;
    }
    let Some(r) = sid_of(segment).and_then(|sid| shared.calls.with_call(sid, |r| r.clone())) else {
        return not_found(account, segment);
    };
    json_reply(200, &call_json(account, &r))
}

/// `Status=completed` hangs up a live call (a ringing one ends
/// `canceled`); `Status=canceled` a queued or ringing one (ignored once in
/// progress, as Twilio does). A call already over is returned unchanged
/// (unconfirmed). The reply is the resource once the call has ended (or
/// after [`HANGUP_SETTLE`]). A `Twiml` redirect is emulated for one shape
/// only, the cold transfer `<Response><Dial callerId><Number>…` of an
/// in-progress call ([`transfer`]); `Url` redirects are not.
async fn modify(
    shared: &Arc<Shared>,
    account: &str,
    segment: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Reply {
    if let Err(r) = authorize(shared, account, headers) {
        return r;
    }
    let Some(sid) = sid_of(segment).filter(|sid| shared.calls.with_call(sid, |_| ()).is_some())
    else {
        return not_found(account, segment);
    };
    let form = match form_of(headers, body) {
        Ok(f) => f,
        Err(e) => return error(400, 21200, &format!("Invalid form: {e}")),
    };
    if let Some(twiml) = first(&form, "Twiml") {
        if form.len() != 1 {
            return error(
                400,
                21200,
                "the emulator takes Twiml alone (no Status, Url)",
            );
        }
        return transfer(shared, account, sid, twiml);
    }
    let status = match first(&form, "Status") {
        Some(s @ ("completed" | "canceled")) => s.to_owned(),
        Some(s) => {
            return error(
                400,
                21200,
                &format!("Status must be completed or canceled: {s:?}"),
            );
        }
        None => {
            return error(
                400,
                21200,
                "the emulator updates calls with Status only (no Url/Twiml redirect)",
            );
        }
    };
    let current = shared
        .calls
        .with_call(sid, |r| r.status.clone())
        .unwrap_or_default();
    let applies = status == "completed" || current != "in-progress";
    if applies && let Some(hangup) = shared.calls.live_hangup(sid) {
        hangup.notify_one();
        let deadline = tokio::time::Instant::now() + HANGUP_SETTLE;
        while shared.calls.with_call(sid, |r| r.ended) == Some(false)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    match shared.calls.with_call(sid, |r| r.clone()) {
        Some(r) => json_reply(200, &call_json(account, &r)),
        None => not_found(account, segment),
    }
}

/// Checks a transfer's TwiML strictly: `<Response><Dial [callerId]>
/// <Number>` and nothing else, E.164 numbers with their `+`.
pub(crate) fn validate_transfer(
    twiml: &str,
) -> Result<talky::providers::twilio::twiml::ParsedDial, String> {
    let dial =
        talky::providers::twilio::twiml::parse_dial(twiml).map_err(|e| format!("Twiml: {e}"))?;
    let e164 = |n: &str| {
        n.strip_prefix('+')
            .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
    };
    if !e164(&dial.number) || dial.caller_id.as_deref().is_some_and(|c| !e164(c)) {
        return Err("Dial: Number and callerId must be E.164".into());
    }
    Ok(dial)
}

/// `Twiml=<Response><Dial callerId="+…"><Number>+…</Number></Dial></Response>`
/// on an in-progress call: recorded, then the stream loop sends `stop`,
/// closes the socket, and the call goes on with the person until they
/// hang up (`completed`). Any other TwiML is refused with 21200 (Twilio
/// would run it; the emulator runs only the transfer), a call not in
/// progress with 21220.
fn transfer(shared: &Arc<Shared>, account: &str, sid: &str, twiml: &str) -> Reply {
    let dial = match validate_transfer(twiml) {
        Ok(d) => d,
        Err(e) => return error(400, 21200, &e),
    };
    let accepted = shared.calls.with_call(sid, |r| {
        if r.status != "in-progress" || !r.socket_opened || r.transfer.is_some() {
            return false;
        }
        r.transfer = Some(crate::calls::Transfer {
            number: dial.number.clone(),
            caller_id: dial.caller_id.clone(),
            at: Utc::now(),
        });
        r.twiml = Some(twiml.to_owned());
        true
    });
    if accepted != Some(true) {
        return error(400, 21220, "Call is not in-progress. Cannot redirect.");
    }
    match shared.calls.with_call(sid, |r| r.clone()) {
        Some(r) => json_reply(200, &call_json(account, &r)),
        None => error(404, 20404, "not found"),
    }
}

/// A date filter value: `YYYY-MM-DD` (midnight UTC) or RFC 3339.
fn filter_time(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(v).ok().map(|d| d.to_utc())
}

/// `GET Calls.json`: filters `To`, `From`, `Status`, `ParentCallSid`,
/// `StartTime` (that day), `StartTime>` (on or after; the docs write
/// `StartTime>=`, which a query string carries as the key `StartTime>`),
/// `StartTime<` (on or before); `PageSize` (1-1000, default 50), `Page`
/// (from 0), `PageToken` (ignored). Newest first. The filters and their
/// spelling are Twilio's docs', unconfirmed by the spec.
fn list(shared: &Arc<Shared>, account: &str, headers: &HeaderMap, query: &str) -> Reply {
    if let Err(r) = authorize(shared, account, headers) {
        return r;
    }
    let pairs: Form = serde_urlencoded::from_str(query).unwrap_or_default();
    let mut to = None;
    let mut from = None;
    let mut status = None;
    let mut parent = None;
    let mut on_day = None;
    let mut after = None;
    let mut before = None;
    let mut page_size = 50usize;
    let mut page = 0usize;
    let mut kept: Form = Vec::new();
    for (k, v) in pairs {
        let key = k.trim_end_matches('=');
        let bad_date = || error(400, 21200, &format!("{k} is not a date: {v:?}"));
        match key {
            "To" => to = Some(v.clone()),
            "From" => from = Some(v.clone()),
            "Status" => status = Some(v.clone()),
            "ParentCallSid" => parent = Some(v.clone()),
            "StartTime" => match filter_time(&v) {
                Some(t) => on_day = Some(t.date_naive()),
                None => return bad_date(),
            },
            "StartTime>" => match filter_time(&v) {
                Some(t) => after = Some(t),
                None => return bad_date(),
            },
            "StartTime<" => match filter_time(&v) {
                Some(t) => before = Some(t),
                None => return bad_date(),
            },
            "PageSize" => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => page_size = n,
                _ => return error(400, 21200, &format!("PageSize must be 1-1000: {v:?}")),
            },
            "Page" => match v.parse::<usize>() {
                Ok(n) => page = n,
                _ => return error(400, 21200, &format!("Page must be a number: {v:?}")),
            },
            "PageToken" => continue,
            _ => {}
        }
        if key != "Page" && key != "PageSize" {
            kept.push((k, v));
        }
    }
    let mut calls: Vec<Value> = shared.calls.scan(|all| {
        all.filter(|r| to.as_ref().is_none_or(|t| &r.to == t))
            .filter(|r| from.as_ref().is_none_or(|f| &r.from == f))
            .filter(|r| status.as_ref().is_none_or(|s| &r.status == s))
            .filter(|_| parent.is_none())
            .filter(|r| {
                // `StartTime` filters on when the call started dialling (the
                // moment it was created, for one still queued).
                let t = r.started_at.unwrap_or(r.created_at);
                on_day.is_none_or(|d| t.date_naive() == d)
                    && after.is_none_or(|a| t >= a)
                    && before.is_none_or(|b| t <= b)
            })
            .map(|r| call_json(account, r))
            .collect()
    });
    calls.reverse();
    let total = calls.len();
    let start = page.saturating_mul(page_size);
    let items: Vec<Value> = calls.into_iter().skip(start).take(page_size).collect();
    let path = format!("/{API_VERSION}/Accounts/{account}/Calls.json");
    let page_uri = |p: usize| {
        let mut q = kept.clone();
        q.push(("PageSize".into(), page_size.to_string()));
        q.push(("Page".into(), p.to_string()));
        if p > 0 {
            q.push(("PageToken".into(), format!("PA{p}")));
        }
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    };
    let next = (start + items.len() < total).then(|| page_uri(page + 1));
    let previous = (page > 0).then(|| page_uri(page - 1));
    let end = (start + items.len()).saturating_sub(1);
    json_reply(
        200,
        &json!({
            "calls": items,
            "start": start,
            "end": end,
            "page": page,
            "page_size": page_size,
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "next_page_uri": next,
            "previous_page_uri": previous,
        }),
    )
}
