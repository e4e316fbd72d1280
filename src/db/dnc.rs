//! The tenant's do-not-call list. A number on it is never dialled by any
//! campaign of the tenant: adding it marks matching contacts `dnc`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use talky_actors::ids::{CallId, TenantId};
use uuid::Uuid;

use super::DbError;
use super::contacts;
use super::schema::dnc_numbers;

/// A listed number.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = dnc_numbers)]
pub struct DncNumber {
    /// Owner.
    pub tenant_id: Uuid,
    /// E.164 number.
    pub phone: String,
    /// Why it was listed (operator's note, or the call that asked).
    pub reason: Option<String>,
    /// When it was listed.
    pub created_at: DateTime<Utc>,
}

/// Lists a number (idempotent) and marks the tenant's contacts with it.
/// Returns the entry and whether it was new.
pub async fn add(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    phone: &str,
    reason: Option<&str>,
) -> Result<(DncNumber, bool), DbError> {
    add_from(conn, tenant, phone, reason, None).await
}

/// [`add`], naming the call whose callee asked (`None`: an operator):
/// a number newly listed is reported as `contact.do_not_call` in the same
/// transaction.
pub async fn add_from(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    phone: &str,
    reason: Option<&str>,
    call: Option<CallId>,
) -> Result<(DncNumber, bool), DbError> {
    let phone = phone.to_string();
    let reason = reason.map(str::to_string);
    conn.transaction::<_, DbError, _>(async move |conn| {
        let row = DncNumber {
            tenant_id: tenant.0,
            phone: phone.clone(),
            reason,
            created_at: Utc::now(),
        };
        let inserted = diesel::insert_into(dnc_numbers::table)
            .values(&row)
            .on_conflict((dnc_numbers::tenant_id, dnc_numbers::phone))
            .do_nothing()
            .execute(conn)
            .await?;
        contacts::mark_dnc_number(conn, tenant, &phone).await?;
        let stored = get(conn, tenant, &phone)
            .await?
            .ok_or(DbError::Query(diesel::result::Error::NotFound))?;
        if inserted > 0 {
            use crate::webhooks::{events, outbox};
            let data = events::do_not_call(
                &stored.phone,
                stored.reason.as_deref(),
                call.map(|c| c.0),
                stored.created_at,
            );
            outbox::emit(
                conn,
                tenant.0,
                events::CONTACT_DO_NOT_CALL,
                data,
                stored.created_at,
            )
            .await?;
        }
        Ok((stored, inserted > 0))
    })
    .await
}

/// One listed number.
pub async fn get(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    phone: &str,
) -> Result<Option<DncNumber>, DbError> {
    Ok(dnc_numbers::table
        .filter(dnc_numbers::tenant_id.eq(tenant.0))
        .filter(dnc_numbers::phone.eq(phone))
        .select(DncNumber::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Removes a number; its contacts become dialable again. False when it
/// was not listed.
pub async fn remove(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    phone: &str,
) -> Result<bool, DbError> {
    let phone = phone.to_string();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let n = diesel::delete(
            dnc_numbers::table
                .filter(dnc_numbers::tenant_id.eq(tenant.0))
                .filter(dnc_numbers::phone.eq(&phone)),
        )
        .execute(conn)
        .await?;
        if n > 0 {
            contacts::unmark_dnc_number(conn, tenant, &phone).await?;
        }
        Ok(n > 0)
    })
    .await
}

/// A page of the list, ordered by number; `after` is the last number seen.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    limit: i64,
    after: Option<&str>,
) -> Result<Vec<DncNumber>, DbError> {
    let mut query = dnc_numbers::table
        .filter(dnc_numbers::tenant_id.eq(tenant.0))
        .select(DncNumber::as_select())
        .order(dnc_numbers::phone)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(dnc_numbers::phone.gt(after.to_string()));
    }
    Ok(query.load(conn).await?)
}
