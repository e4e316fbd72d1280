//! `[analysis]`: the post-call analysis workers. Part of
//! [`crate::config::Config`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default analysis workers per node (each runs one analysis at a time).
pub const DEFAULT_ANALYSIS_WORKERS: usize = 2;
/// Default limit of one LLM request of an analysis (ms).
pub const DEFAULT_ANALYSIS_TIMEOUT_MS: u64 = 30_000;
/// Default pause of an idle worker before it looks for work again (ms).
pub const DEFAULT_ANALYSIS_POLL_MS: u64 = 1_000;

/// How an analysis request asks for JSON (`response_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// `json_schema` for OpenAI's API host, `json_object` for any other
    /// (Groq's structured outputs exist for some models only: unconfirmed
    /// which, so JSON mode is the safe default there).
    #[default]
    Auto,
    /// `{"type":"json_schema","json_schema":{...,"strict":...}}`.
    JsonSchema,
    /// `{"type":"json_object"}` (the schema goes in the prompt).
    JsonObject,
}

impl ResponseFormat {
    /// The format to send to the server at `base_url`.
    pub fn resolve(self, base_url: &str) -> ResponseFormat {
        match self {
            ResponseFormat::Auto if base_url.contains("api.openai.com") => {
                ResponseFormat::JsonSchema
            }
            ResponseFormat::Auto => ResponseFormat::JsonObject,
            other => other,
        }
    }
}

/// Analysis settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Workers per node, 0 to 64 (0: this node analyses nothing; another
    /// node's workers take the queue).
    pub workers: usize,
    /// Limit of one LLM request (ms). An analysis makes at most four (two
    /// tries, each on the primary and then the fallback), and its lease
    /// outlasts them all.
    pub timeout_ms: u64,
    /// Pause of an idle worker between looks at the queue (ms).
    pub poll_ms: u64,
    /// `response_format` sent to `providers.llm`.
    pub response_format: ResponseFormat,
    /// `response_format` sent to `providers.llm_fallback`.
    pub fallback_response_format: ResponseFormat,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            workers: DEFAULT_ANALYSIS_WORKERS,
            timeout_ms: DEFAULT_ANALYSIS_TIMEOUT_MS,
            poll_ms: DEFAULT_ANALYSIS_POLL_MS,
            response_format: ResponseFormat::Auto,
            fallback_response_format: ResponseFormat::Auto,
        }
    }
}

impl AnalysisConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        let bad = |key: &str, problem: &str| crate::config::ConfigError {
            key: format!("analysis.{key} (TALKY_ANALYSIS__{})", key.to_uppercase()),
            problem: problem.to_string(),
        };
        if self.workers > 64 {
            return Err(bad("workers", "must be 0 to 64"));
        }
        if !(100..=600_000).contains(&self.timeout_ms) {
            return Err(bad("timeout_ms", "must be 100 to 600000"));
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            return Err(bad("poll_ms", "must be 10 to 60000"));
        }
        Ok(())
    }

    /// One LLM request's limit (the inner timeout).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The whole analysis' limit (the outer timeout): four requests and
    /// the pauses between them.
    pub fn job_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms * 4 + 2_000)
    }

    /// How long a claim is leased: past the job's limit, so only a node
    /// that died (or lost its database) lets a claim lapse.
    pub fn lease(&self) -> Duration {
        self.job_timeout() + Duration::from_secs(10)
    }

    /// An idle worker's pause.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_timeouts_nest() {
        let c = AnalysisConfig::default();
        c.validate().expect("defaults");
        assert!(c.request_timeout() * 4 < c.job_timeout());
        assert!(c.job_timeout() < c.lease());
        let bad = AnalysisConfig {
            workers: 65,
            ..AnalysisConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .key
                .contains("TALKY_ANALYSIS__WORKERS")
        );
    }

    #[test]
    fn auto_format_follows_the_host() {
        assert_eq!(
            ResponseFormat::Auto.resolve("https://api.openai.com/v1"),
            ResponseFormat::JsonSchema
        );
        assert_eq!(
            ResponseFormat::Auto.resolve("https://api.groq.com/openai/v1"),
            ResponseFormat::JsonObject
        );
        assert_eq!(
            ResponseFormat::JsonSchema.resolve("http://127.0.0.1:1"),
            ResponseFormat::JsonSchema
        );
    }
}
