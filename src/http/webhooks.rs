//! `/api/v1/webhooks`: a tenant's webhook endpoints (Standard Webhooks),
//! their deliveries and attempts, and replays. The signing secret is
//! shown once, at creation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use talky_actors::ids::{CallId, TenantId};
use utoipa::ToSchema;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{ApiError, Problem};
use super::{Ctx, PageOf, PageParams, auth, json_body, no_content, ok, query, respond, with_ctx};
use crate::webhooks::outbox::{self, Attempt, Delivery, Endpoint, Event, Replay};
use crate::webhooks::{events, sign, target};

/// Endpoints a tenant may have.
pub const MAX_ENDPOINTS: i64 = 20;

/// Request to add an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed: http or https, a public host (unless the
    /// server allows private targets).
    #[schema(example = "https://example.com/talky/events")]
    pub url: String,
    /// Event types to receive: call.started, call.ended, call.analyzed,
    /// contact.do_not_call, campaign.completed.
    #[schema(example = json!(["call.ended", "campaign.completed"]))]
    pub events: Vec<String>,
}

/// An endpoint as listed (no secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Id.
    pub id: Uuid,
    /// Target URL.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Set when the receiver answered 410 Gone: nothing more is sent.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<Endpoint> for WebhookView {
    fn from(e: Endpoint) -> Self {
        Self {
            events: e.event_types(),
            id: e.id,
            url: e.url,
            created_at: e.created_at,
            disabled_at: e.disabled_at,
        }
    }
}

