//! `[recordings]`: where recordings live and how hard the encoder pool
//! may work. Part of [`crate::config::Config`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Secret};

/// Default directory of spools and finished recordings (relative to the
/// working directory). One directory per node: a node encodes every spool
/// it finds there at start.
pub const DEFAULT_RECORDINGS_DIR: &str = ".talky/recordings";
/// Default number of encoder workers (each encodes one call at a time on
/// a blocking thread).
pub const DEFAULT_RECORDING_WORKERS: usize = 1;
/// Default number of finished calls that may wait for an encoder.
pub const DEFAULT_RECORDING_QUEUE: usize = 64;
/// Default cap of one call's spool on disk: 256 MiB, about 68 minutes of
/// both sides at 16 kHz (the longest call allowed is 2 h). Past it the
/// rest of the call is not recorded (counted in
/// `talky_recording_truncated_total`).
pub const DEFAULT_RECORDING_MAX_SPOOL_BYTES: u64 = 256 * 1024 * 1024;
/// Default seconds between two retention sweeps.
pub const DEFAULT_SWEEP_INTERVAL_SECS: u64 = 300;
/// Default recordings one sweep expires at most (per campaign).
pub const DEFAULT_SWEEP_BATCH: usize = 100;
/// Default limit on one object-store request (upload, download start,
/// delete), seconds.
pub const DEFAULT_S3_TIMEOUT_SECS: u64 = 60;
/// Default limit on opening a connection to the object store, seconds
/// (shorter than the request's).
pub const DEFAULT_S3_CONNECT_TIMEOUT_SECS: u64 = 5;

/// Where finished recordings live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// `{dir}/{tenant}/{call}.ogg` on this node (one node only: another
    /// node answers 404 for it).
    #[default]
    Local,
    /// An S3-compatible bucket (`[recordings.s3]`): any node serves any
    /// recording.
    S3,
}

/// `[recordings.s3]`: the bucket of `store = "s3"`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name (it must exist: talky does not create buckets).
    pub bucket: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`; empty: AWS's own for
    /// the region.
    pub endpoint: String,
    /// Region (signing).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (secret: env or `secret_access_key_file` only).
    pub secret_access_key: Secret,
    /// File holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// Path-style URLs (`{endpoint}/{bucket}/{key}`), which most
    /// self-hosted S3 servers want; false: virtual-hosted style.
    pub path_style: bool,
    /// Whether an `http://` endpoint is allowed (loopback, tests).
    pub allow_http: bool,
    /// Prepended to every object key (`{prefix}{tenant}/{call}.ogg`);
    /// empty or ending in `/`.
    pub prefix: String,
    /// Limit on one request, seconds.
    pub timeout_secs: u64,
    /// Limit on opening a connection, seconds (below `timeout_secs`).
    pub connect_timeout_secs: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            secret_access_key_file: None,
            path_style: true,
            allow_http: false,
            prefix: String::new(),
            timeout_secs: DEFAULT_S3_TIMEOUT_SECS,
            connect_timeout_secs: DEFAULT_S3_CONNECT_TIMEOUT_SECS,
        }
    }
}

/// Recording settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Spools go to `{dir}/spool/`, recordings to `{dir}/{tenant}/{call}.ogg`.
    pub dir: PathBuf,
    /// Encoder workers, at least 1.
    pub workers: usize,
    /// Finished calls waiting for an encoder, at least 1; a call that finds
    /// the queue full for long keeps its spool for the next start.
    pub queue: usize,
    /// Most bytes one call's spool may take on disk; the recording holds
    /// the call up to there.
    pub max_spool_bytes: u64,
    /// `local` (the default) or `s3`.
    pub store: StoreKind,
    /// The bucket when `store = "s3"`.
    pub s3: S3Config,
    /// Seconds between two retention sweeps (campaigns'
    /// `recording_retention_days`).
    pub sweep_interval_secs: u64,
    /// Most recordings one sweep expires per campaign.
    pub sweep_batch: usize,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_RECORDINGS_DIR),
            workers: DEFAULT_RECORDING_WORKERS,
            queue: DEFAULT_RECORDING_QUEUE,
            max_spool_bytes: DEFAULT_RECORDING_MAX_SPOOL_BYTES,
            store: StoreKind::Local,
            s3: S3Config::default(),
            sweep_interval_secs: DEFAULT_SWEEP_INTERVAL_SECS,
            sweep_batch: DEFAULT_SWEEP_BATCH,
        }
    }
}

