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
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

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

    fn is_empty(&self) -> bool {
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
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
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
}

/// Default listen address: loopback, so a fresh install exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default JSON request body limit.
pub const DEFAULT_MAX_JSON_BODY_BYTES: u64 = 1024 * 1024;
/// Default time a request may take before it is answered with 503.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// HTTP server settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server binds (`TALKY_LISTEN`).
    pub listen: String,
    /// URL at which providers reach this node (`TALKY_PUBLIC_URL`); goes
    /// into the NCCO and event URLs of the calls this node places. Defaults
    /// to `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest JSON body accepted (bytes); larger is a 413.
    pub max_json_body_bytes: u64,
    /// Whole-request deadline (ms); a handler past it answers 503.
    pub request_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            public_url: None,
            max_json_body_bytes: DEFAULT_MAX_JSON_BODY_BYTES,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
        }
    }
}

/// Default size of the PostgreSQL connection pool.
pub const DEFAULT_DB_POOL_SIZE: u32 = 16;
/// Default wait for a pooled connection (ms).
pub const DEFAULT_DB_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default per-statement limit (ms), set on every pooled connection.
pub const DEFAULT_DB_STATEMENT_TIMEOUT_MS: u64 = 30_000;

/// PostgreSQL settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL (`DATABASE_URL`); may carry a password, so a secret.
    pub url: Secret,
    /// File holding the URL, for secret stores that mount files.
    pub url_file: Option<PathBuf>,
    /// Pool size.
    pub pool_size: u32,
    /// Wait for a pooled connection before failing (ms).
    pub connect_timeout_ms: u64,
    /// Server-side statement timeout (ms).
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            url_file: None,
            pool_size: DEFAULT_DB_POOL_SIZE,
            connect_timeout_ms: DEFAULT_DB_CONNECT_TIMEOUT_MS,
            statement_timeout_ms: DEFAULT_DB_STATEMENT_TIMEOUT_MS,
        }
    }
}

/// Default Redis URL: the local server `make` starts.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";
/// Default size of the Redis pool.
pub const DEFAULT_REDIS_POOL_SIZE: u32 = 16;
/// Default limit for connecting to Redis and for one command (ms).
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 2_000;

/// Redis settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Connection URL (`REDIS_URL`); may carry a password, so a secret.
    pub url: Secret,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// Pool size.
    pub pool_size: u32,
    /// Connect and command timeout (ms).
    pub timeout_ms: u64,
    /// Share CPS tokens, call slots and campaign leases with other nodes
    /// through Redis; off: this process is the whole cluster (in memory).
    pub cluster: bool,
    /// This node's id in leases; empty: hostname and process id.
    pub node_id: String,
    /// Prefix of every key talky writes.
    pub key_prefix: String,
    /// Life of a campaign lease its node stops renewing (ms).
    pub lease_ttl_ms: u64,
    /// Life of a call slot its node stops renewing (ms).
    pub slot_ttl_ms: u64,
    /// How long a webhook's de-duplication key is kept (s).
    pub dedup_ttl_secs: u64,
    /// Name of the telephony account whose CPS bucket the nodes share
    /// (its rate and burst are `dialer.calls_per_second` / `cps_burst`).
    pub cps_account: String,
}

/// Default prefix of talky's Redis keys.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "talky:";
/// Default life of a campaign lease not renewed (ms).
pub const DEFAULT_LEASE_TTL_MS: u64 = 15_000;
/// Default life of a call slot not renewed (ms).
pub const DEFAULT_SLOT_TTL_MS: u64 = 30_000;
/// Default life of a webhook de-duplication key (s): a day.
pub const DEFAULT_DEDUP_TTL_SECS: u64 = 86_400;
/// Default name of the shared CPS bucket's account.
pub const DEFAULT_CPS_ACCOUNT: &str = "vonage";

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: Secret::new(DEFAULT_REDIS_URL),
            url_file: None,
            pool_size: DEFAULT_REDIS_POOL_SIZE,
            timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            cluster: true,
            node_id: String::new(),
            key_prefix: DEFAULT_REDIS_KEY_PREFIX.into(),
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            slot_ttl_ms: DEFAULT_SLOT_TTL_MS,
            dedup_ttl_secs: DEFAULT_DEDUP_TTL_SECS,
            cps_account: DEFAULT_CPS_ACCOUNT.into(),
        }
    }
}

