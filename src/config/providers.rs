//! The providers `talky serve`'s dialer calls through: `[providers]` turns
//! the dialer on, and each provider has its own section
//! (`[providers.vonage]`, `[providers.deepgram]`, ...).
//!
//! A setting left out means the provider's default (its real base URL, its
//! default model); an empty string is refused, never read as "default".
//! Every base URL is configuration, so the emulators of the simulated world
//! stand in for the real services. API keys are secrets: the environment
//! (`TALKY_PROVIDERS__DEEPGRAM__API_KEY`) or a file (`api_key_file`).
//!
//! The flat names of the first release (`providers.deepgram_api_key`,
//! `TALKY_PROVIDERS__DEEPGRAM_API_KEY`, ...) keep their meaning: [`LEGACY`]
//! maps each to its section's key (an empty legacy value in the file still
//! means "default", as it did).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, key_label};
use crate::providers::twilio::TwilioMachineDetection;
use crate::providers::vonage::AnswerMode;

/// The dialer's providers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Run the dialer (campaigns then really call). Off: the lifecycle
    /// routes only change stored state.
    pub enabled: bool,
    /// Telephony.
    pub vonage: VonageProvider,
    /// The second telephony provider: used by `talky serve` when its
    /// `account_sid` is set (campaigns choose it through `telephony`).
    pub twilio: TwilioProvider,
    /// Streaming STT (primary); its key also serves Aura.
    pub deepgram: KeyedProvider,
    /// OpenAI-compatible chat completions (unset base URL: Groq's).
    pub llm: KeyedProvider,
    /// A second OpenAI-compatible LLM (e.g. `https://api.openai.com/v1`):
    /// used only when its `base_url` is set.
    pub llm_fallback: KeyedProvider,
    /// Streaming TTS (primary).
    pub elevenlabs: KeyedProvider,
    /// Groq Whisper, the STT fallback.
    pub whisper: WhisperProvider,
    /// Deepgram Aura, the TTS fallback (its key is Deepgram's).
    pub aura: AuraProvider,
}

/// `[providers.vonage]`: the Voice API client.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VonageProvider {
    /// Voice API base URL (unset: the real one).
    pub api_base_url: Option<String>,
    /// The Vonage application's id (required with the dialer on).
    pub application_id: Option<String>,
    /// PEM file of the application's private key (required with the
    /// dialer on).
    pub private_key_file: Option<PathBuf>,
    /// `inline` (NCCO in the create-call body) or `answer_url` (Vonage
    /// fetches it from `/vonage/answer/{call}/{key}` on answer).
    pub answer_mode: AnswerMode,
}

/// `[providers.twilio]`: the Twilio REST client
/// ([`crate::providers::twilio::TwilioConfig`]) and how its callbacks are
/// authenticated. Twilio is configured when `account_sid` is set; the
/// credentials are secrets (environment or `*_file`): the account's auth
/// token, or an API key (SID + secret) instead. The auth token is also
/// what verifies `X-Twilio-Signature`, so it is worth setting even with an
/// API key: with it, every status callback must be signed (401
/// otherwise, unless `allow_unsigned_webhooks`); without it, `talky
/// serve` starts only on a loopback public URL or with
/// `insecure_unsigned_callbacks` (as `[vonage]`'s settings of the same
/// names). Every callback URL carries a per-call key either way.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioProvider {
    /// REST base URL (unset: `https://api.twilio.com`).
    pub api_base_url: Option<String>,
    /// `AC...`: the account calls are created in.
    pub account_sid: Option<String>,
    /// The account's auth token (`TALKY_PROVIDERS__TWILIO__AUTH_TOKEN`).
    pub auth_token: Secret,
    /// File holding the auth token.
    pub auth_token_file: Option<PathBuf>,
    /// `SK...`: an API key to authenticate with instead of the token.
    pub api_key_sid: Option<String>,
    /// The API key's secret (`TALKY_PROVIDERS__TWILIO__API_KEY_SECRET`).
    pub api_key_secret: Secret,
    /// File holding the API key's secret.
    pub api_key_secret_file: Option<PathBuf>,
    /// `off`, `enable` or `detect_message_end` (unset: the latter).
    pub machine_detection: Option<TwilioMachineDetection>,
    /// `MachineDetectionTimeout`, seconds (unset: Twilio's 30).
    pub machine_detection_timeout_secs: Option<u32>,
    /// Connect time-out of each request, ms (unset: 3000).
    pub connect_timeout_ms: Option<u64>,
    /// Whole time-out of each request, ms (unset: 4000); keep it below the
    /// dialer's port timeout.
    pub request_timeout_ms: Option<u64>,
    /// With an auth token, still accept callbacks that carry no
    /// `X-Twilio-Signature` at all; a bad signature is refused regardless.
    /// Off by default.
    pub allow_unsigned_webhooks: bool,
    /// Let `talky serve` start with Twilio configured and no auth token
    /// although its public URL is not loopback (callbacks are then bound
    /// by their URL key alone). Off by default.
    pub insecure_unsigned_callbacks: bool,
}

