//! `GET /api/v1/calls/{id}/recording`: a call's recording as Ogg Opus,
//! streamed from the file (stereo, left callee, right agent).
//!
//! 404 when the call is another tenant's, was not recorded, or its
//! recording failed; 409 while it is still spooled or being encoded (the
//! call is live or waits for an encoder: ask again shortly), so a client
//! can tell "never" from "not yet".

use talky_actors::ids::{CallId, TenantId};
use tokio_util::io::ReaderStream;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply, Response};

use super::problem::{ApiError, Problem};
use super::{Ctx, auth, respond, with_ctx};
use crate::db;

/// The route.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "calls" / CallId / "recording")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), get_recording(ctx, tenant, id)))
        .boxed()
}

/// Get a call's recording: Ogg Opus, stereo (left the callee, right the
/// agent), 16 kHz voice. 409 while it is being made.
#[utoipa::path(get, path = "/api/v1/calls/{id}/recording", tag = "calls",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Call id")),
    responses(
        (status = 200, description = "The recording", content_type = "audio/ogg", body = Vec<u8>),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call, not recorded, or its recording failed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Still recording or encoding; try again shortly", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_recording(ctx: Ctx, tenant: TenantId, id: CallId) -> Result<Response, ApiError> {
    let row = {
        let mut conn = ctx.conn().await?;
        db::recordings::get(&mut conn, tenant, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no call {id}")))?
    };
    match row.status.as_deref() {
        Some(db::recordings::READY) => {}
        Some(db::recordings::SPOOLED | db::recordings::ENCODING) => {
            return Err(ApiError::Conflict(format!(
                "the recording of call {id} is not ready yet (the call is live or its audio is being encoded); try again in a few seconds"
            )));
        }
        Some(db::recordings::FAILED) => {
            return Err(ApiError::NotFound(format!(
                "the recording of call {id} could not be encoded"
            )));
        }
        _ => {
            return Err(ApiError::NotFound(format!("call {id} has no recording")));
        }
    }
    let path = ctx.recorder.recording_path(tenant, id);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(call.id = %id, error = %e, "recording marked ready but its file is missing");
            return Err(ApiError::NotFound(format!("call {id} has no recording")));
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut response = warp::reply::stream(ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg"));
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{id}.ogg\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
