//! Typed configuration, one struct per concern.
//!
//! Layers, later wins: built-in defaults (`DEFAULT_*`), the TOML file
//! (`config/talky.toml` or `--config`), then the environment. The
//! operator-facing variables keep fixed names:
//!
//! | variable            | key                 |
//! |---------------------|---------------------|
//! | `DATABASE_URL`      | `database.url`      |
//! | `REDIS_URL`         | `redis.url`         |
//! | `TALKY_LISTEN`      | `server.listen`     |
//! | `TALKY_PUBLIC_URL`  | `server.public_url` |
//! | `TALKY_ADMIN_TOKEN` | `admin.token`       |
//!
//! Any other key can be set as `TALKY_<SECTION>__<KEY>` (for example
//! `TALKY_CONTACTS__DEFAULT_REGION=GB`). Secrets (database and Redis URLs
//! may carry passwords, the admin token) come only from the environment or
//! from a file named by `*_file`, never from the TOML file, and print as
//! `[redacted]`. A bad setting stops start-up with one line naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::{Deserialize, Serialize};

mod callbacks;
mod contacts;
mod dialer;
mod providers;
mod server;
mod storage;
mod webhooks;

pub use callbacks::VonageWebhookConfig;
pub use contacts::*;
pub use dialer::DialerSettings;
pub use providers::{
    AuraProvider, KeyedProvider, LEGACY as LEGACY_PROVIDER_KEYS, ProvidersConfig, TwilioProvider,
    VonageProvider, WhisperProvider, legacy_key,
};
pub use server::*;
pub use storage::*;
pub use webhooks::WebhooksConfig;

/// Where the config file is looked for when none is named.
pub const DEFAULT_CONFIG_PATH: &str = "config/talky.toml";

/// A value that must never reach a log line.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A setting that is missing or wrong; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {problem}")]
pub struct ConfigError {
    /// The dotted key (and its environment variable where it has one).
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listener and the public URL providers call back on.
    pub server: ServerConfig,
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Redis.
    pub redis: RedisConfig,
    /// The admin token that creates tenants.
    pub admin: AdminConfig,
    /// Request rate limits of tenants' API keys (`[api]`).
    pub api: ApiConfig,
    /// Contact import rules and limits.
    pub contacts: ContactsConfig,
    /// Vonage webhooks.
    pub vonage: VonageWebhookConfig,
    /// The providers a running dialer calls through.
    pub providers: ProvidersConfig,
    /// The dialer's caps and pace (`[dialer]`).
    pub dialer: DialerSettings,
    /// Logging.
    pub log: LogConfig,
    /// Call recordings: directory and encoder pool.
    pub recordings: crate::recording::config::RecordingsConfig,
    /// Limits of the providers' media sockets (`[media]`).
    pub media: MediaConfig,
    /// Post-call analysis workers (`[analysis]`).
    pub analysis: crate::analysis::config::AnalysisConfig,
    /// Customer webhooks' delivery (`[webhooks]`).
    pub webhooks: WebhooksConfig,
}

/// The fixed operator-facing variables and the keys they set.
const NAMED_VARS: [(&str, &str); 5] = [
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("TALKY_LISTEN", "server.listen"),
    ("TALKY_PUBLIC_URL", "server.public_url"),
    ("TALKY_ADMIN_TOKEN", "admin.token"),
];

/// Keys that hold secrets and so may not come from the TOML file (the
/// providers' keys also under their older flat names).
const SECRET_KEYS: [&str; 18] = [
    "recordings.s3.secret_access_key",
    "database.url",
    "redis.url",
    "admin.token",
    "vonage.signature_secret",
    "vonage.callback_key",
    "providers.deepgram.api_key",
    "providers.llm.api_key",
    "providers.elevenlabs.api_key",
    "providers.whisper.api_key",
    "providers.llm_fallback.api_key",
    "providers.twilio.auth_token",
    "providers.twilio.api_key_secret",
    "providers.deepgram_api_key",
    "providers.llm_api_key",
    "providers.elevenlabs_api_key",
    "providers.whisper_api_key",
    "providers.llm_fallback_api_key",
];

fn env_name(key: &str) -> String {
    NAMED_VARS
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(var, _)| (*var).to_string())
        .unwrap_or_else(|| format!("TALKY_{}", key.to_uppercase().replace('.', "__")))
}

