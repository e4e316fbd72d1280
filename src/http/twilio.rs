//! Twilio's callbacks and media socket.
//!
//! # `POST /twilio/status/{call_id}/{key}`
//!
//! The `StatusCallback` (initiated, ringing, answered, completed) and the
//! `AsyncAmdStatusCallback` of every call (`providers::twilio::callback`),
//! form-encoded, at most [`MAX_WEBHOOK_BYTES`]. Each callback is, in
//! order:
//! 1. read as a form (415 for another content type, 400 when malformed);
//! 2. verified: with `providers.twilio.auth_token` set, its
//!    `X-Twilio-Signature` must match the full public URL it was sent to
//!    (`server.public_url` + the path and query as received) and its form
//!    parameters (`providers::twilio::signature`; constant time); missing
//!    or bad is a 401 (a missing one is let through by
//!    `providers.twilio.allow_unsigned_webhooks`). Without a token there is
//!    nothing to check with (`talky serve` then runs on loopback or with
//!    `providers.twilio.insecure_unsigned_callbacks`);
//! 3. checked against the call's key (`key` in the URL, over
//!    `twilio/{call_id}`; constant time): wrong or missing is the same 404
//!    as for a call that does not exist;
//! 4. refused (422) if a parameter holds a NUL (PostgreSQL text cannot);
//! 5. matched to its call: none is counted in
//!    `talky_webhooks_unmatched_total`, answered 204, not stored; a call
//!    another provider placed (`calls.provider` is not `twilio`), a
//!    `CallSid` other than the call's stored one, or an `AccountSid` other
//!    than ours is refused (404, `talky_webhooks_refused_total`), and the
//!    call goes on;
//! 6. stored raw (its parameters as a JSON object) and idempotently in
//!    `call_events` (provider `twilio`, unique on CallSid, status,
//!    timestamp: a status callback's `CallStatus` and `Timestamp`; an AMD
//!    callback's `amd:{AnsweredBy}` and, having no `Timestamp`, the call's
//!    dial time, so its retries collapse too); the first callback of a call
//!    whose create-call answer was lost teaches its `CallSid`;
//! 7. answered 204 only after that write, so Twilio retries whatever we
//!    did not keep; and routed to the call's actor once (the Redis
//!    de-duplication key of the delivery, as with Vonage).
//!
//! # `GET /twilio/media/{call_id}/{token}`
//!
//! The `<Connect><Stream>` socket of a call (`providers::twilio::twiml`),
//! served by the media path every provider shares (`super::media`: token
//! spent before the upgrade, binding, limits, recording) with
//! [`TwilioWire`]: JSON text messages only (a binary message closes the
//! socket, 1003); `connected`, then `start` (8 kHz mono μ-law, its
//! `call_id` parameter ours and its `CallSid` the call's, else 1008)
//! before the call is attached; then `media` becomes 20 ms frames of
//! 16 kHz PCM, `dtmf` keys, `mark` echoes marks whose audio was played,
//! `stop` ends the stream. The call's frames go out as 160-byte μ-law
//! `media` payloads, `MediaOut::Mark` as `mark`, `MediaOut::Clear` as
//! `clear` ([`MediaBridge`]). A message Twilio would never send (not
//! JSON, a known event missing its fields) closes the socket (1007); an
//! event we do not know is ignored.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use talky_actors::call::CallMsg;
use talky_actors::dialer::call_name;
use talky_actors::ids::{CallId, TenantId};
use talky_actors::ports::{MediaIn, MediaOut};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::media::{Handshake, Inbound, MediaWire, Refusal, WireWriter};
use super::problem::ApiError;
use super::vonage::{REFUSED, UNMATCHED, bad_key, first_delivery_of, refused};
use super::{Ctx, no_content, respond, with_ctx};
use crate::db;
use crate::net::ws::{self, Message, Ws};
use crate::providers::telephony::{TelephonyProvider, leg_id};
use crate::providers::twilio::socket::{SocketError, Start};
use crate::providers::twilio::twiml::CALL_ID_PARAMETER;
use crate::providers::twilio::{
    MediaBridge, RequestValidator, StreamEvent, TwilioCallback, callback,
};
use crate::providers::vonage::CallbackKey;

/// Largest callback body accepted.
pub const MAX_WEBHOOK_BYTES: u64 = 64 * 1024;

/// Close code of a binary message on a Twilio stream (RFC 6455: a type of
/// data the endpoint cannot accept).
pub const CLOSE_UNSUPPORTED: u16 = 1003;
/// Close code of a malformed message or an unsupported media format
/// (RFC 6455: data inconsistent with its type).
pub const CLOSE_MALFORMED: u16 = 1007;
/// Close code of a stream of another call (RFC 6455: policy violation).
pub const CLOSE_POLICY: u16 = 1008;

