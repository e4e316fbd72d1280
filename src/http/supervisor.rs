//! Supervisor endpoints (admin token): `GET /metrics` (Prometheus text)
//! and `GET /api/v1/supervisor/actors` (the live actor tree as JSON).

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::problem::{ApiError, Problem};
use super::{Ctx, auth, respond, with_ctx};

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let metrics_route = warp::path!("metrics")
        .and(warp::get())
        .and(auth::admin(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|ctx: Ctx| respond(ctx, metrics()));
    let actors = warp::path!("api" / "v1" / "supervisor" / "actors")
        .and(warp::get())
        .and(auth::admin(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|ctx: Ctx| respond(ctx.clone(), actors(ctx)));
    metrics_route.or(actors).unify().boxed()
}

/// The live actor tree: the root's children with restart counts, the
/// dialer with each live call (status, turns, children with the provider
/// in use and restarts, messages handled), each running campaign with its
/// counters (admin token).
#[utoipa::path(get, path = "/api/v1/supervisor/actors", tag = "health",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The actor tree", body = Object),
        (status = 401, description = "No or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No actor tree runs here", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn actors(ctx: Ctx) -> Result<Response, ApiError> {
    let root = ctx
        .root
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no actor tree runs in this process".into()))?;
    let tree = talky_actors::tree::snapshot(root, std::time::Duration::from_secs(1)).await;
    super::ok(StatusCode::OK, &tree)
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