impl TwilioProvider {
    /// Whether Twilio is configured (its `account_sid` is set): `talky
    /// serve` builds its client and campaigns may choose it.
    pub fn is_configured(&self) -> bool {
        self.account_sid.is_some()
    }

    /// Whether a callback with no `X-Twilio-Signature` is accepted: no
    /// auth token to check it with, or the named opt-out.
    pub fn accepts_unsigned(&self) -> bool {
        self.auth_token.is_empty() || self.allow_unsigned_webhooks
    }

    /// The client settings these make, with the public URL and the
    /// callback key of the rest of the configuration.
    pub fn client_config(
        &self,
        public_url: String,
        callback_key: crate::providers::vonage::CallbackKey,
    ) -> crate::providers::twilio::TwilioConfig {
        let mut c = crate::providers::twilio::TwilioConfig {
            account_sid: self.account_sid.clone().unwrap_or_default(),
            auth_token: self.auth_token.clone(),
            api_key_sid: self.api_key_sid.clone(),
            api_key_secret: self.api_key_secret.clone(),
            public_url,
            machine_detection: self.machine_detection.unwrap_or_default(),
            machine_detection_timeout_secs: self.machine_detection_timeout_secs,
            callback_key,
            ..Default::default()
        };
        if let Some(url) = &self.api_base_url {
            c.api_base_url = url.clone();
        }
        if let Some(ms) = self.connect_timeout_ms {
            c.connect_timeout = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = self.request_timeout_ms {
            c.request_timeout = std::time::Duration::from_millis(ms);
        }
        c
    }
}

/// A provider reached at a base URL with an API key (`[providers.deepgram]`,
/// `[providers.llm]`, `[providers.llm_fallback]`, `[providers.elevenlabs]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyedProvider {
    /// Base URL (unset: the provider's own).
    pub base_url: Option<String>,
    /// API key (environment only, or `api_key_file`).
    pub api_key: Secret,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
}

/// `[providers.whisper]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhisperProvider {
    /// Base URL, http(s) (unset: Groq's).
    pub base_url: Option<String>,
    /// API key (unset: the LLM's key; both are Groq's by default).
    pub api_key: Option<Secret>,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// Model (unset: `whisper-large-v3-turbo`).
    pub model: Option<String>,
}

/// `[providers.aura]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuraProvider {
    /// Base URL, http(s) (unset: Deepgram's).
    pub base_url: Option<String>,
    /// Voice used when a campaign's voice is not an `aura-` id (unset:
    /// `aura-2-thalia-en`).
    pub model: Option<String>,
}

/// The flat keys of `[providers]` before it had a section per provider,
/// and the key each now means.
pub const LEGACY: [(&str, &str); 17] = [
    ("vonage_api_base_url", "vonage.api_base_url"),
    ("vonage_application_id", "vonage.application_id"),
    ("vonage_private_key_file", "vonage.private_key_file"),
    ("vonage_answer_mode", "vonage.answer_mode"),
    ("deepgram_base_url", "deepgram.base_url"),
    ("deepgram_api_key", "deepgram.api_key"),
    ("llm_base_url", "llm.base_url"),
    ("llm_api_key", "llm.api_key"),
    ("elevenlabs_base_url", "elevenlabs.base_url"),
    ("elevenlabs_api_key", "elevenlabs.api_key"),
    ("whisper_base_url", "whisper.base_url"),
    ("whisper_api_key", "whisper.api_key"),
    ("whisper_model", "whisper.model"),
    ("aura_base_url", "aura.base_url"),
    ("aura_model", "aura.model"),
    ("llm_fallback_base_url", "llm_fallback.base_url"),
    ("llm_fallback_api_key", "llm_fallback.api_key"),
];

