//! Vonage's answer webhook (answer_url mode, spec §1.4):
//! `GET /vonage/answer/{call_id}/{key}` (query: `to`, `from`, `uuid`,
//! `conversation_uuid`, ...) or `POST` with a JSON body.
//!
//! Whoever gets an answer here gets the call's media socket, so it is
//! locked down, in this order (each refusal counted in
//! `talky_webhooks_refused_total` / `_unmatched_total`, logged boundedly):
//! - signed (`super::vonage::verify`: with a signature secret a missing or
//!   bad signature is a 401). A `GET`'s token covers its empty body, so it
//!   is bound to this call by the URL instead: `key`, the call's callback
//!   key (HMAC of the call id; wrong or missing: the same 404 as an
//!   unknown call), and its `jti` is spent once in Redis for the token's
//!   life (a replayed token is a 401; Redis down: 503, Vonage retries);
//! - only when this cluster places calls in answer_url mode
//!   (`providers.vonage.answer_mode`; otherwise 404);
//! - only for the provider's leg: the request's `uuid` must be the call's
//!   provider id once it is known (Vonage fetches the answer URL when the
//!   callee answers, before any `answered` event, so "answered" itself
//!   cannot be checked; the uuid and the call not being finished can);
//! - only once per call (Redis `SET NX`): a second fetch, even a Vonage
//!   retry, is a 404 and Vonage then ends the call. A call that cannot be
//!   connected is better ended than handed to whoever asked first.
//!
//! The call is looked up by id alone (Vonage knows no tenant). While it is
//! not finished and its media token is unspent, a NEW single-use token is
//! minted and its hash replaces the old one in one conditional UPDATE
//! ([`db::calls::remint_media_token`]), so the media socket URI exists
//! only in this answer. The answer is `200 application/json`: the same
//! `connect` NCCO the inline mode sends ([`ncco::connect_ncco`]), caller
//! id and length limit from the call's campaign.
//!
//! Unknown call, finished call or spent token: `404` problem. Per §1.10 a
//! 4xx other than 429 is not retried, and with no `fallback_answer_url`
//! Vonage then terminates the call: exactly what a call we cannot connect
//! needs (a `talk`-only NCCO would keep a callee on a line nobody serves).

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use talky_actors::ids::{CallId, CampaignId, TenantId};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{ApiError, json_response};
use super::vonage::{MAX_WEBHOOK_BYTES, REFUSED, UNMATCHED, bad_key, key_ok, refused, verify};
use super::{Ctx, respond, with_ctx};
use crate::db;
use crate::providers::vonage::AnswerMode;
use crate::providers::vonage::ncco::{self, DEFAULT_SAMPLE_RATE};

/// The routes (`GET` with the query string, `POST` with a JSON body).
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let get = warp::path!("vonage" / "answer" / CallId / String)
        .and(warp::get())
        .and(with_ctx(ctx.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(
            |call, key: String, ctx: Ctx, auth: Option<String>, query: String| {
                let uuid = serde_urlencoded::from_str::<Vec<(String, String)>>(&query)
                    .ok()
                    .and_then(|q| q.into_iter().find(|(k, _)| k == "uuid").map(|(_, v)| v));
                respond(
                    ctx.clone(),
                    answer(ctx, call, key, auth, Bytes::new(), uuid),
                )
            },
        );
    let post = warp::path!("vonage" / "answer" / CallId / String)
        .and(warp::post())
        .and(with_ctx(ctx.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(MAX_WEBHOOK_BYTES))
        .and(warp::body::bytes())
        .and_then(
            |call, key: String, ctx: Ctx, auth: Option<String>, body: Bytes| {
                let uuid = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("uuid").and_then(Value::as_str).map(str::to_string));
                respond(ctx.clone(), answer(ctx, call, key, auth, body, uuid))
            },
        );
    // The URL of old (keyless), either method: the same 404 as a wrong key.
    let keyless = warp::path!("vonage" / "answer" / CallId)
        .and(warp::get().or(warp::post()).unify())
        .and(with_ctx(ctx))
        .and_then(|call: CallId, ctx: Ctx| {
            respond(ctx, async move { Err(bad_key(&call.to_string())) })
        });
    get.or(post).unify().or(keyless).unify().boxed()
}

/// Spends a Redis key once for `ttl`: `Ok(true)` the first time. Redis
/// down is a 503 (fail closed; Vonage retries a 503).
async fn once(ctx: &Ctx, parts: &[&str], ttl: Duration) -> Result<bool, ApiError> {
    let key = crate::redis::dedup::event_key(parts);
    crate::redis::dedup::first(&ctx.redis_keys(), &key, ttl)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "answer webhook: Redis unavailable");
            ApiError::Unavailable("a service this request needs is unavailable; retry later".into())
        })
}

