//! Supervisor endpoints (admin token): `GET /metrics`, Prometheus text.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::problem::{ApiError, Problem};
use super::{Ctx, auth, respond, with_ctx};

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(auth::admin(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|ctx: Ctx| respond(ctx, metrics()))
        .boxed()
}

/// Prometheus metrics of this process (admin token).
#[utoipa::path(get, path = "/metrics", tag = "health",
    security(("admin" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 401, description = "No or wrong admin token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics() -> Result<Response, ApiError> {
    let mut response = Response::new(crate::metrics::handle().render().into());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}