/// The key (below `providers.`) a legacy flat key means, if it is one.
pub fn legacy_key(flat: &str) -> Option<&'static str> {
    LEGACY
        .iter()
        .find(|(old, _)| *old == flat)
        .map(|(_, new)| *new)
}

/// Rewrites a config file's legacy `[providers]` keys into their
/// sections. An empty legacy value meant "default" and is dropped; a key
/// set both ways is refused.
pub(super) fn rewrite_legacy(doc: &mut toml::Table) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(providers)) = doc.get_mut("providers") else {
        return Ok(());
    };
    for (old, new) in LEGACY {
        let Some(value) = providers.remove(old) else {
            continue;
        };
        if value.as_str().is_some_and(|s| s.trim().is_empty()) {
            continue;
        }
        let (section, key) = new.split_once('.').unwrap_or((new, ""));
        let table = providers
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(table) = table.as_table_mut() else {
            return Err(ConfigError::new(
                format!("providers.{section}"),
                "must be a table",
            ));
        };
        if table.contains_key(key) {
            return Err(ConfigError::new(
                format!("providers.{old}"),
                format!("is the older name of providers.{new}, which is set too; keep one"),
            ));
        }
        table.insert(key.to_string(), value);
    }
    Ok(())
}

impl ProvidersConfig {
    /// Reads the `api_key_file`s.
    pub(super) fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        for (name, p) in [
            ("deepgram", &mut self.deepgram),
            ("llm", &mut self.llm),
            ("llm_fallback", &mut self.llm_fallback),
            ("elevenlabs", &mut self.elevenlabs),
        ] {
            super::read_secret_file(
                &mut p.api_key,
                &p.api_key_file,
                &format!("providers.{name}.api_key_file"),
            )?;
        }
        super::read_secret_file(
            &mut self.twilio.auth_token,
            &self.twilio.auth_token_file,
            "providers.twilio.auth_token_file",
        )?;
        super::read_secret_file(
            &mut self.twilio.api_key_secret,
            &self.twilio.api_key_secret_file,
            "providers.twilio.api_key_secret_file",
        )?;
        if self.whisper.api_key_file.is_some() {
            let mut key = Secret::default();
            super::read_secret_file(
                &mut key,
                &self.whisper.api_key_file,
                "providers.whisper.api_key_file",
            )?;
            self.whisper.api_key = Some(key);
        }
        Ok(())
    }

    /// Checks the sections: no empty string where a value was meant, URL
    /// schemes, and (with the dialer on) what it cannot call without.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let urls = [
            ("vonage.api_base_url", &self.vonage.api_base_url, HTTP),
            ("twilio.api_base_url", &self.twilio.api_base_url, HTTP),
            ("deepgram.base_url", &self.deepgram.base_url, WS),
            ("llm.base_url", &self.llm.base_url, HTTP),
            ("llm_fallback.base_url", &self.llm_fallback.base_url, HTTP),
            ("elevenlabs.base_url", &self.elevenlabs.base_url, HTTP),
            ("whisper.base_url", &self.whisper.base_url, HTTP),
            ("aura.base_url", &self.aura.base_url, HTTP),
        ];
        for (key, url, schemes) in urls {
            if let Some(url) = url {
                let key = format!("providers.{key}");
                non_empty(&key, url)?;
                if !schemes.iter().any(|s| url.trim().starts_with(s)) {
                    return Err(ConfigError::new(
                        key_label(&key),
                        format!("must start with {}", schemes.join(" or ")),
                    ));
                }
            }
        }
        for (key, value) in [
            ("vonage.application_id", &self.vonage.application_id),
            ("twilio.account_sid", &self.twilio.account_sid),
            ("twilio.api_key_sid", &self.twilio.api_key_sid),
            ("whisper.model", &self.whisper.model),
            ("aura.model", &self.aura.model),
        ] {
            if let Some(value) = value {
                non_empty(&format!("providers.{key}"), value)?;
            }
        }
        if let Some(key) = &self.whisper.api_key
            && key.is_empty()
        {
            return Err(empty("providers.whisper.api_key"));
        }
        self.validate_twilio()?;
        if !self.enabled {
            return Ok(());
        }
        // Telephony: Vonage, unless only Twilio is configured.
        let vonage = self.vonage.application_id.is_some() || self.vonage.private_key_file.is_some();
        let vonage_required = vonage || !self.twilio.is_configured();
        if self.twilio.is_configured()
            && self.twilio.auth_token.is_empty()
            && self.twilio.api_key_sid.is_none()
        {
            return Err(ConfigError::new(
                key_label("providers.twilio.auth_token"),
                "is required when providers.twilio.account_sid is set and providers.enabled is true (or api_key_sid and api_key_secret)",
            ));
        }
        for (key, missing) in [
            (
                "providers.vonage.application_id",
                vonage_required && self.vonage.application_id.is_none(),
            ),
            (
                "providers.vonage.private_key_file",
                vonage_required && self.vonage.private_key_file.is_none(),
            ),
            (
                "providers.deepgram.api_key",
                self.deepgram.api_key.is_empty(),
            ),
            ("providers.llm.api_key", self.llm.api_key.is_empty()),
            (
                "providers.elevenlabs.api_key",
                self.elevenlabs.api_key.is_empty(),
            ),
        ] {
            if missing {
                return Err(ConfigError::new(
                    key_label(key),
                    "is required when providers.enabled is true",
                ));
            }
        }
        if self.llm_fallback.base_url.is_some() && self.llm_fallback.api_key.is_empty() {
            return Err(ConfigError::new(
                key_label("providers.llm_fallback.api_key"),
                "is required when providers.llm_fallback.base_url is set",
            ));
        }
        Ok(())
    }

    /// Whether `provider` is configured, so `talky serve`'s dialer can
    /// place calls through it (Vonage: its application id; Twilio: its
    /// account SID; the rest is checked by [`Self::validate`]).
    pub fn has_telephony(&self, provider: crate::providers::telephony::TelephonyProvider) -> bool {
        use crate::providers::telephony::TelephonyProvider;
        match provider {
            TelephonyProvider::Vonage => self.vonage.application_id.is_some(),
            TelephonyProvider::Twilio => self.twilio.is_configured(),
        }
    }

    /// `[providers.twilio]`: an API key needs its secret, time-outs are
    /// not zero. Whether it is complete enough to call is checked with the
    /// dialer on.
    fn validate_twilio(&self) -> Result<(), ConfigError> {
        let t = &self.twilio;
        if t.api_key_sid.is_some() && t.api_key_secret.is_empty() {
            return Err(ConfigError::new(
                key_label("providers.twilio.api_key_secret"),
                "is required when providers.twilio.api_key_sid is set",
            ));
        }
        for (key, ms) in [
            ("providers.twilio.connect_timeout_ms", t.connect_timeout_ms),
            ("providers.twilio.request_timeout_ms", t.request_timeout_ms),
        ] {
            if ms == Some(0) {
                return Err(ConfigError::new(key_label(key), "must be greater than 0"));
            }
        }
        if t.machine_detection_timeout_secs == Some(0) {
            return Err(ConfigError::new(
                key_label("providers.twilio.machine_detection_timeout_secs"),
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

const HTTP: &[&str] = &["http://", "https://"];
const WS: &[&str] = &["ws://", "wss://"];

fn empty(key: &str) -> ConfigError {
    ConfigError::new(
        key_label(key),
        "is empty: leave the setting out for its default",
    )
}

fn non_empty(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(empty(key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_flat_keys_move_into_their_sections() {
        let mut doc: toml::Table = r#"
            [providers]
            enabled = true
            deepgram_base_url = "ws://127.0.0.1:9"
            whisper_model = ""
            vonage_answer_mode = "answer_url"
        "#
        .parse()
        .expect("toml");
        rewrite_legacy(&mut doc).expect("rewrite");
        let p = doc["providers"].as_table().expect("table");
        assert_eq!(p["deepgram"]["base_url"].as_str(), Some("ws://127.0.0.1:9"));
        assert_eq!(p["vonage"]["answer_mode"].as_str(), Some("answer_url"));
        assert!(p.get("whisper").is_none(), "an empty legacy value: default");
        assert!(p.get("deepgram_base_url").is_none());
        assert_eq!(legacy_key("llm_api_key"), Some("llm.api_key"));
        assert_eq!(legacy_key("llm.api_key"), None);
    }

    #[test]
    fn a_key_set_both_ways_is_refused() {
        let mut doc: toml::Table = r#"
            [providers]
            llm_base_url = "http://a"
            [providers.llm]
            base_url = "http://b"
        "#
        .parse()
        .expect("toml");
        let err = rewrite_legacy(&mut doc).expect_err("both");
        assert!(err.to_string().contains("providers.llm_base_url"), "{err}");
    }

    #[test]
    fn the_twilio_section_is_optional_and_checked() {
        let p: ProvidersConfig = toml::from_str(
            r#"
            [twilio]
            api_base_url = "http://127.0.0.1:9"
            account_sid = "AC1"
            api_key_sid = "SK1"
            machine_detection = "enable"
            request_timeout_ms = 2500
            "#,
        )
        .expect("section");
        let err = p.validate().expect_err("no secret");
        assert!(
            err.to_string().contains("providers.twilio.api_key_secret"),
            "{err}"
        );
        let mut p = p;
        p.twilio.api_key_secret = Secret::new("s");
        p.validate().expect("valid");
        let c = p.twilio.client_config(
            "https://dialer.example.com".into(),
            crate::providers::vonage::CallbackKey::new(b"k"),
        );
        assert_eq!(c.api_base_url, "http://127.0.0.1:9");
        assert_eq!(c.account_sid, "AC1");
        assert_eq!(c.machine_detection, TwilioMachineDetection::Enable);
        assert_eq!(c.request_timeout, std::time::Duration::from_millis(2500));
        assert_eq!(
            c.connect_timeout,
            crate::providers::twilio::client::DEFAULT_CONNECT_TIMEOUT
        );
        assert!(!format!("{c:?}").contains("\"s\""));

        let unknown = toml::from_str::<ProvidersConfig>("[twilio]\nauth_tokn = \"x\"\n");
        assert!(unknown.is_err(), "unknown keys are refused");
        for (toml, key) in [
            (
                "[twilio]\naccount_sid = \" \"\n",
                "providers.twilio.account_sid",
            ),
            (
                "[twilio]\napi_base_url = \"wss://h\"\n",
                "providers.twilio.api_base_url",
            ),
            (
                "[twilio]\nrequest_timeout_ms = 0\n",
                "providers.twilio.request_timeout_ms",
            ),
            (
                "[twilio]\nmachine_detection_timeout_secs = 0\n",
                "providers.twilio.machine_detection_timeout_secs",
            ),
        ] {
            let p: ProvidersConfig = toml::from_str(toml).expect(toml);
            let err = p.validate().expect_err(toml);
            assert!(err.to_string().contains(key), "{err}");
        }
        let none = ProvidersConfig::default();
        assert!(none.twilio.account_sid.is_none());
        none.validate().expect("all unset");
    }

    #[test]
    fn empty_strings_are_refused_and_unset_means_default() {
        let mut p = ProvidersConfig::default();
        p.validate().expect("all unset is valid");
        p.whisper.model = Some(" ".into());
        let err = p.validate().expect_err("empty");
        assert!(err.to_string().contains("providers.whisper.model"), "{err}");
        assert!(err.to_string().contains("leave the setting out"), "{err}");
        p.whisper.model = None;
        p.deepgram.base_url = Some("http://127.0.0.1:9".into());
        let err = p.validate().expect_err("scheme");
        assert!(err.to_string().contains("ws:// or wss://"), "{err}");
    }
}