/// Answer one NCCO request (`uuid`: the provider leg it names).
pub async fn answer(
    ctx: Ctx,
    call: CallId,
    key: String,
    auth: Option<String>,
    body: Bytes,
    uuid: Option<String>,
) -> Result<Response, ApiError> {
    let id = call.to_string();
    let claims = verify(&ctx, auth.as_deref(), &body)?;
    if !key_ok(&ctx, call, &key) {
        return Err(bad_key(&id));
    }
    if ctx.config.providers.vonage.answer_mode != AnswerMode::AnswerUrl {
        refused(REFUSED, "answer_mode", &id);
        return Err(ApiError::NotFound("no answer URL in this mode".into()));
    }
    if let Some(claims) = &claims {
        let Some(jti) = claims.jti.as_deref() else {
            refused(REFUSED, "signature", &id);
            return Err(ApiError::Unauthorized(
                "webhook signature: the token has no jti".into(),
            ));
        };
        let life = Duration::from_secs(claims.valid_for_secs);
        if !once(&ctx, &["vonage-answer-jti", jti], life).await? {
            refused(REFUSED, "replay", &id);
            return Err(ApiError::Unauthorized(
                "webhook signature: this token was already used".into(),
            ));
        }
    }
    let public_url = ctx
        .config
        .public_url()
        .map_err(|e| ApiError::Internal(format!("public url: {e}")))?;
    let mut conn = ctx.live_conn().await?;
    let gone = || ApiError::NotFound("no call waiting for its media socket under this id".into());
    let Some(row) = db::calls::get_unscoped(&mut conn, call).await? else {
        refused(UNMATCHED, "unknown_call", &id);
        return Err(gone());
    };
    if row.status == "finished" {
        tracing::info!(call.id = %call, "answer for a finished call");
        return Err(gone());
    }
    if row.provider != crate::providers::telephony::TelephonyProvider::Vonage.as_str() {
        // Another provider placed the call: Vonage has no leg to answer.
        refused(REFUSED, "provider_mismatch", &id);
        return Err(gone());
    }
    if let Some(known) = row.provider_call_id.as_deref()
        && uuid.as_deref() != Some(known)
    {
        refused(REFUSED, "uuid_mismatch", &id);
        return Err(gone());
    }
    drop(conn);
    let ttl = Duration::from_secs(ctx.config.redis.dedup_ttl_secs);
    if !once(&ctx, &["vonage-answer", &id], ttl).await? {
        refused(REFUSED, "answer_repeated", &id);
        return Err(gone());
    }
    let token = crate::store::media_token();
    let hash = db::api_keys::hash(&token);
    let mut conn = ctx.live_conn().await?;
    let Some(row) = db::calls::remint_media_token(&mut conn, call, &hash).await? else {
        tracing::info!(call.id = %call, "answer for a finished or connected call");
        return Err(gone());
    };
    let campaign = db::campaigns::get(
        &mut conn,
        TenantId(row.tenant_id),
        CampaignId(row.campaign_id),
    )
    .await?
    .ok_or_else(|| ApiError::NotFound("the call's campaign is gone".into()))?;
    let from = ncco::vonage_number(&campaign.caller_id)
        .map_err(|e| ApiError::Internal(format!("campaign caller id: {e}")))?;
    let limit = u32::try_from(campaign.max_call_duration_secs.max(10)).unwrap_or(u32::MAX);
    let actions = ncco::connect_ncco(
        &public_url,
        &id,
        &key,
        &token,
        &from,
        limit,
        DEFAULT_SAMPLE_RATE,
    )
    .map_err(|e| ApiError::Internal(format!("ncco: {e}")))?;
    tracing::debug!(call.id = %call, "answer NCCO served with a fresh media token");
    Ok(json_response(StatusCode::OK, &actions))
}
