//! `talky-sim sim`: every emulator in a process of its own, so a load test can
//! measure talky's CPU apart from the simulated world's.
//!
//! Starts the Vonage, Twilio, Deepgram, LLM and ElevenLabs emulators on
//! loopback (ports configurable, 0 = any) with the latencies of
//! [`SimSettings`], plus a small stats server (`GET /stats`: the Vonage
//! emulator's load counters, `GET /stats/full`: with every barge-in
//! sample, `GET /stats/calls`: its calls; the same for Twilio under
//! `/stats/twilio`). Prints one JSON line ([`SimUrls`]) with every base
//! URL and the `TALKY_PROVIDERS__*` variables that point `talky serve` at
//! them (Vonage and Twilio both configured, so a campaign's `telephony`
//! picks either), and runs until the shutdown future resolves
//! (SIGINT/SIGTERM in the CLI). Every call is a task (no
//! thread per call); audio buffers are the emulators' own, bounded by
//! talky's 200 ms lead.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use warp::Filter;

use crate::deepgram::{DeepgramSim, DeepgramSimConfig};
use crate::elevenlabs::{ElevenLabsSim, ElevenLabsSimConfig};
use crate::llm::{LlmSim, LlmSimConfig};
use crate::twilio::{TwilioSim, TwilioSimConfig, TwilioSimHandle};
use crate::vonage::persona::{PersonaError, Personas};
use crate::vonage::stats::SimStats;
use crate::vonage::{VonageSim, VonageSimConfig, VonageSimHandle};

/// Application id the emulator expects when none is configured (the one of
/// the test key pair in `src/providers/vonage/testdata`).
pub const DEFAULT_APPLICATION_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
/// Default STT final delay after the endpoint (issue 6).
pub const DEFAULT_STT_FINAL_MS: u64 = 150;
/// Default LLM first-token latency.
pub const DEFAULT_LLM_FIRST_TOKEN_MS: u64 = 200;
/// Default LLM pace.
pub const DEFAULT_LLM_TOKENS_PER_SECOND: f64 = 40.0;
/// Default TTS first-audio latency.
pub const DEFAULT_TTS_FIRST_AUDIO_MS: u64 = 120;

