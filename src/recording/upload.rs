//! Uploads of finished recordings to the bucket, retried until they land.
//!
//! The encoder marks a call `uploading` (409 for clients) with the file at
//! `{dir}/{tenant}/{call}.ogg` and hands it here. Each upload runs in its
//! own task, at most [`MAX_CONCURRENT`] at once, retrying with capped
//! exponential backoff for as long as the process lives; only when the
//! object is in the bucket *and* the row says `ready` (with store and key)
//! is the local file deleted. A process that dies meanwhile leaves the
//! file and the `uploading` row: the next start uploads it
//! ([`super::Recorder::recover`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talky_actors::ids::{CallId, TenantId};
use tokio::sync::Semaphore;

use super::store::RecordingStore;
use super::with_db;
use crate::db;

/// Uploads at once.
pub const MAX_CONCURRENT: usize = 4;
/// First retry delay; doubles per failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Counter of upload attempts by result (`ok`, `error`).
pub const UPLOADS_METRIC: &str = "talky_recording_uploads_total";
/// Histogram of successful upload attempts' seconds.
pub const UPLOAD_SECONDS_METRIC: &str = "talky_recording_upload_seconds";
/// Gauge of recordings waiting to land in the bucket.
pub const PENDING_METRIC: &str = "talky_recording_uploads_pending";

/// The delay after `failures` failed attempts.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF)
}

/// Runs uploads in the background.
#[derive(Clone)]
pub struct Uploader {
    store: Arc<RecordingStore>,
    db: db::Pool,
    permits: Arc<Semaphore>,
}

impl Uploader {
    /// An uploader to the store's bucket.
    pub fn new(store: Arc<RecordingStore>, db: db::Pool) -> Uploader {
        Uploader {
            store,
            db,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        }
    }

    /// Uploads `file` (the call's finished recording) in the background.
    pub fn submit(&self, tenant: TenantId, call: CallId, file: PathBuf) {
        metrics::gauge!(PENDING_METRIC).increment(1.0);
        let me = self.clone();
        tokio::spawn(async move {
            me.run(tenant, call, file).await;
            metrics::gauge!(PENDING_METRIC).decrement(1.0);
        });
    }

    async fn run(&self, tenant: TenantId, call: CallId, file: PathBuf) {
        let key = self.store.key(tenant, call);
        let mut failures = 0u32;
        loop {
            if !tokio::fs::try_exists(&file).await.unwrap_or(true) {
                // Another upload of the same file (a restart's recovery
                // racing an encoding) finished and deleted it.
                tracing::debug!(call.id = %call, "recording file gone; upload done elsewhere");
                return;
            }
            match self.attempt(tenant, call, &file, &key).await {
                Ok(()) => return,
                Err(e) => {
                    let wait = backoff(failures);
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        call.id = %call,
                        error = %e,
                        attempt = failures,
                        retry_in_ms = wait.as_millis() as u64,
                        "recording upload failed; will retry"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One upload and the row's update; the file is deleted after both.
    async fn attempt(
        &self,
        tenant: TenantId,
        call: CallId,
        file: &std::path::Path,
        key: &str,
    ) -> Result<(), String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let started = Instant::now();
        if let Err(e) = self.store.upload(file, key).await {
            metrics::counter!(UPLOADS_METRIC, "result" => "error").increment(1);
            return Err(e.to_string());
        }
        metrics::counter!(UPLOADS_METRIC, "result" => "ok").increment(1);
        metrics::histogram!(UPLOAD_SECONDS_METRIC).record(started.elapsed().as_secs_f64());
        let changed = with_db(&self.db, async |c| {
            db::recordings::set_uploaded(c, tenant, call, key).await
        })
        .await
        .map_err(|e| format!("uploaded, but ready not stored: {e}"))?;
        if !changed {
            // Another upload of it was first (the object is in place), or
            // the call is gone with its deleted campaign: then the object
            // would belong to nobody, and goes again.
            let exists = with_db(&self.db, async |c| {
                db::recordings::call_exists(c, tenant, call).await
            })
            .await
            .map_err(|e| format!("uploaded; whether the call still exists is unknown: {e}"))?;
            if !exists {
                let location = super::store::Location::S3(key.to_string());
                self.store
                    .delete(&location)
                    .await
                    .map_err(|e| format!("the call is gone; its object not deleted: {e}"))?;
                tracing::info!(call.id = %call, "recording of a deleted call removed after its upload");
            } else {
                tracing::debug!(call.id = %call, "recording uploaded; row not uploading");
            }
        }
        let _ = tokio::fs::remove_file(file).await;
        tracing::info!(call.id = %call, "recording uploaded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(1), FIRST_BACKOFF * 2);
        assert_eq!(backoff(3), FIRST_BACKOFF * 8);
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