/// A new endpoint with its signing secret (shown this once; no `Debug`,
/// so it cannot end up in a log line).
#[derive(Serialize, ToSchema)]
pub struct NewWebhookView {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` + base64: verify `webhook-signature` with it.
    pub secret: String,
}

/// A page of endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookPage {
    /// Endpoints, oldest first.
    pub items: Vec<WebhookView>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// Number, from 1.
    pub attempt: i32,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Took, ms.
    pub duration_ms: i32,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i32>,
    /// Why there was no answer (timeout, refused, ...).
    pub error: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
        }
    }
}

/// One event's delivery to this endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Delivery id (replay it with this).
    pub id: Uuid,
    /// The webhook (endpoint) it goes to.
    pub endpoint_id: Uuid,
    /// The `webhook-id` header: the event's, stable across retries and replays.
    pub webhook_id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event happened.
    pub timestamp: DateTime<Utc>,
    /// pending, delivered, failed (retries exhausted), disabled (410).
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last HTTP status.
    pub last_status: Option<i32>,
    /// Delivered, failed or disabled at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt, in order.
    pub attempt_log: Vec<AttemptView>,
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Deliveries, oldest first.
    pub items: Vec<DeliveryView>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// The replay was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    /// The delivery.
    pub id: Uuid,
    /// The same `webhook-id` as before.
    pub webhook_id: String,
    /// `pending`.
    pub state: String,
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let limit = ctx.config.server.max_json_body_bytes;
    let read_timeout = ctx.body_read_timeout();
    let list = warp::path!("api" / "v1" / "webhooks")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(query::<PageParams>())
        .and_then(|tenant, ctx: Ctx, q| respond(ctx.clone(), list_webhooks(ctx, tenant, q)));
    let create = warp::path!("api" / "v1" / "webhooks")
        .and(warp::post())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(json_body::<CreateWebhook>(limit, read_timeout))
        .and_then(|tenant, ctx: Ctx, body| respond(ctx.clone(), create_webhook(ctx, tenant, body)));
    let get = warp::path!("api" / "v1" / "webhooks" / Uuid)
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), get_webhook(ctx, tenant, id)));
    let delete = warp::path!("api" / "v1" / "webhooks" / Uuid)
        .and(warp::delete())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), delete_webhook(ctx, tenant, id)));
    let deliveries = warp::path!("api" / "v1" / "webhooks" / Uuid / "deliveries")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(query::<PageParams>())
        .and_then(|id, tenant, ctx: Ctx, q| {
            respond(ctx.clone(), list_deliveries(ctx, tenant, id, q))
        });
    let of_call = warp::path!("api" / "v1" / "calls" / CallId / "deliveries")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), call_deliveries(ctx, tenant, id)));
    let replay = warp::path!("api" / "v1" / "webhooks" / Uuid / "deliveries" / Uuid / "replay")
        .and(warp::post())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|id, delivery, tenant, ctx: Ctx| {
            respond(ctx.clone(), replay_delivery(ctx, tenant, id, delivery))
        });
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(delete)
        .unify()
        .or(deliveries)
        .unify()
        .or(replay)
        .unify()
        .or(of_call)
        .unify()
        .boxed()
}

/// The event list of a request: known names, at least one, no repeats
/// (kept in the order given).
fn valid_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid(
            "events",
            format!(
                "must name at least one of {}",
                events::EVENT_TYPES.join(", ")
            ),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, name) in events.iter().enumerate() {
        if !events::EVENT_TYPES.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                format!("events[{i}]"),
                format!(
                    "unknown event type {name:?}; known: {}",
                    events::EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    Ok(out)
}

/// List the tenant's webhook endpoints (without their secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of endpoints", body = WebhookPage),
        (status = 400, description = "Bad query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad page", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_webhooks(
    ctx: Ctx,
    tenant: TenantId,
    q: PageParams,
) -> Result<Response, ApiError> {
    let page = q.id_page()?;
    let mut conn = ctx.conn().await?;
    let rows = outbox::list_endpoints(&mut conn, tenant, page).await?;
    let views: Vec<WebhookView> = rows.into_iter().map(Into::into).collect();
    ok(
        StatusCode::OK,
        &PageOf::new(views, page.limit, |w| w.id.to_string()),
    )
}

/// Add a webhook endpoint. The answer carries its signing secret, shown
/// this once: every delivery is signed per Standard Webhooks
/// (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    security(("bearer" = [])),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "The endpoint and its secret", body = NewWebhookView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad URL or event type (the field is named), or too many endpoints", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_webhook(
    ctx: Ctx,
    tenant: TenantId,
    body: CreateWebhook,
) -> Result<Response, ApiError> {
    let events = valid_events(&body.events)?;
    let cfg = &ctx.config.webhooks;
    let url = target::check(
        &body.url,
        cfg.allow_private_targets,
        std::time::Duration::from_millis(cfg.timeout_ms.min(5_000)),
    )
    .await
    .map_err(|e| ApiError::invalid("url", e.to_string()))?;
    let mut conn = ctx.conn().await?;
    if outbox::count_endpoints(&mut conn, tenant).await? >= MAX_ENDPOINTS {
        return Err(ApiError::invalid(
            "url",
            format!("a tenant may have at most {MAX_ENDPOINTS} webhook endpoints"),
        ));
    }
    let secret = sign::new_secret();
    let endpoint =
        outbox::create_endpoint(&mut conn, tenant, url.as_str(), &events, &secret).await?;
    ok(
        StatusCode::CREATED,
        &NewWebhookView {
            webhook: endpoint.into(),
            secret,
        },
    )
}

async fn endpoint(ctx: &Ctx, tenant: TenantId, id: Uuid) -> Result<Endpoint, ApiError> {
    let mut conn = ctx.conn().await?;
    outbox::get_endpoint(&mut conn, tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook {id}")))
}

/// Get a webhook endpoint (without its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_webhook(ctx: Ctx, tenant: TenantId, id: Uuid) -> Result<Response, ApiError> {
    let endpoint = endpoint(&ctx, tenant, id).await?;
    ok(StatusCode::OK, &WebhookView::from(endpoint))
}

/// Delete a webhook endpoint with its deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_webhook(ctx: Ctx, tenant: TenantId, id: Uuid) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    if outbox::delete_endpoint(&mut conn, tenant, id).await? {
        no_content()
    } else {
        Err(ApiError::NotFound(format!("no webhook {id}")))
    }
}

fn delivery_view(d: Delivery, e: Event, attempts: &mut Vec<Attempt>) -> DeliveryView {
    let mine: Vec<AttemptView> = attempts
        .extract_if(.., |a| a.delivery_id == d.id)
        .map(Into::into)
        .collect();
    DeliveryView {
        id: d.id,
        endpoint_id: d.endpoint_id,
        webhook_id: outbox::webhook_id(e.id),
        event_type: e.event_type,
        timestamp: e.occurred_at,
        next_attempt_at: (d.state == "pending").then_some(d.next_attempt_at),
        state: d.state,
        attempts: d.attempts,
        last_status: d.last_status,
        finished_at: d.finished_at,
        attempt_log: mine,
    }
}

/// An endpoint's deliveries: each event with its state, attempts (status
/// codes, errors, durations) and next attempt.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Webhook id"), PageParams),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "Bad query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad page", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_deliveries(
    ctx: Ctx,
    tenant: TenantId,
    id: Uuid,
    q: PageParams,
) -> Result<Response, ApiError> {
    let page = q.id_page()?;
    endpoint(&ctx, tenant, id).await?;
    let mut conn = ctx.conn().await?;
    let rows = outbox::deliveries(&mut conn, tenant, id, page).await?;
    let ids: Vec<Uuid> = rows.iter().map(|(d, _)| d.id).collect();
    let mut attempts = outbox::attempts(&mut conn, tenant, &ids).await?;
    let views: Vec<DeliveryView> = rows
        .into_iter()
        .map(|(d, e)| delivery_view(d, e, &mut attempts))
        .collect();
    ok(
        StatusCode::OK,
        &PageOf::new(views, page.limit, |d| d.id.to_string()),
    )
}

/// The webhook deliveries of one call's events (`call.started`,
/// `call.ended`, `call.analyzed`, a `contact.do_not_call` it asked for) to
/// every endpoint, oldest first; at most 200, in one page.
#[utoipa::path(get, path = "/api/v1/calls/{id}/deliveries", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Call id")),
    responses(
        (status = 200, description = "The call's deliveries", body = DeliveryPage),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn call_deliveries(ctx: Ctx, tenant: TenantId, id: CallId) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    if crate::db::calls::get(&mut conn, tenant, id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no call {}", id.0)));
    }
    let rows = outbox::call_deliveries(&mut conn, tenant, id.0).await?;
    let ids: Vec<Uuid> = rows.iter().map(|(d, _)| d.id).collect();
    let mut attempts = outbox::attempts(&mut conn, tenant, &ids).await?;
    let items: Vec<DeliveryView> = rows
        .into_iter()
        .map(|(d, e)| delivery_view(d, e, &mut attempts))
        .collect();
    ok(
        StatusCode::OK,
        &DeliveryPage {
            items,
            next_cursor: None,
        },
    )
}

/// Send a delivery's event again: a new attempt of the same event with
/// the same `webhook-id`, due now, retried as a new delivery would be.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/replay", tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Webhook id"),
        ("delivery" = uuid::Uuid, Path, description = "Delivery id"),
    ),
    responses(
        (status = 202, description = "Queued", body = ReplayView),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook or delivery", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled (it answered 410)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay_delivery(
    ctx: Ctx,
    tenant: TenantId,
    id: Uuid,
    delivery: Uuid,
) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    match outbox::replay(&mut conn, tenant, id, delivery, Utc::now()).await? {
        Replay::NotFound => Err(ApiError::NotFound(format!(
            "no delivery {delivery} of webhook {id}"
        ))),
        Replay::Disabled => Err(ApiError::Conflict(format!(
            "webhook {id} is disabled: its receiver answered 410 Gone"
        ))),
        Replay::Queued(event) => ok(
            StatusCode::ACCEPTED,
            &ReplayView {
                id: delivery,
                webhook_id: outbox::webhook_id(event),
                state: "pending".into(),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists() {
        let ok = valid_events(&[
            "call.ended".into(),
            "call.ended".into(),
            "call.started".into(),
        ])
        .expect("valid");
        assert_eq!(ok, ["call.ended", "call.started"]);
        assert!(valid_events(&[]).is_err());
        let err = valid_events(&["call.ended".into(), "call.exploded".into()]).unwrap_err();
        assert!(format!("{err:?}").contains("events[1]"), "{err:?}");
    }
}