/// The knobs of `talky-sim sim` (a TOML file, overridden by flags).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimSettings {
    /// Port of the Vonage emulator (0: any).
    pub vonage_port: u16,
    /// Port of the Twilio emulator (0: any).
    pub twilio_port: u16,
    /// Port of the Deepgram emulator (0: any).
    pub deepgram_port: u16,
    /// Port of the LLM emulator (0: any).
    pub llm_port: u16,
    /// Port of the ElevenLabs emulator (0: any).
    pub elevenlabs_port: u16,
    /// Port of the stats server (0: any).
    pub stats_port: u16,
    /// STT: extra delay of each final result after the endpoint, ms.
    pub stt_final_ms: u64,
    /// LLM: delay before the first token, ms.
    pub llm_first_token_ms: u64,
    /// LLM: tokens per second after the first (0: as fast as possible).
    pub llm_tokens_per_second: f64,
    /// TTS: delay before the first audio of each generation, ms.
    pub tts_first_audio_ms: u64,
    /// Directory of persona files (built-ins are added when missing).
    pub personas_dir: Option<PathBuf>,
    /// Persona answering numbers no persona lists.
    pub default_persona: Option<String>,
    /// Vonage application id the JWTs must carry.
    pub application_id: String,
    /// PEM public key of the application (JWTs are checked with it).
    pub public_key_file: Option<PathBuf>,
    /// Sign webhooks with this secret (talky's `vonage.signature_secret`).
    pub signature_secret: Option<String>,
    /// `api_key` claim of signed webhooks.
    pub signature_api_key: String,
    /// The account SID the Twilio emulator serves.
    pub twilio_account_sid: String,
    /// Its auth token (Basic auth and `X-Twilio-Signature`; a fake).
    pub twilio_auth_token: String,
    /// Sign Twilio callbacks (`X-Twilio-Signature`, as Twilio always does).
    pub twilio_sign_requests: bool,
    /// Also write the URL line to this file.
    pub urls_file: Option<PathBuf>,
    /// Write the final stats (JSON) here at exit.
    pub stats_file: Option<PathBuf>,
    /// Fault knob: hold each create-call's `201` back this long (the call
    /// starts at once), like an API that answers after the client's
    /// time-out.
    pub create_response_delay_ms: u64,
    /// Fault knob: answer each accepted Vonage transfer this late (it is
    /// carried out at once).
    pub transfer_response_delay_ms: u64,
    /// The LLM emulator's brain: `echo` (repeats the callee; the load
    /// benchmark's) or `agent` (the rule-based agent of the demo, which
    /// calls talky's tools).
    pub llm_script: String,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            vonage_port: 0,
            twilio_port: 0,
            deepgram_port: 0,
            llm_port: 0,
            elevenlabs_port: 0,
            stats_port: 0,
            stt_final_ms: DEFAULT_STT_FINAL_MS,
            llm_first_token_ms: DEFAULT_LLM_FIRST_TOKEN_MS,
            llm_tokens_per_second: DEFAULT_LLM_TOKENS_PER_SECOND,
            tts_first_audio_ms: DEFAULT_TTS_FIRST_AUDIO_MS,
            personas_dir: None,
            default_persona: None,
            application_id: DEFAULT_APPLICATION_ID.into(),
            public_key_file: None,
            signature_secret: None,
            signature_api_key: "sim-api-key".into(),
            twilio_account_sid: crate::twilio::DEFAULT_ACCOUNT_SID.into(),
            twilio_auth_token: crate::twilio::DEFAULT_AUTH_TOKEN.into(),
            twilio_sign_requests: true,
            urls_file: None,
            stats_file: None,
            create_response_delay_ms: 0,
            transfer_response_delay_ms: 0,
            llm_script: "echo".into(),
        }
    }
}

/// `talky-sim sim` flags; each overrides the settings file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SimArgs {
    /// TOML file of [`SimSettings`].
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Vonage emulator port (0: any).
    #[arg(long)]
    pub vonage_port: Option<u16>,
    /// Twilio emulator port (0: any).
    #[arg(long)]
    pub twilio_port: Option<u16>,
    /// Twilio account SID the emulator serves.
    #[arg(long)]
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token (or `TALKY_SIM_TWILIO_AUTH_TOKEN`).
    #[arg(long, env = "TALKY_SIM_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    /// Deepgram emulator port (0: any).
    #[arg(long)]
    pub deepgram_port: Option<u16>,
    /// LLM emulator port (0: any).
    #[arg(long)]
    pub llm_port: Option<u16>,
    /// ElevenLabs emulator port (0: any).
    #[arg(long)]
    pub elevenlabs_port: Option<u16>,
    /// Stats server port (0: any).
    #[arg(long)]
    pub stats_port: Option<u16>,
    /// STT final delay after the endpoint, ms (default 150).
    #[arg(long)]
    pub stt_final_ms: Option<u64>,
    /// LLM first-token latency, ms (default 200).
    #[arg(long)]
    pub llm_first_token_ms: Option<u64>,
    /// LLM tokens per second (default 40).
    #[arg(long)]
    pub llm_tokens_per_second: Option<f64>,
    /// TTS first-audio latency, ms (default 120).
    #[arg(long)]
    pub tts_first_audio_ms: Option<u64>,
    /// Fault knob: answer each create-call this late (the call starts at once).
    #[arg(long)]
    pub create_response_delay_ms: Option<u64>,
    /// Fault knob: answer each accepted Vonage transfer this late (it is
    /// carried out at once).
    #[arg(long)]
    pub transfer_response_delay_ms: Option<u64>,
    /// The LLM emulator's brain: `echo` or `agent`.
    #[arg(long)]
    pub llm_script: Option<String>,
    /// Directory of persona files.
    #[arg(long)]
    pub personas_dir: Option<PathBuf>,
    /// Persona for numbers no persona lists.
    #[arg(long)]
    pub default_persona: Option<String>,
    /// Vonage application id.
    #[arg(long)]
    pub application_id: Option<String>,
    /// PEM public key the application JWTs are verified with.
    #[arg(long)]
    pub public_key_file: Option<PathBuf>,
    /// Webhook signature secret (or `TALKY_SIM_SIGNATURE_SECRET`).
    #[arg(long, env = "TALKY_SIM_SIGNATURE_SECRET", hide_env_values = true)]
    pub signature_secret: Option<String>,
    /// Write the URL line to this file too.
    #[arg(long)]
    pub urls_file: Option<PathBuf>,
    /// Write the final stats here at exit.
    #[arg(long)]
    pub stats_file: Option<PathBuf>,
}

