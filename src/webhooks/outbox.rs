//! The durable outbox: model functions over `webhook_endpoints`,
//! `webhook_events`, `webhook_deliveries` and `webhook_attempts`.
//!
//! [`emit`] is called by the model functions that make a reported state
//! change, on their connection and inside their transaction: the event
//! exists exactly when the change does. The delivery worker ([`claim`],
//! [`record`]) then works from these rows alone, so a crash at any point
//! loses no event (a claimed delivery's lease lapses and another worker
//! sends it again, with the same `webhook-id`: at least once).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use talky_actors::ids::TenantId;
use uuid::Uuid;

use crate::db::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events};
use crate::db::{DbError, Page};

/// A tenant's receiver. Its `Debug` never shows the secret.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub struct Endpoint {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed event types (a JSON array of names).
    pub events: serde_json::Value,
    /// `whsec_...`, the signing secret.
    pub secret: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// The receiver answered 410: nothing more is sent.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

impl Endpoint {
    /// The subscribed event types.
    pub fn event_types(&self) -> Vec<String> {
        self.events
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One event of a tenant.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_events)]
pub struct Event {
    /// Id (`webhook-id` is [`webhook_id`] of it).
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// `call.ended`, ...
    pub event_type: String,
    /// The event's `data`.
    pub data: serde_json::Value,
    /// When the state change happened (the body's `timestamp`).
    pub occurred_at: DateTime<Utc>,
}

/// One event on its way to one endpoint.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct Delivery {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// The receiver.
    pub endpoint_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// pending, delivered, failed (gave up), disabled (the receiver said 410).
    pub state: String,
    /// Attempts claimed so far.
    pub attempts: i32,
    /// When it is due (while pending).
    pub next_attempt_at: DateTime<Utc>,
    /// A worker's lease.
    pub locked_until: Option<DateTime<Utc>>,
    /// Start of the retry window.
    pub retry_from: DateTime<Utc>,
    /// Last HTTP status answered.
    pub last_status: Option<i32>,
    /// Last error (no HTTP answer).
    pub last_error: Option<String>,
    /// Created with its event.
    pub created_at: DateTime<Utc>,
    /// Delivered, failed or disabled at.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One attempt of a delivery.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = webhook_attempts)]
pub struct Attempt {
    /// The delivery.
    pub delivery_id: Uuid,
    /// Its number (from 1).
    pub attempt: i32,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// How long the request took.
    pub duration_ms: i32,
    /// The receiver's status, when it answered.
    pub status_code: Option<i32>,
    /// What went wrong, when it did not.
    pub error: Option<String>,
}

/// The `webhook-id` of an event: stable across retries and replays.
pub fn webhook_id(event: Uuid) -> String {
    format!("msg_{}", event.simple())
}

fn subscribed_to(
    tenant: Uuid,
    event_type: &str,
) -> webhook_endpoints::BoxedQuery<'static, diesel::pg::Pg> {
    use diesel::PgJsonbExpressionMethods;
    webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant))
        .filter(webhook_endpoints::disabled_at.is_null())
        .filter(webhook_endpoints::events.contains(serde_json::json!([event_type])))
        .into_boxed()
}

/// Whether any live endpoint of `tenant` takes `event_type` (callers skip
/// building an event's data when none does).
pub async fn subscribed(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    event_type: &str,
) -> Result<bool, DbError> {
    Ok(
        diesel::select(diesel::dsl::exists(subscribed_to(tenant, event_type)))
            .get_result(conn)
            .await?,
    )
}

