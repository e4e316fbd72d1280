//! The warp HTTP layer: the operators' REST API, health and the OpenAPI
//! document. Routes match their path before their method and their
//! credentials, so an unknown path is a 404, a known path with the wrong
//! method a 405, and only then is a bad key a 401. Handlers return
//! `Result<Response, ApiError>`; `problem::recover` renders every error.

pub mod admin;
pub mod answer;
pub mod api_keys;
pub mod auth;
pub mod calls;
pub mod campaigns;
pub mod contacts;
pub mod dnc;
pub mod health;
pub mod media;
pub mod openapi;
pub mod problem;
pub mod recordings;
pub mod supervisor;
pub mod vonage;
pub mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::config::Config;
use crate::db;
use crate::import::ImportOptions;
use problem::{ApiError, json_response};

/// Everything a handler needs, shared by all requests.
pub struct AppState {
    /// PostgreSQL pool.
    pub db: db::Pool,
    /// Redis pool.
    pub redis: crate::redis::Pool,
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// Contact import rules, from `config.contacts`.
    pub import: ImportOptions,
    /// The actor tree's root, when this server runs one.
    pub root: Option<ractor::ActorRef<talky_actors::root::RootMsg>>,
    /// The running dialer, when providers are configured; set once after
    /// start-up (the lifecycle routes only change stored state without it).
    pub runtime: std::sync::OnceLock<std::sync::Arc<dyn crate::runtime::CampaignRuntime>>,
    /// Call recordings: spools, the encoder pool, the files.
    pub recorder: Arc<crate::recording::Recorder>,
}

/// The shared state as handlers receive it.
pub type Ctx = Arc<AppState>;

impl AppState {
    /// A pooled PostgreSQL connection.
    pub async fn conn(&self) -> Result<db::Conn<'_>, ApiError> {
        Ok(self.db.get().await.map_err(db::DbError::from)?)
    }

    /// The Redis pool with the configured key prefix and timeout.
    pub fn redis_keys(&self) -> crate::redis::Keys {
        crate::redis::Keys {
            pool: self.redis.clone(),
            prefix: self.config.redis.key_prefix.clone(),
            timeout: Duration::from_millis(self.config.redis.timeout_ms),
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.server.request_timeout_ms)
    }
}

/// Passes the shared state into a route.
pub fn with_ctx(
    ctx: Ctx,
) -> impl Filter<Extract = (Ctx,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || ctx.clone())
}

/// Runs a handler under the request deadline and renders its result.
pub async fn respond<F>(ctx: Ctx, handler: F) -> Result<Response, warp::Rejection>
where
    F: Future<Output = Result<Response, ApiError>>,
{
    let result = match tokio::time::timeout(ctx.request_timeout(), handler).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::Unavailable(
            "the request did not complete within its deadline".into(),
        )),
    };
    Ok(result.unwrap_or_else(ApiError::into_response))
}

/// A 200/201 JSON answer.
pub fn ok<T: serde::Serialize>(status: StatusCode, body: &T) -> Result<Response, ApiError> {
    Ok(json_response(status, body))
}

/// 204 No Content.
pub fn no_content() -> Result<Response, ApiError> {
    let mut response = Response::new(Bytes::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// A JSON body of type `T`, at most `limit` bytes, with precise errors:
/// 411 without Content-Length, 413 past the limit, 415 when not JSON,
/// 400 for broken JSON, 422 for JSON of the wrong shape.
pub fn json_body<T: DeserializeOwned + Send + 'static>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(|content_type: Option<String>, body: Bytes| async move {
            check_json_content_type(content_type.as_deref())?;
            parse_json::<T>(&body).map_err(warp::Rejection::from)
        })
}

/// Checks that a body is declared as JSON.
pub fn check_json_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let essence = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type application/json, got {}",
            content_type.map_or("none".to_string(), |ct| format!("{ct:?}"))
        )))
    }
}

/// Parses JSON, telling syntax errors (400) from shape errors (422).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::Validation {
                detail: format!("the JSON body does not fit: {e}"),
                errors: Vec::new(),
            },
            _ => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
        }
    })
}

/// The query string as `T`, with a precise 400 when it does not fit.
pub fn query<T: DeserializeOwned + Send + 'static>()
-> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            serde_urlencoded::from_str::<T>(&raw).map_err(|e| {
                warp::Rejection::from(ApiError::BadRequest(format!("invalid query string: {e}")))
            })
        })
}

/// Pagination parameters shared by the list routes.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Default page size.
pub const DEFAULT_PAGE_LIMIT: i64 = 100;
/// Largest page size.
pub const MAX_PAGE_LIMIT: i64 = 1000;

impl PageParams {
    /// The validated page size.
    pub fn limit(&self) -> Result<i64, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE_LIMIT}"),
            ));
        }
        Ok(limit)
    }

    /// A page keyed by id (all ids are UUIDv7).
    pub fn id_page(&self) -> Result<db::Page, ApiError> {
        let after =
            match &self.cursor {
                None => None,
                Some(c) if c.is_empty() => None,
                Some(c) => Some(uuid::Uuid::parse_str(c).map_err(|_| {
                    ApiError::invalid("cursor", "not a cursor from a previous page")
                })?),
            };
        Ok(db::Page {
            limit: self.limit()?,
            after,
        })
    }
}

/// A page of results.
#[derive(serde::Serialize)]
pub struct PageOf<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> PageOf<T> {
    /// Builds a page; a full page gets a cursor from its last item.
    pub fn new(items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Self {
        let next_cursor = if items.len() as i64 == limit {
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

/// Every route, with problem+json for every error.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let api = admin::routes(ctx.clone())
        .or(api_keys::routes(ctx.clone()))
        .unify()
        .or(campaigns::routes(ctx.clone()))
        .unify()
        .or(contacts::routes(ctx.clone()))
        .unify()
        .or(dnc::routes(ctx.clone()))
        .unify()
        .or(calls::routes(ctx.clone()))
        .unify()
        .or(recordings::routes(ctx.clone()))
        .unify()
        .or(health::routes(ctx.clone()))
        .unify()
        .or(openapi::routes())
        .unify()
        .or(vonage::routes(ctx.clone()))
        .unify()
        .or(media::routes(ctx.clone()))
        .unify()
        .or(answer::routes(ctx.clone()))
        .unify()
        .or(supervisor::routes(ctx.clone()))
        .unify();
    api.recover(problem::recover).unify().boxed()
}

/// Serves the routes on a bound listener until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Ctx,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(ctx).with(warp::trace::request()))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