/// Why `talky-sim sim` could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The settings file.
    #[error("sim settings {path}: {message}")]
    Settings {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No public key: JWTs could not be checked.
    #[error("sim: --public-key-file is required (the Vonage application's public key)")]
    NoPublicKey,
    /// Reading a file.
    #[error("sim: {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Binding a port.
    #[error("sim: cannot listen: {0}")]
    Bind(std::io::Error),
    /// The personas.
    #[error(transparent)]
    Personas(#[from] PersonaError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl SimArgs {
    /// The settings: the file (if any), then the flags.
    pub fn settings(&self) -> Result<SimSettings, SimError> {
        let mut s = match &self.settings {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(io_err(path))?;
                toml::from_str(&text).map_err(|e| SimError::Settings {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => SimSettings::default(),
        };
        let a = self.clone();
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = a.$f { s.$f = v; } )* };
        }
        over!(
            vonage_port,
            twilio_port,
            deepgram_port,
            llm_port,
            elevenlabs_port,
            stats_port,
            stt_final_ms,
            llm_first_token_ms,
            llm_tokens_per_second,
            tts_first_audio_ms,
            create_response_delay_ms,
            transfer_response_delay_ms,
            application_id,
            llm_script,
            twilio_account_sid,
            twilio_auth_token
        );
        if !matches!(s.llm_script.as_str(), "echo" | "agent") {
            return Err(SimError::Settings {
                path: "--llm-script".into(),
                message: format!("{:?} is not `echo` or `agent`", s.llm_script),
            });
        }
        macro_rules! over_opt {
            ($($f:ident),*) => { $( if a.$f.is_some() { s.$f = a.$f; } )* };
        }
        over_opt!(
            personas_dir,
            default_persona,
            public_key_file,
            signature_secret,
            urls_file,
            stats_file
        );
        Ok(s)
    }
}

/// Where everything listens: the line `talky-sim sim` prints.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SimUrls {
    /// `providers.vonage.api_base_url`.
    pub vonage_api_base_url: String,
    /// `providers.twilio.api_base_url` (Twilio's `https://api.twilio.com`).
    #[serde(default)]
    pub twilio_api_base_url: String,
    /// The account SID the Twilio emulator serves.
    #[serde(default)]
    pub twilio_account_sid: String,
    /// `providers.deepgram.base_url`.
    pub deepgram_base_url: String,
    /// `providers.llm.base_url`.
    pub llm_base_url: String,
    /// `providers.elevenlabs.base_url`.
    pub elevenlabs_base_url: String,
    /// `GET` it for [`SimStats`].
    pub stats_url: String,
    /// The environment that points `talky serve` at the emulators: every
    /// provider, Vonage and Twilio both (`[providers.vonage]` without its
    /// private key file, which the starter adds; `[providers.twilio]`
    /// with the account SID, base URL and auth token), so a campaign may
    /// choose either telephony. The emulators' keys are fakes; no real
    /// secret is printed.
    pub env: BTreeMap<String, String>,
}

