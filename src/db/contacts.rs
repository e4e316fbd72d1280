//! Contacts of a campaign. Unique per (campaign, phone): an upload that
//! repeats a number skips it and counts it as a duplicate.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use talky_actors::ids::{CampaignId, TenantId};
use uuid::Uuid;

use super::schema::{contacts, dnc_numbers};
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
