//! The REST side: `POST /v1/calls`, `GET` / `PUT /v1/calls/{uuid}`
//! (spec §1.1-1.3, §1.11).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use bytes::Bytes;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use warp::Filter;
use warp::http::{HeaderMap, Response, StatusCode};

use super::call::{self, CallPlan};
use super::wire::{Action, Endpoint};
use super::{CallEntry, CallRecord, Shared, lock};

type Reply = warp::reply::Response;

/// Longest accepted JWT lifetime (`exp - iat`), 24 h.
pub const MAX_JWT_LIFETIME_SECS: i64 = 24 * 3600;

pub(crate) fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Reply,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
{
    let s1 = shared.clone();
    let create = warp::post()
        .and(warp::path!("v1" / "calls"))
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(move |h: HeaderMap, b: Bytes| create(&s1, &h, &b))
        .map(|r: (Reply, Duration)| r);
    let s2 = shared.clone();
    let modify = warp::put()
        .and(warp::path!("v1" / "calls" / String))
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(move |uuid: String, h: HeaderMap, b: Bytes| modify(&s2, &uuid, &h, &b))
        .then(|(reply, delay): (Reply, Duration)| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            reply
        });
    let s3 = shared.clone();
    let get = warp::get()
        .and(warp::path!("v1" / "calls" / String))
        .and(warp::header::headers_cloned())
        .map(move |uuid: String, h: HeaderMap| get(&s3, &uuid, &h));
    let s4 = shared;
    let list = warp::get()
        .and(warp::path!("v1" / "calls"))
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |h: HeaderMap, q: String| list(&s4, &h, &q));
    let fallback = warp::any().map(|| problem(404, "not-found", "Not Found", "no such resource"));
    let create = create.then(|(reply, delay): (Reply, Duration)| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        reply
    });
    create
        .or(list)
        .unify()
        .or(modify)
        .unify()
        .or(get)
        .unify()
        .or(fallback)
        .unify()
}

/// An RFC 7807 reply.
fn problem_with(status: u16, code: &str, title: &str, detail: &str, extra: Option<Value>) -> Reply {
    let mut body = json!({
        "type": format!("https://developer.nexmo.com/api-errors#{code}"),
        "title": title,
        "detail": detail,
        "instance": uuid::Uuid::new_v4().to_string(),
    });
    if let Some(Value::Object(m)) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", "application/problem+json")
        .body(body.to_string().into())
        .expect("reply")
}

fn problem(status: u16, code: &str, title: &str, detail: &str) -> Reply {
    problem_with(status, code, title, detail, None)
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string().into())
        .expect("reply")
}

#[derive(Debug, Deserialize)]
struct Claims {
    application_id: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    jti: Option<String>,
}

/// Checks the application JWT (§1.1); the 401 reply otherwise.
#[allow(clippy::result_large_err)]
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Reply> {
    let unauthorized =
        |detail: &str| problem(401, "unauthorized", "Invalid credentials supplied", detail);
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err(unauthorized("missing bearer token"));
    };
    let cfg = lock(&shared.cfg);
    let key = DecodingKey::from_rsa_pem(cfg.public_key_pem.as_bytes())
        .map_err(|_| unauthorized("application has no usable public key"))?;
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => {
            problem(401, "jwt-expired", "Token expired", "the JWT has expired")
        }
        ErrorKind::InvalidSignature => problem(
            401,
            "invalid-signature",
            "Invalid signature",
            "the JWT signature does not verify",
        ),
        _ => unauthorized(&format!("invalid JWT: {e}")),
    })?;
    let c = data.claims;
    if c.application_id.as_deref() != Some(cfg.application_id.as_str())
        || cfg.application_id.is_empty()
    {
        return Err(unauthorized("application_id does not match"));
    }
    let (Some(iat), Some(exp)) = (c.iat, c.exp) else {
        return Err(unauthorized("iat and exp are required"));
    };
    if exp - iat > MAX_JWT_LIFETIME_SECS {
        return Err(unauthorized("JWT lifetime exceeds 24 hours"));
    }
    if c.jti.as_deref().is_none_or(|j| j.trim().is_empty()) {
        return Err(unauthorized("jti is required"));
    }
    Ok(())
}

fn is_number(n: &str) -> bool {
    (7..=15).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())
}

fn is_http_url(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}

