//! Call recordings: both sides of a call of a campaign with
//! `recording_enabled`, as a stereo Ogg Opus file (left callee, right
//! agent), served by `GET /api/v1/calls/{id}/recording`.
//!
//! Nothing heavy runs on the 20 ms path: during the call the media socket
//! hands every frame to a [`spool::SpoolTap`] (a `try_send`), and a writer
//! task appends raw PCM with arrival times to `{dir}/spool/{call}.spool`.
//! When the socket closes the spool is finished and queued to the
//! [`pool`], a bounded set of workers that align the two sides ([`mix`]),
//! encode them ([`encode`]), write `{dir}/{tenant}/{call}.ogg` atomically
//! (temporary file, then rename), update the call row and delete the
//! spool. A crash before that leaves the spool on disk; the next start
//! queues every spool it finds ([`Recorder::recover`]).
//!
//! With `store = "s3"` the file is then uploaded to the bucket
//! ([`upload`], retried until it lands; [`store`]) and deleted locally,
//! so any node serves any recording; a node that died with files not yet
//! uploaded uploads them at its next start. Campaigns may bound how long
//! recordings are kept ([`sweep`]).
//!
//! The call row's `recording_status` says where a recording is:
//! `spooled` -> `encoding` -> (`uploading` ->) `ready` | `failed`, and
//! `ready` -> `expired` past the campaign's retention.

pub mod config;
pub mod encode;
pub mod mix;
pub mod opus;
pub mod pool;
pub mod spool;
pub mod store;
pub mod sweep;
#[cfg(test)]
mod tests;
pub mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use talky_actors::ids::{CallId, CampaignId, TenantId};
use tokio::sync::mpsc;

use crate::db;
use config::RecordingsConfig;
use spool::{Spool, SpoolHeader};

/// Limit on each database operation of the recorder.
pub const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit on finishing a spool (flushing the writer) at the end of a call.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a finished call waits for room in the encoder queue before
/// leaving its spool for the next start.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Counter of spools that found the encoder queue full.
pub const QUEUE_FULL_METRIC: &str = "talky_recording_queue_full_total";

/// Why a recording could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The database failed or was too slow.
    #[error("recording store: {0}")]
    Db(String),
    /// The spool could not be created.
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    /// The store settings are unusable.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The recordings of this node: directory, database and encoder pool.
pub struct Recorder {
    dir: PathBuf,
    max_spool_bytes: u64,
    db: db::Pool,
    jobs: mpsc::Sender<PathBuf>,
    store: Arc<store::RecordingStore>,
    uploader: upload::Uploader,
}

impl Recorder {
    /// Starts the encoder pool and the retention sweeper (needs a tokio
    /// runtime); fails only on unusable store settings.
    pub fn start(config: &RecordingsConfig, db: db::Pool) -> Result<Arc<Recorder>, RecordingError> {
        let store = Arc::new(store::RecordingStore::from_config(config)?);
        let uploader = upload::Uploader::new(store.clone(), db.clone());
        let (jobs, rx) = mpsc::channel(config.queue.max(1));
        let recorder = Arc::new(Recorder {
            dir: config.dir.clone(),
            max_spool_bytes: config.max_spool_bytes,
            db: db.clone(),
            jobs,
            store: store.clone(),
            uploader: uploader.clone(),
        });
        tokio::spawn(pool::run(
            rx,
            config.workers.max(1),
            pool::Worker {
                dir: config.dir.clone(),
                db: db.clone(),
                store: store.clone(),
                uploader,
            },
        ));
        tokio::spawn(
            sweep::Sweeper {
                store,
                db,
                batch: config.sweep_batch,
            }
            .run(Duration::from_secs(config.sweep_interval_secs)),
        );
        Ok(recorder)
    }

    /// Where recordings are kept.
    pub fn store(&self) -> &store::RecordingStore {
        &self.store
    }

    /// The directory of spools and recordings.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a call's finished recording lives.
    pub fn recording_path(&self, tenant: TenantId, call: CallId) -> PathBuf {
        recording_path(&self.dir, tenant, call)
    }

