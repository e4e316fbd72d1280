//! The recording columns of `calls` (`recording_status`, `_bytes`,
//! `_duration_ms`) and the campaign flag that turns recording on. Kept
//! apart from `calls.rs` so the `Call` model stays as it is.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use talky_actors::ids::{CallId, CampaignId, TenantId};

use super::DbError;
use super::schema::{calls, campaigns};

/// Raw PCM is being spooled (the call is live, or it ended and waits for
/// an encoder).
pub const SPOOLED: &str = "spooled";
/// An encoder is at work on it.
pub const ENCODING: &str = "encoding";
/// The Ogg Opus file is there.
pub const READY: &str = "ready";
/// Encoding failed; the spool is kept aside under `spool/failed/`.
pub const FAILED: &str = "failed";
/// Every recording status, in the migration's order.
pub const STATUSES: [&str; 4] = [SPOOLED, ENCODING, READY, FAILED];

/// A call's recording state.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct RecordingRow {
    /// `spooled`, `encoding`, `ready`, `failed`; `None`: not recorded.
    pub status: Option<String>,
    /// Size of the file when ready.
    pub bytes: Option<i64>,
    /// Length of the audio when ready.
    pub duration_ms: Option<i32>,
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

/// Marks the recording ready with its size and length. Returns whether
/// the call exists.
pub async fn set_ready(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    call: CallId,
    bytes: u64,
    duration_ms: u64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        calls::table
            .filter(calls::tenant_id.eq(tenant.0))
            .filter(calls::id.eq(call.0)),
    )
    .set((
        calls::recording_status.eq(READY),
        calls::recording_bytes.eq(i64::try_from(bytes).unwrap_or(i64::MAX)),
        calls::recording_duration_ms.eq(i32::try_from(duration_ms).unwrap_or(i32::MAX)),
    ))
    .execute(conn)
    .await?;
    Ok(n > 0)
}