fn url_array(body: &Value, key: &str, errors: &mut Vec<(String, String)>) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.len() == 1 && a[0].as_str().is_some_and(is_http_url) => {
            a[0].as_str().map(str::to_owned)
        }
        Some(_) => {
            errors.push((key.into(), "must be an array of one http(s) URL".into()));
            None
        }
    }
}

fn int_in(
    body: &Value,
    key: &str,
    lo: u64,
    hi: u64,
    errors: &mut Vec<(String, String)>,
) -> Option<u64> {
    match body.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                errors.push((
                    key.into(),
                    format!("must be an integer between {lo} and {hi}"),
                ));
                None
            }
        },
    }
}

/// Validates a create body into what the call task needs.
pub(crate) fn validate(body: &Value) -> Result<CallPlan, Vec<(String, String)>> {
    let mut errors = Vec::new();
    if !body.is_object() {
        return Err(vec![("body".into(), "must be a JSON object".into())]);
    }
    // to
    let mut to = String::new();
    match body.get("to").and_then(Value::as_array) {
        Some(a) if a.len() == 1 => match serde_json::from_value::<Endpoint>(a[0].clone()) {
            Ok(Endpoint::Phone { number, .. }) if is_number(&number) => to = number,
            Ok(Endpoint::Phone { .. }) => {
                errors.push(("to[0].number".into(), "must match \\d{7,15}".into()))
            }
            Ok(_) => errors.push((
                "to[0].type".into(),
                "the emulator dials phone endpoints only".into(),
            )),
            Err(e) => errors.push(("to[0]".into(), e.to_string())),
        },
        _ => errors.push(("to".into(), "must be an array of one endpoint".into())),
    }
    // from / random_from_number
    let random_from = body.get("random_from_number").and_then(Value::as_bool) == Some(true);
    let mut from = String::new();
    match (body.get("from"), random_from) {
        (Some(_), true) => errors.push((
            "from".into(),
            "from and random_from_number are mutually exclusive".into(),
        )),
        (None, false) => errors.push((
            "from".into(),
            "from or random_from_number is required".into(),
        )),
        (None, true) => from = "447700900001".into(),
        (Some(f), false) => match serde_json::from_value::<Endpoint>(f.clone()) {
            Ok(Endpoint::Phone { number, .. }) if is_number(&number) => from = number,
            Ok(Endpoint::Phone { .. }) => {
                errors.push(("from.number".into(), "must match \\d{7,15}".into()))
            }
            Ok(_) => errors.push(("from.type".into(), "must be a phone endpoint".into())),
            Err(e) => errors.push(("from".into(), e.to_string())),
        },
    }
    // event_url / method
    let event_url = url_array(body, "event_url", &mut errors);
    let event_method = match body.get("event_method").and_then(Value::as_str) {
        None => "POST".to_owned(),
        Some(m @ ("POST" | "GET")) => m.to_owned(),
        Some(_) => {
            errors.push(("event_method".into(), "must be GET or POST".into()));
            "POST".into()
        }
    };
    // ncco xor answer_url
    let answer_url = url_array(body, "answer_url", &mut errors);
    let answer_method = match body.get("answer_method").and_then(Value::as_str) {
        None => "GET".to_owned(),
        Some(m @ ("POST" | "GET")) => m.to_owned(),
        Some(_) => {
            errors.push(("answer_method".into(), "must be GET or POST".into()));
            "GET".into()
        }
    };
    let mut leg = None;
    match (body.get("ncco"), answer_url.is_some()) {
        (Some(_), true) => errors.push((
            "ncco".into(),
            "ncco and answer_url are mutually exclusive".into(),
        )),
        (None, false) => {
            if !errors.iter().any(|(k, _)| k == "answer_url") {
                errors.push(("ncco".into(), "ncco or answer_url is required".into()))
            }
        }
        (None, true) => {}
        (Some(n), false) => match validate_ncco(n) {
            Ok(l) => leg = Some(l),
            Err(mut e) => errors.append(&mut e),
        },
    }
    let connect_event_url = leg.as_ref().and_then(|l| l.event_url.clone());
    if event_url.is_none()
        && connect_event_url.is_none()
        && !errors.iter().any(|(k, _)| k == "event_url")
    {
        errors.push(("event_url".into(), "is required".into()));
    }
    let ringing_timer = int_in(body, "ringing_timer", 1, 120, &mut errors).unwrap_or(60);
    let length_timer = int_in(body, "length_timer", 1, 7200, &mut errors).unwrap_or(7200);
    let standard_md = match body.get("machine_detection") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str() {
            Some(b @ ("continue" | "hangup")) => Some(b.to_owned()),
            _ => {
                errors.push((
                    "machine_detection".into(),
                    "must be continue or hangup".into(),
                ));
                None
            }
        },
    };
    let advanced_md = match body.get("advanced_machine_detection") {
        None | Some(Value::Null) => None,
        Some(a) => {
            let behavior = a
                .get("behavior")
                .and_then(Value::as_str)
                .unwrap_or("continue");
            let mode = a.get("mode").and_then(Value::as_str).unwrap_or("detect");
            if !["continue", "hangup"].contains(&behavior) {
                errors.push((
                    "advanced_machine_detection.behavior".into(),
                    "must be continue or hangup".into(),
                ));
            }
            if !["default", "detect", "detect_beep"].contains(&mode) {
                errors.push((
                    "advanced_machine_detection.mode".into(),
                    "must be default, detect or detect_beep".into(),
                ));
            }
            if let Some(bt) = a.get("beep_timeout")
                && !bt.as_u64().is_some_and(|b| (45..=120).contains(&b))
            {
                errors.push((
                    "advanced_machine_detection.beep_timeout".into(),
                    "must be between 45 and 120".into(),
                ));
            }
            Some((behavior.to_owned(), mode.to_owned()))
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(event_url) = event_url.or(connect_event_url) else {
        return Err(vec![("event_url".into(), "is required".into())]);
    };
    let md = match (advanced_md, standard_md) {
        (Some((behavior, mode)), _) => Some(call::Detection {
            advanced: true,
            hangup: behavior == "hangup",
            beep: mode != "detect",
        }),
        (None, Some(b)) => Some(call::Detection {
            advanced: false,
            hangup: b == "hangup",
            beep: false,
        }),
        (None, None) => None,
    };
    let answer = answer_url.map(|url| (url, answer_method));
    let mut plan = CallPlan {
        uuid: String::new(),
        conversation_uuid: String::new(),
        to,
        from,
        event_url,
        event_method: event_method.clone(),
        leg_event_url: String::new(),
        leg_event_method: event_method,
        ws_uri: String::new(),
        content_type: String::new(),
        headers: Default::default(),
        sample_rate: 0,
        answer,
        ringing_timer: std::time::Duration::from_secs(ringing_timer),
        length_timer: std::time::Duration::from_secs(length_timer),
        detection: md,
    };
    if let Some(leg) = leg {
        plan.connect(leg);
    }
    Ok(plan)
}

/// Validates an NCCO (inline, or fetched from an answer URL) into the
/// websocket leg the emulator connects: a non-empty array with a
/// `connect` action to one websocket endpoint.
pub(crate) fn validate_ncco(ncco: &Value) -> Result<call::Leg, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let connect = match serde_json::from_value::<Vec<Action>>(ncco.clone()) {
        Ok(actions) if actions.is_empty() => {
            return Err(vec![("ncco".into(), "must not be empty".into())]);
        }
        Ok(actions) => match actions.into_iter().find_map(|a| match a {
            Action::Connect(c) => Some(c),
            _ => None,
        }) {
            Some(c) => c,
            None => {
                return Err(vec![(
                    "ncco".into(),
                    "the emulator needs a connect action".into(),
                )]);
            }
        },
        Err(e) => return Err(vec![("ncco".into(), format!("Invalid NCCO: {e}"))]),
    };
    let mut ws = None;
    {
        let c = &connect;
        if c.endpoint.len() != 1 {
            errors.push(("ncco[].endpoint".into(), "must hold one endpoint".into()));
        }
        match c.endpoint.first() {
            Some(Endpoint::Websocket {
                uri,
                content_type,
                headers,
            }) => {
                let rate = content_type
                    .strip_prefix("audio/l16;rate=")
                    .and_then(|r| r.parse::<u32>().ok())
                    .filter(|r| [8000, 16000, 24000].contains(r));
                if !(uri.starts_with("ws://") || uri.starts_with("wss://")) {
                    errors.push((
                        "ncco[].endpoint[0].uri".into(),
                        "must be a ws:// or wss:// URI".into(),
                    ));
                }
                let header_bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
                if header_bytes > 512 {
                    errors.push((
                        "ncco[].endpoint[0].headers".into(),
                        "more than 512 bytes".into(),
                    ));
                }
                match rate {
                    Some(rate) => {
                        ws = Some((uri.clone(), content_type.clone(), headers.clone(), rate))
                    }
                    None => errors.push((
                        "ncco[].endpoint[0].content-type".into(),
                        "must be audio/l16;rate=8000|16000|24000".into(),
                    )),
                }
            }
            Some(_) => errors.push((
                "ncco[].endpoint[0].type".into(),
                "the emulator connects websockets only".into(),
            )),
            None => {}
        }
        if let Some(u) = &c.event_url
            && (u.len() != 1 || !is_http_url(&u[0]))
        {
            errors.push((
                "ncco[].eventUrl".into(),
                "must be an array of one http(s) URL".into(),
            ));
        }
    }
    let event_url = connect.event_url.as_ref().and_then(|u| u.first().cloned());
    match (errors.is_empty(), ws) {
        (true, Some((ws_uri, content_type, headers, sample_rate))) => Ok(call::Leg {
            ws_uri,
            content_type,
            headers,
            sample_rate,
            event_url,
            event_method: connect.event_method.clone(),
        }),
        _ => Err(errors),
    }
}

