//! The recording columns of `calls` (`recording_status`, `_bytes`,
//! `_duration_ms`, `_store`, `_key`, `_ready_at`) and the campaign
//! settings that turn recording on and bound its retention. Kept apart
//! from `calls.rs` so the `Call` model stays as it is.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use talky_actors::ids::{CallId, CampaignId, TenantId};

use super::DbError;
use super::schema::{calls, campaigns, recording_deletions};

/// Raw PCM is being spooled (the call is live, or it ended and waits for
/// an encoder).
pub const SPOOLED: &str = "spooled";
/// An encoder is at work on it.
pub const ENCODING: &str = "encoding";
/// The Ogg Opus file is on the encoding node's disk, on its way to the
/// object store (not served yet).
pub const UPLOADING: &str = "uploading";
/// The Ogg Opus file is there (`recording_store` says where).
pub const READY: &str = "ready";
/// Encoding failed; the spool is kept aside under `spool/failed/`.
pub const FAILED: &str = "failed";
/// Its campaign's retention passed: the file is deleted.
pub const EXPIRED: &str = "expired";
/// Every recording status, in the migration's order.
pub const STATUSES: [&str; 6] = [SPOOLED, ENCODING, UPLOADING, READY, FAILED, EXPIRED];

/// `recording_store` of a recording in the node's directory.
pub const STORE_LOCAL: &str = "local";
/// `recording_store` of a recording in the bucket.
pub const STORE_S3: &str = "s3";

/// A call's recording state.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct RecordingRow {
    /// One of [`STATUSES`]; `None`: not recorded.
    pub status: Option<String>,
    /// Size of the file when uploading or ready.
    pub bytes: Option<i64>,
    /// Length of the audio when uploading or ready.
    pub duration_ms: Option<i32>,
    /// Where a ready recording lives: [`STORE_LOCAL`] or [`STORE_S3`].
    pub store: Option<String>,
    /// Its object key (or path below the recordings directory).
    pub key: Option<String>,
}

/// A ready recording past its campaign's retention.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct ExpiredRow {
    /// The call.
    pub call: uuid::Uuid,
    /// Where it lives.
    pub store: Option<String>,
    /// Its key there.
    pub key: Option<String>,
}

/// Whether the campaign records its calls.
pub async fn campaign_records(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
) -> Result<bool, DbError> {
    Ok(campaigns::table
        .filter(campaigns::tenant_id.eq(tenant.0))
        .filter(campaigns::id.eq(campaign.0))
        .select(campaigns::recording_enabled)
        .first::<bool>(conn)
        .await
        .optional()?
        .unwrap_or(false))
}

/// The recording state of a tenant's call; `None` when there is no such
/// call for this tenant.
pub async fn get(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
) -> Result<Option<RecordingRow>, DbError> {
    Ok(calls::table
        .filter(calls::tenant_id.eq(tenant.0))
        .filter(calls::id.eq(call.0))
        .select((
            calls::recording_status,
            calls::recording_bytes,
            calls::recording_duration_ms,
            calls::recording_store,
            calls::recording_key,
        ))
        .first::<RecordingRow>(conn)
        .await
        .optional()?)
}