impl RedisConfig {
    /// This node's id: `node_id`, or hostname and process id.
    pub fn node(&self) -> String {
        if !self.node_id.trim().is_empty() {
            return self.node_id.trim().to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        format!("{host}-{}", std::process::id())
    }
}

/// Admin settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for `/api/v1/admin/*` (`TALKY_ADMIN_TOKEN`). Empty
    /// disables the admin API (tenants are then made with the CLI).
    pub token: Secret,
    /// File holding the token.
    pub token_file: Option<PathBuf>,
}

/// Vonage webhook settings (the API client's come with the dialer).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VonageWebhookConfig {
    /// Secret Vonage signs webhooks with (`TALKY_VONAGE__SIGNATURE_SECRET`).
    /// When set, a webhook with a signature that does not verify is refused.
    pub signature_secret: Secret,
    /// File holding the signature secret.
    pub signature_secret_file: Option<PathBuf>,
    /// Refuse webhooks that carry no signature at all.
    pub require_signed_webhooks: bool,
}

/// The providers of `talky serve`'s dialer. Every base URL is
/// configuration, so the emulators of `talky::sim` stand in for the real
/// services; API keys are secrets (environment or `*_file`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Run the dialer (campaigns then really call). Off: the lifecycle
    /// routes only change stored state.
    pub enabled: bool,
    /// Vonage Voice API base URL (empty: the real one).
    pub vonage_api_base_url: String,
    /// Vonage application id.
    pub vonage_application_id: String,
    /// PEM file of the Vonage application's private key.
    pub vonage_private_key_file: Option<PathBuf>,
    /// `inline` (NCCO in the create-call body) or `answer_url` (Vonage
    /// fetches it from `/vonage/answer/{call_id}` on answer).
    pub vonage_answer_mode: crate::providers::vonage::AnswerMode,
    /// Deepgram base URL, ws:// or wss:// (empty: the real one).
    pub deepgram_base_url: String,
    /// Deepgram API key (`TALKY_PROVIDERS__DEEPGRAM_API_KEY`).
    pub deepgram_api_key: Secret,
    /// OpenAI-compatible chat completions base URL (empty: Groq's).
    pub llm_base_url: String,
    /// Its API key (`TALKY_PROVIDERS__LLM_API_KEY`).
    pub llm_api_key: Secret,
    /// ElevenLabs HTTP base URL (empty: the real one).
    pub elevenlabs_base_url: String,
    /// ElevenLabs API key (`TALKY_PROVIDERS__ELEVENLABS_API_KEY`).
    pub elevenlabs_api_key: Secret,
    /// Groq Whisper (STT fallback) base URL, http(s) (empty: Groq's).
    pub whisper_base_url: String,
    /// Whisper API key (`TALKY_PROVIDERS__WHISPER_API_KEY`); empty: the
    /// LLM key (both are Groq's by default).
    pub whisper_api_key: Secret,
    /// Whisper model (empty: `whisper-large-v3-turbo`).
    pub whisper_model: String,
    /// Deepgram Aura (TTS fallback) base URL, http(s) (empty: Deepgram's);
    /// its key is `deepgram_api_key`.
    pub aura_base_url: String,
    /// Aura voice used when a campaign's voice is not an `aura-` id
    /// (empty: `aura-2-thalia-en`).
    pub aura_model: String,
    /// Second OpenAI-compatible LLM (e.g. OpenAI's `https://api.openai.com/v1`);
    /// empty: the LLM chain has one provider.
    pub llm_fallback_base_url: String,
    /// Its API key (`TALKY_PROVIDERS__LLM_FALLBACK_API_KEY`).
    pub llm_fallback_api_key: Secret,
}

