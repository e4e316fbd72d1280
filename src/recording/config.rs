//! `[recordings]`: where recordings live and how hard the encoder pool
//! may work. Part of [`crate::config::Config`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_RECORDINGS_DIR),
            workers: DEFAULT_RECORDING_WORKERS,
            queue: DEFAULT_RECORDING_QUEUE,
            max_spool_bytes: DEFAULT_RECORDING_MAX_SPOOL_BYTES,
        }
    }
}

impl RecordingsConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        let bad = |key: &str, problem: &str| crate::config::ConfigError {
            key: format!(
                "recordings.{key} (TALKY_RECORDINGS__{})",
                key.to_uppercase()
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
        Ok(())
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
}
