//! Vonage's event webhook: `POST /vonage/events/{call_id}`.
//!
//! Each event is verified (when a signature secret is configured), stored
//! raw and idempotently in `call_events`, and only then answered 2xx, so
//! Vonage retries anything we did not durably keep. An event for a call we
//! do not know is stored too (without tenant) and answered 2xx. An event
//! of a known call goes to its CallActor once: the Redis de-duplication
//! key (provider call id, status, timestamp) lets only its first delivery
//! through, across nodes; so an event stored by a delivery that died
//! before routing it is routed by the retry. Without Redis, only a
//! delivery PostgreSQL found new is routed.

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
use crate::providers::vonage::{SignatureVerifier, VonageEvent};

/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BYTES: u64 = 64 * 1024;

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    warp::path!("vonage" / "events" / CallId)
        .and(warp::post())
        .and(with_ctx(ctx))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(MAX_WEBHOOK_BYTES))
        .and(warp::body::bytes())
        .and_then(|call, ctx: Ctx, auth: Option<String>, body: Bytes| {
            respond(ctx.clone(), event(ctx, call, auth, body))
        })
        .boxed()
}

/// Checks a webhook's signature per configuration (no secret: accepted;
/// unsigned: accepted unless signed webhooks are required).
pub(crate) fn verify(ctx: &Ctx, auth: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    let cfg = &ctx.config.vonage;
    if cfg.signature_secret.expose().is_empty() {
        return Ok(());
    }
    if auth.is_none() && !cfg.require_signed_webhooks {
        return Ok(());
    }
    SignatureVerifier::new(&cfg.signature_secret)
        .verify(auth, body, chrono::Utc::now())
        .map_err(|e| ApiError::Unauthorized(format!("webhook signature: {e}")))
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
    let key = crate::redis::dedup::event_key(&[
        "vonage",
        &call.to_string(),
        provider_call_id,
        status,
        &at,
    ]);
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
    auth: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&ctx, auth.as_deref(), &body)?;
    let event = VonageEvent::from_json(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a Vonage event: {e}")))?;
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not JSON: {e}")))?;
    let status = payload
        .get("status")
        .and_then(|s| s.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:?}", event.status).to_lowercase());
    let mut conn = ctx.conn().await?;
    let provider_call_id = event
        .uuid
        .clone()
        .ok_or_else(|| ApiError::BadRequest("the event has no uuid".into()))?;
    let known = db::calls::get_unscoped(&mut conn, call).await?;
    let tenant = known.as_ref().map(|c| TenantId(c.tenant_id));
    let new = db::calls::record_event(
        &mut conn,
        tenant,
        known.as_ref().map(|_| call),
        &provider_call_id,
        &status,
        event.timestamp,
        &payload,
    )
    .await?;
    if known.is_none() {
        tracing::warn!(call.id = %call, status, "event for an unknown call stored");
        return no_content();
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
