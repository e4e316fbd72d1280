//! `/api/v1/api-keys`: a tenant's operator keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use talky_actors::ids::{ApiKeyId, TenantId};
use utoipa::ToSchema;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{ApiError, Problem};
use super::{Ctx, auth, json_body, no_content, ok, respond, with_ctx};
use crate::db;

/// An API key as listed (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Key id (for revoking).
    pub id: uuid::Uuid,
    /// Operator's label.
    pub name: String,
    /// First characters of the key, to tell keys apart.
    pub prefix: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last used (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<db::api_keys::ApiKey> for ApiKeyView {
    fn from(k: db::api_keys::ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiKeyView {
    /// The key's listing.
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The secret: `Authorization: Bearer <secret>`. Not retrievable later.
    pub secret: String,
}

impl From<db::api_keys::NewKey> for NewApiKeyView {
    fn from(k: db::api_keys::NewKey) -> Self {
        Self {
            key: k.key.into(),
            secret: k.secret,
        }
    }
}

/// Request to make a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// Label, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// The tenant's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Every key, revoked ones included, oldest first.
    pub items: Vec<ApiKeyView>,
}

/// Validates a display name (tenants, keys, campaigns).
pub fn valid_name(field: &str, name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if chars > 200 {
        return Err(ApiError::invalid(field, "must be at most 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let limit = ctx.config.server.max_json_body_bytes;
    let read_timeout = ctx.body_read_timeout();
    let list = warp::path!("api" / "v1" / "api-keys")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|tenant, ctx: Ctx| respond(ctx.clone(), list_keys(ctx, tenant)));
    let create = warp::path!("api" / "v1" / "api-keys")
        .and(warp::post())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(json_body::<CreateApiKey>(limit, read_timeout))
        .and_then(|tenant, ctx: Ctx, body| respond(ctx.clone(), create_key(ctx, tenant, body)));
    let revoke = warp::path!("api" / "v1" / "api-keys" / ApiKeyId)
        .and(warp::delete())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), revoke_key(ctx, tenant, id)));
    list.or(create).unify().or(revoke).unify().boxed()
}

/// List the tenant's API keys.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_keys(ctx: Ctx, tenant: TenantId) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    let items = db::api_keys::list(&mut conn, tenant).await?;
    ok(
        StatusCode::OK,
        &ApiKeyList {
            items: items.into_iter().map(Into::into).collect(),
        },
    )
}

/// Make another API key for the tenant; the secret is shown once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys",
    security(("bearer" = [])),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The new key and its secret", body = NewApiKeyView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_key(
    ctx: Ctx,
    tenant: TenantId,
    body: CreateApiKey,
) -> Result<Response, ApiError> {
    let name = valid_name("name", &body.name)?;
    let mut conn = ctx.conn().await?;
    let key = db::api_keys::create(&mut conn, tenant, &name).await?;
    ok(StatusCode::CREATED, &NewApiKeyView::from(key))
}

/// Revoke an API key (it may be the one making the request).
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked (or already revoked)"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_key(ctx: Ctx, tenant: TenantId, id: ApiKeyId) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    match db::api_keys::revoke(&mut conn, tenant, id).await? {
        Some(_) => no_content(),
        None => Err(ApiError::NotFound(format!("no API key {id}"))),
    }
}
