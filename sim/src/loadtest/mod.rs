//! The load benchmark (issue 6): N concurrent full calls through the real
//! `talky serve`, every provider emulated by a separate `talky-sim sim`, so
//! talky's CPU and memory are measured alone from `/proc`.
//!
//! One run ([`run`]): a fresh database; `talky-sim sim` with the configured
//! latencies and generated personas that talk in turns (a share of them
//! barge in on every other turn); `talky tenant create`; `talky serve`
//! with its providers pointed at the sim and caps/CPS raised for N calls; a
//! campaign with N contacts over REST, placed through the run's telephony
//! (`--telephony vonage|twilio`: the sim's Vonage or Twilio emulator
//! carries the calls), started; talky's CPU and RSS sampled while all N
//! calls are live; then the outcomes, the provider of every call and the
//! per-turn latency split from PostgreSQL, underruns and barge-in reaction
//! from the sim. The [`Report`] goes to `<out>/load.json`, `<out>/load.md`
//! and stdout. `cargo bench --bench load -- --calls 1000 --duration 60`
//! runs it.

pub mod collect;
pub mod procfs;
pub mod procs;
pub mod report;
mod run;

use std::path::{Path, PathBuf};

use talky::providers::telephony::TelephonyProvider;

pub use report::Report;
pub use run::run;

/// Text every callee says on each of its turns.
pub const CALLEE_LINE: &str = "Tell me more about it.";
/// Roughly one turn (callee line, the pipeline, the agent's echo), s.
pub const TURN_SECS: f64 = 5.0;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The `talky` binary (release for figures): `talky serve`,
    /// `talky tenant create`.
    pub binary: PathBuf,
    /// The `talky-sim` binary: `talky-sim sim`, the emulators.
    pub sim_binary: PathBuf,
    /// Concurrent calls.
    pub calls: u64,
    /// Seconds all calls should be live at once (the measuring window).
    pub duration_s: u64,
    /// Calls placed per second.
    pub cps: f64,
    /// Share (0-1) of callees who barge in on every other turn.
    pub barge_share: f64,
    /// The telephony of the run's campaign: which emulator of the sim
    /// carries the calls (Twilio's adds talky's μ-law and 8 <-> 16 kHz
    /// conversion at the media gateway).
    pub telephony: TelephonyProvider,
    /// STT final delay, ms.
    pub stt_final_ms: u64,
    /// LLM first token, ms.
    pub llm_first_token_ms: u64,
    /// LLM tokens per second.
    pub llm_tokens_per_second: f64,
    /// TTS first audio, ms.
    pub tts_first_audio_ms: u64,
    /// PostgreSQL URL with rights to create databases.
    pub admin_database_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// Where logs and reports go.
    pub out_dir: PathBuf,
    /// Keep the run's database.
    pub keep_database: bool,
    /// Print progress to stderr.
    pub verbose: bool,
}

impl LoadOptions {
    /// Defaults of issue 6 for `calls` calls over `duration_s` seconds,
    /// with the `talky` and `talky-sim` binaries.
    pub fn new(
        binary: impl Into<PathBuf>,
        sim_binary: impl Into<PathBuf>,
        calls: u64,
        duration_s: u64,
    ) -> Self {
        use crate::process as p;
        Self {
            binary: binary.into(),
            sim_binary: sim_binary.into(),
            calls,
            duration_s,
            cps: 50.0,
            barge_share: 0.2,
            telephony: TelephonyProvider::Vonage,
            stt_final_ms: p::DEFAULT_STT_FINAL_MS,
            llm_first_token_ms: p::DEFAULT_LLM_FIRST_TOKEN_MS,
            llm_tokens_per_second: p::DEFAULT_LLM_TOKENS_PER_SECOND,
            tts_first_audio_ms: p::DEFAULT_TTS_FIRST_AUDIO_MS,
            admin_database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://talky:talky@127.0.0.1:5432/talky".into()),
            redis_url: std::env::var("REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into()),
            out_dir: PathBuf::from("target/load"),
            keep_database: false,
            verbose: false,
        }
    }

    /// Applies `--flag value` pairs (the bench's command line); unknown
    /// flags (cargo's own, e.g. `--bench`) are ignored.
    pub fn apply_args(&mut self, args: &[String]) -> Result<(), LoadError> {
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut val = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| LoadError::Step(format!("{flag} needs a value")))
            };
            let bad = |v: &str| LoadError::Step(format!("{flag}: bad value {v:?}"));
            match flag.as_str() {
                "--calls" => {
                    let v = val()?;
                    self.calls = v.parse().map_err(|_| bad(&v))?;
                }
                "--duration" => {
                    let v = val()?;
                    self.duration_s = v.parse().map_err(|_| bad(&v))?;
                }
                "--cps" => {
                    let v = val()?;
                    self.cps = v.parse().map_err(|_| bad(&v))?;
                }
                "--barge-share" => {
                    let v = val()?;
                    self.barge_share = v.parse().map_err(|_| bad(&v))?;
                }
                "--telephony" => {
                    let v = val()?;
                    self.telephony = TelephonyProvider::parse(&v).ok_or_else(|| {
                        LoadError::Step(format!("--telephony: {v:?} is not vonage or twilio"))
                    })?;
                }
                "--stt-final-ms" => {
                    let v = val()?;
                    self.stt_final_ms = v.parse().map_err(|_| bad(&v))?;
                }
                "--llm-first-token-ms" => {
                    let v = val()?;
                    self.llm_first_token_ms = v.parse().map_err(|_| bad(&v))?;
                }
                "--llm-tokens-per-second" => {
                    let v = val()?;
                    self.llm_tokens_per_second = v.parse().map_err(|_| bad(&v))?;
                }
                "--tts-first-audio-ms" => {
                    let v = val()?;
                    self.tts_first_audio_ms = v.parse().map_err(|_| bad(&v))?;
                }
                "--out" => self.out_dir = PathBuf::from(val()?),
                "--binary" | "--talky" => self.binary = PathBuf::from(val()?),
                "--sim-binary" => self.sim_binary = PathBuf::from(val()?),
                "--keep-db" => self.keep_database = true,
                "--quiet" => self.verbose = false,
                _ => {}
            }
        }
        if self.calls == 0 || !(0.0..=1.0).contains(&self.barge_share) || self.cps <= 0.0 {
            return Err(LoadError::Step(
                "--calls must be > 0, --cps > 0, --barge-share in 0..1".into(),
            ));
        }
        Ok(())
    }
}