/// What the status route reads from the request.
struct Delivery {
    call: CallId,
    key: String,
    /// The path as received (for the signed URL).
    path: String,
    /// The raw query, if any.
    query: Option<String>,
    content_type: Option<String>,
    signature: Option<String>,
    body: Bytes,
}

/// The routes: the status callback and the media socket.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let status = warp::path!("twilio" / "status" / CallId / String)
        .and(warp::post())
        .and(warp::path::full())
        .and(
            warp::query::raw()
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(with_ctx(ctx.clone()))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>(
            crate::providers::twilio::signature::HEADER,
        ))
        .and(warp::body::content_length_limit(MAX_WEBHOOK_BYTES))
        .and(warp::body::bytes())
        .and_then(
            |call: CallId,
             key: String,
             path: warp::path::FullPath,
             query: Option<String>,
             ctx: Ctx,
             content_type: Option<String>,
             signature: Option<String>,
             body: Bytes| {
                let d = Delivery {
                    call,
                    key,
                    path: path.as_str().to_owned(),
                    query,
                    content_type,
                    signature,
                    body,
                };
                respond(ctx.clone(), status_callback(ctx, d))
            },
        );
    // No key: the same 404 as a wrong one.
    let keyless = warp::path!("twilio" / "status" / CallId)
        .and(warp::post())
        .and(with_ctx(ctx.clone()))
        .and_then(|call: CallId, ctx: Ctx| {
            respond(ctx, async move { Err(bad_key(&call.to_string())) })
        });
    let media = warp::path!("twilio" / "media" / CallId / String)
        .and(warp::get())
        .and(with_ctx(ctx.clone()))
        .and(ws::ws())
        .and_then(|call: CallId, token: String, ctx: Ctx, ws: Ws| async move {
            let wire =
                |row: &db::calls::Call| TwilioWire::new(call).knowing(row.provider_call_id.clone());
            Ok::<Response, warp::Rejection>(
                super::media::upgrade(ctx, call, Some(&token), ws, wire).await,
            )
        });
    let tokenless = warp::path!("twilio" / "media" / CallId)
        .and(warp::get())
        .and(with_ctx(ctx))
        .and(ws::ws())
        .and_then(|call: CallId, ctx: Ctx, ws: Ws| async move {
            Ok::<Response, warp::Rejection>(
                super::media::upgrade(ctx, call, None, ws, |_| TwilioWire::new(call)).await,
            )
        });
    status
        .or(keyless)
        .unify()
        .or(media)
        .unify()
        .or(tokenless)
        .unify()
        .boxed()
}

/// Whether `key` is the call's Twilio callback key (constant time).
fn key_ok(ctx: &Ctx, call: CallId, key: &str) -> bool {
    callback::verify_call_key(
        &CallbackKey::from_config(&ctx.config.vonage),
        &call.to_string(),
        key,
    )
}

