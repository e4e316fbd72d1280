//! `GET /api/v1/calls/{id}/recording`: a call's recording as Ogg Opus,
//! streamed from where the row says it lives (this node's directory or
//! the bucket, so any node serves a bucket's recording), stereo, left
//! callee, right agent. A single `Range: bytes=` is answered with 206
//! (the browser's audio element seeks with it); other forms get the
//! whole file.
//!
//! 404 when the call is another tenant's, was not recorded, its
//! recording failed, or expired; 409 while it is still spooled, being
//! encoded or uploaded (the call is live or its file is on its way: ask
//! again shortly), so a client can tell "never" from "not yet".

use talky_actors::ids::{CallId, TenantId};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

use super::problem::{ApiError, Problem};
use super::{Ctx, auth, respond, with_ctx};
use crate::db;
use crate::recording::store::{StoreError, byte_range};

/// The route.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "calls" / CallId / "recording")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(warp::header::optional::<String>("range"))
        .and(with_ctx(ctx))
        .and_then(|id, tenant, range: Option<String>, ctx: Ctx| {
            respond(ctx.clone(), get_recording(ctx, tenant, id, range))
        })
        .boxed()
}

/// Get a call's recording: Ogg Opus, stereo (left the callee, right the
/// agent), 16 kHz voice. 409 while it is being made. A single
/// `Range: bytes=first-last` is answered with 206 and that part.
#[utoipa::path(get, path = "/api/v1/calls/{id}/recording", tag = "calls",
    security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Call id"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`; other forms get the whole file"),
    ),
    responses(
        (status = 200, description = "The recording", content_type = "audio/ogg", body = Vec<u8>),
        (status = 206, description = "The requested part of the recording", content_type = "audio/ogg", body = Vec<u8>),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call, not recorded, its recording failed, or it expired (the campaign's retention)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Still recording or encoding; try again shortly", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_recording(
    ctx: Ctx,
    tenant: TenantId,
    id: CallId,
    range: Option<String>,
) -> Result<Response, ApiError> {
    let row = {
        let mut conn = ctx.conn().await?;
        db::recordings::get(&mut conn, tenant, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no call {id}")))?
    };
    match row.status.as_deref() {
        Some(db::recordings::READY) => {}
        Some(db::recordings::SPOOLED | db::recordings::ENCODING | db::recordings::UPLOADING) => {
            return Err(ApiError::Conflict(format!(
                "the recording of call {id} is not ready yet (the call is live or its audio is being encoded or stored); try again in a few seconds"
            )));
        }
        Some(db::recordings::FAILED) => {
            return Err(ApiError::NotFound(format!(
                "the recording of call {id} could not be encoded"
            )));
        }
        Some(db::recordings::EXPIRED) => {
            return Err(ApiError::NotFound(format!(
                "the recording of call {id} expired (its campaign's recording_retention_days) and was deleted"
            )));
        }
        _ => {
            return Err(ApiError::NotFound(format!("call {id} has no recording")));
        }
    }
    let store = ctx.recorder.store();
    let location = store.locate(&row, tenant, id);
    let len = row.bytes.and_then(|b| u64::try_from(b).ok());
    let part = len.and_then(|len| byte_range(range.as_deref(), len).map(|r| (r, len)));
    let body = match store
        .open(&location, part.as_ref().map(|(r, _)| r.clone()))
        .await
    {
        Ok(body) => body,
        Err(StoreError::NotFound) => {
            tracing::warn!(call.id = %id, "recording marked ready but not in its store");
            return Err(ApiError::NotFound(format!("call {id} has no recording")));
        }
        Err(e) => {
            tracing::warn!(call.id = %id, error = %e, "recording store failed");
            return Err(ApiError::Unavailable(
                "the recording store is unavailable; retry later".into(),
            ));
        }
    };
    let mut response = warp::reply::stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match (part, len) {
        (Some((r, len)), _) => {
            *response.status_mut() = warp::http::StatusCode::PARTIAL_CONTENT;
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{len}", r.start, r.end - 1))
            {
                headers.insert(header::CONTENT_RANGE, v);
            }
        }
        (None, Some(len)) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        (None, None) => {}
    }
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}.ogg\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
