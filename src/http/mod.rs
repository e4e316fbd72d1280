//! The warp HTTP layer: the operators' REST API, health, the OpenAPI
//! document and the console's page (`crate::console`). Routes match their
//! path before their method and their credentials, so an unknown path is a
//! 404, a known path with the wrong method a 405, and only then is a bad
//! key a 401. Handlers return
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
pub mod live;
pub mod media;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod recordings;
pub mod results;
pub mod supervisor;
pub mod telemetry;
pub mod twilio;
pub mod vonage;
pub mod webhooks;

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
    /// The REST API's PostgreSQL pool (tenants' requests, uploads).
    pub db: db::Pool,
    /// The live calls' own pool: call, dial and campaign stores, the
    /// reconciler, the provider's webhooks and the media socket.
    pub live_db: db::Pool,
    /// Redis pool.
    pub redis: crate::redis::Pool,
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// This node's id (`redis.node_id`, or hostname-pid), fixed for the
    /// process: in leases, on calls, on the campaign notices it sends.
    pub node: String,
    /// Contact import rules, from `config.contacts`.
    pub import: ImportOptions,
    /// The actor tree's root, when this server runs one.
    pub root: Option<ractor::ActorRef<talky_actors::root::RootMsg>>,
    /// The running dialer, when providers are configured; set once after
    /// start-up (the lifecycle routes only change stored state without it).
    pub runtime: std::sync::OnceLock<std::sync::Arc<dyn crate::runtime::CampaignRuntime>>,
    /// Call recordings: spools, the encoder pool, the files.
    pub recorder: Arc<crate::recording::Recorder>,
    /// The process is stopping (SIGTERM): `/health/ready` answers 503.
    pub draining: std::sync::atomic::AtomicBool,
    /// Request rate limits of tenants' API keys (`[api]`).
    pub limiter: ratelimit::RateLimiter,
    /// The live feed of this node's calls (`crate::live`).
    pub live: Arc<crate::live::LiveBus>,
}

/// The shared state as handlers receive it.
pub type Ctx = Arc<AppState>;

impl AppState {
    /// A pooled PostgreSQL connection.
    pub async fn conn(&self) -> Result<db::Conn<'_>, ApiError> {
        Ok(self.db.get().await.map_err(db::DbError::from)?)
    }

    /// A connection from the live calls' pool, for the provider's
    /// webhooks and the media socket: no API load can make them wait.
    pub async fn live_conn(&self) -> Result<db::Conn<'_>, ApiError> {
        Ok(self.live_db.get().await.map_err(db::DbError::from)?)
    }

    /// The Redis pool with the configured key prefix and timeout.
    pub fn redis_keys(&self) -> crate::redis::Keys {
        crate::redis::Keys {
            pool: self.redis.clone(),
            prefix: self.config.redis.key_prefix.clone(),
            timeout: Duration::from_millis(self.config.redis.timeout_ms),
        }
    }

    /// Tells the other nodes what happened to a campaign (its new state
    /// or settings are stored already): at once over Redis pub/sub when
    /// nodes coordinate through Redis; nothing to tell otherwise (this
    /// process is the whole cluster). A failure is logged and counted,
    /// not returned: the request's change is stored, and the lease holder
    /// reads the stored state every tick all the same.
    pub async fn tell_other_nodes(
        &self,
        tenant: talky_actors::ids::TenantId,
        campaign: talky_actors::ids::CampaignId,
        what: crate::redis::notices::What,
    ) {
        if !self.config.redis.cluster {
            return;
        }
        let notice = crate::redis::notices::Notice {
            tenant,
            campaign,
            what,
            node: self.node.clone(),
        };
        if let Err(e) = crate::redis::notices::publish(&self.redis_keys(), &notice).await {
            tracing::warn!(campaign.id = %campaign, ?what, error = %e, "campaign notice not published; other nodes follow the store within a tick");
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.server.request_timeout_ms)
    }

    /// How long a request body may take to arrive in full.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.server.body_read_timeout_ms)
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

