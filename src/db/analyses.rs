//! Post-call analyses: the durable queue and the stored results, one row
//! per call (`call_analyses`).
//!
//! A conversation's call is queued (`pending`) in the transaction that
//! finishes it ([`mark_in_tx`], from `calls::finish_*`), so no finished
//! conversation is ever left unqueued by a crash. Workers of any node
//! [`claim`] one row at a time (`FOR UPDATE SKIP LOCKED`, leased to the
//! node); a lease that lapsed (its node died) is claimed again. The
//! result lands only through [`store`], only while the lease is still the
//! claimer's.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Int4, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use talky_actors::ids::{CallId, TenantId};
use uuid::Uuid;

use super::DbError;
use super::schema::{call_analyses, calls};

/// Claims after which a call that keeps killing its workers' nodes is
/// given up on (stored as an error).
pub const MAX_CLAIMS: i32 = 5;

/// A call's analysis row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = call_analyses)]
pub struct CallAnalysis {
    /// Owner.
    pub tenant_id: Uuid,
    /// The call.
    pub call_id: Uuid,
    /// Its campaign.
    pub campaign_id: Uuid,
    /// `pending`, `running`, `done` or `error`.
    pub state: String,
    /// Times a worker claimed it.
    pub claims: i32,
    /// The node holding the claim.
    pub lease_owner: Option<String>,
    /// Until when.
    pub lease_until: Option<DateTime<Utc>>,
    /// The summary (`done`).
    pub summary: Option<String>,
    /// Data valid against the campaign's schema (`done`).
    pub structured_data: Option<Value>,
    /// The verdict by the rubric (`done`).
    pub success: Option<Value>,
    /// Why it failed (`error`).
    pub error: Option<String>,
    /// The LLM provider that answered.
    pub provider: Option<String>,
    /// Queued.
    pub requested_at: DateTime<Utc>,
    /// Last claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// Stored.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Queues the analysis of a finished call when its campaign has analysis
/// settings and the call had a conversation (a callee turn); nothing
/// otherwise, and nothing when one is queued or stored already. One
/// statement: call it inside the transaction that finishes the call.
pub async fn mark_in_tx(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
    at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "INSERT INTO call_analyses (tenant_id, call_id, campaign_id, state, requested_at) \
         SELECT c.tenant_id, c.id, c.campaign_id, 'pending', $3 \
         FROM calls c JOIN campaigns k ON k.tenant_id = c.tenant_id AND k.id = c.campaign_id \
         WHERE c.tenant_id = $1 AND c.id = $2 AND k.analysis IS NOT NULL \
           AND EXISTS (SELECT 1 FROM call_turns t \
                       WHERE t.tenant_id = c.tenant_id AND t.call_id = c.id AND t.speaker = 'user') \
         ON CONFLICT (tenant_id, call_id) DO NOTHING",
    )
    .bind::<SqlUuid, _>(tenant.0)
    .bind::<SqlUuid, _>(call.0)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Why a re-run was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Rerun {
    /// Queued (again).
    Queued,
    /// No such call of this tenant.
    NotFound,
    /// The call is not finished.
    NotFinished,
    /// The call had no conversation (no callee turn).
    NoConversation,
    /// Its campaign has no analysis settings.
    NotConfigured,
}

/// Queues a finished conversation's analysis again (the operator's
/// re-run): back to `pending` with its claims reset, keeping the last
/// result visible until the new one replaces it. A run in progress is
/// taken over (its store no longer matches the lease).
pub async fn rerun(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
    at: DateTime<Utc>,
) -> Result<Rerun, DbError> {
    conn.transaction::<_, DbError, _>(async move |conn| {
        let Some(row) = super::calls::get(conn, tenant, call).await? else {
            return Ok(Rerun::NotFound);
        };
        if row.status != "finished" {
            return Ok(Rerun::NotFinished);
        }
        let turns = super::calls::turns(conn, tenant, call).await?;
        if !turns.iter().any(|t| t.speaker == "user") {
            return Ok(Rerun::NoConversation);
        }
        let campaign =
            super::campaigns::get(conn, tenant, talky_actors::ids::CampaignId(row.campaign_id))
                .await?;
        if campaign.and_then(|c| c.analysis).is_none() {
            return Ok(Rerun::NotConfigured);
        }
        diesel::insert_into(call_analyses::table)
            .values((
                call_analyses::tenant_id.eq(tenant.0),
                call_analyses::call_id.eq(call.0),
                call_analyses::campaign_id.eq(row.campaign_id),
                call_analyses::state.eq("pending"),
                call_analyses::requested_at.eq(at),
            ))
            .on_conflict((call_analyses::tenant_id, call_analyses::call_id))
            .do_update()
            .set((
                call_analyses::state.eq("pending"),
                call_analyses::claims.eq(0),
                call_analyses::lease_owner.eq(None::<String>),
                call_analyses::lease_until.eq(None::<DateTime<Utc>>),
                call_analyses::requested_at.eq(at),
            ))
            .execute(conn)
            .await?;
        Ok(Rerun::Queued)
    })
    .await
}

/// A claimed analysis.
#[derive(Clone, Debug, QueryableByName)]
pub struct Claim {
    /// Owner.
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    /// The call.
    #[diesel(sql_type = SqlUuid)]
    pub call_id: Uuid,
    /// Its campaign.
    #[diesel(sql_type = SqlUuid)]
    pub campaign_id: Uuid,
    /// How many times it has been claimed, this one included.
    #[diesel(sql_type = Int4)]
    pub claims: i32,
}

/// Claims the oldest due analysis for `node` until `now + lease`: a
/// `pending` row, or a `running` one whose lease lapsed (its node died).
/// Rows other workers hold locked are skipped, so workers of every node
/// take different rows. `None`: nothing due.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    node: &str,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> Result<Option<Claim>, DbError> {
    let rows: Vec<Claim> = diesel::sql_query(
        "UPDATE call_analyses a \
         SET state = 'running', lease_owner = $1, lease_until = $3, claims = a.claims + 1, started_at = $2 \
         FROM (SELECT tenant_id, call_id FROM call_analyses \
               WHERE state = 'pending' OR (state = 'running' AND lease_until < $2) \
               ORDER BY requested_at LIMIT 1 FOR UPDATE SKIP LOCKED) due \
         WHERE a.tenant_id = due.tenant_id AND a.call_id = due.call_id \
         RETURNING a.tenant_id, a.call_id, a.campaign_id, a.claims",
    )
    .bind::<Text, _>(node)
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(now + lease)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// What an analysis came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Valid results.
    Done {
        /// The summary.
        summary: String,
        /// Data valid against the campaign's schema.
        structured_data: Option<Value>,
        /// The verdict.
        success: Option<Value>,
        /// The provider that answered.
        provider: String,
    },
    /// Why there are none (never data that failed validation).
    Error(String),
}