/// A create-call's reply, and how long to hold it back (the
/// `create_response_delay` knob; only for calls that were created).
fn create(shared: &Arc<Shared>, headers: &HeaderMap, body: &Bytes) -> (Reply, Duration) {
    match create_call(shared, headers, body) {
        (reply, true) => (reply, lock(&shared.cfg).create_response_delay),
        (reply, false) => (reply, Duration::ZERO),
    }
}

/// The reply, and whether a call was created.
fn create_call(shared: &Arc<Shared>, headers: &HeaderMap, body: &Bytes) -> (Reply, bool) {
    if let Err(r) = authorize(shared, headers) {
        return (r, false);
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return (
            problem(
                415,
                "unsupported-media-type",
                "Unsupported Media Type",
                "Content-Type must be application/json",
            ),
            false,
        );
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return (
            problem(
                400,
                "invalid-json",
                "Invalid JSON",
                "the body is not valid JSON",
            ),
            false,
        );
    };
    let mut plan = match validate(&parsed) {
        Ok(p) => p,
        Err(errors) => {
            let list: Vec<Value> = errors
                .iter()
                .map(|(n, r)| json!({"name": n, "reason": r}))
                .collect();
            return (
                problem_with(
                    400,
                    "invalid-params",
                    "Bad Request",
                    "The request failed due to validation errors",
                    Some(json!({"invalid_parameters": list})),
                ),
                false,
            );
        }
    };
    plan.uuid = uuid::Uuid::new_v4().to_string();
    plan.conversation_uuid = format!("CON-{}", uuid::Uuid::new_v4());
    let persona = lock(&shared.cfg).personas.for_number(&plan.to);
    let hangup = Arc::new(Notify::new());
    shared.calls.push_entry(CallEntry {
        record: CallRecord {
            uuid: plan.uuid.clone(),
            conversation_uuid: plan.conversation_uuid.clone(),
            request: parsed,
            persona: persona.name.clone(),
            to: plan.to.clone(),
            status: "started".into(),
            webhooks: Vec::new(),
            socket_opened: false,
            connected_message: None,
            said: Vec::new(),
            heard: Vec::new(),
            clears: Vec::new(),
            notifies: Vec::new(),
            frames_in: 0,
            frames_bad_size: 0,
            texts_in: Vec::new(),
            frames_out: 0,
            hang_up: None,
            ended: false,
            answer_error: None,
            completion: None,
            transfer: None,
            created_at: Utc::now(),
        },
        hangup: hangup.clone(),
    });
    let reply = json!({
        "uuid": plan.uuid,
        "status": "started",
        "direction": "outbound",
        "conversation_uuid": plan.conversation_uuid,
    });
    tokio::spawn(call::run(shared.clone(), plan, persona, hangup));
    (json_reply(201, &reply), true)
}