pub(crate) fn key_label(key: &str) -> String {
    format!("{key} ({})", env_name(key))
}

impl Config {
    /// Loads the configuration: defaults, then the file (`path`, or
    /// [`DEFAULT_CONFIG_PATH`] when it exists), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", p.display()),
                ));
            }
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                ConfigError::new("--config", format!("cannot read {}: {e}", file.display()))
            })?;
            figment = figment.merge(Serialized::defaults(file_layer(&text, file)?));
        }
        figment = figment
            .merge(Env::prefixed("TALKY_").filter_map(|key| env_key(key.as_str()).map(Into::into)))
            .merge(Env::raw().filter_map(|var| {
                NAMED_VARS
                    .iter()
                    .find(|(name, _)| var.as_str() == *name)
                    .map(|(_, key)| (*key).into())
            }));
        let mut config: Config = figment.extract().map_err(from_figment)?;
        config.read_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        read_secret_file(
            &mut self.database.url,
            &self.database.url_file,
            "database.url_file",
        )?;
        read_secret_file(&mut self.redis.url, &self.redis.url_file, "redis.url_file")?;
        read_secret_file(
            &mut self.vonage.signature_secret,
            &self.vonage.signature_secret_file,
            "vonage.signature_secret_file",
        )?;
        read_secret_file(
            &mut self.vonage.callback_key,
            &self.vonage.callback_key_file,
            "vonage.callback_key_file",
        )?;
        read_secret_file(
            &mut self.admin.token,
            &self.admin.token_file,
            "admin.token_file",
        )?;
        self.providers.read_secret_files()?;
        self.recordings.read_secret_files()?;
        Ok(())
    }

    /// Checks every value, so a bad one stops start-up, not a request.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.public_url()?;
        if self.database.url.is_empty() {
            return Err(ConfigError::new(
                key_label("database.url"),
                "not set (e.g. postgres://talky:talky@127.0.0.1:5432/talky)",
            ));
        }
        let db = self.database.url.expose();
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                key_label("database.url"),
                "must start with postgres:// or postgresql://",
            ));
        }
        let redis = self.redis.url.expose();
        if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError::new(
                key_label("redis.url"),
                "must start with redis:// or rediss://",
            ));
        }
        positive("database.pool_size", self.database.pool_size as u64)?;
        positive(
            "database.live_pool_size",
            self.database.live_pool_size as u64,
        )?;
        positive(
            "database.connect_timeout_ms",
            self.database.connect_timeout_ms,
        )?;
        positive(
            "database.statement_timeout_ms",
            self.database.statement_timeout_ms,
        )?;
        positive("redis.pool_size", self.redis.pool_size as u64)?;
        positive("redis.timeout_ms", self.redis.timeout_ms)?;
        if self
            .redis
            .node_id
            .as_ref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(ConfigError::new(
                key_label("redis.node_id"),
                "is empty: leave the setting out for hostname-pid",
            ));
        }
        positive("redis.lease_ttl_ms", self.redis.lease_ttl_ms)?;
        positive("redis.slot_ttl_ms", self.redis.slot_ttl_ms)?;
        positive("redis.dedup_ttl_secs", self.redis.dedup_ttl_secs)?;
        positive(
            "server.max_json_body_bytes",
            self.server.max_json_body_bytes,
        )?;
        positive("server.request_timeout_ms", self.server.request_timeout_ms)?;
        positive(
            "server.body_read_timeout_ms",
            self.server.body_read_timeout_ms,
        )?;
        if !(self.api.rate_per_second.is_finite() && self.api.rate_per_second >= 0.0) {
            return Err(ConfigError::new(
                key_label("api.rate_per_second"),
                "must be a number >= 0 (0: no limit)",
            ));
        }
        positive("api.burst", self.api.burst as u64)?;
        positive("contacts.max_upload_bytes", self.contacts.max_upload_bytes)?;
        positive("contacts.max_rows", self.contacts.max_rows as u64)?;
        positive("contacts.max_field_len", self.contacts.max_field_len as u64)?;
        positive("contacts.max_columns", self.contacts.max_columns as u64)?;
        crate::phone::parse_region(&self.contacts.default_region)
            .map_err(|e| ConfigError::new(key_label("contacts.default_region"), e.to_string()))?;
        self.recordings.validate()?;
        self.analysis.validate()?;
        self.webhooks.validate()?;
        positive("media.idle_timeout_secs", self.media.idle_timeout_secs)?;
        if !(1024..=1024 * 1024).contains(&self.media.max_message_bytes) {
            return Err(ConfigError::new(
                key_label("media.max_message_bytes"),
                "must be 1024 to 1048576",
            ));
        }
        if self.vonage.require_signed_webhooks && self.vonage.signature_secret.is_empty() {
            return Err(ConfigError::new(
                key_label("vonage.require_signed_webhooks"),
                "is true but vonage.signature_secret (TALKY_VONAGE__SIGNATURE_SECRET) is not set",
            ));
        }
        if self.vonage.require_signed_webhooks && self.vonage.allow_unsigned_webhooks {
            return Err(ConfigError::new(
                key_label("vonage.allow_unsigned_webhooks"),
                "contradicts vonage.require_signed_webhooks (deprecated: signatures are required whenever a secret is set); remove one",
            ));
        }
        self.providers.validate()?;
        if self.providers.enabled {
            let default = self.dialer.default_telephony;
            if let Some(missing) = default
                .providers()
                .iter()
                .find(|p| !self.providers.has_telephony(**p))
            {
                return Err(ConfigError::new(
                    key_label("dialer.default_telephony"),
                    format!(
                        "is {default}, but [providers.{missing}] is not configured on this server"
                    ),
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| ConfigError::new(key_label("log.filter"), e.to_string()))?;
        Ok(())
    }

    /// What `talky serve` adds to [`Config::validate`]: provider callbacks
    /// must be authenticated. With no `vonage.signature_secret`, the public
    /// URL's host must be loopback unless `vonage.insecure_unsigned_callbacks`
    /// says otherwise.
    ///
    /// The same for Twilio when it is configured: with no
    /// `providers.twilio.auth_token` (the key of `X-Twilio-Signature`), a
    /// public URL that is not loopback needs
    /// `providers.twilio.insecure_unsigned_callbacks`.
    pub fn check_serve(&self) -> Result<(), ConfigError> {
        let url = self.public_url()?;
        let public = !is_loopback_url(&url);
        let v = &self.vonage;
        if public && v.signature_secret.is_empty() && !v.insecure_unsigned_callbacks {
            return Err(ConfigError::new(
                key_label("vonage.signature_secret"),
                format!(
                    "not set while the public URL {url} is not loopback: anyone could forge Vonage callbacks; set it (or TALKY_VONAGE__INSECURE_UNSIGNED_CALLBACKS=true to run unauthenticated)"
                ),
            ));
        }
        let t = &self.providers.twilio;
        if public && t.is_configured() && t.auth_token.is_empty() && !t.insecure_unsigned_callbacks
        {
            return Err(ConfigError::new(
                key_label("providers.twilio.auth_token"),
                format!(
                    "not set while Twilio is configured and the public URL {url} is not loopback: X-Twilio-Signature cannot be checked and anyone could forge Twilio callbacks; set it (or TALKY_PROVIDERS__TWILIO__INSECURE_UNSIGNED_CALLBACKS=true to run unauthenticated)"
                ),
            ));
        }
        Ok(())
    }

    /// The socket address to bind.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.trim().parse().map_err(|_| {
            ConfigError::new(
                key_label("server.listen"),
                format!(
                    "{:?} is not a socket address like 127.0.0.1:8080",
                    self.server.listen
                ),
            )
        })
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> Result<String, ConfigError> {
        let url = match &self.server.public_url {
            Some(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_string(),
            _ => format!("http://{}", self.server.listen.trim()),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::new(
                key_label("server.public_url"),
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        Ok(url)
    }

    /// The region for numbers without a country code (validated at load).
    pub fn default_region(&self) -> phonenumber::country::Id {
        crate::phone::parse_region(&self.contacts.default_region)
            .unwrap_or(phonenumber::country::Id::US)
    }

    /// The per-statement timeout.
    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.database.statement_timeout_ms)
    }
}