/// The running emulators.
pub struct RunningSim {
    /// Where they listen.
    pub urls: SimUrls,
    vonage: VonageSimHandle,
    twilio: TwilioSimHandle,
    _keep: (
        crate::deepgram::DeepgramSimHandle,
        crate::llm::LlmSimHandle,
        crate::elevenlabs::ElevenLabsSimHandle,
    ),
    stats_task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    /// The Vonage emulator's counters now.
    pub fn stats(&self, with_samples: bool) -> SimStats {
        self.vonage.stats(with_samples)
    }

    /// The Twilio emulator's counters now.
    pub fn twilio_stats(&self, with_samples: bool) -> SimStats {
        self.twilio.stats(with_samples)
    }

    /// Stops every emulator; the final stats (Vonage's).
    pub async fn stop(self) -> SimStats {
        let stats = self.vonage.stats(true);
        self.stats_task.abort();
        self.vonage.stop().await;
        self.twilio.stop().await;
        stats
    }
}

/// Starts every emulator per `s`.
pub async fn start(s: &SimSettings) -> Result<RunningSim, SimError> {
    let key_path = s.public_key_file.as_ref().ok_or(SimError::NoPublicKey)?;
    let public_key_pem = std::fs::read_to_string(key_path).map_err(io_err(key_path))?;
    let mut personas = match &s.personas_dir {
        Some(dir) => Personas::load_dir(dir)?,
        None => Personas::builtin(),
    };
    if let Some(name) = &s.default_persona {
        personas.set_default(name.clone());
    }
    let vonage = VonageSim::start_on(
        VonageSimConfig {
            application_id: s.application_id.clone(),
            public_key_pem,
            personas: personas.clone(),
            signature: s
                .signature_secret
                .clone()
                .map(|secret| (s.signature_api_key.clone(), secret)),
            create_response_delay: Duration::from_millis(s.create_response_delay_ms),
            transfer_response_delay: Duration::from_millis(s.transfer_response_delay_ms),
            ..VonageSimConfig::default()
        },
        s.vonage_port,
    )
    .await
    .map_err(SimError::Bind)?;
    let twilio = TwilioSim::start_on(
        TwilioSimConfig {
            account_sid: s.twilio_account_sid.clone(),
            auth_token: s.twilio_auth_token.clone(),
            personas: personas.clone(),
            sign_requests: s.twilio_sign_requests,
            create_response_delay: Duration::from_millis(s.create_response_delay_ms),
            ..TwilioSimConfig::default()
        },
        s.twilio_port,
    )
    .await
    .map_err(SimError::Bind)?;
    let deepgram = DeepgramSim::start_on(
        DeepgramSimConfig {
            final_latency: Duration::from_millis(s.stt_final_ms),
            // Thousands of quiet callees: no KeepAlive gap should close them.
            silence_timeout: Duration::from_secs(30),
            ..DeepgramSimConfig::default()
        },
        s.deepgram_port,
    )
    .await
    .map_err(SimError::Bind)?;
    let llm = LlmSim::start_on(
        LlmSimConfig {
            first_token_latency: Duration::from_millis(s.llm_first_token_ms),
            tokens_per_second: s.llm_tokens_per_second,
            ..LlmSimConfig::default()
        },
        s.llm_port,
    )
    .await
    .map_err(SimError::Bind)?;
    if s.llm_script == "agent" {
        llm.set_script(crate::llm::agent::AgentScript);
    }
    let tts = ElevenLabsSim::start_on(
        ElevenLabsSimConfig {
            first_audio_latency: Duration::from_millis(s.tts_first_audio_ms),
            ..ElevenLabsSimConfig::default()
        },
        s.elevenlabs_port,
    )
    .await
    .map_err(SimError::Bind)?;
    let (stats_addr, stats_task) = stats_server(&vonage, &twilio, s.stats_port).await?;
    let mut env = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        env.insert(format!("TALKY_PROVIDERS__{k}"), v);
    };
    put("ENABLED", "true".into());
    put("VONAGE__API_BASE_URL", vonage.base_url());
    put("VONAGE__APPLICATION_ID", s.application_id.clone());
    put("TWILIO__API_BASE_URL", twilio.base_url());
    put("TWILIO__ACCOUNT_SID", twilio.account_sid());
    put("TWILIO__AUTH_TOKEN", twilio.auth_token());
    put("DEEPGRAM__BASE_URL", deepgram.base_url());
    put("DEEPGRAM__API_KEY", deepgram.api_key());
    put("LLM__BASE_URL", llm.base_url());
    put("LLM__API_KEY", llm.api_key());
    put("ELEVENLABS__BASE_URL", tts.base_url());
    put("ELEVENLABS__API_KEY", tts.api_key());
    let urls = SimUrls {
        vonage_api_base_url: vonage.base_url(),
        twilio_api_base_url: twilio.base_url(),
        twilio_account_sid: twilio.account_sid(),
        deepgram_base_url: deepgram.base_url(),
        llm_base_url: llm.base_url(),
        elevenlabs_base_url: tts.base_url(),
        stats_url: format!("http://{stats_addr}/stats"),
        env,
    };
    Ok(RunningSim {
        urls,
        vonage,
        twilio,
        _keep: (deepgram, llm, tts),
        stats_task,
    })
}

