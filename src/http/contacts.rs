//! `/api/v1/campaigns/{id}/contacts`: upload (CSV or JSON) and list.
//!
//! The body is read to its end first (at most `contacts.max_upload_bytes`,
//! within `server.body_read_timeout_ms`), before any pooled connection or
//! row lock is taken, so a client that sends slowly holds nothing another
//! tenant or a live call needs. Then the upload is one transaction: rows
//! are parsed from the buffer and inserted in batches; a fatal problem (too
//! many rows, a broken file) rolls the whole upload back, while invalid
//! rows are only reported and the valid ones kept. The trade: memory per
//! upload is bounded by `max_upload_bytes` (32 MiB by default) rather than
//! by a batch.

use bytes::Buf;
use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use talky_actors::ids::{CampaignId, ContactId, TenantId};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{ApiError, Problem};
use super::{Ctx, PageOf, PageParams, auth, ok, query, respond, with_ctx};
use crate::db;
use crate::db::contacts::{Contact, STATUSES};
use crate::import::{self, ContactRow, CsvImport, ImportError, Row, RowError};

/// Rows inserted per statement.
const INSERT_BATCH: usize = 1000;
/// Row errors listed in a response; the rest are only counted.
const MAX_LISTED_ERRORS: usize = 1000;

/// What an upload did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ImportReport {
    /// Rows stored as new contacts.
    pub accepted: usize,
    /// Rows skipped because the campaign already has the number.
    pub duplicates: usize,
    /// Rows refused (see `errors`).
    pub invalid: usize,
    /// New contacts held back because the number is on the do-not-call list.
    pub do_not_call: usize,
    /// The first row errors, with their CSV line or JSON index.
    pub errors: Vec<ImportRowError>,
    /// True when there were more errors than listed.
    pub errors_truncated: bool,
}

/// A refused row.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRowError {
    /// CSV: the line where the row starts (the header is line 1). JSON: 1-based index.
    pub line: u64,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl From<RowError> for ImportRowError {
    fn from(e: RowError) -> Self {
        Self {
            line: e.line,
            field: e.field,
            message: e.message,
        }
    }
}

/// A contact as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// Contact id.
    pub id: uuid::Uuid,
    /// E.164 number.
    pub phone: String,
    /// Name.
    pub name: Option<String>,
    /// IANA time zone; null when the number spans several and none was given.
    pub timezone: Option<String>,
    /// Extra columns of the upload.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// pending, in_progress, retry, completed, failed or dnc.
    pub status: String,
    /// Dial attempts so far.
    pub attempts: i32,
    /// Earliest next dial.
    pub next_attempt_at: Option<chrono::DateTime<Utc>>,
    /// Outcome of the last call.
    pub last_outcome: Option<String>,
    /// Created.
    pub created_at: chrono::DateTime<Utc>,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        Self {
            id: c.id,
            phone: c.phone,
            name: c.name,
            timezone: c.timezone,
            metadata: c.metadata,
            status: c.status,
            attempts: c.attempts,
            next_attempt_at: c.next_attempt_at,
            last_outcome: c.last_outcome,
            created_at: c.created_at,
        }
    }
}

/// A page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPage {
    /// The contacts, in upload order.
    pub items: Vec<ContactView>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Filters of the contact list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ContactListParams {
    /// Only contacts with this status.
    pub status: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let upload = warp::path!("api" / "v1" / "campaigns" / CampaignId / "contacts")
        .and(warp::post())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(
            |id, tenant, ctx: Ctx, content_type: Option<String>, length: Option<u64>, body| async move {
                // Read before `respond`: the body's own deadline, not the
                // handler's, applies to a client that sends slowly.
                let body = match read_upload(&ctx, content_type.as_deref(), length, body).await {
                    Ok(body) => body,
                    Err(e) => return Ok::<_, warp::Rejection>(e.into_response()),
                };
                respond(ctx.clone(), upload_contacts(ctx, tenant, id, content_type, body)).await
            },
        );
    let list = warp::path!("api" / "v1" / "campaigns" / CampaignId / "contacts")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx))
        .and(query::<ContactListParams>())
        .and_then(|id, tenant, ctx: Ctx, q| {
            respond(ctx.clone(), list_contacts(ctx, tenant, id, q))
        });
    upload.or(list).unify().boxed()
}

/// Checks the content type and reads the whole upload, at most
/// `contacts.max_upload_bytes`, within `server.body_read_timeout_ms`.
async fn read_upload(
    ctx: &Ctx,
    content_type: Option<&str>,
    content_length: Option<u64>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Send,
) -> Result<bytes::Bytes, ApiError> {
    format_of(content_type)?;
    let limit = ctx.config.contacts.max_upload_bytes;
    if content_length.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(format!(
            "the upload is larger than {limit} bytes"
        )));
    }
    super::read_body(body, limit, ctx.body_read_timeout())
        .await
        .map_err(|e| match e {
            ApiError::PayloadTooLarge(_) => {
                ApiError::PayloadTooLarge(format!("the upload is larger than {limit} bytes"))
            }
            other => other,
        })
}

