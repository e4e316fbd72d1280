//! Vonage's event webhook: `POST /vonage/events/{call_id}/{key}`.
//!
//! Each event is, in order: verified (a signature secret configured: a
//! missing or bad signature is a 401 unless `vonage.allow_unsigned_webhooks`
//! lets a missing one through); checked against the call's callback key
//! (`key` in the URL, HMAC of the call id, constant time: wrong or missing
//! is a 404 that says nothing about the call); matched to its call (an
//! event for a call we have no row of is counted in
//! `talky_webhooks_unmatched_total`, logged at most every
//! [`LOG_EVERY`], answered 204 and NOT stored); and matched to the call's
//! leg: an event for a call another provider placed (the row's
//! `provider`), or a phone-leg event whose `uuid` differs from the call's
//! stored provider id, is refused (404, `talky_webhooks_refused_total`);
//! the call goes on. A media-leg event (`to` is our ws:// URI) carries the websocket
//! leg's own uuid, which we never store: it is bound by the URL key (and
//! signature) alone and never teaches the provider id.
//!
//! Only then is it stored raw and idempotently in `call_events`, and
//! answered 2xx, so Vonage retries anything we did not durably keep. An
//! event of a known call goes to its CallActor once: the Redis
//! de-duplication key (provider call id, status, timestamp) lets only its
//! first delivery through, across nodes; so an event stored by a delivery
//! that died before routing it is routed by the retry. Without Redis, only
//! a delivery PostgreSQL found new is routed.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use talky_actors::call::CallMsg;
use talky_actors::dialer::call_name;
use talky_actors::ids::{CallId, TenantId};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::problem::ApiError;
use super::{Ctx, no_content, respond, with_ctx};
use crate::db;
use crate::providers::telephony::TelephonyProvider;
use crate::providers::vonage::signature::VerifiedClaims;
use crate::providers::vonage::{CallbackKey, SignatureVerifier, VonageEvent};

/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BYTES: u64 = 64 * 1024;

/// How often at most a refused or unmatched callback is logged (with the
/// number seen since the last line).
pub const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A log line at most every [`LOG_EVERY`]: forged or stray callbacks must
/// not fill the disk.
pub(crate) struct BoundedLog {
    last: AtomicU64,
    skipped: AtomicU64,
}

impl BoundedLog {
    pub(crate) const fn new() -> Self {
        Self {
            last: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Whether to log now; if so, how many were not logged before it.
    pub(crate) fn take(&self) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let last = self.last.load(Ordering::Relaxed);
        if (last == 0 || now >= last + LOG_EVERY.as_secs())
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.skipped.swap(0, Ordering::Relaxed));
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }
}

static REFUSED_LOG: BoundedLog = BoundedLog::new();

/// Counts a callback that matched no call (`reason`: `key`, `unknown_call`)
/// or was refused (`signature`, `uuid_mismatch`, `call_sid_mismatch`,
/// `account_mismatch`, `provider_mismatch`, `replay`, `answer_*`), and
/// logs it at most every [`LOG_EVERY`].
pub(crate) fn refused(metric: &'static str, reason: &'static str, call: &str) {
    metrics::counter!(metric, "reason" => reason).increment(1);
    if let Some(skipped) = REFUSED_LOG.take() {
        tracing::warn!(
            call.id = %call,
            reason,
            skipped,
            "provider callback refused or unmatched (at most one line per 10 s; see {metric})"
        );
    }
}

/// Counter of callbacks that match no call.
pub(crate) const UNMATCHED: &str = "talky_webhooks_unmatched_total";
/// Counter of callbacks refused for their credentials or leg.
pub(crate) const REFUSED: &str = "talky_webhooks_refused_total";

/// The 404 of a callback URL whose key is wrong or missing: the same for
/// every call id, known or not.
pub(crate) fn bad_key(call: &str) -> ApiError {
    refused(UNMATCHED, "key", call);
    ApiError::NotFound("no such resource".into())
}