/// A `PUT` on a call's reply, and how long to hold it back (the
/// `transfer_response_delay` knob; only for an accepted transfer).
fn modify(
    shared: &Arc<Shared>,
    uuid: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Reply, Duration) {
    let reply = update(shared, uuid, headers, body);
    let transfer = serde_json::from_slice::<Value>(body)
        .is_ok_and(|b| b.get("action").and_then(Value::as_str) == Some("transfer"));
    if transfer && reply.status() == StatusCode::NO_CONTENT {
        let delay = lock(&shared.cfg).transfer_response_delay;
        (reply, delay)
    } else {
        (reply, Duration::ZERO)
    }
}

fn update(shared: &Arc<Shared>, uuid: &str, headers: &HeaderMap, body: &Bytes) -> Reply {
    if let Err(r) = authorize(shared, headers) {
        return r;
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return problem(
            400,
            "invalid-json",
            "Invalid JSON",
            "the body is not valid JSON",
        );
    };
    let action = parsed
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let live = shared.calls.live_hangup(uuid);
    let Some(hangup) = live else {
        return problem(
            404,
            "not-found",
            "Not Found",
            &format!("call {uuid} was not found or is over"),
        );
    };
    match action {
        "hangup" => {
            hangup.notify_one();
            no_content()
        }
        "mute" | "unmute" | "earmuff" | "unearmuff" => no_content(),
        "transfer" => transfer(shared, uuid, &parsed),
        _ => problem_with(
            400,
            "invalid-params",
            "Bad Request",
            "The request failed due to validation errors",
            Some(
                json!({"invalid_parameters": [{"name": "action", "reason": "unsupported action"}]}),
            ),
        ),
    }
}

