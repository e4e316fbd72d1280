//! The encoder pool: a bounded queue of finished spools and at most
//! `workers` encodings at once, each on a blocking thread, so encoding
//! never competes with the 20 ms path for the async workers.
//!
//! Per spool: mark the call `encoding`, encode to `{call}.ogg.tmp`, rename
//! to `{call}.ogg`, mark it `ready` with size and length (with a bucket:
//! `uploading`, and hand the file to the [`Uploader`]), and only then
//! delete the spool (a crash in between encodes it again at the next
//! start, harmlessly). A spool without audio is deleted and the call
//! marked not recorded. A spool that cannot be encoded is marked `failed`
//! and moved to `spool/failed/` so it is not retried forever.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use talky_actors::ids::{CallId, TenantId};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};

use super::encode::{self, Encoded};
use super::spool::{HEADER_LEN, SPOOL_SUFFIX, SpoolHeader};
use super::store::RecordingStore;
use super::upload::Uploader;
use super::{DB_TIMEOUT, recording_path, with_db};
use crate::db;

/// Counter of encodings by result (`ready`, `failed`, `empty`).
pub const RESULT_METRIC: &str = "talky_recordings_total";

/// What each encoding needs.
#[derive(Clone)]
pub struct Worker {
    /// The recordings directory.
    pub dir: PathBuf,
    /// The database.
    pub db: db::Pool,
    /// Where finished recordings are kept.
    pub store: Arc<RecordingStore>,
    /// Uploads them when that is a bucket.
    pub uploader: Uploader,
}

/// Takes spools off the queue and encodes up to `workers` at once.
pub async fn run(mut rx: mpsc::Receiver<PathBuf>, workers: usize, worker: Worker) {
    let permits = Arc::new(Semaphore::new(workers));
    while let Some(spool) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let worker = worker.clone();
        tokio::spawn(async move {
            worker.process(&spool).await;
            drop(permit);
        });
    }
}

/// Sets a call's recording status, logging (not failing) on error.
pub async fn set_status(pool: &db::Pool, tenant: TenantId, call: CallId, status: Option<&str>) {
    let fut = async {
        let mut conn = pool.get().await.map_err(db::DbError::from)?;
        db::recordings::set_status(&mut conn, tenant, call, status).await
    };
    match tokio::time::timeout(DB_TIMEOUT, fut).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => tracing::warn!(call.id = %call, "recording: no such call row"),
        Ok(Err(e)) => tracing::warn!(call.id = %call, error = %e, "recording: status not stored"),
        Err(_) => tracing::warn!(call.id = %call, "recording: status update timed out"),
    }
}

async fn read_header(spool: &Path) -> Option<SpoolHeader> {
    let mut file = tokio::fs::File::open(spool).await.ok()?;
    let mut bytes = [0u8; HEADER_LEN];
    file.read_exact(&mut bytes).await.ok()?;
    SpoolHeader::parse(&bytes)
}

impl Worker {
    /// Stores the encoded file's size and length: `ready` in the
    /// directory, or `uploading` when a bucket takes it. Whether the call
    /// still exists (its campaign may have been deleted meanwhile).
    async fn set_encoded(&self, enc: &Encoded, bytes: u64) -> Result<bool, String> {
        let (tenant, call) = (enc.header.tenant, enc.header.call);
        let key = self.store.key(tenant, call);
        let store = (!self.store.uploads()).then_some((db::recordings::STORE_LOCAL, key.as_str()));
        with_db(&self.db, async |c| {
            db::recordings::set_encoded(c, tenant, call, bytes, enc.duration_ms, store).await
        })
        .await
    }

    async fn set_aside(&self, spool: &Path) {
        let failed = self.dir.join("spool").join("failed");
        let target = spool.file_name().map(|name| failed.join(name));
        let moved = match target {
            Some(target) => match tokio::fs::create_dir_all(&failed).await {
                Ok(()) => tokio::fs::rename(spool, target).await.is_ok(),
                Err(_) => false,
            },
            None => false,
        };
        if !moved {
            let _ = tokio::fs::remove_file(spool).await;
        }
    }