/// Whether `key` is the callback key of `call` (constant time).
pub(crate) fn key_ok(ctx: &Ctx, call: CallId, key: &str) -> bool {
    CallbackKey::from_config(&ctx.config.vonage).verify(&call.to_string(), key)
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let keyed = warp::path!("vonage" / "events" / CallId / String)
        .and(warp::post())
        .and(with_ctx(ctx.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(MAX_WEBHOOK_BYTES))
        .and(warp::body::bytes())
        .and_then(
            |call, key: String, ctx: Ctx, auth: Option<String>, body: Bytes| {
                respond(ctx.clone(), event(ctx, call, key, auth, body))
            },
        );
    // The URL of old (keyless): counted, and the same 404 as a wrong key.
    let keyless = warp::path!("vonage" / "events" / CallId)
        .and(warp::post())
        .and(with_ctx(ctx))
        .and_then(|call: CallId, ctx: Ctx| {
            respond(ctx, async move { Err(bad_key(&call.to_string())) })
        });
    keyed.or(keyless).unify().boxed()
}

/// Checks a webhook's signature per configuration: with a signature
/// secret, a missing or bad signature is a 401 (unless
/// `vonage.allow_unsigned_webhooks` lets a missing one through); with no
/// secret there is nothing to check (`talky serve` then runs on loopback
/// or with `vonage.insecure_unsigned_callbacks`). The verified claims, if
/// any, are returned.
pub(crate) fn verify(
    ctx: &Ctx,
    auth: Option<&str>,
    body: &[u8],
) -> Result<Option<VerifiedClaims>, ApiError> {
    let cfg = &ctx.config.vonage;
    if cfg.signature_secret.expose().trim().is_empty() {
        return Ok(None);
    }
    if auth.is_none() && cfg.accepts_unsigned() {
        return Ok(None);
    }
    SignatureVerifier::new(&cfg.signature_secret)
        .verify_claims(auth, body, chrono::Utc::now())
        .map(Some)
        .map_err(|e| {
            metrics::counter!(REFUSED, "reason" => "signature").increment(1);
            ApiError::Unauthorized(format!("webhook signature: {e}"))
        })
}

/// Whether this delivery is the event's first: the Redis key decides;
/// when Redis does not answer, whether PostgreSQL stored it as new.
async fn first_delivery(
    ctx: &Ctx,
    call: CallId,
    provider_call_id: &str,
    status: &str,
    timestamp: &chrono::DateTime<chrono::Utc>,
    stored_new: bool,
) -> bool {
    let at = timestamp.to_rfc3339();
    first_delivery_of(
        ctx,
        &["vonage", &call.to_string(), provider_call_id, status, &at],
        stored_new,
    )
    .await
}

/// Whether this delivery of the callback named by `parts` (provider,
/// call, then what names the delivery) is its first: the Redis key
/// decides, across nodes; when Redis does not answer, whether PostgreSQL
/// stored it as new.
pub(crate) async fn first_delivery_of(ctx: &Ctx, parts: &[&str], stored_new: bool) -> bool {
    let key = crate::redis::dedup::event_key(parts);
    let ttl = std::time::Duration::from_secs(ctx.config.redis.dedup_ttl_secs);
    match crate::redis::dedup::first(&ctx.redis_keys(), &key, ttl).await {
        Ok(first) => first,
        Err(e) => {
            tracing::warn!(error = %e, "webhook de-duplication unavailable; PostgreSQL decides");
            stored_new
        }
    }
}

/// Receive one call event.
pub async fn event(
    ctx: Ctx,
    call: CallId,
    key: String,
    auth: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&ctx, auth.as_deref(), &body)?;
    if !key_ok(&ctx, call, &key) {
        return Err(bad_key(&call.to_string()));
    }
    let event = VonageEvent::from_json(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a Vonage event: {e}")))?;
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not JSON: {e}")))?;
    let status = payload
        .get("status")
        .and_then(|s| s.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:?}", event.status).to_lowercase());
    let provider_call_id = event
        .uuid
        .clone()
        .ok_or_else(|| ApiError::BadRequest("the event has no uuid".into()))?;
    let mut conn = ctx.live_conn().await?;
    let Some(known) = db::calls::get_unscoped(&mut conn, call).await? else {
        // Our key, no row (the intent is gone): nothing to keep or retry.
        refused(UNMATCHED, "unknown_call", &call.to_string());
        return no_content();
    };
    if known.provider != TelephonyProvider::Vonage.as_str() {
        // Another provider placed this call's leg: Vonage has none of it.
        refused(REFUSED, "provider_mismatch", &call.to_string());
        return Err(ApiError::NotFound("no such call leg under this URL".into()));
    }
    let media_leg = event.is_media_leg();
    let other_leg = if media_leg {
        // Our NCCO names the call in the websocket's headers.
        event
            .headers
            .get("call_id")
            .is_some_and(|c| *c != call.to_string())
    } else {
        known
            .provider_call_id
            .as_deref()
            .is_some_and(|p| p != provider_call_id)
    };
    if other_leg {
        refused(REFUSED, "uuid_mismatch", &call.to_string());
        return Err(ApiError::NotFound("no such call leg under this URL".into()));
    }
    let new = db::calls::record_event(
        &mut conn,
        TelephonyProvider::Vonage,
        Some(TenantId(known.tenant_id)),
        Some(call),
        &provider_call_id,
        &status,
        event.timestamp,
        &payload,
    )
    .await?;
    // The create-call's answer may have been lost (a time-out after it was
    // sent): the first event of the phone leg, on this call's keyed URL,
    // tells the provider's id.
    let learnt = if known.provider_call_id.is_none() && !media_leg {
        db::calls::learn_provider_id(
            &mut conn,
            TenantId(known.tenant_id),
            call,
            &provider_call_id,
        )
        .await?
    } else {
        false
    };
    drop(conn);
    if learnt {
        tracing::info!(call.id = %call, "provider id learnt from a webhook");
        if let Some(actor) = ractor::registry::where_is(call_name(call)) {
            let _ = actor.send_message(CallMsg::ProviderId(talky_actors::ports::ProviderCallId(
                provider_call_id.clone(),
            )));
        }
    }
    if !first_delivery(
        &ctx,
        call,
        &provider_call_id,
        &status,
        &event.timestamp,
        new,
    )
    .await
    {
        tracing::debug!(call.id = %call, status, "duplicate webhook not routed");
        return no_content();
    }
    if let Some(telephony) = event.telephony() {
        match ractor::registry::where_is(call_name(call)) {
            Some(actor) => {
                let _ = actor.send_message(CallMsg::Telephony(telephony));
            }
            None => {
                tracing::info!(call.id = %call, status, "event for a call not live on this node")
            }
        }
    }
    no_content()
}