enum Format {
    Csv,
    Json,
}

fn format_of(content_type: Option<&str>) -> Result<Format, ApiError> {
    let essence = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match essence.as_str() {
        "text/csv" | "application/csv" => Ok(Format::Csv),
        "application/json" => Ok(Format::Json),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "contacts are uploaded as text/csv or application/json, not {}",
            content_type.map_or("a body without Content-Type".to_string(), |c| format!(
                "{c:?}"
            ))
        ))),
    }
}

fn import_error(e: ImportError) -> ApiError {
    let status = e.status();
    let message = e.to_string();
    match status {
        413 => ApiError::PayloadTooLarge(message),
        422 => ApiError::Validation {
            detail: message,
            errors: Vec::new(),
        },
        _ => ApiError::BadRequest(format!("reading the upload failed: {message}")),
    }
}

/// Turns valid rows into contact rows and stores them.
async fn store(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    rows: Vec<Row>,
    report: &mut ImportReport,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let mut batch = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            Row::Valid(ContactRow {
                phone,
                name,
                timezone,
                metadata,
                ..
            }) => batch.push(Contact {
                id: ContactId::new().0,
                tenant_id: tenant.0,
                campaign_id: campaign.0,
                phone,
                name,
                timezone,
                metadata: serde_json::Value::Object(metadata),
                status: "pending".into(),
                attempts: 0,
                next_attempt_at: None,
                last_outcome: None,
                created_at: now,
                updated_at: now,
            }),
            Row::Invalid(error) => {
                report.invalid += 1;
                if report.errors.len() < MAX_LISTED_ERRORS {
                    report.errors.push(error.into());
                } else {
                    report.errors_truncated = true;
                }
            }
        }
    }
    for chunk in batch.chunks(INSERT_BATCH) {
        let inserted = db::contacts::insert_batch(conn, chunk).await?;
        report.accepted += inserted;
        report.duplicates += chunk.len() - inserted;
    }
    Ok(())
}

/// Upload contacts as CSV (`text/csv`: header row, `phone` required,
/// `name` and `timezone` optional, other columns kept as metadata) or JSON
/// (`application/json`: an array of `{phone, name?, timezone?, metadata?}`).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/contacts", tag = "contacts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Campaign id")),
    request_body(content(
        (String = "text/csv"),
        (Vec<Object> = "application/json"),
    ), description = "The contact list"),
    responses(
        (status = 200, description = "What was stored and what was refused", body = ImportReport),
        (status = 400, description = "Unreadable body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within its read deadline", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The campaign has ended", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too large or too many rows", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither CSV nor JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Broken file (header, quoting, field too long)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload_contacts(
    ctx: Ctx,
    tenant: TenantId,
    id: CampaignId,
    content_type: Option<String>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let format = format_of(content_type.as_deref())?;
    let opts = ctx.import;
    let mut conn = ctx.conn().await?;
    let report = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let campaign = db::campaigns::lock(conn, tenant, id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no campaign {id}")))?;
            if campaign.state().is_terminal() {
                return Err(ApiError::Conflict(format!(
                    "campaign {id} is {}; contacts can no longer be added",
                    campaign.state()
                )));
            }
            let mut report = ImportReport::default();
            match format {
                Format::Csv => {
                    let mut csv = CsvImport::new(&body[..], &opts)
                        .await
                        .map_err(import_error)?;
                    while let Some(rows) =
                        csv.next_batch(INSERT_BATCH).await.map_err(import_error)?
                    {
                        store(conn, tenant, id, rows, &mut report).await?;
                    }
                }
                Format::Json => {
                    let mut rows = import::parse_json(&body, &opts).map_err(import_error)?;
                    while !rows.is_empty() {
                        let rest = rows.split_off(rows.len().min(INSERT_BATCH));
                        store(conn, tenant, id, rows, &mut report).await?;
                        rows = rest;
                    }
                }
            }
            report.do_not_call = db::contacts::mark_dnc_in_campaign(conn, tenant, id).await?;
            Ok(report)
        })
        .await?;
    ok(StatusCode::OK, &report)
}

/// List a campaign's contacts.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/contacts", tag = "contacts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Campaign id"), ContactListParams),
    responses(
        (status = 200, description = "A page of contacts", body = ContactPage),
        (status = 400, description = "Bad query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad filter or page", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_contacts(
    ctx: Ctx,
    tenant: TenantId,
    id: CampaignId,
    q: ContactListParams,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) if STATUSES.contains(&s) => Some(s),
        Some(s) => {
            return Err(ApiError::invalid(
                "status",
                format!("{s:?} is not one of {}", STATUSES.join(", ")),
            ));
        }
    };
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .id_page()?;
    let mut conn = ctx.conn().await?;
    if db::campaigns::get(&mut conn, tenant, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no campaign {id}")));
    }
    let rows = db::contacts::list(&mut conn, tenant, id, status, page).await?;
    let views: Vec<ContactView> = rows.into_iter().map(Into::into).collect();
    ok(
        StatusCode::OK,
        &PageOf::new(views, page.limit, |c| c.id.to_string()),
    )
}