/// Shares the emulators' counters and call lists over HTTP: Vonage's at
/// `/stats`, `/stats/full`, `/stats/calls`; Twilio's the same under
/// `/stats/twilio`.
async fn stats_server(
    vonage: &VonageSimHandle,
    twilio: &TwilioSimHandle,
    port: u16,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), SimError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(SimError::Bind)?;
    let addr = listener.local_addr().map_err(SimError::Bind)?;
    let source = vonage.stats_source();
    let quick = {
        let source = source.clone();
        warp::path!("stats")
            .and(warp::get())
            .map(move || warp::reply::json(&source.snapshot(false)))
    };
    let full = {
        let source = source.clone();
        warp::path!("stats" / "full")
            .and(warp::get())
            .map(move || warp::reply::json(&source.snapshot(true)))
    };
    let calls = warp::path!("stats" / "calls")
        .and(warp::get())
        .map(move || warp::reply::json(&source.calls()));
    let tw = twilio.stats_source();
    let tw_quick = {
        let tw = tw.clone();
        warp::path!("stats" / "twilio")
            .and(warp::get())
            .map(move || warp::reply::json(&tw.snapshot(false)))
    };
    let tw_full = {
        let tw = tw.clone();
        warp::path!("stats" / "twilio" / "full")
            .and(warp::get())
            .map(move || warp::reply::json(&tw.snapshot(true)))
    };
    let tw_calls = warp::path!("stats" / "twilio" / "calls")
        .and(warp::get())
        .map(move || warp::reply::json(&tw.calls()));
    let routes = quick
        .or(full)
        .or(calls)
        .or(tw_quick)
        .or(tw_full)
        .or(tw_calls);
    let task = tokio::spawn(async move {
        warp::serve(routes).incoming(listener).run().await;
    });
    Ok((addr, task))
}