    /// Whether a call of this campaign is to be recorded.
    pub async fn wanted(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> Result<bool, RecordingError> {
        let fut = async {
            let mut conn = self.db.get().await.map_err(db::DbError::from)?;
            db::recordings::campaign_records(&mut conn, tenant, campaign).await
        };
        match tokio::time::timeout(DB_TIMEOUT, fut).await {
            Ok(Ok(wanted)) => Ok(wanted),
            Ok(Err(e)) => Err(RecordingError::Db(e.to_string())),
            Err(_) => Err(RecordingError::Db("timed out".into())),
        }
    }

    /// Starts spooling a call: creates the spool and marks the call
    /// `spooled`.
    pub async fn open(&self, tenant: TenantId, call: CallId) -> Result<Spool, RecordingError> {
        let spool = Spool::create(
            &self.dir,
            SpoolHeader {
                sample_rate: encode::RATE,
                tenant,
                call,
            },
            self.max_spool_bytes,
        )
        .await?;
        pool::set_status(&self.db, tenant, call, Some(db::recordings::SPOOLED)).await;
        Ok(spool)
    }

    /// Ends a call's spool (the caller has dropped every clone of its tap)
    /// and queues it for encoding.
    pub async fn close(&self, spool: Spool) {
        match spool.finish(FINISH_TIMEOUT).await {
            Ok(summary) => {
                if summary.dropped > 0 {
                    tracing::warn!(
                        dropped = summary.dropped,
                        "recording: chunks dropped (spool writer too slow)"
                    );
                }
                self.submit(summary.path).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "recording: spool not finished; left for the next start")
            }
        }
    }

    /// Queues a finished spool; when the queue stays full it is left on
    /// disk for the next start. Returns whether it was queued.
    pub async fn submit(&self, spool: PathBuf) -> bool {
        match self.jobs.send_timeout(spool, SUBMIT_TIMEOUT).await {
            Ok(()) => true,
            Err(e) => {
                metrics::counter!(QUEUE_FULL_METRIC).increment(1);
                tracing::warn!(error = %e, "recording: encoder queue full; spool left for the next start");
                false
            }
        }
    }

    /// Queues every spool left in `{dir}/spool/` (by a crash or a full
    /// queue) in the background, and with a bucket uploads every finished
    /// file still on disk whose row says `uploading`; returns how many
    /// spools were found. Call once at start, before any call of this
    /// node spools.
    pub async fn recover(self: &Arc<Self>) -> usize {
        let spools = match pool::leftover_spools(&self.dir).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "recording: cannot scan spools");
                Vec::new()
            }
        };
        let n = spools.len();
        if n > 0 {
            tracing::info!(
                spools = n,
                "recording: encoding spools left by the last run"
            );
        }
        let me = self.clone();
        tokio::spawn(async move {
            // Files first: a spool's own file is skipped there, and its
            // encoding (queued after) uploads it.
            if me.store.uploads() {
                me.recover_uploads().await;
            }
            for spool in spools {
                me.submit(spool).await;
            }
        });
        n
    }

    /// Uploads the finished files a previous run left on disk: those whose
    /// spool is gone (a spool is encoded again, which uploads it) and
    /// whose row still says `uploading`. A file whose row is already
    /// ready in the bucket is a leftover of a crash after the upload.
    async fn recover_uploads(&self) {
        let files = match pool::leftover_recordings(&self.dir).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "recording: cannot scan finished files");
                return;
            }
        };
        let mut queued = 0usize;
        for (tenant, call, file) in files {
            if tokio::fs::try_exists(spool::spool_path(&self.dir, call))
                .await
                .unwrap_or(true)
            {
                continue;
            }
            let row = match with_db(&self.db, async |c| {
                db::recordings::get(c, tenant, call).await
            })
            .await
            {
                Ok(row) => row,
                Err(e) => {
                    tracing::warn!(call.id = %call, error = %e, "recording: row not read; file kept");
                    continue;
                }
            };
            match row.as_ref().and_then(|r| r.status.as_deref()) {
                Some(db::recordings::UPLOADING) => {
                    self.uploader.submit(tenant, call, file);
                    queued += 1;
                }
                Some(db::recordings::READY)
                    if row.as_ref().and_then(|r| r.store.as_deref())
                        == Some(db::recordings::STORE_S3) =>
                {
                    let _ = tokio::fs::remove_file(&file).await;
                }
                _ => {}
            }
        }
        if queued > 0 {
            tracing::info!(
                files = queued,
                "recording: uploading files left by the last run"
            );
        }
    }
}

/// Runs `f` on a connection of `pool` within [`DB_TIMEOUT`]; the error as
/// text (the recorder logs it and retries or leaves the work for later).
pub(crate) async fn with_db<T>(
    pool: &db::Pool,
    f: impl AsyncFnOnce(&mut diesel_async::AsyncPgConnection) -> Result<T, db::DbError>,
) -> Result<T, String> {
    let fut = async {
        let mut conn = pool.get().await.map_err(db::DbError::from)?;
        f(&mut conn).await
    };
    match tokio::time::timeout(DB_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("database timed out".into()),
    }
}

/// `{dir}/{tenant}/{call}.ogg`.
pub fn recording_path(dir: &Path, tenant: TenantId, call: CallId) -> PathBuf {
    dir.join(tenant.to_string()).join(format!("{call}.ogg"))
}