    /// Encodes one spool end to end.
    pub async fn process(&self, spool: &Path) {
        let Some(header) = read_header(spool).await else {
            tracing::error!(spool = %spool.display(), "recording: not a spool; set aside");
            metrics::counter!(RESULT_METRIC, "result" => "failed").increment(1);
            self.set_aside(spool).await;
            return;
        };
        let (tenant, call) = (header.tenant, header.call);
        set_status(&self.db, tenant, call, Some(db::recordings::ENCODING)).await;
        let out = recording_path(&self.dir, tenant, call);
        let tmp = out.with_extension("ogg.tmp");
        if let Some(parent) = out.parent()
            && let Err(e) = tokio::fs::create_dir_all(parent).await
        {
            tracing::error!(call.id = %call, error = %e, "recording: cannot create its directory");
            set_status(&self.db, tenant, call, Some(db::recordings::FAILED)).await;
            return;
        }
        let (src, dst) = (spool.to_path_buf(), tmp.clone());
        let result = tokio::task::spawn_blocking(move || encode::encode_spool(&src, &dst)).await;
        let encoded = match result {
            Ok(Ok(enc)) => enc,
            Ok(Err(e)) => {
                tracing::error!(call.id = %call, error = %e, "recording: encoding failed");
                return self.fail(spool, &tmp, tenant, call).await;
            }
            Err(e) => {
                tracing::error!(call.id = %call, error = %e, "recording: encoder panicked");
                return self.fail(spool, &tmp, tenant, call).await;
            }
        };
        if encoded.chunks == 0 {
            let _ = tokio::fs::remove_file(&tmp).await;
            let _ = tokio::fs::remove_file(spool).await;
            set_status(&self.db, tenant, call, None).await;
            metrics::counter!(RESULT_METRIC, "result" => "empty").increment(1);
            return;
        }
        if let Err(e) = tokio::fs::rename(&tmp, &out).await {
            tracing::error!(call.id = %call, error = %e, "recording: cannot publish the file");
            return self.fail(spool, &tmp, tenant, call).await;
        }
        let bytes = tokio::fs::metadata(&out)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        match self.set_encoded(&encoded, bytes).await {
            Ok(exists) => {
                let _ = tokio::fs::remove_file(spool).await;
                metrics::counter!(RESULT_METRIC, "result" => "ready").increment(1);
                tracing::info!(
                    call.id = %call,
                    duration_ms = encoded.duration_ms,
                    bytes,
                    "recording encoded"
                );
                if self.store.uploads() {
                    if exists {
                        self.uploader.submit(tenant, call, out);
                    } else {
                        // Nobody can ask for it any more: not uploaded.
                        let _ = tokio::fs::remove_file(&out).await;
                    }
                }
            }
            // The spool stays: the next start encodes it again.
            Err(e) => tracing::warn!(call.id = %call, error = %e, "recording: ready not stored"),
        }
    }

    async fn fail(&self, spool: &Path, tmp: &Path, tenant: TenantId, call: CallId) {
        let _ = tokio::fs::remove_file(tmp).await;
        self.set_aside(spool).await;
        set_status(&self.db, tenant, call, Some(db::recordings::FAILED)).await;
        metrics::counter!(RESULT_METRIC, "result" => "failed").increment(1);
    }
}

/// The spools in `{dir}/spool/`, oldest name first (ids are UUIDv7).
pub async fn leftover_spools(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let spool_dir = dir.join("spool");
    let mut entries = match tokio::fs::read_dir(&spool_dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == SPOOL_SUFFIX) && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The finished files in `{dir}/{tenant}/{call}.ogg` (directories and
/// files whose names are not ids are not ours and are skipped).
pub async fn leftover_recordings(dir: &Path) -> std::io::Result<Vec<(TenantId, CallId, PathBuf)>> {
    let mut tenants = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    while let Some(entry) = tenants.next_entry().await? {
        let Some(tenant) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<uuid::Uuid>().ok())
        else {
            continue;
        };
        let mut files = tokio::fs::read_dir(entry.path()).await?;
        while let Some(file) = files.next_entry().await? {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "ogg") {
                continue;
            }
            if let Some(call) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<uuid::Uuid>().ok())
            {
                out.push((TenantId(tenant), CallId(call), path));
            }
        }
    }
    out.sort_by(|a, b| a.2.cmp(&b.2));
    Ok(out)
}