/// Sets the status (`None`: not recorded after all, e.g. no audio);
/// clears size and length. Returns whether the call exists.
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
    status: Option<&str>,
) -> Result<bool, DbError> {
    let n = diesel::update(
        calls::table
            .filter(calls::tenant_id.eq(tenant.0))
            .filter(calls::id.eq(call.0)),
    )
    .set((
        calls::recording_status.eq(status),
        calls::recording_bytes.eq(None::<i64>),
        calls::recording_duration_ms.eq(None::<i32>),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Marks the recording encoded, with its size and length: `ready` in
/// `store` under `key` when `store` is given (the file is where it will
/// be served from), else `uploading`. Returns whether the call exists.
pub async fn set_encoded(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
    bytes: u64,
    duration_ms: u64,
    store: Option<(&str, &str)>,
) -> Result<bool, DbError> {
    let status = if store.is_some() { READY } else { UPLOADING };
    let n = diesel::update(
        calls::table
            .filter(calls::tenant_id.eq(tenant.0))
            .filter(calls::id.eq(call.0)),
    )
    .set((
        calls::recording_status.eq(status),
        calls::recording_bytes.eq(i64::try_from(bytes).unwrap_or(i64::MAX)),
        calls::recording_duration_ms.eq(i32::try_from(duration_ms).unwrap_or(i32::MAX)),
        calls::recording_store.eq(store.map(|s| s.0)),
        calls::recording_key.eq(store.map(|s| s.1)),
        calls::recording_ready_at.eq(store.map(|_| Utc::now())),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// An `uploading` recording landed in the bucket under `key`: it is
/// `ready` from now on. Returns whether a row changed (false: the call is
/// gone or was not uploading).
pub async fn set_uploaded(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
    key: &str,
) -> Result<bool, DbError> {
    let n = diesel::update(
        calls::table
            .filter(calls::tenant_id.eq(tenant.0))
            .filter(calls::id.eq(call.0))
            .filter(calls::recording_status.eq(UPLOADING)),
    )
    .set((
        calls::recording_status.eq(READY),
        calls::recording_store.eq(STORE_S3),
        calls::recording_key.eq(key),
        calls::recording_ready_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// A recording left behind by a deleted campaign, to be deleted from
/// its store.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct Deletion {
    /// The queue's id.
    pub id: i64,
    /// Owner.
    pub tenant: uuid::Uuid,
    /// The call it was of (gone).
    pub call: uuid::Uuid,
    /// Where it lived.
    pub store: Option<String>,
    /// Its key there.
    pub key: Option<String>,
}

/// Queues the deletion of every recording of `campaign` that may have a
/// file or an object (anything but `expired`); call it in the
/// transaction that deletes the campaign. How many.
pub async fn queue_campaign_deletions(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
) -> Result<usize, DbError> {
    let at = Utc::now();
    Ok(diesel::insert_into(recording_deletions::table)
        .values(
            calls::table
                .filter(calls::tenant_id.eq(tenant.0))
                .filter(calls::campaign_id.eq(campaign.0))
                .filter(calls::recording_status.is_not_null())
                .filter(calls::recording_status.ne(EXPIRED))
                .select((
                    calls::tenant_id,
                    calls::id,
                    calls::recording_store,
                    calls::recording_key,
                    at.into_sql::<diesel::sql_types::Timestamptz>(),
                )),
        )
        .into_columns((
            recording_deletions::tenant_id,
            recording_deletions::call_id,
            recording_deletions::store,
            recording_deletions::key,
            recording_deletions::created_at,
        ))
        .execute(conn)
        .await?)
}

/// Up to `limit` queued deletions, oldest first.
pub async fn deletions(conn: &mut AsyncPgConnection, limit: i64) -> Result<Vec<Deletion>, DbError> {
    Ok(recording_deletions::table
        .order(recording_deletions::id)
        .limit(limit)
        .select((
            recording_deletions::id,
            recording_deletions::tenant_id,
            recording_deletions::call_id,
            recording_deletions::store,
            recording_deletions::key,
        ))
        .load(conn)
        .await?)
}

/// A queued deletion was carried out. Whether this call removed it.
pub async fn deletion_done(conn: &mut AsyncPgConnection, id: i64) -> Result<bool, DbError> {
    Ok(
        diesel::delete(recording_deletions::table.filter(recording_deletions::id.eq(id)))
            .execute(conn)
            .await?
            > 0,
    )
}

/// Whether the call still exists (an upload that lands after its
/// campaign was deleted removes its object again).
pub async fn call_exists(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        calls::table
            .filter(calls::tenant_id.eq(tenant.0))
            .filter(calls::id.eq(call.0)),
    ))
    .get_result(conn)
    .await?)
}

/// The campaigns with a retention: (tenant, campaign, days).
pub async fn retention_campaigns(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(uuid::Uuid, uuid::Uuid, i32)>, DbError> {
    Ok(campaigns::table
        .filter(campaigns::recording_retention_days.is_not_null())
        .select((
            campaigns::tenant_id,
            campaigns::id,
            campaigns::recording_retention_days.assume_not_null(),
        ))
        .order((campaigns::tenant_id, campaigns::id))
        .load(conn)
        .await?)
}

/// Up to `limit` ready recordings of a campaign that became ready before
/// `cutoff`, oldest first.
pub async fn expired(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ExpiredRow>, DbError> {
    Ok(calls::table
        .filter(calls::tenant_id.eq(tenant.0))
        .filter(calls::campaign_id.eq(campaign.0))
        .filter(calls::recording_status.eq(READY))
        .filter(calls::recording_ready_at.lt(cutoff))
        .order(calls::recording_ready_at)
        .limit(limit)
        .select((calls::id, calls::recording_store, calls::recording_key))
        .load(conn)
        .await?)
}

/// A ready recording was deleted: `expired`. Returns whether this call
/// made the change (another node's sweep may have been first).
pub async fn set_expired(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
) -> Result<bool, DbError> {
    let n = diesel::update(
        calls::table
            .filter(calls::tenant_id.eq(tenant.0))
            .filter(calls::id.eq(call.0))
            .filter(calls::recording_status.eq(READY)),
    )
    .set(calls::recording_status.eq(EXPIRED))
    .execute(conn)
    .await?;
    Ok(n > 0)
}
