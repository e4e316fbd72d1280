//! Vonage's answer webhook (answer_url mode, spec §1.4):
//! `GET /vonage/answer/{call_id}` (query: `to`, `from`, `uuid`,
//! `conversation_uuid`, ...) or `POST` with a JSON body.
//!
//! Verified like the event webhook (`super::vonage::verify`; a `GET` is
//! signed over its empty body). The call is looked up by id alone (Vonage
//! knows no tenant). While it is not finished and its media token is
//! unspent, a NEW single-use token is minted and its hash replaces the old
//! one in one conditional UPDATE ([`db::calls::remint_media_token`]), so
//! the media socket URI exists only in this answer and a repeated answer
//! request (Vonage retries the answer URL) re-mints only until the socket
//! was opened. The answer is `200 application/json`: the same `connect`
//! NCCO the inline mode sends ([`ncco::connect_ncco`]), caller id and
//! length limit from the call's campaign.
//!
//! Unknown call, finished call or spent token: `404` problem. Per §1.10 a
//! 4xx other than 429 is not retried, and with no `fallback_answer_url`
//! Vonage then terminates the call: exactly what a call we cannot connect
//! needs (a `talk`-only NCCO would keep a callee on a line nobody serves).

use bytes::Bytes;
use talky_actors::ids::{CallId, CampaignId, TenantId};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{ApiError, json_response};
use super::vonage::{MAX_WEBHOOK_BYTES, verify};
use super::{Ctx, respond, with_ctx};
use crate::db;
use crate::providers::vonage::ncco::{self, DEFAULT_SAMPLE_RATE};

/// The routes (`GET` with the query string, `POST` with a JSON body).
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let get = warp::path!("vonage" / "answer" / CallId)
        .and(warp::get())
        .and(with_ctx(ctx.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .and_then(|call, ctx: Ctx, auth: Option<String>| {
            respond(ctx.clone(), answer(ctx, call, auth, Bytes::new()))
        });
    let post = warp::path!("vonage" / "answer" / CallId)
        .and(warp::post())
        .and(with_ctx(ctx))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(MAX_WEBHOOK_BYTES))
        .and(warp::body::bytes())
        .and_then(|call, ctx: Ctx, auth: Option<String>, body: Bytes| {
            respond(ctx.clone(), answer(ctx, call, auth, body))
        });
    get.or(post).unify().boxed()
}

/// Answer one NCCO request.
pub async fn answer(
    ctx: Ctx,
    call: CallId,
    auth: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&ctx, auth.as_deref(), &body)?;
    let public_url = ctx
        .config
        .public_url()
        .map_err(|e| ApiError::Internal(format!("public url: {e}")))?;
    let token = crate::store::media_token();
    let hash = db::api_keys::hash(&token);
    let mut conn = ctx.conn().await?;
    let Some(row) = db::calls::remint_media_token(&mut conn, call, &hash).await? else {
        tracing::info!(call.id = %call, "answer for an unknown, finished or connected call");
        return Err(ApiError::NotFound(
            "no call waiting for its media socket under this id".into(),
        ));
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
        &call.to_string(),
        &token,
        &from,
        limit,
        DEFAULT_SAMPLE_RATE,
    )
    .map_err(|e| ApiError::Internal(format!("ncco: {e}")))?;
    tracing::debug!(call.id = %call, "answer NCCO served with a fresh media token");
    Ok(json_response(StatusCode::OK, &actions))
}