/// The dialer's limits: how many calls may be live at once and how fast
/// they are placed. Defaults are the actor crate's; a load test raises them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialerSettings {
    /// Calls live in the process at once (`TALKY_DIALER__GLOBAL_CAP`).
    pub global_cap: u32,
    /// Calls live per tenant at once (`TALKY_DIALER__TENANT_CAP`).
    pub tenant_cap: u32,
    /// Calls placed per second, the telephony account's limit
    /// (`TALKY_DIALER__CALLS_PER_SECOND`).
    pub calls_per_second: f64,
    /// Burst of the calls-per-second bucket (`TALKY_DIALER__CPS_BURST`).
    pub cps_burst: u32,
    /// How often a campaign looks for due contacts, ms
    /// (`TALKY_DIALER__CAMPAIGN_TICK_MS`).
    pub campaign_tick_ms: u64,
}

impl Default for DialerSettings {
    fn default() -> Self {
        let d = talky_actors::dialer::DialerConfig::default();
        Self {
            global_cap: d.global_cap,
            tenant_cap: d.tenant_cap,
            calls_per_second: d.calls_per_second,
            cps_burst: d.cps_burst,
            campaign_tick_ms: talky_actors::campaign_actor::DEFAULT_TICK.as_millis() as u64,
        }
    }
}

impl DialerSettings {
    /// The actor crate's dialer configuration.
    pub fn dialer_config(&self) -> talky_actors::dialer::DialerConfig {
        talky_actors::dialer::DialerConfig {
            global_cap: self.global_cap.max(1),
            tenant_cap: self.tenant_cap.max(1),
            calls_per_second: self.calls_per_second.max(0.1),
            cps_burst: self.cps_burst.max(1),
            ..talky_actors::dialer::DialerConfig::default()
        }
    }

    /// The campaign actors' configuration.
    pub fn campaign_config(&self) -> talky_actors::campaign_actor::CampaignConfig {
        talky_actors::campaign_actor::CampaignConfig {
            tick: std::time::Duration::from_millis(self.campaign_tick_ms.max(1)),
            ..talky_actors::campaign_actor::CampaignConfig::default()
        }
    }
}

/// Default region for numbers written without a country code.
pub const DEFAULT_REGION: &str = "US";
/// Default limit on an uploaded contact list (bytes).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 32 * 1024 * 1024;
/// Default limit on rows in one upload.
pub const DEFAULT_MAX_ROWS: usize = 200_000;
/// Default limit on one CSV field or JSON string (bytes).
pub const DEFAULT_MAX_FIELD_LEN: usize = 1024;
/// Default limit on columns of a CSV upload.
pub const DEFAULT_MAX_COLUMNS: usize = 64;

/// Contact import settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContactsConfig {
    /// ISO 3166 region for numbers without a `+country` prefix.
    pub default_region: String,
    /// Largest upload (bytes); larger is a 413.
    pub max_upload_bytes: u64,
    /// Most rows in one upload; more is a 413.
    pub max_rows: usize,
    /// Longest field (bytes); longer is a 422.
    pub max_field_len: usize,
    /// Most CSV columns; more is a 422.
    pub max_columns: usize,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        Self {
            default_region: DEFAULT_REGION.into(),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_rows: DEFAULT_MAX_ROWS,
            max_field_len: DEFAULT_MAX_FIELD_LEN,
            max_columns: DEFAULT_MAX_COLUMNS,
        }
    }
}

/// Default log filter (tracing-subscriber EnvFilter syntax).
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Logging settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Filter, e.g. `info,talky=debug`; `RUST_LOG` overrides it.
    pub filter: String,
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: DEFAULT_LOG_FILTER.into(),
            json: false,
        }
    }
}

/// The fixed operator-facing variables and the keys they set.
const NAMED_VARS: [(&str, &str); 5] = [
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("TALKY_LISTEN", "server.listen"),
    ("TALKY_PUBLIC_URL", "server.public_url"),
    ("TALKY_ADMIN_TOKEN", "admin.token"),
];

