//! `/api/v1/dnc`: the tenant's do-not-call list.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use talky_actors::ids::TenantId;
use utoipa::ToSchema;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{ApiError, Problem};
use super::{Ctx, PageOf, PageParams, auth, json_body, no_content, ok, query, respond, with_ctx};
use crate::db;

/// A listed number.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncView {
    /// E.164 number.
    pub phone: String,
    /// Why it was listed.
    pub reason: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<db::dnc::DncNumber> for DncView {
    fn from(d: db::dnc::DncNumber) -> Self {
        Self {
            phone: d.phone,
            reason: d.reason,
            created_at: d.created_at,
        }
    }
}

/// A page of the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncPage {
    /// Numbers in order.
    pub items: Vec<DncView>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Request to list a number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDnc {
    /// The number (E.164, or national in the default region).
    #[schema(min_length = 1, max_length = 64, example = "+14155550123")]
    pub phone: String,
    /// Why, at most 500 characters.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let limit = ctx.config.server.max_json_body_bytes;
    let read_timeout = ctx.body_read_timeout();
    let list = warp::path!("api" / "v1" / "dnc")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(query::<PageParams>())
        .and_then(|tenant, ctx: Ctx, q| respond(ctx.clone(), list_dnc(ctx, tenant, q)));
    let add = warp::path!("api" / "v1" / "dnc")
        .and(warp::post())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(json_body::<AddDnc>(limit, read_timeout))
        .and_then(|tenant, ctx: Ctx, body| respond(ctx.clone(), add_dnc(ctx, tenant, body)));
    let remove = warp::path!("api" / "v1" / "dnc" / String)
        .and(warp::delete())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|phone: String, tenant, ctx: Ctx| {
            respond(ctx.clone(), remove_dnc(ctx, tenant, phone))
        });
    list.or(add).unify().or(remove).unify().boxed()
}

fn normalize(ctx: &Ctx, phone: &str) -> Result<String, ApiError> {
    crate::phone::normalize(phone, ctx.import.default_region)
        .map_err(|e| ApiError::invalid("phone", e.to_string()))
}

/// List the do-not-call numbers.
#[utoipa::path(get, path = "/api/v1/dnc", tag = "dnc",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of numbers", body = DncPage),
        (status = 400, description = "Bad query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad page", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_dnc(ctx: Ctx, tenant: TenantId, q: PageParams) -> Result<Response, ApiError> {
    let limit = q.limit()?;
    let mut conn = ctx.conn().await?;
    let rows = db::dnc::list(&mut conn, tenant, limit, q.cursor.as_deref()).await?;
    let views: Vec<DncView> = rows.into_iter().map(Into::into).collect();
    ok(
        StatusCode::OK,
        &PageOf::new(views, limit, |d| d.phone.clone()),
    )
}

/// Put a number on the list; the tenant's undialled contacts with it are
/// marked `dnc`. 201 when new, 200 when it was listed already.
#[utoipa::path(post, path = "/api/v1/dnc", tag = "dnc",
    security(("bearer" = [])),
    request_body = AddDnc,
    responses(
        (status = 201, description = "Listed", body = DncView),
        (status = 200, description = "Was listed already", body = DncView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid number", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_dnc(ctx: Ctx, tenant: TenantId, body: AddDnc) -> Result<Response, ApiError> {
    let phone = normalize(&ctx, &body.phone)?;
    let reason = body
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::invalid(
            "reason",
            "must be at most 500 characters",
        ));
    }
    let mut conn = ctx.conn().await?;
    let (entry, new) = db::dnc::add(&mut conn, tenant, &phone, reason.as_deref()).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    ok(status, &DncView::from(entry))
}

/// Take a number off the list; its contacts become dialable again.
#[utoipa::path(delete, path = "/api/v1/dnc/{phone}", tag = "dnc",
    security(("bearer" = [])),
    params(("phone" = String, Path, description = "The number, URL-encoded (%2B for +)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not on the list", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid number", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_dnc(ctx: Ctx, tenant: TenantId, phone: String) -> Result<Response, ApiError> {
    let decoded = percent_decode(&phone);
    let phone = normalize(&ctx, &decoded)?;
    let mut conn = ctx.conn().await?;
    if db::dnc::remove(&mut conn, tenant, &phone).await? {
        no_content()
    } else {
        Err(ApiError::NotFound(format!(
            "{phone} is not on the do-not-call list"
        )))
    }
}

/// Decodes %XX escapes of a path segment (a `+` stays a plus).
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_path_segments() {
        assert_eq!(percent_decode("%2B14155550123"), "+14155550123");
        assert_eq!(percent_decode("+14155550123"), "+14155550123");
        assert_eq!(percent_decode("%2b1%20415"), "+1 415");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
