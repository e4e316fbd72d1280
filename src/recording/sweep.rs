//! Retention: every `recordings.sweep_interval_secs` each node looks, per
//! campaign with `recording_retention_days`, for ready recordings that
//! became ready longer ago than that, at most `recordings.sweep_batch` a
//! campaign per sweep; deletes each from its store and marks the row
//! `expired` (404 "expired" for clients).
//!
//! Each sweep also carries out the deletions a campaign's deletion queued
//! (`recording_deletions`, written in the transaction that deleted the
//! campaign and its calls): the file or object goes, then the queue row.
//!
//! Safe on several nodes without a lock: deleting an object or file that
//! is already gone counts as done, and the row moves `ready` -> `expired`
//! only once (the node whose update changed it counts it). The object is
//! deleted before the row changes, so a crash in between only repeats the
//! delete at the next sweep; never a row that says ready without its
//! object because of a sweep.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use talky_actors::ids::{CallId, CampaignId, TenantId};

use super::store::RecordingStore;
use super::with_db;
use crate::db;
use crate::db::recordings::RecordingRow;

/// Counter of recordings deleted by retention.
pub const EXPIRED_METRIC: &str = "talky_recordings_expired_total";
/// Counter of recordings deleted because their campaign was.
pub const PURGED_METRIC: &str = "talky_recordings_purged_total";

/// Recordings that became ready before this instant are past a retention
/// of `days` days at `now`.
pub fn cutoff(now: DateTime<Utc>, days: i32) -> DateTime<Utc> {
    now - chrono::Duration::days(i64::from(days.max(0)))
}

/// The sweeper's state.
pub struct Sweeper {
    /// Where recordings are.
    pub store: Arc<RecordingStore>,
    /// The database.
    pub db: db::Pool,
    /// Most recordings per campaign per sweep.
    pub batch: usize,
}

impl Sweeper {
    /// Sweeps every `interval` for as long as the process lives.
    pub async fn run(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.sweep(Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "recordings past their retention deleted"),
                Err(e) => tracing::warn!(error = %e, "recording retention sweep failed"),
            }
            match self.purge_deleted().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "recordings of deleted campaigns deleted"),
                Err(e) => {
                    tracing::warn!(error = %e, "deleting the recordings of deleted campaigns failed")
                }
            }
        }
    }

    async fn db<T>(
        &self,
        f: impl AsyncFnOnce(&mut diesel_async::AsyncPgConnection) -> Result<T, db::DbError>,
    ) -> Result<T, String> {
        with_db(&self.db, f).await
    }

    /// Deletes a call's recording from where its row says it lives.
    async fn delete(
        &self,
        tenant: TenantId,
        call: CallId,
        store: Option<String>,
        key: Option<String>,
    ) -> Result<(), super::store::StoreError> {
        let row = RecordingRow {
            status: None,
            bytes: None,
            duration_ms: None,
            store,
            key,
        };
        self.store
            .delete(&self.store.locate(&row, tenant, call))
            .await
    }

    /// One sweep at `now`; returns how many recordings this node expired.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<usize, String> {
        let campaigns = self
            .db(async |c| db::recordings::retention_campaigns(c).await)
            .await?;
        let limit = i64::try_from(self.batch).unwrap_or(i64::MAX);
        let mut expired = 0;
        for (tenant, campaign, days) in campaigns {
            let (tenant, campaign) = (TenantId(tenant), CampaignId(campaign));
            let due = cutoff(now, days);
            let rows = self
                .db(async |c| db::recordings::expired(c, tenant, campaign, due, limit).await)
                .await?;
            for row in rows {
                let call = CallId(row.call);
                if let Err(e) = self.delete(tenant, call, row.store, row.key).await {
                    // Left ready; the next sweep tries again.
                    tracing::warn!(call.id = %call, error = %e, "expired recording not deleted");
                    continue;
                }
                if self
                    .db(async |c| db::recordings::set_expired(c, tenant, call).await)
                    .await?
                {
                    metrics::counter!(EXPIRED_METRIC).increment(1);
                    expired += 1;
                }
            }
        }
        Ok(expired)
    }

    /// Deletes up to a batch of the recordings whose campaigns were
    /// deleted; returns how many queue rows this node removed. One whose
    /// delete fails stays queued for the next sweep.
    pub async fn purge_deleted(&self) -> Result<usize, String> {
        let limit = i64::try_from(self.batch).unwrap_or(i64::MAX);
        let rows = self
            .db(async |c| db::recordings::deletions(c, limit).await)
            .await?;
        let mut done = 0;
        for row in rows {
            let (tenant, call) = (TenantId(row.tenant), CallId(row.call));
            if let Err(e) = self.delete(tenant, call, row.store, row.key).await {
                tracing::warn!(call.id = %call, error = %e, "recording of a deleted campaign not deleted yet");
                continue;
            }
            let id = row.id;
            if self
                .db(async |c| db::recordings::deletion_done(c, id).await)
                .await?
            {
                metrics::counter!(PURGED_METRIC).increment(1);
                done += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_expires_once_its_days_have_fully_passed() {
        let now: DateTime<Utc> = "2026-12-10T12:00:00Z".parse().expect("time");
        let cut = cutoff(now, 30);
        assert_eq!(
            cut,
            "2026-11-10T12:00:00Z".parse::<DateTime<Utc>>().expect("t")
        );
        // The query takes ready_at < cutoff: one second younger is kept.
        let just_kept = cut + chrono::Duration::seconds(1);
        let just_due = cut - chrono::Duration::seconds(1);
        assert!(just_kept >= cut && just_due < cut);
        assert_eq!(cutoff(now, 1), now - chrono::Duration::hours(24));
        assert_eq!(
            cutoff(now, -5),
            now,
            "a negative retention expires nothing early"
        );
    }
}