/// Keys that hold secrets and so may not come from the TOML file.
const SECRET_KEYS: [&str; 9] = [
    "database.url",
    "redis.url",
    "admin.token",
    "vonage.signature_secret",
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

fn key_label(key: &str) -> String {
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
            check_no_secrets_in_file(&text, file)?;
            figment = figment.merge(Toml::string(&text));
        }
        figment = figment
            .merge(Env::prefixed("TALKY_").filter_map(|key| {
                // Only section-qualified names (TALKY_SECTION__KEY); the
                // fixed names are mapped below, other TALKY_* belong to
                // the scripts.
                key.as_str()
                    .contains("__")
                    .then(|| key.as_str().replace("__", ".").into())
            }))
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
            &mut self.admin.token,
            &self.admin.token_file,
            "admin.token_file",
        )?;
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
            "database.connect_timeout_ms",
            self.database.connect_timeout_ms,
        )?;
        positive(
            "database.statement_timeout_ms",
            self.database.statement_timeout_ms,
        )?;
        positive("redis.pool_size", self.redis.pool_size as u64)?;
        positive("redis.timeout_ms", self.redis.timeout_ms)?;
        positive("redis.lease_ttl_ms", self.redis.lease_ttl_ms)?;
        positive("redis.slot_ttl_ms", self.redis.slot_ttl_ms)?;
        positive("redis.dedup_ttl_secs", self.redis.dedup_ttl_secs)?;
        positive(
            "server.max_json_body_bytes",
            self.server.max_json_body_bytes,
        )?;
        positive("server.request_timeout_ms", self.server.request_timeout_ms)?;
        positive("contacts.max_upload_bytes", self.contacts.max_upload_bytes)?;
        positive("contacts.max_rows", self.contacts.max_rows as u64)?;
        positive("contacts.max_field_len", self.contacts.max_field_len as u64)?;
        positive("contacts.max_columns", self.contacts.max_columns as u64)?;
        crate::phone::parse_region(&self.contacts.default_region)
            .map_err(|e| ConfigError::new(key_label("contacts.default_region"), e.to_string()))?;
        self.recordings.validate()?;
        if self.vonage.require_signed_webhooks && self.vonage.signature_secret.is_empty() {
            return Err(ConfigError::new(
                key_label("vonage.require_signed_webhooks"),
                "is true but vonage.signature_secret (TALKY_VONAGE__SIGNATURE_SECRET) is not set",
            ));
        }
        if self.providers.enabled {
            let p = &self.providers;
            for (key, missing) in [
                (
                    "providers.vonage_application_id",
                    p.vonage_application_id.trim().is_empty(),
                ),
                (
                    "providers.vonage_private_key_file",
                    p.vonage_private_key_file.is_none(),
                ),
                ("providers.deepgram_api_key", p.deepgram_api_key.is_empty()),
                ("providers.llm_api_key", p.llm_api_key.is_empty()),
                (
                    "providers.elevenlabs_api_key",
                    p.elevenlabs_api_key.is_empty(),
                ),
            ] {
                if missing {
                    return Err(ConfigError::new(
                        key_label(key),
                        "is required when providers.enabled is true",
                    ));
                }
            }
            if !p.llm_fallback_base_url.trim().is_empty() && p.llm_fallback_api_key.is_empty() {
                return Err(ConfigError::new(
                    key_label("providers.llm_fallback_api_key"),
                    "is required when providers.llm_fallback_base_url is set",
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|e| ConfigError::new(key_label("log.filter"), e.to_string()))?;
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

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(key_label(key), "must be greater than 0"));
    }
    Ok(())
}

fn read_secret_file(
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

fn check_no_secrets_in_file(text: &str, file: &Path) -> Result<(), ConfigError> {
    let value: toml::Value = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::new(
            format!("--config {}", file.display()),
            format!("not valid TOML: {}", e.message()),
        )
    })?;
    for key in SECRET_KEYS {
        let mut node = Some(&value);
        for part in key.split('.') {
            node = node.and_then(|n| n.get(part));
        }
        if node.is_some() {
            return Err(ConfigError::new(
                key,
                format!(
                    "is a secret and may not be written in {}; set {} or {key}_file",
                    file.display(),
                    env_name(key)
                ),
            ));
        }
    }
    Ok(())
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
        let err = check_no_secrets_in_file("[admin]\ntoken = \"x\"\n", Path::new("t.toml"))
            .expect_err("secret in file");
        assert!(err.to_string().contains("TALKY_ADMIN_TOKEN"), "{err}");
        check_no_secrets_in_file("[server]\nlisten = \"127.0.0.1:1\"\n", Path::new("t.toml"))
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

    #[test]
    fn public_url_defaults_to_listen() {
        let config = Config::default();
        assert_eq!(config.public_url().expect("url"), "http://127.0.0.1:8080");
    }
}
