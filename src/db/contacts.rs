//! Contacts of a campaign. Unique per (campaign, phone): an upload that
//! repeats a number skips it and counts it as a duplicate.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use talky_actors::campaign::CampaignState;
use talky_actors::ids::{CampaignId, ContactId, TenantId};
use uuid::Uuid;

use super::schema::{campaigns, contacts, dnc_numbers};
use super::{DbError, Page};

/// Contact statuses, as stored.
pub const STATUSES: [&str; 6] = [
    "pending",
    "in_progress",
    "retry",
    "completed",
    "failed",
    "dnc",
];

/// A stored contact.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = contacts)]
pub struct Contact {
    /// Primary key.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// The campaign that dials it.
    pub campaign_id: Uuid,
    /// E.164 number.
    pub phone: String,
    /// Name the agent may use.
    pub name: Option<String>,
    /// IANA zone for the calling window; None when ambiguous.
    pub timezone: Option<String>,
    /// Operator's extra columns, available to the agent's prompt.
    pub metadata: serde_json::Value,
    /// One of [`STATUSES`].
    pub status: String,
    /// Dial attempts made.
    pub attempts: i32,
    /// Earliest next dial (retries, callbacks).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Outcome of the last call.
    pub last_outcome: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Inserts contacts, skipping numbers the campaign already has; returns
/// how many were inserted. Call inside the import's transaction.
pub async fn insert_batch(
    conn: &mut AsyncPgConnection,
    rows: &[Contact],
) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    Ok(diesel::insert_into(contacts::table)
        .values(rows)
        .on_conflict((contacts::tenant_id, contacts::campaign_id, contacts::phone))
        .do_nothing()
        .execute(conn)
        .await?)
}