/// `talky-sim sim`: starts, prints the URL line, runs until `shutdown`, writes
/// the stats file.
pub async fn run(s: SimSettings, shutdown: impl Future<Output = ()>) -> Result<SimStats, SimError> {
    let sim = start(&s).await?;
    let line = serde_json::to_string(&sim.urls).unwrap_or_default();
    println!("{line}");
    if let Some(path) = &s.urls_file {
        std::fs::write(path, format!("{line}\n")).map_err(io_err(path))?;
    }
    shutdown.await;
    let stats = sim.stop().await;
    if let Some(path) = &s.stats_file {
        let text = serde_json::to_string_pretty(&stats).unwrap_or_default();
        std::fs::write(path, text).map_err(io_err(path))?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_settings_file() {
        let dir = std::env::temp_dir().join(format!("talky-sim-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("sim.toml");
        std::fs::write(&file, "stt_final_ms = 10\nllm_first_token_ms = 20\n").expect("write");
        let args = SimArgs {
            settings: Some(file),
            llm_first_token_ms: Some(30),
            ..SimArgs::default()
        };
        let s = args.settings().expect("settings");
        assert_eq!(s.stt_final_ms, 10);
        assert_eq!(s.llm_first_token_ms, 30);
        assert_eq!(s.tts_first_audio_ms, DEFAULT_TTS_FIRST_AUDIO_MS);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unknown_settings_are_refused() {
        let dir = std::env::temp_dir().join(format!("talky-sim-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("sim.toml");
        std::fs::write(&file, "stt_final = 10\n").expect("write");
        let args = SimArgs {
            settings: Some(file),
            ..SimArgs::default()
        };
        assert!(matches!(args.settings(), Err(SimError::Settings { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn starts_every_emulator_and_serves_stats() {
        let key = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../src/providers/vonage/testdata/test_public.pem");
        let s = SimSettings {
            public_key_file: Some(key),
            ..SimSettings::default()
        };
        let sim = start(&s).await.expect("start");
        assert!(sim.urls.deepgram_base_url.starts_with("ws://127.0.0.1:"));
        // One environment for both telephony providers, in the names of
        // talky's `[providers.vonage]` and `[providers.twilio]`.
        let env = &sim.urls.env;
        assert_eq!(env.len(), 12, "{env:?}");
        assert_eq!(
            env.get("TALKY_PROVIDERS__VONAGE__API_BASE_URL"),
            Some(&sim.urls.vonage_api_base_url)
        );
        assert!(
            sim.urls
                .twilio_api_base_url
                .starts_with("http://127.0.0.1:")
        );
        assert_eq!(
            env.get("TALKY_PROVIDERS__TWILIO__API_BASE_URL"),
            Some(&sim.urls.twilio_api_base_url)
        );
        assert_eq!(
            env.get("TALKY_PROVIDERS__TWILIO__ACCOUNT_SID"),
            Some(&crate::twilio::DEFAULT_ACCOUNT_SID.to_owned())
        );
        assert_eq!(
            env.get("TALKY_PROVIDERS__TWILIO__AUTH_TOKEN"),
            Some(&crate::twilio::DEFAULT_AUTH_TOKEN.to_owned())
        );
        let body: SimStats = reqwest::Client::new()
            .get(&sim.urls.stats_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        assert_eq!(body, SimStats::default());
        let twilio_calls: Vec<crate::twilio::CallBrief> = reqwest::Client::new()
            .get(format!("{}/twilio/calls", sim.urls.stats_url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("twilio calls")
            .json()
            .await
            .expect("json");
        assert!(twilio_calls.is_empty());
        // The Twilio emulator answers with the printed account.
        let r = reqwest::Client::new()
            .get(format!(
                "{}/2010-04-01/Accounts/{}/Calls.json",
                sim.urls.twilio_api_base_url, sim.urls.twilio_account_sid
            ))
            .basic_auth(
                &sim.urls.twilio_account_sid,
                env.get("TALKY_PROVIDERS__TWILIO__AUTH_TOKEN"),
            )
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("list");
        assert_eq!(r.status().as_u16(), 200);
        sim.stop().await;
    }

    #[tokio::test]
    async fn a_missing_public_key_is_an_error() {
        assert!(matches!(
            start(&SimSettings::default()).await,
            Err(SimError::NoPublicKey)
        ));
    }
}