/// Checks `X-Twilio-Signature` per configuration (module docs, step 2).
fn verify(
    ctx: &Ctx,
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> Result<(), ApiError> {
    let cfg = &ctx.config.providers.twilio;
    if cfg.auth_token.expose().trim().is_empty() {
        return Ok(());
    }
    let unsigned = signature.is_none_or(|s| s.trim().is_empty());
    if unsigned && cfg.accepts_unsigned() {
        return Ok(());
    }
    RequestValidator::new(&cfg.auth_token)
        .verify(url, params, signature)
        .map_err(|e| {
            metrics::counter!(REFUSED, "reason" => "signature").increment(1);
            ApiError::Unauthorized(format!("twilio callback: {e}"))
        })
}

/// The callback's parameters as stored: an object, a repeated name's
/// values as an array.
fn payload(params: &[(String, String)]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in params {
        match map.get_mut(k) {
            None => {
                map.insert(k.clone(), serde_json::Value::String(v.clone()));
            }
            Some(serde_json::Value::Array(values)) => {
                values.push(serde_json::Value::String(v.clone()));
            }
            Some(first) => {
                let first = first.take();
                map.insert(
                    k.clone(),
                    serde_json::Value::Array(vec![first, serde_json::Value::String(v.clone())]),
                );
            }
        }
    }
    serde_json::Value::Object(map)
}

/// Receive one status or AMD callback (module docs).
async fn status_callback(ctx: Ctx, d: Delivery) -> Result<Response, ApiError> {
    let call = d.call;
    let form = d.content_type.as_deref().map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if form
        .as_deref()
        .is_some_and(|ct| ct != "application/x-www-form-urlencoded")
    {
        return Err(ApiError::UnsupportedMediaType(
            "Twilio callbacks are application/x-www-form-urlencoded".into(),
        ));
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&d.body)
        .map_err(|e| ApiError::BadRequest(format!("not a form body: {e}")))?;
    let public = ctx
        .config
        .public_url()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let url = match &d.query {
        Some(q) => format!("{public}{}?{q}", d.path),
        None => format!("{public}{}", d.path),
    };
    verify(&ctx, &url, &params, d.signature.as_deref())?;
    if !key_ok(&ctx, call, &d.key) {
        return Err(bad_key(&call.to_string()));
    }
    if let Some((name, _)) = params
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(super::nul_error(&name.replace('\0', "\\u0000")));
    }
    let cb = TwilioCallback::from_params(&params)
        .map_err(|e| ApiError::BadRequest(format!("not a Twilio callback: {e}")))?;
    let mut conn = ctx.live_conn().await?;
    let Some(known) = db::calls::get_unscoped(&mut conn, call).await? else {
        // Our key, no row (the intent is gone): nothing to keep or retry.
        refused(UNMATCHED, "unknown_call", &call.to_string());
        return no_content();
    };
    let other_leg = |reason: &'static str| {
        refused(REFUSED, reason, &call.to_string());
        Err(ApiError::NotFound("no such call leg under this URL".into()))
    };
    if known.provider != TelephonyProvider::Twilio.as_str() {
        return other_leg("provider_mismatch");
    }
    if known
        .provider_call_id
        .as_deref()
        .is_some_and(|sid| sid != cb.call_sid)
    {
        return other_leg("call_sid_mismatch");
    }
    let account = ctx.config.providers.twilio.account_sid.as_deref();
    if let (Some(ours), Some(theirs)) = (account, cb.account_sid.as_deref())
        && ours.trim() != theirs
    {
        return other_leg("account_mismatch");
    }
    let status = match (&cb.status, &cb.answered_by) {
        (Some(s), _) => s.as_str().to_owned(),
        (None, Some(a)) => format!("amd:{}", a.as_str()),
        // `from_params` refuses a callback with neither.
        (None, None) => return Err(ApiError::BadRequest("no CallStatus".into())),
    };
    let at = cb
        .timestamp
        .unwrap_or_else(|| known.dialed_at.unwrap_or(known.created_at));
    let tenant = TenantId(known.tenant_id);
    let new = db::calls::record_event(
        &mut conn,
        TelephonyProvider::Twilio,
        Some(tenant),
        Some(call),
        &cb.call_sid,
        &status,
        at,
        &payload(&params),
    )
    .await?;
    // The create-call's answer may have been lost: the first callback of
    // the call, on its keyed URL, tells its CallSid.
    let learnt = if known.provider_call_id.is_none() {
        db::calls::learn_provider_id(&mut conn, tenant, call, &cb.call_sid).await?
    } else {
        false
    };
    drop(conn);
    let actor = ractor::registry::where_is(call_name(call));
    if learnt {
        tracing::info!(call.id = %call, "twilio CallSid learnt from a callback");
        if let Some(actor) = &actor {
            let id = leg_id(TelephonyProvider::Twilio, &cb.call_sid);
            let _ = actor.send_message(CallMsg::ProviderId(id));
        }
    }
    let [sid, kind, which] = cb.dedup_parts();
    let call_text = call.to_string();
    if !first_delivery_of(&ctx, &["twilio", &call_text, &sid, &kind, &which], new).await {
        tracing::debug!(call.id = %call, status, "duplicate twilio callback not routed");
        return no_content();
    }
    let events = cb.telephony();
    if !events.is_empty() {
        match actor {
            Some(actor) => {
                for event in events {
                    let _ = actor.send_message(CallMsg::Telephony(event));
                }
            }
            None => {
                tracing::info!(call.id = %call, status, "twilio callback for a call not live on this node")
            }
        }
    }
    no_content()
}

/// The stream's state, shared by the socket's reader and writer (marks
/// sent by one are echoed to the other).
type Bridge = Arc<Mutex<MediaBridge>>;

fn bridge(b: &Bridge) -> std::sync::MutexGuard<'_, MediaBridge> {
    // The bridge holds no invariant a panic could break half-way.
    b.lock().unwrap_or_else(|e| e.into_inner())
}

/// Twilio's Media Streams wire (module docs).
pub struct TwilioWire {
    call: CallId,
    bridge: Option<Bridge>,
    /// The call's CallSid, once the row knows it.
    known_sid: Option<String>,
}

/// Twilio's outbound half.
pub struct TwilioWriter(Bridge);