/// Writes `event_type` with `data` (at `at`) to the outbox: the event and
/// one pending delivery per live endpoint of `tenant` subscribed to it;
/// nothing when there is none. Call it on the connection, inside the
/// transaction, of the state change it reports.
pub async fn emit(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    event_type: &str,
    data: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    let event_type = event_type.to_string();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let endpoints: Vec<Uuid> = subscribed_to(tenant, &event_type)
            .select(webhook_endpoints::id)
            .load(conn)
            .await?;
        if endpoints.is_empty() {
            return Ok(());
        }
        let event = Event {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            event_type,
            data,
            occurred_at: at,
        };
        diesel::insert_into(webhook_events::table)
            .values(&event)
            .execute(conn)
            .await?;
        let now = Utc::now();
        let rows: Vec<Delivery> = endpoints
            .into_iter()
            .map(|endpoint| Delivery {
                id: Uuid::now_v7(),
                tenant_id: tenant,
                endpoint_id: endpoint,
                event_id: event.id,
                state: "pending".into(),
                attempts: 0,
                next_attempt_at: now,
                locked_until: None,
                retry_from: at,
                last_status: None,
                last_error: None,
                created_at: now,
                finished_at: None,
            })
            .collect();
        diesel::insert_into(webhook_deliveries::table)
            .values(&rows)
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}

// ----- endpoints (the API) ---------------------------------------------------

/// Stores a new endpoint.
pub async fn create_endpoint(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    url: &str,
    events: &[String],
    secret: &str,
) -> Result<Endpoint, DbError> {
    let row = Endpoint {
        id: Uuid::now_v7(),
        tenant_id: tenant.0,
        url: url.to_string(),
        events: serde_json::json!(events),
        secret: secret.to_string(),
        created_at: Utc::now(),
        disabled_at: None,
    };
    Ok(diesel::insert_into(webhook_endpoints::table)
        .values(&row)
        .returning(Endpoint::as_returning())
        .get_result(conn)
        .await?)
}

/// How many endpoints a tenant has.
pub async fn count_endpoints(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
) -> Result<i64, DbError> {
    Ok(webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant.0))
        .count()
        .get_result(conn)
        .await?)
}

