//! Where finished recordings live: this node's directory (`local`, one
//! node) or an S3-compatible bucket (`s3`, any node serves any recording).
//!
//! Encoding always writes `{dir}/{tenant}/{call}.ogg` first; with a bucket
//! that file is uploaded to `{prefix}{tenant}/{call}.ogg` ([`super::upload`])
//! and deleted once the row says `ready`. The call row records the store
//! and key of a ready recording, so a node reads it from where it was put
//! whatever its own setting is now (a row without a store predates the
//! bucket: the directory).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};
use talky_actors::ids::{CallId, TenantId};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::config::{RecordingsConfig, StoreKind};
use crate::db::recordings::{RecordingRow, STORE_LOCAL, STORE_S3};

/// A recording's bytes as they arrive.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + Sync>>;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object or file is not there.
    #[error("not found")]
    NotFound,
    /// The row names a bucket this node has not configured.
    #[error("the recording is in object storage, which this node has not configured")]
    NotConfigured,
    /// The bucket refused or did not answer.
    #[error("object store: {0}")]
    Remote(String),
    /// The local file system failed.
    #[error("recording file: {0}")]
    Io(#[from] std::io::Error),
    /// The bucket settings cannot make a client.
    #[error("recordings.s3: {0}")]
    Config(String),
}

impl From<object_store::Error> for StoreError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound,
            other => StoreError::Remote(other.to_string()),
        }
    }
}

/// The bucket of `store = "s3"`.
pub struct Bucket {
    client: Arc<dyn ObjectStore>,
    prefix: String,
    timeout: Duration,
}

/// The storage of this node's recordings.
pub struct RecordingStore {
    dir: PathBuf,
    bucket: Option<Bucket>,
}

/// Where one recording is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A file of this node.
    Local(PathBuf),
    /// An object of the bucket.
    S3(String),
}

/// `{prefix}{tenant}/{call}.ogg`: the key of a call's recording in the
/// bucket (the same layout as the directory, under the prefix).
pub fn object_key(prefix: &str, tenant: TenantId, call: CallId) -> String {
    format!("{prefix}{tenant}/{call}.ogg")
}

impl RecordingStore {
    /// The store of `config`; a bucket's client is made here (it connects
    /// lazily).
    pub fn from_config(config: &RecordingsConfig) -> Result<RecordingStore, StoreError> {
        let bucket = match config.store {
            StoreKind::Local => None,
            StoreKind::S3 => {
                let s3 = &config.s3;
                let timeout = Duration::from_secs(s3.timeout_secs);
                let options = ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(Duration::from_secs(s3.connect_timeout_secs))
                    .with_allow_http(s3.allow_http);
                // One quick retry inside a request; longer outages are the
                // uploader's backoff (the file stays on disk meanwhile).
                let retry = RetryConfig {
                    max_retries: 1,
                    retry_timeout: timeout,
                    ..Default::default()
                };
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(!s3.path_style)
                    .with_allow_http(s3.allow_http)
                    .with_client_options(options)
                    .with_retry(retry);
                if !s3.endpoint.is_empty() {
                    builder = builder.with_endpoint(&s3.endpoint);
                }
                if !s3.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(s3.secret_access_key.expose());
                }
                let client = builder
                    .build()
                    .map_err(|e| StoreError::Config(e.to_string()))?;
                Some(Bucket {
                    client: Arc::new(client),
                    prefix: s3.prefix.clone(),
                    timeout,
                })
            }
        };
        Ok(RecordingStore {
            dir: config.dir.clone(),
            bucket,
        })
    }

    /// Whether finished recordings go to the bucket.
    pub fn uploads(&self) -> bool {
        self.bucket.is_some()
    }

    /// The key of a call's recording: the object key with a bucket, the
    /// path below the directory without.
    pub fn key(&self, tenant: TenantId, call: CallId) -> String {
        object_key(
            self.bucket.as_ref().map_or("", |b| b.prefix.as_str()),
            tenant,
            call,
        )
    }

    /// Where a row's recording is.
    pub fn locate(&self, row: &RecordingRow, tenant: TenantId, call: CallId) -> Location {
        let key = row
            .key
            .clone()
            .unwrap_or_else(|| object_key("", tenant, call));
        match row.store.as_deref() {
            Some(STORE_S3) => Location::S3(key),
            Some(STORE_LOCAL) | None | Some(_) => Location::Local(self.dir.join(key)),
        }
    }

    fn bucket(&self) -> Result<&Bucket, StoreError> {
        self.bucket.as_ref().ok_or(StoreError::NotConfigured)
    }

    /// Uploads a finished file under `key` (streaming: multipart past
    /// 10 MiB). Bounded by four request timeouts in all.
    pub async fn upload(&self, file: &Path, key: &str) -> Result<(), StoreError> {
        let bucket = self.bucket()?;
        let path = object_store::path::Path::from(key);
        let put = async {
            let mut src = tokio::fs::File::open(file).await?;
            let mut dst = object_store::buffered::BufWriter::new(bucket.client.clone(), path);
            if let Err(e) = tokio::io::copy(&mut src, &mut dst).await {
                let _ = dst.abort().await;
                return Err(StoreError::Remote(e.to_string()));
            }
            dst.shutdown()
                .await
                .map_err(|e| StoreError::Remote(e.to_string()))
        };
        tokio::time::timeout(bucket.timeout * 4, put)
            .await
            .map_err(|_| StoreError::Remote("upload timed out".into()))?
    }

    /// Opens `range` (or all) of a recording of `len` bytes for reading.
    pub async fn open(
        &self,
        location: &Location,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        match location {
            Location::Local(path) => {
                let mut file = match tokio::fs::File::open(path).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StoreError::NotFound);
                    }
                    Err(e) => return Err(e.into()),
                };
                let stream: ByteStream = match range {
                    Some(r) => {
                        file.seek(std::io::SeekFrom::Start(r.start)).await?;
                        Box::pin(ReaderStream::new(file.take(r.end - r.start)))
                    }
                    None => Box::pin(ReaderStream::new(file)),
                };
                Ok(stream)
            }
            Location::S3(key) => {
                let bucket = self.bucket()?;
                let options = GetOptions {
                    range: range.map(GetRange::Bounded),
                    ..Default::default()
                };
                let path = object_store::path::Path::from(key.as_str());
                let result =
                    tokio::time::timeout(bucket.timeout, bucket.client.get_opts(&path, options))
                        .await
                        .map_err(|_| StoreError::Remote("timed out".into()))??;
                let stream = result
                    .into_stream()
                    .map_err(|e| std::io::Error::other(e.to_string()));
                Ok(Box::pin(SyncStream(std::sync::Mutex::new(stream.boxed()))))
            }
        }
    }

    /// Deletes a recording; one already gone counts as deleted.
    pub async fn delete(&self, location: &Location) -> Result<(), StoreError> {
        match location {
            Location::Local(path) => match tokio::fs::remove_file(path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            },
            Location::S3(key) => {
                let bucket = self.bucket()?;
                let path = object_store::path::Path::from(key.as_str());
                match tokio::time::timeout(bucket.timeout, bucket.client.delete(&path)).await {
                    Ok(Ok(())) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
                    Ok(Err(e)) => Err(e.into()),
                    Err(_) => Err(StoreError::Remote("delete timed out".into())),
                }
            }
        }
    }
}