/// Checks a transfer body (§1.3) strictly:
/// `{"action":"transfer","destination":{"type":"ncco","ncco":[connect]}}`,
/// an inline NCCO of one `connect` to one phone endpoint (the emulator
/// runs no other transfer; a `url` destination is refused). The number
/// and the `from`, or the invalid parameter and why.
pub(crate) fn validate_transfer(
    body: &Value,
) -> Result<(String, Option<String>), (String, String)> {
    let invalid = |name: &str, reason: &str| Err((name.to_owned(), reason.to_owned()));
    let keys_ok = |v: &Value, allowed: &[&str]| {
        v.as_object()
            .is_some_and(|m| m.keys().all(|k| allowed.contains(&k.as_str())))
    };
    if body["action"] != "transfer" || !keys_ok(body, &["action", "destination"]) {
        return invalid(
            "body",
            "must be {action: transfer, destination} and nothing else",
        );
    }
    let dest = &body["destination"];
    if !keys_ok(dest, &["type", "ncco"]) || dest["type"] != "ncco" {
        return invalid(
            "destination",
            "must be {\"type\":\"ncco\",\"ncco\":[...]} (the emulator takes inline NCCOs only)",
        );
    }
    let [connect] = dest["ncco"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    else {
        return invalid("destination.ncco", "must hold exactly one action");
    };
    let connect_keys = [
        "action",
        "from",
        "endpoint",
        "eventType",
        "eventUrl",
        "eventMethod",
        "timeout",
        "limit",
    ];
    if connect["action"] != "connect" || !keys_ok(connect, &connect_keys) {
        return invalid("destination.ncco[0]", "must be a connect action");
    }
    let from = match connect.get("from") {
        None => None,
        Some(Value::String(f)) if is_number(f) => Some(f.clone()),
        Some(_) => return invalid("destination.ncco[0].from", "must be E.164 digits"),
    };
    match connect["endpoint"].as_array().map(Vec::as_slice) {
        Some([e])
            if e["type"] == "phone"
                && keys_ok(e, &["type", "number", "dtmfAnswer"])
                && e["number"].as_str().is_some_and(is_number) =>
        {
            Ok((e["number"].as_str().unwrap_or_default().to_owned(), from))
        }
        _ => invalid(
            "destination.ncco[0].endpoint",
            "must be one phone endpoint with E.164 digits",
        ),
    }
}

/// A transfer ([`validate_transfer`]), accepted only while the media
/// socket is up: the call loop then closes the socket, posts `transfer`
/// and lets the person talk.
fn transfer(shared: &Arc<Shared>, uuid: &str, body: &Value) -> Reply {
    let invalid = |name: &str, reason: &str| {
        problem_with(
            400,
            "invalid-params",
            "Bad Request",
            "The request failed due to validation errors",
            Some(json!({"invalid_parameters": [{"name": name, "reason": reason}]})),
        )
    };
    let (number, from) = match validate_transfer(body) {
        Ok(t) => t,
        Err((name, reason)) => return invalid(&name, &reason),
    };
    let accepted = shared.calls.with_call(uuid, |r| {
        if !r.socket_opened || r.ended || r.transfer.is_some() {
            return false;
        }
        r.transfer = Some(crate::calls::Transfer {
            number,
            caller_id: from,
            at: Utc::now(),
        });
        true
    });
    if accepted == Some(true) {
        no_content()
    } else {
        invalid(
            "action",
            "the call is not connected to an NCCO that can be transferred",
        )
    }
}

fn no_content() -> Reply {
    Response::builder()
        .status(204)
        .body(Vec::new().into())
        .expect("reply")
}

fn get(shared: &Arc<Shared>, uuid: &str, headers: &HeaderMap) -> Reply {
    if let Err(r) = authorize(shared, headers) {
        return r;
    }
    let Some(r) = shared.calls.with_call(uuid, |r| r.clone()) else {
        return problem(
            404,
            "not-found",
            "Not Found",
            &format!("call {uuid} was not found"),
        );
    };
    json_reply(200, &call_json(&r))
}

/// `YYYY-MM-DD HH:MM:SS`, as the call resources' times (spec §1.3).
fn vonage_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// One call as the resource and the list show it (§1.3): the figures of
/// its end (`end_time` and the cost fields `rate`, `price`, `duration`)
/// only once it completed.
fn call_json(r: &CallRecord) -> Value {
    let from = r.request.get("from").cloned().unwrap_or(Value::Null);
    let to = r.request["to"].get(0).cloned().unwrap_or(Value::Null);
    let mut v = json!({
        "uuid": r.uuid,
        "conversation_uuid": r.conversation_uuid,
        "to": to,
        "from": from,
        "status": r.status,
        "direction": "outbound",
        "start_time": vonage_time(r.created_at),
        "network": super::NETWORK,
        "_links": {"self": {"href": format!("/v1/calls/{}", r.uuid)}},
    });
    if let Some(c) = &r.completion {
        v["start_time"] = json!(vonage_time(c.start));
        v["end_time"] = json!(vonage_time(c.end));
        v["duration"] = json!(c.duration.to_string());
        v["rate"] = json!(format!("{:.8}", c.rate));
        v["price"] = json!(format!("{:.8}", c.price));
    }
    v
}

/// A time filter of the list: ISO 8601 (`2020-01-01T12:00:00Z`).
fn list_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v).ok().map(|d| d.to_utc())
}