/// A page of a tenant's endpoints.
pub async fn list_endpoints(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    page: Page,
) -> Result<Vec<Endpoint>, DbError> {
    let mut query = webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant.0))
        .select(Endpoint::as_select())
        .order(webhook_endpoints::id)
        .limit(page.limit)
        .into_boxed();
    if let Some(after) = page.after {
        query = query.filter(webhook_endpoints::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// One endpoint of a tenant.
pub async fn get_endpoint(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<Endpoint>, DbError> {
    Ok(webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant.0))
        .filter(webhook_endpoints::id.eq(id))
        .select(Endpoint::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Deletes an endpoint with its deliveries; false when there was none.
pub async fn delete_endpoint(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: Uuid,
) -> Result<bool, DbError> {
    let n = diesel::delete(
        webhook_endpoints::table
            .filter(webhook_endpoints::tenant_id.eq(tenant.0))
            .filter(webhook_endpoints::id.eq(id)),
    )
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// A page of an endpoint's deliveries with their events, oldest first.
pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    endpoint: Uuid,
    page: Page,
) -> Result<Vec<(Delivery, Event)>, DbError> {
    let mut query = webhook_deliveries::table
        .inner_join(webhook_events::table)
        .filter(webhook_deliveries::tenant_id.eq(tenant.0))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .filter(webhook_events::tenant_id.eq(tenant.0))
        .select((Delivery::as_select(), Event::as_select()))
        .order(webhook_deliveries::id)
        .limit(page.limit)
        .into_boxed();
    if let Some(after) = page.after {
        query = query.filter(webhook_deliveries::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// At most this many deliveries are listed for one call (a call has
/// three events or four; each goes to every subscribed endpoint).
pub const CALL_DELIVERIES_MAX: i64 = 200;

/// The deliveries of every event about `call` (started, ended, analysed,
/// a do-not-call it asked for) to any endpoint, oldest first, at most
/// [`CALL_DELIVERIES_MAX`].
pub async fn call_deliveries(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: Uuid,
) -> Result<Vec<(Delivery, Event)>, DbError> {
    // The expression of `webhook_events_call_idx`.
    let events: Vec<ClaimedId> = diesel::sql_query(
        "SELECT id FROM webhook_events \
         WHERE tenant_id = $1 AND COALESCE(data ->> 'call_id', data ->> 'id') = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(tenant.0)
    .bind::<diesel::sql_types::Text, _>(call.to_string())
    .load(conn)
    .await?;
    let ids: Vec<Uuid> = events.into_iter().map(|e| e.id).collect();
    Ok(webhook_deliveries::table
        .inner_join(webhook_events::table)
        .filter(webhook_deliveries::tenant_id.eq(tenant.0))
        .filter(webhook_deliveries::event_id.eq_any(&ids))
        .select((Delivery::as_select(), Event::as_select()))
        .order(webhook_deliveries::id)
        .limit(CALL_DELIVERIES_MAX)
        .load(conn)
        .await?)
}

/// The attempts of some deliveries, in order.
pub async fn attempts(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    deliveries: &[Uuid],
) -> Result<Vec<Attempt>, DbError> {
    Ok(webhook_attempts::table
        .filter(webhook_attempts::tenant_id.eq(tenant.0))
        .filter(webhook_attempts::delivery_id.eq_any(deliveries))
        .order((webhook_attempts::delivery_id, webhook_attempts::id))
        .select(Attempt::as_select())
        .load(conn)
        .await?)
}

/// What a replay found.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// Due again now, with a fresh retry window (the event's id).
    Queued(Uuid),
    /// No such delivery of this endpoint and tenant.
    NotFound,
    /// The endpoint is disabled (it answered 410).
    Disabled,
}

/// Sends a delivery's event again (same event, same `webhook-id`): the
/// delivery is pending, due now, its retry window starting now.
pub async fn replay(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    endpoint: Uuid,
    delivery: Uuid,
    now: DateTime<Utc>,
) -> Result<Replay, DbError> {
    conn.transaction::<_, DbError, _>(async move |conn| {
        let Some(ep) = get_endpoint(conn, tenant, endpoint).await? else {
            return Ok(Replay::NotFound);
        };
        if ep.disabled_at.is_some() {
            return Ok(Replay::Disabled);
        }
        let event = diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::tenant_id.eq(tenant.0))
                .filter(webhook_deliveries::endpoint_id.eq(endpoint))
                .filter(webhook_deliveries::id.eq(delivery)),
        )
        .set((
            webhook_deliveries::state.eq("pending"),
            webhook_deliveries::next_attempt_at.eq(now),
            webhook_deliveries::retry_from.eq(now),
            webhook_deliveries::finished_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(webhook_deliveries::event_id)
        .get_result::<Uuid>(conn)
        .await
        .optional()?;
        Ok(event.map_or(Replay::NotFound, Replay::Queued))
    })
    .await
}

// ----- the worker ------------------------------------------------------------

/// A delivery a worker holds (its lease), with what it needs to send it.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The delivery (`attempts` already counts this attempt).
    pub delivery: Delivery,
    /// Its event.
    pub event: Event,
    /// Its receiver.
    pub endpoint: Endpoint,
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// Claims up to `limit` due deliveries for `lease`, across tenants, at
/// most one per endpoint and none of an endpoint that has one in flight
/// (so a slow or dead receiver holds one worker at most and every other
/// endpoint gets its turn), and no more than `per_tenant` in flight for
/// one tenant (counting those already in flight on any node), so that a
/// tenant's many slow endpoints never take every worker from the others;
/// oldest due first. `FOR UPDATE SKIP LOCKED` and the re-checked lease
/// keep two nodes from claiming the same one.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    limit: i64,
    per_tenant: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, DbError> {
    let ids: Vec<ClaimedId> = diesel::sql_query(
        "WITH busy AS ( \
             SELECT DISTINCT endpoint_id FROM webhook_deliveries \
             WHERE state = 'pending' AND locked_until > now() \
         ), inflight AS ( \
             SELECT tenant_id, count(*) AS n FROM webhook_deliveries \
             WHERE state = 'pending' AND locked_until > now() \
             GROUP BY tenant_id \
         ), due AS ( \
             SELECT DISTINCT ON (d.endpoint_id) d.id, d.tenant_id, d.next_attempt_at \
             FROM webhook_deliveries d \
             WHERE d.state = 'pending' AND d.next_attempt_at <= now() \
               AND (d.locked_until IS NULL OR d.locked_until <= now()) \
               AND d.endpoint_id NOT IN (SELECT endpoint_id FROM busy) \
             ORDER BY d.endpoint_id, d.next_attempt_at, d.id \
         ), fair AS ( \
             SELECT due.id, due.next_attempt_at FROM ( \
                 SELECT due.*, row_number() OVER ( \
                     PARTITION BY due.tenant_id ORDER BY due.next_attempt_at, due.id) AS rank \
                 FROM due \
             ) due LEFT JOIN inflight ON inflight.tenant_id = due.tenant_id \
             WHERE due.rank + COALESCE(inflight.n, 0) <= $3 \
         ), picked AS ( \
             SELECT d.id FROM webhook_deliveries d JOIN fair ON fair.id = d.id \
             ORDER BY fair.next_attempt_at \
             LIMIT $1 \
             FOR UPDATE OF d SKIP LOCKED \
         ) \
         UPDATE webhook_deliveries w \
         SET locked_until = now() + $2 * interval '1 millisecond', attempts = w.attempts + 1 \
         FROM picked \
         WHERE w.id = picked.id AND w.state = 'pending' \
           AND (w.locked_until IS NULL OR w.locked_until <= now()) \
         RETURNING w.id",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<diesel::sql_types::BigInt, _>(lease.as_millis().min(i64::MAX as u128) as i64)
    .bind::<diesel::sql_types::BigInt, _>(per_tenant)
    .load(conn)
    .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = ids.into_iter().map(|c| c.id).collect();
    let rows: Vec<(Delivery, Event, Endpoint)> = webhook_deliveries::table
        .inner_join(webhook_events::table)
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::id.eq_any(&ids))
        .select((
            Delivery::as_select(),
            Event::as_select(),
            Endpoint::as_select(),
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(delivery, event, endpoint)| Claimed {
            delivery,
            event,
            endpoint,
        })
        .collect())
}

/// What became of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// 410: the endpoint is disabled, its pending deliveries end.
    Gone,
    /// Try again then.
    Retry(DateTime<Utc>),
    /// The retry window is over.
    Failed,
}

/// One attempt as it went.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Took.
    pub duration_ms: i32,
    /// The receiver's status.
    pub status_code: Option<i32>,
    /// Or what went wrong.
    pub error: Option<String>,
}

/// Records an attempt of a claimed delivery and its outcome, in one
/// transaction. The outcome is written only while the delivery is still
/// this claim's (its attempt count unchanged: a worker whose lease lapsed
/// and was claimed again writes its attempt, not its verdict). `false`
/// when the delivery is gone (its endpoint deleted meanwhile).
pub async fn record(
    conn: &mut AsyncPgConnection,
    claimed: &Delivery,
    attempt: AttemptRecord,
    outcome: Outcome,
) -> Result<bool, DbError> {
    let d = claimed.clone();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let exists: bool = diesel::select(diesel::dsl::exists(
            webhook_deliveries::table.filter(webhook_deliveries::id.eq(d.id)),
        ))
        .get_result(conn)
        .await?;
        if !exists {
            return Ok(false);
        }
        diesel::insert_into(webhook_attempts::table)
            .values((
                webhook_attempts::tenant_id.eq(d.tenant_id),
                webhook_attempts::delivery_id.eq(d.id),
                webhook_attempts::attempt.eq(d.attempts),
                webhook_attempts::started_at.eq(attempt.started_at),
                webhook_attempts::duration_ms.eq(attempt.duration_ms),
                webhook_attempts::status_code.eq(attempt.status_code),
                webhook_attempts::error.eq(&attempt.error),
            ))
            .execute(conn)
            .await?;
        let now = Utc::now();
        let mine = webhook_deliveries::table
            .filter(webhook_deliveries::id.eq(d.id))
            .filter(webhook_deliveries::attempts.eq(d.attempts))
            .filter(webhook_deliveries::state.eq("pending"));
        let last = (
            webhook_deliveries::last_status.eq(attempt.status_code),
            webhook_deliveries::last_error.eq(&attempt.error),
            webhook_deliveries::locked_until.eq(None::<DateTime<Utc>>),
        );
        match outcome {
            Outcome::Delivered | Outcome::Failed => {
                let state = if outcome == Outcome::Delivered {
                    "delivered"
                } else {
                    "failed"
                };
                diesel::update(mine)
                    .set((
                        last,
                        webhook_deliveries::state.eq(state),
                        webhook_deliveries::finished_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
            }
            Outcome::Retry(at) => {
                diesel::update(mine)
                    .set((last, webhook_deliveries::next_attempt_at.eq(at)))
                    .execute(conn)
                    .await?;
            }
            Outcome::Gone => {
                diesel::update(mine).set(last).execute(conn).await?;
                diesel::update(
                    webhook_endpoints::table
                        .filter(webhook_endpoints::id.eq(d.endpoint_id))
                        .filter(webhook_endpoints::disabled_at.is_null()),
                )
                .set(webhook_endpoints::disabled_at.eq(now))
                .execute(conn)
                .await?;
                diesel::update(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::tenant_id.eq(d.tenant_id))
                        .filter(webhook_deliveries::endpoint_id.eq(d.endpoint_id))
                        .filter(webhook_deliveries::state.eq("pending")),
                )
                .set((
                    webhook_deliveries::state.eq("disabled"),
                    webhook_deliveries::finished_at.eq(now),
                    webhook_deliveries::locked_until.eq(None::<DateTime<Utc>>),
                ))
                .execute(conn)
                .await?;
            }
        }
        Ok(true)
    })
    .await
}

/// Deletes up to `batch` events that occurred before `before` and have
/// no delivery still pending, with their deliveries and attempts (the
/// foreign keys cascade); how many. The retention sweeper calls it until
/// it returns less than `batch`. A pending delivery (retrying, or
/// replayed) keeps its event whatever its age: an event is never dropped
/// before its receiver had its chance.
pub async fn sweep(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<usize, DbError> {
    let pending = webhook_deliveries::table
        .filter(webhook_deliveries::event_id.eq(webhook_events::id))
        .filter(webhook_deliveries::state.eq("pending"));
    let old: Vec<Uuid> = webhook_events::table
        .filter(webhook_events::occurred_at.lt(before))
        .filter(diesel::dsl::not(diesel::dsl::exists(pending)))
        .select(webhook_events::id)
        .order(webhook_events::occurred_at)
        .limit(batch)
        .load(conn)
        .await?;
    if old.is_empty() {
        return Ok(0);
    }
    Ok(
        diesel::delete(webhook_events::table.filter(webhook_events::id.eq_any(&old)))
            .execute(conn)
            .await?,
    )
}

/// Deliveries still pending, across tenants (the pending gauge).
pub async fn pending_count(conn: &mut AsyncPgConnection) -> Result<i64, DbError> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::state.eq("pending"))
        .count()
        .get_result(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_never_prints_its_secret() {
        let e = Endpoint {
            id: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            url: "https://example.com/h".into(),
            events: serde_json::json!(["call.ended"]),
            secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=".into(),
            created_at: Utc::now(),
            disabled_at: None,
        };
        let printed = format!("{e:?}");
        assert!(!printed.contains("c2VjcmV0"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert_eq!(e.event_types(), ["call.ended"]);
        assert_eq!(
            webhook_id(Uuid::nil()),
            "msg_00000000000000000000000000000000"
        );
    }
}