impl RecordingsConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, problem: &str| ConfigError {
            key: format!(
                "recordings.{key} (TALKY_RECORDINGS__{})",
                key.to_uppercase().replace('.', "__")
            ),
            problem: problem.to_string(),
        };
        if self.dir.as_os_str().is_empty() {
            return Err(bad("dir", "must not be empty"));
        }
        if self.workers == 0 || self.workers > 64 {
            return Err(bad("workers", "must be 1 to 64"));
        }
        if self.queue == 0 || self.queue > 100_000 {
            return Err(bad("queue", "must be 1 to 100000"));
        }
        if self.max_spool_bytes < 64 * 1024 {
            return Err(bad("max_spool_bytes", "must be at least 65536"));
        }
        if self.sweep_interval_secs == 0 || self.sweep_interval_secs > 86_400 {
            return Err(bad("sweep_interval_secs", "must be 1 to 86400"));
        }
        if self.sweep_batch == 0 || self.sweep_batch > 10_000 {
            return Err(bad("sweep_batch", "must be 1 to 10000"));
        }
        if self.store == StoreKind::Local {
            return Ok(());
        }
        let s3 = &self.s3;
        if s3.bucket.trim().is_empty() {
            return Err(bad("s3.bucket", "is required with store = \"s3\""));
        }
        if s3.region.trim().is_empty() {
            return Err(bad("s3.region", "must not be empty"));
        }
        if !s3.endpoint.is_empty() {
            let http = s3.endpoint.starts_with("http://");
            if !http && !s3.endpoint.starts_with("https://") {
                return Err(bad("s3.endpoint", "must be an http:// or https:// URL"));
            }
            if http && !s3.allow_http {
                return Err(bad(
                    "s3.endpoint",
                    "is http:// but recordings.s3.allow_http is false",
                ));
            }
        }
        if s3.access_key_id.is_empty() != s3.secret_access_key.is_empty() {
            return Err(bad(
                "s3.secret_access_key",
                "and recordings.s3.access_key_id are set together or not at all",
            ));
        }
        if !(s3.prefix.is_empty() || s3.prefix.ends_with('/')) || s3.prefix.starts_with('/') {
            return Err(bad(
                "s3.prefix",
                "must be empty or end (and not start) with /",
            ));
        }
        if s3.timeout_secs == 0 || s3.timeout_secs > 3600 {
            return Err(bad("s3.timeout_secs", "must be 1 to 3600"));
        }
        if s3.connect_timeout_secs == 0 || s3.connect_timeout_secs >= s3.timeout_secs {
            return Err(bad(
                "s3.connect_timeout_secs",
                "must be at least 1 and below recordings.s3.timeout_secs",
            ));
        }
        Ok(())
    }

    /// Reads `s3.secret_access_key_file` into the secret.
    pub fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        crate::config::read_secret_file(
            &mut self.s3.secret_access_key,
            &self.s3.secret_access_key_file,
            "recordings.s3.secret_access_key_file",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_workers_is_not() {
        assert!(RecordingsConfig::default().validate().is_ok());
        let c = RecordingsConfig {
            workers: 0,
            ..Default::default()
        };
        let e = c.validate().expect_err("refused").to_string();
        assert!(e.contains("recordings.workers"), "{e}");
        let c = RecordingsConfig {
            queue: 0,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }

    fn s3() -> RecordingsConfig {
        RecordingsConfig {
            store: StoreKind::S3,
            s3: S3Config {
                bucket: "rec".into(),
                endpoint: "http://127.0.0.1:9000".into(),
                allow_http: true,
                access_key_id: "id".into(),
                secret_access_key: Secret::new("key"),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn refused(c: RecordingsConfig) -> String {
        c.validate().expect_err("refused").to_string()
    }

    #[test]
    fn an_s3_store_needs_a_bucket_and_consistent_settings() {
        assert!(s3().validate().is_ok());
        let mut c = s3();
        c.s3.bucket.clear();
        assert!(refused(c).contains("recordings.s3.bucket (TALKY_RECORDINGS__S3__BUCKET)"));
        let mut c = s3();
        c.s3.allow_http = false;
        assert!(refused(c).contains("recordings.s3.endpoint"));
        let mut c = s3();
        c.s3.endpoint = "ftp://x".into();
        assert!(refused(c).contains("recordings.s3.endpoint"));
        let mut c = s3();
        c.s3.secret_access_key = Secret::default();
        assert!(refused(c).contains("secret_access_key"));
        let mut c = s3();
        c.s3.prefix = "talky".into();
        assert!(refused(c).contains("recordings.s3.prefix"));
        let mut c = s3();
        c.s3.prefix = "talky/".into();
        assert!(c.validate().is_ok());
        let mut c = s3();
        c.s3.connect_timeout_secs = c.s3.timeout_secs;
        assert!(refused(c).contains("connect_timeout_secs"));
        // A local store ignores an incomplete bucket section.
        let mut c = s3();
        c.store = StoreKind::Local;
        c.s3.bucket.clear();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_stores_are_refused() {
        let parse = |t: &str| toml::from_str::<RecordingsConfig>(t);
        assert!(parse("store = \"s3\"\n[s3]\nbucket = \"b\"\n").is_ok());
        assert!(parse("store = \"gcs\"\n").is_err());
        assert!(parse("[s3]\nbuckett = \"b\"\n").is_err());
    }
}
