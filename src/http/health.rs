//! `/health` (the process is up) and `/health/ready` (it can serve: both
//! PostgreSQL and Redis answer, and it is not draining for a stop).

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{ApiError, Problem};
use super::{Ctx, ok, respond, with_ctx};
use crate::db;

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
    /// talky's version.
    pub version: String,
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// `ok` per dependency.
    pub postgres: String,
    /// `ok` per dependency.
    pub redis: String,
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let live = warp::path!("health")
        .and(warp::get())
        .and(with_ctx(ctx.clone()))
        .and_then(|ctx: Ctx| respond(ctx, health()));
    let ready = warp::path!("health" / "ready")
        .and(warp::get())
        .and(with_ctx(ctx))
        .and_then(|ctx: Ctx| respond(ctx.clone(), ready(ctx)));
    live.or(ready).unify().boxed()
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn health() -> Result<Response, ApiError> {
    ok(
        StatusCode::OK,
        &Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
    )
}

/// Readiness: PostgreSQL and Redis both answer; a 503 names the one that does not.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "A dependency is down, or the process is draining", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ready(ctx: Ctx) -> Result<Response, ApiError> {
    if ctx.draining.load(std::sync::atomic::Ordering::SeqCst) {
        // Stopping: the load balancer should send nothing new here (the
        // provider's callbacks of live calls still reach this node).
        return Err(ApiError::Unavailable(
            "not ready: draining (the process is stopping)".into(),
        ));
    }
    let timeout = Duration::from_millis(ctx.config.redis.timeout_ms);
    let pg = async {
        match tokio::time::timeout(Duration::from_secs(2), db::ping(&ctx.db)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        }
    };
    let redis = crate::redis::ping(&ctx.redis, timeout);
    let (pg, redis) = tokio::join!(pg, redis);
    let mut down = Vec::new();
    if let Err(e) = pg {
        tracing::warn!(error = %e, "readiness: PostgreSQL down");
        down.push("PostgreSQL");
    }
    if let Err(e) = redis {
        tracing::warn!(error = %e, "readiness: Redis down");
        down.push("Redis");
    }
    if !down.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "not ready: {} unreachable",
            down.join(" and ")
        )));
    }
    ok(
        StatusCode::OK,
        &Ready {
            status: "ready".into(),
            postgres: "ok".into(),
            redis: "ok".into(),
        },
    )
}