/// Whether an http(s) URL's host is a loopback address or `localhost`.
fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(key_label(key), "must be greater than 0"));
    }
    Ok(())
}

pub(crate) fn read_secret_file(
    target: &mut Secret,
    file: &Option<PathBuf>,
    key: &str,
) -> Result<(), ConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                key_label(key),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        *target = Secret::new(text.trim());
    }
    Ok(())
}

/// The key a `TALKY_*` variable (prefix stripped) sets: only
/// section-qualified names (`TALKY_SECTION__KEY`; the fixed names are
/// mapped apart, other `TALKY_*` belong to the scripts), the providers'
/// older flat names meaning their section's key.
fn env_key(var: &str) -> Option<String> {
    if !var.contains("__") {
        return None;
    }
    let key = var.replace("__", ".").to_lowercase();
    Some(match key.strip_prefix("providers.").and_then(legacy_key) {
        Some(new) => format!("providers.{new}"),
        None => key,
    })
}

/// The config file as a layer: parsed, secrets refused, the providers'
/// older flat keys moved into their sections.
fn file_layer(text: &str, file: &Path) -> Result<toml::Table, ConfigError> {
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::new(
            format!("--config {}", file.display()),
            format!("not valid TOML: {}", e.message()),
        )
    })?;
    let value = toml::Value::Table(doc.clone());
    for key in SECRET_KEYS {
        let mut node = Some(&value);
        for part in key.split('.') {
            node = node.and_then(|n| n.get(part));
        }
        if node.is_some() {
            let current = key
                .strip_prefix("providers.")
                .and_then(legacy_key)
                .map(|new| format!("providers.{new}"))
                .unwrap_or_else(|| key.to_string());
            return Err(ConfigError::new(
                key,
                format!(
                    "is a secret and may not be written in {}; set {} or {current}_file",
                    file.display(),
                    env_name(&current)
                ),
            ));
        }
    }
    providers::rewrite_legacy(&mut doc)?;
    // `node_id = ""` was the documented way to say "hostname-pid".
    if let Some(toml::Value::Table(redis)) = doc.get_mut("redis")
        && redis
            .get("node_id")
            .and_then(toml::Value::as_str)
            .is_some_and(|id| id.trim().is_empty())
    {
        redis.remove("node_id");
    }
    Ok(doc)
}