/// A `Send` stream made `Sync` (warp's body wants both): the mutex is
/// never contended, polling goes through `get_mut`.
struct SyncStream(
    std::sync::Mutex<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>>,
);

impl Stream for SyncStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.0.get_mut() {
            Ok(inner) => inner.poll_next_unpin(cx),
            Err(poisoned) => poisoned.into_inner().poll_next_unpin(cx),
        }
    }
}

/// The single byte range a `Range` header asks of a `len`-byte body:
/// `None` means "send it all" (no header, a form we do not serve, several
/// ranges, or one past the end: a server may ignore Range, RFC 9110
/// §14.2).
pub fn byte_range(header: Option<&str>, len: u64) -> Option<Range<u64>> {
    let spec = header?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let n: u64 = last.parse().ok()?;
        if n == 0 {
            return None;
        }
        len.saturating_sub(n)..len
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            len
        } else {
            let last: u64 = last.parse().ok()?;
            if last < start {
                return None;
            }
            last.saturating_add(1).min(len)
        };
        start..end
    };
    (range.start < range.end).then_some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_directory_layout_under_the_prefix() {
        let tenant = TenantId(uuid::Uuid::nil());
        let call = CallId(uuid::Uuid::max());
        assert_eq!(
            object_key("rec/", tenant, call),
            format!("rec/{}/{}.ogg", uuid::Uuid::nil(), uuid::Uuid::max())
        );
        let store = RecordingStore::from_config(&RecordingsConfig::default()).expect("local");
        assert!(!store.uploads());
        let row = RecordingRow {
            status: Some("ready".into()),
            bytes: None,
            duration_ms: None,
            store: None,
            key: None,
        };
        // A row from before the bucket: the directory's path.
        assert_eq!(
            store.locate(&row, tenant, call),
            Location::Local(super::super::recording_path(
                &RecordingsConfig::default().dir,
                tenant,
                call
            ))
        );
        let row = RecordingRow {
            store: Some("s3".into()),
            key: Some("p/k.ogg".into()),
            ..row
        };
        assert_eq!(
            store.locate(&row, tenant, call),
            Location::S3("p/k.ogg".into())
        );
    }

    #[test]
    fn ranges_are_served_only_when_single_and_satisfiable() {
        assert_eq!(byte_range(None, 100), None);
        assert_eq!(byte_range(Some("bytes=0-9"), 100), Some(0..10));
        assert_eq!(byte_range(Some("bytes=90-"), 100), Some(90..100));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Some(90..100));
        assert_eq!(byte_range(Some("bytes=-1000"), 100), Some(0..100));
        assert_eq!(byte_range(Some("bytes=50-1000"), 100), Some(50..100));
        assert_eq!(byte_range(Some("bytes=100-"), 100), None);
        assert_eq!(byte_range(Some("bytes=9-0"), 100), None);
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), None);
        assert_eq!(byte_range(Some("items=0-1"), 100), None);
        assert_eq!(byte_range(Some("bytes=-0"), 100), None);
        assert_eq!(byte_range(Some("bytes=x-1"), 100), None);
    }
}