/// The binary `name` beside `binary`: cargo puts a workspace's binaries
/// side by side (`target/debug/talky` and `target/debug/talky-sim`).
pub fn sibling(binary: &Path, name: &str) -> PathBuf {
    binary.with_file_name(name)
}

/// A whole run from a command line (`talky-sim load`, `cargo bench --bench
/// load`): applies `args` to `o`, runs on a one-worker runtime, prints the
/// report's markdown; the exit code (2: bad flags, 1: the run failed).
pub fn main_with(mut o: LoadOptions, args: &[String]) -> i32 {
    if let Err(e) = o.apply_args(args) {
        eprintln!("load: {e}");
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(&o)) {
        Ok(report) => {
            println!("{}", report.markdown());
            0
        }
        Err(e) => {
            eprintln!("load: {e}");
            1
        }
    }
}

/// Why a run failed (the figures of a run that went badly are still a
/// report; this is for runs that could not be made).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or a process.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A step of the run.
    #[error("{0}")]
    Step(String),
}

impl LoadError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The personas of a run: `talker` (the default) answers, then says
/// [`CALLEE_LINE`] after each agent utterance for `turns` turns and hangs
/// up; `talker_barge` (the numbers in `barge`) does the same but on every
/// other turn starts its line three words into the agent's reply.
pub fn personas(turns: u64, barge: &[String]) -> (String, String) {
    let wait_end = "[[steps]]\ndo = \"wait_for_agent_utterance_end\"\ntimeout_ms = 20000\n";
    let wait_words = "[[steps]]\ndo = \"wait_for_agent_words\"\nn = 3\ntimeout_ms = 20000\n";
    let say = format!("[[steps]]\ndo = \"say\"\ntext = \"{CALLEE_LINE}\"\n");
    let end = format!("{wait_end}[[steps]]\ndo = \"hang_up\"\n");
    let mut talker =
        String::from("name = \"talker\"\ndefault = true\nring_ms = 300\noutcome = \"answer\"\n");
    let numbers: Vec<String> = barge.iter().map(|n| format!("{n:?}")).collect();
    let mut barger = format!(
        "name = \"talker_barge\"\nnumbers = [{}]\nring_ms = 300\noutcome = \"answer\"\n",
        numbers.join(", ")
    );
    for turn in 0..turns.max(1) {
        talker.push_str(wait_end);
        talker.push_str(&say);
        barger.push_str(if turn % 2 == 1 { wait_words } else { wait_end });
        barger.push_str(&say);
    }
    talker.push_str(&end);
    barger.push_str(&end);
    (talker, barger)
}

/// Contact number `i` (E.164, valid, fictional range of New York 212).
pub fn number(i: u64) -> String {
    format!("+1212{:07}", 2_000_000 + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vonage::persona::{Persona, Step};

    #[test]
    fn generated_personas_parse_and_take_turns() {
        let (talker, barger) = personas(3, &["12122000001".into()]);
        let t = Persona::from_toml(&talker).expect("talker");
        assert_eq!(t.lines().len(), 3);
        assert!(t.default);
        assert_eq!(t.steps.last(), Some(&Step::HangUp));
        let b = Persona::from_toml(&barger).expect("barger");
        assert_eq!(b.numbers, vec!["12122000001".to_string()]);
        assert!(
            b.steps
                .iter()
                .any(|s| matches!(s, Step::WaitForAgentWords { n: 3, .. }))
        );
    }

    #[test]
    fn numbers_are_valid_and_distinct() {
        let us = talky::phone::parse_region("US").expect("US");
        let a = talky::phone::normalize(&number(0), us);
        assert!(a.is_ok(), "{:?}", number(0));
        assert_ne!(number(1), number(2));
    }

    #[test]
    fn flags_are_applied_and_checked() {
        let mut o = LoadOptions::new("talky", "talky-sim", 10, 5);
        let args: Vec<String> = [
            "--bench",
            "--calls",
            "100",
            "--duration",
            "60",
            "--cps",
            "20",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        o.apply_args(&args).expect("args");
        assert_eq!((o.calls, o.duration_s, o.cps), (100, 60, 20.0));
        assert_eq!(o.telephony, TelephonyProvider::Vonage, "the default");
        o.apply_args(&["--telephony".into(), "twilio".into()])
            .expect("twilio");
        assert_eq!(o.telephony, TelephonyProvider::Twilio);
        for bad in ["vonage_then_twilio", "sip", ""] {
            assert!(
                o.apply_args(&["--telephony".into(), bad.into()]).is_err(),
                "{bad:?}"
            );
        }
        assert!(o.apply_args(&["--calls".into(), "x".into()]).is_err());
        assert!(o.apply_args(&["--calls".into(), "0".into()]).is_err());
    }
}