/// Marks the campaign's dialable contacts whose number is on the tenant's
/// do-not-call list; returns how many were marked.
pub async fn mark_dnc_in_campaign(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
) -> Result<usize, DbError> {
    let listed = dnc_numbers::table
        .filter(dnc_numbers::tenant_id.eq(tenant.0))
        .select(dnc_numbers::phone);
    Ok(diesel::update(
        contacts::table
            .filter(contacts::tenant_id.eq(tenant.0))
            .filter(contacts::campaign_id.eq(campaign.0))
            .filter(contacts::status.eq_any(["pending", "retry"]))
            .filter(contacts::phone.eq_any(listed)),
    )
    .set((
        contacts::status.eq("dnc"),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?)
}

/// Marks every dialable contact of the tenant with this number.
pub async fn mark_dnc_number(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    phone: &str,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        contacts::table
            .filter(contacts::tenant_id.eq(tenant.0))
            .filter(contacts::phone.eq(phone))
            .filter(contacts::status.eq_any(["pending", "retry"])),
    )
    .set((
        contacts::status.eq("dnc"),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?)
}

/// Makes contacts held back only by the do-not-call list dialable again:
/// `retry` when they were tried before, else `pending`.
pub async fn unmark_dnc_number(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    phone: &str,
) -> Result<usize, DbError> {
    use diesel::dsl::sql;
    use diesel::sql_types::Text;
    Ok(diesel::update(
        contacts::table
            .filter(contacts::tenant_id.eq(tenant.0))
            .filter(contacts::phone.eq(phone))
            .filter(contacts::status.eq("dnc")),
    )
    .set((
        contacts::status.eq(sql::<Text>(
            "CASE WHEN attempts > 0 THEN 'retry' ELSE 'pending' END",
        )),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?)
}

/// A page of a campaign's contacts, optionally with one status.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    status: Option<&str>,
    page: Page,
) -> Result<Vec<Contact>, DbError> {
    let mut query = contacts::table
        .filter(contacts::tenant_id.eq(tenant.0))
        .filter(contacts::campaign_id.eq(campaign.0))
        .select(Contact::as_select())
        .order(contacts::id)
        .limit(page.limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(contacts::status.eq(status.to_string()));
    }
    if let Some(after) = page.after {
        query = query.filter(contacts::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// Statuses a contact can be dialled from.
const DIALABLE: [&str; 2] = ["pending", "retry"];

fn in_campaign(
    tenant: TenantId,
    campaign: CampaignId,
) -> diesel::dsl::And<
    diesel::dsl::Eq<contacts::tenant_id, uuid::Uuid>,
    diesel::dsl::Eq<contacts::campaign_id, uuid::Uuid>,
> {
    contacts::tenant_id
        .eq(tenant.0)
        .and(contacts::campaign_id.eq(campaign.0))
}

/// Up to `limit` contacts due at `now`, oldest due first (see the
/// CampaignStore contract): dialable, due, attempts below `max_attempts`
/// unless a callback is due, and not on the tenant's do-not-call list.
pub async fn due(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    now: DateTime<Utc>,
    max_attempts: i32,
    limit: i64,
) -> Result<Vec<Contact>, DbError> {
    let listed = dnc_numbers::table
        .filter(dnc_numbers::tenant_id.eq(tenant.0))
        .select(dnc_numbers::phone);
    Ok(contacts::table
        .filter(in_campaign(tenant, campaign))
        .filter(contacts::status.eq_any(DIALABLE))
        .filter(
            contacts::next_attempt_at
                .is_null()
                .or(contacts::next_attempt_at.le(now)),
        )
        .filter(
            contacts::attempts
                .lt(max_attempts)
                .or(contacts::last_outcome.eq("callback_requested")),
        )
        .filter(diesel::dsl::not(contacts::phone.eq_any(listed)))
        .order((contacts::next_attempt_at.asc().nulls_first(), contacts::id))
        .limit(limit)
        .select(Contact::as_select())
        .load(conn)
        .await?)
}

/// Moves a dialable contact to `in_progress`, only while its campaign is
/// stored `running` (checked in the same statement, so once an operator's
/// pause or stop is committed, through any node, nothing more is claimed);
/// false if nothing was claimed.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    contact: ContactId,
) -> Result<bool, DbError> {
    let running = campaigns::table
        .filter(campaigns::tenant_id.eq(tenant.0))
        .filter(campaigns::id.eq(campaign.0))
        .filter(campaigns::state.eq(CampaignState::Running.as_str()));
    let n = diesel::update(
        contacts::table
            .filter(in_campaign(tenant, campaign))
            .filter(contacts::id.eq(contact.0))
            .filter(contacts::status.eq_any(DIALABLE))
            .filter(diesel::dsl::exists(running)),
    )
    .set((
        contacts::status.eq("in_progress"),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Gives back a claim that did not become a call.
pub async fn release(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    contact: ContactId,
    until: DateTime<Utc>,
) -> Result<(), DbError> {
    use diesel::dsl::sql;
    use diesel::sql_types::Text;
    diesel::update(
        contacts::table
            .filter(in_campaign(tenant, campaign))
            .filter(contacts::id.eq(contact.0))
            .filter(contacts::status.eq("in_progress")),
    )
    .set((
        contacts::status.eq(sql::<Text>(
            "CASE WHEN attempts > 0 THEN 'retry' ELSE 'pending' END",
        )),
        contacts::next_attempt_at.eq(until),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Outside its window: try again at `until`.
pub async fn defer(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    contact: ContactId,
    until: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::update(
        contacts::table
            .filter(in_campaign(tenant, campaign))
            .filter(contacts::id.eq(contact.0))
            .filter(contacts::status.eq_any(DIALABLE)),
    )
    .set((
        contacts::next_attempt_at.eq(until),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a dialable contact as failed without a call.
pub async fn give_up(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    contact: ContactId,
    reason: &str,
) -> Result<(), DbError> {
    diesel::update(
        contacts::table
            .filter(in_campaign(tenant, campaign))
            .filter(contacts::id.eq(contact.0))
            .filter(contacts::status.eq_any(DIALABLE)),
    )
    .set((
        contacts::status.eq("failed"),
        contacts::last_outcome.eq(reason),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// The outcome of attempt `attempts`; a repeat (attempts not above the
/// stored count) changes nothing.
#[allow(clippy::too_many_arguments)]
pub async fn record_outcome(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    contact: ContactId,
    outcome: &str,
    status: &str,
    next_attempt_at: Option<DateTime<Utc>>,
    attempts: i32,
) -> Result<bool, DbError> {
    let n = diesel::update(
        contacts::table
            .filter(in_campaign(tenant, campaign))
            .filter(contacts::id.eq(contact.0))
            .filter(contacts::attempts.lt(attempts)),
    )
    .set((
        contacts::attempts.eq(attempts),
        contacts::last_outcome.eq(outcome),
        contacts::status.eq(status),
        contacts::next_attempt_at.eq(next_attempt_at),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Contacts of a campaign in a status.
pub async fn with_status(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    status: &str,
) -> Result<Vec<Contact>, DbError> {
    Ok(contacts::table
        .filter(in_campaign(tenant, campaign))
        .filter(contacts::status.eq(status.to_string()))
        .order(contacts::id)
        .select(Contact::as_select())
        .load(conn)
        .await?)
}

/// Contacts not in a final status.
pub async fn remaining(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
) -> Result<i64, DbError> {
    Ok(contacts::table
        .filter(in_campaign(tenant, campaign))
        .filter(contacts::status.eq_any(["pending", "retry", "in_progress"]))
        .count()
        .get_result(conn)
        .await?)
}