impl TwilioWire {
    /// The wire of `call`'s socket.
    pub fn new(call: CallId) -> Self {
        Self {
            call,
            bridge: None,
            known_sid: None,
        }
    }

    /// With the call's CallSid as stored (a `start` of another is refused).
    pub fn knowing(mut self, sid: Option<String>) -> Self {
        self.known_sid = sid;
        self
    }

    fn start(&mut self, start: &Start) -> Result<TwilioWriter, Refusal> {
        let policy = |why: String| Refusal {
            code: CLOSE_POLICY,
            reason: "stream of another call".into(),
            why,
        };
        let ours = self.call.to_string();
        if let Some(named) = start.custom_parameters.get(CALL_ID_PARAMETER)
            && *named != ours
        {
            return Err(policy(format!(
                "twilio stream names call {named:?}, not this call"
            )));
        }
        if self
            .known_sid
            .as_deref()
            .is_some_and(|sid| sid != start.call_sid)
        {
            return Err(policy(
                "twilio stream of another CallSid than the call's".into(),
            ));
        }
        let b = MediaBridge::new(start).map_err(|e| malformed(&e))?;
        let b = Arc::new(Mutex::new(b));
        self.bridge = Some(b.clone());
        Ok(TwilioWriter(b))
    }
}

fn malformed(e: &SocketError) -> Refusal {
    match e {
        SocketError::Binary(n) => Refusal {
            code: CLOSE_UNSUPPORTED,
            reason: "Twilio media streams carry JSON text messages only".into(),
            why: format!("binary message of {n} bytes on a Twilio media stream"),
        },
        SocketError::UnsupportedFormat { .. } => Refusal {
            code: CLOSE_MALFORMED,
            reason: "unsupported media format: audio/x-mulaw at 8000 Hz, mono only".into(),
            why: format!("twilio media stream: {e}"),
        },
        other => Refusal {
            code: CLOSE_MALFORMED,
            reason: "malformed Twilio media stream message".into(),
            why: format!("twilio media message: {other}"),
        },
    }
}

/// A socket message as Twilio's event: `Ok(None)` for control frames and
/// events we do not know (ignored: Twilio adds events).
fn parse(message: &Message) -> Result<Option<StreamEvent>, Refusal> {
    match StreamEvent::from_ws(message) {
        Ok(event) => Ok(event),
        Err(SocketError::UnknownEvent(name)) => {
            tracing::debug!(event = %name, "unknown twilio stream event ignored");
            Ok(None)
        }
        Err(e) => Err(malformed(&e)),
    }
}

impl MediaWire for TwilioWire {
    type Writer = TwilioWriter;
    const PROVIDER: TelephonyProvider = TelephonyProvider::Twilio;

    fn ready(&mut self) -> Option<TwilioWriter> {
        None
    }

    fn handshake(&mut self, message: Message) -> Result<Handshake<TwilioWriter>, Refusal> {
        match parse(&message)? {
            None | Some(StreamEvent::Connected(_)) => Ok(Handshake::Wait),
            Some(StreamEvent::Start(start)) => self.start(&start).map(Handshake::Ready),
            Some(StreamEvent::Stop(_)) => Ok(Handshake::Stop),
            Some(StreamEvent::Media(_) | StreamEvent::Dtmf(_) | StreamEvent::Mark(_)) => {
                Err(Refusal {
                    code: CLOSE_MALFORMED,
                    reason: "start must come first".into(),
                    why: "twilio media stream: media before start".into(),
                })
            }
        }
    }

    fn read(&mut self, message: Message, out: &mut Vec<MediaIn>) -> Result<Inbound, Refusal> {
        let Some(event) = parse(&message)? else {
            return Ok(Inbound::Other);
        };
        let Some(b) = &self.bridge else {
            // Unreachable: the call is attached after `start` only.
            return Ok(Inbound::Other);
        };
        match event {
            StreamEvent::Stop(_) => Ok(Inbound::Stop),
            StreamEvent::Connected(_) | StreamEvent::Start(_) => Ok(Inbound::Other),
            event @ StreamEvent::Media(_) => {
                out.extend(bridge(b).inbound(event));
                Ok(Inbound::Audio)
            }
            event => {
                out.extend(bridge(b).inbound(event));
                Ok(Inbound::Other)
            }
        }
    }
}

impl WireWriter for TwilioWriter {
    fn write(&mut self, item: MediaOut, out: &mut Vec<Message>, agent: &mut dyn FnMut(&[u8])) {
        if let MediaOut::Audio(pcm) = &item {
            agent(pcm);
        }
        out.extend(
            bridge(&self.0)
                .outbound(item)
                .into_iter()
                .map(Message::text),
        );
    }
}
