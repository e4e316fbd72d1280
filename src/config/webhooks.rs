//! Customer webhooks' delivery (`[webhooks]`).

use serde::{Deserialize, Serialize};

use super::{ConfigError, key_label, positive};

/// How events reach the tenants' receivers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Retry a delivery until this many seconds after its event (or its
    /// replay), then give up (`failed`).
    pub retry_for_secs: u64,
    /// First retry delay, ms; each further one doubles (with jitter).
    pub retry_base_ms: u64,
    /// Longest delay between two attempts, seconds.
    pub retry_max_secs: u64,
    /// Whole-request deadline of one attempt, ms.
    pub timeout_ms: u64,
    /// Deliveries in flight at once on this node.
    pub concurrency: u32,
    /// How often the worker looks for due deliveries, ms.
    pub poll_ms: u64,
    /// Accept receivers on private, loopback and link-local addresses
    /// (tests and the demo; never in production: it lets a tenant make
    /// talky call into its own network).
    pub allow_private_targets: bool,
    /// Days an event and its delivery log are kept once no delivery of
    /// it is pending (the deliveries API shows them until then); a
    /// sweeper on every node deletes older ones.
    pub retention_days: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            retry_for_secs: 86_400,
            retry_base_ms: 5_000,
            retry_max_secs: 3_600,
            timeout_ms: 10_000,
            concurrency: 8,
            poll_ms: 1_000,
            allow_private_targets: false,
            retention_days: 30,
        }
    }
}

impl WebhooksConfig {
    /// Every value is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("webhooks.retry_for_secs", self.retry_for_secs)?;
        positive("webhooks.retry_base_ms", self.retry_base_ms)?;
        positive("webhooks.retry_max_secs", self.retry_max_secs)?;
        positive("webhooks.timeout_ms", self.timeout_ms)?;
        positive("webhooks.concurrency", self.concurrency as u64)?;
        positive("webhooks.poll_ms", self.poll_ms)?;
        if !(1..=3650).contains(&self.retention_days) {
            return Err(ConfigError::new(
                key_label("webhooks.retention_days"),
                "must be 1 to 3650",
            ));
        }
        if self.concurrency > 256 {
            return Err(ConfigError::new(
                key_label("webhooks.concurrency"),
                "must be at most 256",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeros_are_named() {
        let c = WebhooksConfig::default();
        c.validate().expect("defaults");
        assert_eq!(c.retry_for_secs, 86_400);
        assert!(!c.allow_private_targets, "private targets are opt-in");
        let err = WebhooksConfig {
            timeout_ms: 0,
            ..WebhooksConfig::default()
        }
        .validate()
        .expect_err("zero timeout");
        assert!(
            err.to_string().contains("TALKY_WEBHOOKS__TIMEOUT_MS"),
            "{err}"
        );
        let err = WebhooksConfig {
            concurrency: 1000,
            ..WebhooksConfig::default()
        }
        .validate()
        .expect_err("too many");
        assert!(err.to_string().contains("webhooks.concurrency"), "{err}");
        assert_eq!(c.retention_days, 30);
        let err = WebhooksConfig {
            retention_days: 0,
            ..WebhooksConfig::default()
        }
        .validate()
        .expect_err("no retention");
        assert!(
            err.to_string().contains("TALKY_WEBHOOKS__RETENTION_DAYS"),
            "{err}"
        );
    }

    #[test]
    fn the_environment_names_the_section() {
        assert_eq!(
            super::super::env_key("WEBHOOKS__ALLOW_PRIVATE_TARGETS").as_deref(),
            Some("webhooks.allow_private_targets")
        );
    }
}