/// A JSON body of type `T`, at most `limit` bytes, read in full within
/// `read_timeout`, with precise errors: 411 without Content-Length, 413
/// past the limit, 408 past the read deadline, 415 when not JSON, 400 for
/// broken JSON, 422 for JSON of the wrong shape or with a NUL character in
/// any string or key (PostgreSQL text cannot hold one; the error names
/// the field).
pub fn json_body<T: DeserializeOwned + Send + 'static>(
    limit: u64,
    read_timeout: Duration,
) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::stream())
        .and_then(move |content_type: Option<String>, body| async move {
            check_json_content_type(content_type.as_deref())?;
            let body = read_body(body, limit, read_timeout).await?;
            parse_json::<T>(&body).map_err(warp::Rejection::from)
        })
}

/// Reads a whole body, at most `limit` bytes, within `deadline`: 413 past
/// the limit, 408 past the deadline, 400 when the client breaks off.
pub async fn read_body<B: bytes::Buf>(
    body: impl futures_util::Stream<Item = Result<B, warp::Error>>,
    limit: u64,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    use bytes::BufMut;
    use futures_util::StreamExt;
    let read = async move {
        let mut body = std::pin::pin!(body);
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("reading the body failed: {e}")))?;
            if (out.len() + chunk.remaining()) as u64 > limit {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the request body is larger than {limit} bytes"
                )));
            }
            out.put(chunk);
        }
        Ok(out.freeze())
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::RequestTimeout(format!(
            "the request body did not arrive within {} ms",
            deadline.as_millis()
        ))),
    }
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

/// Parses JSON, telling syntax errors (400) from shape errors (422); a
/// NUL character in any string or key is a 422 naming its JSON path.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // A NUL can only be written `\u0000` in JSON (a raw one is a syntax
    // error), so only a body with that escape is walked.
    if memchr_escape(body) {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(json_error)?;
        if let Some(path) = nul_path(&value, String::new()) {
            return Err(nul_error(if path.is_empty() { "body" } else { &path }));
        }
    }
    serde_json::from_slice(body).map_err(json_error)
}

fn memchr_escape(body: &[u8]) -> bool {
    body.windows(6).any(|w| w == b"\\u0000")
}

/// The error for a text holding NUL: PostgreSQL cannot store one.
pub fn nul_error(field: &str) -> ApiError {
    ApiError::invalid(field, "must not contain a NUL character (U+0000)")
}

/// The JSON path (`agent.greeting`, `metadata.k`, `items[2]`) of the first
/// string or key holding a NUL, if any.
pub fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let path = if at.is_empty() {
                k.replace('\0', "\\u0000")
            } else {
                format!("{at}.{}", k.replace('\0', "\\u0000"))
            };
            if k.contains('\0') {
                Some(path)
            } else {
                nul_path(v, path)
            }
        }),
        _ => None,
    }
}

fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => ApiError::Validation {
            detail: format!("the JSON body does not fit: {e}"),
            errors: Vec::new(),
        },
        _ => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
    }
}

/// The query string as `T`, with a precise 400 when it does not fit; a
/// parameter whose name or value holds a NUL character is a 422 naming it.
pub fn query<T: DeserializeOwned + Send + 'static>()
-> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            if raw.contains("%00") || raw.contains('\0') {
                let pairs =
                    serde_urlencoded::from_str::<Vec<(String, String)>>(&raw).unwrap_or_default();
                if let Some((name, _)) = pairs
                    .iter()
                    .find(|(n, v)| n.contains('\0') || v.contains('\0'))
                {
                    return Err(warp::Rejection::from(nul_error(
                        &name.replace('\0', "\\u0000"),
                    )));
                }
            }
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
        .or(results::routes(ctx.clone()))
        .unify()
        .or(recordings::routes(ctx.clone()))
        .unify()
        .or(webhooks::routes(ctx.clone()))
        .unify()
        .or(health::routes(ctx.clone()))
        .unify()
        .or(openapi::routes())
        .unify()
        .or(vonage::routes(ctx.clone()))
        .unify()
        .or(media::routes(ctx.clone()))
        .unify()
        .or(twilio::routes(ctx.clone()))
        .unify()
        .or(answer::routes(ctx.clone()))
        .unify()
        .or(supervisor::routes(ctx.clone()))
        .unify()
        .or(live::routes(ctx.clone()))
        .unify()
        .or(crate::console::routes())
        .unify();
    api.recover(problem::recover).unify().boxed()
}

/// Serves the routes on a bound listener until `shutdown` completes; every
/// answered request is counted and timed by its route (`telemetry`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Ctx,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let routes = routes(ctx)
        .with(warp::log::custom(telemetry::record))
        .with(warp::trace::request());
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