/// Stores an analysis' outcome, in one transaction, only while `node`
/// still holds the claim (a lapsed lease another node took, or a re-run
/// queued meanwhile, makes this a no-op: `false`).
pub async fn store(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
    node: &str,
    outcome: &Outcome,
    at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let outcome = outcome.clone();
    let node = node.to_string();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let target = call_analyses::table
            .filter(call_analyses::tenant_id.eq(tenant.0))
            .filter(call_analyses::call_id.eq(call.0))
            .filter(call_analyses::state.eq("running"))
            .filter(call_analyses::lease_owner.eq(&node));
        let (state, summary, data, success, error, provider) = match outcome {
            Outcome::Done {
                summary,
                structured_data,
                success,
                provider,
            } => (
                "done",
                Some(summary),
                structured_data,
                success,
                None,
                Some(provider),
            ),
            Outcome::Error(e) => ("error", None, None, None, Some(e), None),
        };
        let stored: Option<CallAnalysis> = diesel::update(target)
            .set((
                call_analyses::state.eq(state),
                call_analyses::summary.eq(summary),
                call_analyses::structured_data.eq(data),
                call_analyses::success.eq(success),
                call_analyses::error.eq(error),
                call_analyses::provider.eq(provider),
                call_analyses::lease_owner.eq(None::<String>),
                call_analyses::lease_until.eq(None::<DateTime<Utc>>),
                call_analyses::completed_at.eq(at),
            ))
            .returning(CallAnalysis::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        let Some(analysis) = stored else {
            return Ok(false);
        };
        // `call.analyzed` in the transaction that stores the result (done
        // or error), so the event and the result land together or not at
        // all.
        use crate::webhooks::{events, outbox};
        if outbox::subscribed(conn, tenant.0, events::CALL_ANALYZED).await? {
            let data = serde_json::json!({
                "call_id": analysis.call_id,
                "campaign_id": analysis.campaign_id,
                "state": analysis.state,
                "summary": analysis.summary,
                "structured_data": analysis.structured_data,
                "success": analysis.success,
                "error": analysis.error,
                "provider": analysis.provider,
                "completed_at": analysis.completed_at,
            });
            outbox::emit(conn, tenant.0, events::CALL_ANALYZED, data, at).await?;
        }
        Ok(true)
    })
    .await
}

/// Gives a claim back unfinished (no LLM answered), to be claimed again
/// from `until`: still `running`, with no owner and the lease ending
/// then, so [`claim`] takes it once that passes. Only by the claim's
/// holder; `false` otherwise.
pub async fn release(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
    node: &str,
    until: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::update(
        call_analyses::table
            .filter(call_analyses::tenant_id.eq(tenant.0))
            .filter(call_analyses::call_id.eq(call.0))
            .filter(call_analyses::state.eq("running"))
            .filter(call_analyses::lease_owner.eq(node)),
    )
    .set((
        call_analyses::lease_owner.eq(None::<String>),
        call_analyses::lease_until.eq(until),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// A call's analysis, if one was ever queued.
pub async fn get(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
) -> Result<Option<CallAnalysis>, DbError> {
    Ok(call_analyses::table
        .filter(call_analyses::tenant_id.eq(tenant.0))
        .filter(call_analyses::call_id.eq(call.0))
        .select(CallAnalysis::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Analyses waiting for a worker or running (every tenant): the gauge.
pub async fn open_count(conn: &mut AsyncPgConnection) -> Result<i64, DbError> {
    Ok(call_analyses::table
        .filter(call_analyses::state.eq_any(["pending", "running"]))
        .count()
        .get_result(conn)
        .await?)
}

/// The latest analysis (by attempt) of each of `contacts`' calls, with
/// the contact's id: the results export's page.
pub async fn latest_for_contacts(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    contacts: &[Uuid],
) -> Result<Vec<(Uuid, CallAnalysis)>, DbError> {
    Ok(call_analyses::table
        .inner_join(
            calls::table.on(calls::tenant_id
                .eq(call_analyses::tenant_id)
                .and(calls::id.eq(call_analyses::call_id))),
        )
        .filter(call_analyses::tenant_id.eq(tenant.0))
        .filter(calls::tenant_id.eq(tenant.0))
        .filter(calls::contact_id.eq_any(contacts))
        .order((calls::contact_id, calls::attempt.desc()))
        .distinct_on(calls::contact_id)
        .select((calls::contact_id, CallAnalysis::as_select()))
        .load(conn)
        .await?)
}
