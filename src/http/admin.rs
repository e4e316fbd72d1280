//! `/api/v1/admin`: what only the admin token may do.

use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::api_keys::{NewApiKeyView, valid_name};
use super::problem::{ApiError, Problem};
use super::{Ctx, auth, json_body, ok, respond, with_ctx};
use crate::db;

/// Request to create a tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Display name, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Tenant id.
    pub id: uuid::Uuid,
    /// Display name.
    pub name: String,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<db::tenants::Tenant> for TenantView {
    fn from(t: db::tenants::Tenant) -> Self {
        Self {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
        }
    }
}

/// A new tenant and its first API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: TenantView,
    /// Its first key; the secret is shown only here.
    pub api_key: NewApiKeyView,
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let limit = ctx.config.server.max_json_body_bytes;
    let read_timeout = ctx.body_read_timeout();
    warp::path!("api" / "v1" / "admin" / "tenants")
        .and(warp::post())
        .and(auth::admin(ctx.clone()))
        .and(with_ctx(ctx))
        .and(json_body::<CreateTenant>(limit, read_timeout))
        .and_then(|ctx: Ctx, body| respond(ctx.clone(), create_tenant(ctx, body)))
        .boxed()
}

/// Creates a tenant with a first key; shared with `talky tenant create`.
pub async fn create_tenant_with_key(
    conn: &mut diesel_async::AsyncPgConnection,
    name: &str,
) -> Result<CreatedTenant, db::DbError> {
    let name = name.to_string();
    conn.transaction::<_, db::DbError, _>(async move |conn| {
        let tenant = db::tenants::create(conn, &name).await?;
        let key = db::api_keys::create(conn, tenant.tenant_id(), "default").await?;
        Ok(CreatedTenant {
            tenant: tenant.into(),
            api_key: key.into(),
        })
    })
    .await
}

/// Create a tenant and its first API key (admin token).
#[utoipa::path(post, path = "/api/v1/admin/tenants", tag = "admin",
    security(("admin" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, description = "The tenant and its first key", body = CreatedTenant),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_tenant(ctx: Ctx, body: CreateTenant) -> Result<Response, ApiError> {
    let name = valid_name("name", &body.name)?;
    let mut conn = ctx.conn().await?;
    let created = create_tenant_with_key(&mut conn, &name).await?;
    ok(StatusCode::CREATED, &created)
}