fn from_figment(error: figment::Error) -> ConfigError {
    let key = if error.path.is_empty() {
        "config".to_string()
    } else {
        key_label(&error.path.join("."))
    };
    ConfigError::new(key, error.kind.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults, then `text` as the file: what [`Config::load`] builds
    /// before the environment.
    fn from_file(text: &str) -> Result<Config, ConfigError> {
        let doc = file_layer(text, Path::new("test.toml"))?;
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Serialized::defaults(doc))
            .extract()
            .map_err(from_figment)
    }

    #[test]
    fn the_shipped_file_loads_as_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let text = std::fs::read_to_string(path).expect("config/talky.toml");
        let c = from_file(&text).expect("the shipped file");
        assert_eq!(
            c.providers.vonage.answer_mode,
            Config::default().providers.vonage.answer_mode
        );
        assert_eq!(c.providers.deepgram.base_url, None);
        assert_eq!(c.redis.node_id, None);
        assert_eq!(
            c.dialer.default_telephony,
            Config::default().dialer.default_telephony
        );
        assert!(!c.providers.twilio.is_configured());
        assert!(!c.providers.twilio.allow_unsigned_webhooks);
        assert!(!c.providers.twilio.insecure_unsigned_callbacks);
        c.providers.validate().expect("valid");
        assert_eq!(
            c.recordings.store,
            crate::recording::config::StoreKind::Local
        );
        assert_eq!(c.recordings.s3.timeout_secs, 60);
        c.recordings.validate().expect("valid");
    }

    #[test]
    fn the_bucket_secret_may_not_be_written_in_the_file() {
        let err = from_file("[recordings.s3]\nsecret_access_key = \"k\"\n").expect_err("secret");
        assert!(
            err.to_string().contains("recordings.s3.secret_access_key"),
            "{err}"
        );
    }

    #[test]
    fn a_file_of_the_first_release_still_loads() {
        let c = from_file(
            r#"
            [redis]
            node_id = ""
            [providers]
            enabled = false
            vonage_api_base_url = ""
            deepgram_base_url = "ws://127.0.0.1:9"
            whisper_model = "whisper-large-v3"
            vonage_answer_mode = "answer_url"
            "#,
        )
        .expect("legacy file");
        assert_eq!(c.redis.node_id, None, "node_id = \"\" meant hostname-pid");
        assert_eq!(c.providers.vonage.api_base_url, None);
        assert_eq!(
            c.providers.deepgram.base_url.as_deref(),
            Some("ws://127.0.0.1:9")
        );
        assert_eq!(
            c.providers.whisper.model.as_deref(),
            Some("whisper-large-v3")
        );
        assert_eq!(
            c.providers.vonage.answer_mode,
            crate::providers::vonage::AnswerMode::AnswerUrl
        );
        // A legacy secret in the file is refused under the name it was
        // written with, pointing at the current variable.
        let err = from_file("[providers]\nllm_api_key = \"k\"\n").expect_err("secret");
        assert!(err.to_string().contains("providers.llm_api_key"), "{err}");
        assert!(
            err.to_string().contains("TALKY_PROVIDERS__LLM__API_KEY"),
            "{err}"
        );
    }

    #[test]
    fn twilio_credentials_may_not_be_written_in_the_file() {
        for (text, var) in [
            (
                "[providers.twilio]\nauth_token = \"t\"\n",
                "TALKY_PROVIDERS__TWILIO__AUTH_TOKEN",
            ),
            (
                "[providers.twilio]\napi_key_secret = \"s\"\n",
                "TALKY_PROVIDERS__TWILIO__API_KEY_SECRET",
            ),
        ] {
            let err = from_file(text).expect_err("secret");
            assert!(err.to_string().contains(var), "{err}");
        }
        let c = from_file("[providers.twilio]\naccount_sid = \"AC1\"\n").expect("not a secret");
        assert_eq!(c.providers.twilio.account_sid.as_deref(), Some("AC1"));
    }

    #[test]
    fn environment_names_old_and_new_set_the_same_key() {
        assert_eq!(
            env_key("PROVIDERS__DEEPGRAM_API_KEY").as_deref(),
            Some("providers.deepgram.api_key")
        );
        assert_eq!(
            env_key("PROVIDERS__DEEPGRAM__API_KEY").as_deref(),
            Some("providers.deepgram.api_key")
        );
        assert_eq!(
            env_key("PROVIDERS__LLM_FALLBACK_BASE_URL").as_deref(),
            Some("providers.llm_fallback.base_url")
        );
        assert_eq!(
            env_key("CONTACTS__MAX_ROWS").as_deref(),
            Some("contacts.max_rows")
        );
        assert_eq!(env_key("SKIP_FUZZ"), None);
    }

    #[test]
    fn secrets_are_redacted() {
        let mut config = Config::default();
        config.admin.token = Secret::new("hunter2");
        config.database.url = Secret::new("postgres://u:pw@h/db");
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("pw@"));
        assert!(text.contains("[redacted]"));
    }

    #[test]
    fn secrets_in_the_file_are_refused() {
        let err = file_layer("[admin]\ntoken = \"x\"\n", Path::new("t.toml"))
            .expect_err("secret in file");
        assert!(err.to_string().contains("TALKY_ADMIN_TOKEN"), "{err}");
        file_layer("[server]\nlisten = \"127.0.0.1:1\"\n", Path::new("t.toml"))
            .expect("no secrets");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut config = Config::default();
        config.database.url = Secret::new("postgres://x@y/z");
        config.validate().expect("defaults are valid");
        config.server.listen = "nope".into();
        let err = config.validate().expect_err("bad listen");
        assert!(
            err.to_string()
                .starts_with("config: server.listen (TALKY_LISTEN):"),
            "{err}"
        );
        config.server.listen = DEFAULT_LISTEN.into();
        config.contacts.default_region = "XX1".into();
        let err = config.validate().expect_err("bad region");
        assert!(
            err.to_string()
                .contains("contacts.default_region (TALKY_CONTACTS__DEFAULT_REGION)"),
            "{err}"
        );
        config.contacts.default_region = "GB".into();
        config.database.url = Secret::new("mysql://x");
        let err = config.validate().expect_err("bad db url");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    fn serving(public_url: Option<&str>) -> Config {
        let mut config = Config::default();
        config.database.url = Secret::new("postgres://x@y/z");
        config.server.public_url = public_url.map(str::to_string);
        config
    }

    #[test]
    fn serve_refuses_unauthenticated_callbacks_on_a_public_url() {
        for loopback in [
            None,
            Some("http://127.0.0.1:9000"),
            Some("http://127.9.9.9"),
            Some("http://localhost:8080/x"),
            Some("https://[::1]:443"),
        ] {
            serving(loopback)
                .check_serve()
                .unwrap_or_else(|e| panic!("{loopback:?}: {e}"));
        }
        for public in [
            "https://dialer.example.com",
            "http://10.0.0.5:8080",
            "http://0.0.0.0:8080",
            "http://127.0.0.1.evil.example",
            "http://localhost@evil.example",
        ] {
            let err = serving(Some(public))
                .check_serve()
                .expect_err(public)
                .to_string();
            assert!(
                err.starts_with(
                    "config: vonage.signature_secret (TALKY_VONAGE__SIGNATURE_SECRET): not set"
                ) && err.contains("TALKY_VONAGE__INSECURE_UNSIGNED_CALLBACKS")
                    && !err.contains('\n'),
                "{err}"
            );
        }
        let mut listen_all = serving(None);
        listen_all.server.listen = "0.0.0.0:8080".into();
        assert!(
            listen_all.check_serve().is_err(),
            "default public URL from listen"
        );
        let mut signed = serving(Some("https://dialer.example.com"));
        signed.vonage.signature_secret = Secret::new("s");
        signed.check_serve().expect("a secret");
        let mut insecure = serving(Some("https://dialer.example.com"));
        insecure.vonage.insecure_unsigned_callbacks = true;
        insecure.check_serve().expect("the explicit flag");
    }

    #[test]
    fn serve_refuses_unauthenticated_twilio_callbacks_on_a_public_url() {
        let public = || {
            let mut c = serving(Some("https://dialer.example.com"));
            c.vonage.signature_secret = Secret::new("s");
            c
        };
        public().check_serve().expect("Twilio not configured");
        let mut twilio = public();
        twilio.providers.twilio.account_sid = Some("AC1".into());
        let err = twilio.check_serve().expect_err("no auth token").to_string();
        assert!(
            err.starts_with(
                "config: providers.twilio.auth_token (TALKY_PROVIDERS__TWILIO__AUTH_TOKEN): not set"
            ) && err.contains("TALKY_PROVIDERS__TWILIO__INSECURE_UNSIGNED_CALLBACKS")
                && !err.contains('\n'),
            "{err}"
        );
        let mut loopback = twilio.clone();
        loopback.server.public_url = Some("http://127.0.0.1:9000".into());
        loopback.vonage.signature_secret = Secret::default();
        loopback.check_serve().expect("loopback");
        let mut signed = twilio.clone();
        signed.providers.twilio.auth_token = Secret::new("t");
        signed.check_serve().expect("an auth token");
        let mut insecure = twilio.clone();
        insecure.providers.twilio.insecure_unsigned_callbacks = true;
        insecure.check_serve().expect("the explicit flag");
        // The Vonage rule still stands beside it.
        let mut no_vonage_secret = signed;
        no_vonage_secret.vonage.signature_secret = Secret::default();
        let err = no_vonage_secret
            .check_serve()
            .expect_err("vonage")
            .to_string();
        assert!(err.contains("vonage.signature_secret"), "{err}");
    }

    #[test]
    fn unsigned_twilio_callbacks_need_no_token_or_the_named_opt_out() {
        let mut t = TwilioProvider::default();
        assert!(t.accepts_unsigned(), "no token: nothing to check");
        t.auth_token = Secret::new("t");
        assert!(!t.accepts_unsigned(), "a token: signatures required");
        t.allow_unsigned_webhooks = true;
        assert!(t.accepts_unsigned());
    }

    /// A config whose dialer can run, with the telephony given.
    fn dialling(vonage: bool, twilio: bool) -> Config {
        let mut c = serving(None);
        c.providers.enabled = true;
        c.providers.deepgram.api_key = Secret::new("k");
        c.providers.llm.api_key = Secret::new("k");
        c.providers.elevenlabs.api_key = Secret::new("k");
        if vonage {
            c.providers.vonage.application_id = Some("app".into());
            c.providers.vonage.private_key_file = Some("/etc/talky/vonage.pem".into());
        }
        if twilio {
            c.providers.twilio.account_sid = Some("AC1".into());
            c.providers.twilio.auth_token = Secret::new("t");
        }
        c
    }

    #[test]
    fn the_default_telephony_must_be_configured_with_the_dialer_on() {
        use crate::providers::telephony::Telephony;
        dialling(true, false).validate().expect("vonage alone");
        let err = dialling(false, false).validate().expect_err("no telephony");
        assert!(
            err.to_string().contains("providers.vonage.application_id"),
            "{err}"
        );
        // Twilio alone, once it is the default.
        let mut twilio_only = dialling(false, true);
        let err = twilio_only.validate().expect_err("default vonage");
        assert!(
            err.to_string().starts_with(
                "config: dialer.default_telephony (TALKY_DIALER__DEFAULT_TELEPHONY): is vonage"
            ),
            "{err}"
        );
        twilio_only.dialer.default_telephony = Telephony::Twilio;
        twilio_only.validate().expect("twilio alone");
        let mut both = dialling(true, true);
        both.dialer.default_telephony = Telephony::VonageThenTwilio;
        both.validate().expect("both");
        let mut half = dialling(true, false);
        half.dialer.default_telephony = Telephony::VonageThenTwilio;
        let err = half.validate().expect_err("twilio missing");
        assert!(err.to_string().contains("[providers.twilio]"), "{err}");
        // Twilio configured with no credential at all.
        let mut no_token = dialling(true, true);
        no_token.providers.twilio.auth_token = Secret::default();
        let err = no_token.validate().expect_err("credentials");
        assert!(
            err.to_string().contains("providers.twilio.auth_token"),
            "{err}"
        );
        // A half-configured Vonage is still refused beside Twilio.
        let mut half_vonage = dialling(false, true);
        half_vonage.dialer.default_telephony = Telephony::Twilio;
        half_vonage.providers.vonage.application_id = Some("app".into());
        let err = half_vonage.validate().expect_err("key file");
        assert!(
            err.to_string()
                .contains("providers.vonage.private_key_file"),
            "{err}"
        );
        // With the dialer off nothing is required.
        let mut off = dialling(false, false);
        off.providers.enabled = false;
        off.dialer.default_telephony = Telephony::Twilio;
        off.validate().expect("stored, not dialled");
    }

    #[test]
    fn the_default_telephony_is_read_from_the_file() {
        let c = from_file("[dialer]\ndefault_telephony = \"vonage_then_twilio\"\n").expect("file");
        assert_eq!(
            c.dialer.default_telephony,
            crate::providers::telephony::Telephony::VonageThenTwilio
        );
        assert!(from_file("[dialer]\ndefault_telephony = \"both\"\n").is_err());
        assert_eq!(
            env_key("DIALER__DEFAULT_TELEPHONY").as_deref(),
            Some("dialer.default_telephony")
        );
    }

    #[test]
    fn unsigned_callbacks_need_no_secret_or_the_named_opt_out() {
        let mut config = serving(None);
        assert!(
            config.vonage.accepts_unsigned(),
            "no secret: nothing to check"
        );
        config.vonage.signature_secret = Secret::new("s");
        assert!(
            !config.vonage.accepts_unsigned(),
            "a secret: signatures required"
        );
        config.vonage.allow_unsigned_webhooks = true;
        assert!(config.vonage.accepts_unsigned());
        config.validate().expect("valid");
        config.vonage.require_signed_webhooks = true;
        let err = config.validate().expect_err("contradiction").to_string();
        assert!(err.contains("vonage.allow_unsigned_webhooks"), "{err}");
        config.vonage.allow_unsigned_webhooks = false;
        config
            .validate()
            .expect("the deprecated key alone still loads");
    }

    #[test]
    fn the_callback_key_is_a_secret() {
        let err = file_layer("[vonage]\ncallback_key = \"x\"\n", Path::new("t.toml"))
            .expect_err("secret in file");
        assert!(
            err.to_string().contains("TALKY_VONAGE__CALLBACK_KEY"),
            "{err}"
        );
        let mut config = serving(None);
        config.vonage.callback_key = Secret::new("cb-secret-1");
        assert!(!format!("{config:?}").contains("cb-secret-1"));
    }

    #[test]
    fn public_url_defaults_to_listen() {
        let config = Config::default();
        assert_eq!(config.public_url().expect("url"), "http://127.0.0.1:8080");
    }
}