/// `GET /v1/calls?status=&date_start=&date_end=&page_size=&record_index=&order=&conversation_uuid=`.
fn list(shared: &Arc<Shared>, headers: &HeaderMap, query: &str) -> Reply {
    if let Err(r) = authorize(shared, headers) {
        return r;
    }
    let mut status = None;
    let mut start = None;
    let mut end = None;
    let mut page_size = 10usize;
    let mut record_index = 0usize;
    let mut desc = false;
    let mut conversation = None;
    let mut errors = Vec::new();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    for (k, v) in pairs {
        match k.as_str() {
            "status" => status = Some(v),
            "date_start" => match list_time(&v) {
                Some(t) => start = Some(t),
                None => {
                    errors.push(json!({"name": "date_start", "reason": "not an ISO 8601 time"}))
                }
            },
            "date_end" => match list_time(&v) {
                Some(t) => end = Some(t),
                None => errors.push(json!({"name": "date_end", "reason": "not an ISO 8601 time"})),
            },
            "page_size" => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => page_size = n,
                _ => errors.push(json!({"name": "page_size", "reason": "must be 1..100"})),
            },
            "record_index" => match v.parse::<usize>() {
                Ok(n) => record_index = n,
                _ => errors.push(json!({"name": "record_index", "reason": "not a number"})),
            },
            "order" => match v.as_str() {
                "asc" => desc = false,
                "desc" => desc = true,
                _ => errors.push(json!({"name": "order", "reason": "asc or desc"})),
            },
            "conversation_uuid" => conversation = Some(v),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return problem_with(
            400,
            "invalid-params",
            "Bad Request",
            "The request failed due to validation errors",
            Some(json!({"invalid_parameters": errors})),
        );
    }
    let mut calls: Vec<Value> = shared.calls.scan(|all| {
        all.filter(|r| status.as_ref().is_none_or(|s| &r.status == s))
            .filter(|r| start.is_none_or(|t| r.created_at >= t))
            .filter(|r| end.is_none_or(|t| r.created_at <= t))
            .filter(|r| {
                conversation
                    .as_ref()
                    .is_none_or(|c| &r.conversation_uuid == c)
            })
            .map(call_json)
            .collect()
    });
    if desc {
        calls.reverse();
    }
    let count = calls.len();
    let page: Vec<Value> = calls
        .into_iter()
        .skip(record_index)
        .take(page_size)
        .collect();
    json_reply(
        200,
        &json!({
            "count": count,
            "page_size": page_size,
            "record_index": record_index,
            "_links": {"self": {"href": format!("/v1/calls?{query}")}},
            "_embedded": {"calls": page},
        }),
    )
}
