//! Simulated callees, shared by the telephony emulators (Vonage, Twilio):
//! who answers which number, and what they do once the media socket is up.
//!
//! A persona is a small TOML document (`config/personas/*.toml`):
//!
//! ```toml
//! name = "interested"
//! numbers = ["447700900100"]   # `to` numbers it answers (E.164 digits)
//! default = true               # used for numbers no persona lists
//! ring_ms = 300                # ringing before the outcome
//! outcome = "answer"           # answer | machine | busy | no_answer |
//!                              # unanswered | rejected | failed
//!
//! [[steps]]                    # run in order once the socket is up
//! do = "wait_for_agent_utterance_end"   # optional timeout_ms
//! [[steps]]
//! do = "say"
//! text = "Yes, I am interested."
//! [[steps]]
//! do = "wait_for_agent_words"  # n more completed words of the agent
//! n = 3                        # since the step began; optional timeout_ms
//! [[steps]]
//! do = "pause"
//! ms = 500
//! [[steps]]
//! do = "wait_for_silence"      # the agent silent for ms
//! ms = 2000
//! [[steps]]
//! do = "press"                 # DTMF: one key event per digit
//! digits = "1#"
//! [[steps]]
//! do = "hang_up"
//! ```
//!
//! `say` lasts until the line has been played out. When the steps run out
//! without `hang_up` the persona stays on the line, silent.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How the call goes at the callee's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A human answers.
    Answer,
    /// An answering machine answers (`machine` verdict when detection is on).
    Machine,
    /// `busy` (both providers).
    Busy,
    /// Rings until the ring limit: Vonage `timeout`, Twilio `no-answer`.
    NoAnswer,
    /// Vonage `unanswered` (`detail: unavailable`); Twilio `no-answer`.
    Unanswered,
    /// Vonage `rejected` (`detail: declined`); Twilio `busy` (a declined
    /// call, unconfirmed: carriers differ).
    Rejected,
    /// Vonage `failed` (`detail: cannot_route`); Twilio `failed`.
    Failed,
}

/// One step of the persona's script.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Waits until an agent utterance ends (one that ends after this step
    /// began).
    WaitForAgentUtteranceEnd {
        /// Give up waiting after this long.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Waits until the agent has spoken `n` more completed words (counted
    /// from when the step began).
    WaitForAgentWords {
        /// Words.
        n: usize,
        /// Give up waiting after this long.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Waits until the agent has been silent for `ms`.
    WaitForSilence {
        /// Milliseconds.
        ms: u64,
    },
    /// Speaks a line (in-band code); lasts until it has been played.
    Say {
        /// The text.
        text: String,
    },
    /// Does nothing for `ms`.
    Pause {
        /// Milliseconds.
        ms: u64,
    },
    /// Presses keys: one DTMF event per digit (`0-9*#`): Vonage's
    /// `websocket:dtmf`, Twilio's `dtmf` message.
    Press {
        /// The digits.
        digits: String,
    },
    /// Hangs up.
    HangUp,
}

fn default_ring_ms() -> u64 {
    300
}

/// One simulated callee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// Name (the file stem by convention).
    pub name: String,
    /// `to` numbers it answers.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// Used for numbers no persona lists.
    #[serde(default)]
    pub default: bool,
    /// Ringing before the outcome, ms.
    #[serde(default = "default_ring_ms")]
    pub ring_ms: u64,
    /// How the call goes.
    pub outcome: Outcome,
    /// What it does on the line.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// Why personas could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    /// Reading a file or the directory.
    #[error("persona {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not a valid persona.
    #[error("persona {path}: {message}")]
    Parse {
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The personas shipped with talky (`config/personas/`), compiled in.
const BUILTIN: &[(&str, &str)] = &[
    (
        "interested",
        include_str!("../../config/personas/interested.toml"),
    ),
    (
        "not_interested",
        include_str!("../../config/personas/not_interested.toml"),
    ),
    (
        "remove_me",
        include_str!("../../config/personas/remove_me.toml"),
    ),
    ("busy", include_str!("../../config/personas/busy.toml")),
    (
        "no_answer",
        include_str!("../../config/personas/no_answer.toml"),
    ),
    (
        "voicemail",
        include_str!("../../config/personas/voicemail.toml"),
    ),
    (
        "barge_in",
        include_str!("../../config/personas/barge_in.toml"),
    ),
    ("silent", include_str!("../../config/personas/silent.toml")),
    (
        "hangs_up_mid_sentence",
        include_str!("../../config/personas/hangs_up_mid_sentence.toml"),
    ),
    (
        "asks_about_offer",
        include_str!("../../config/personas/asks_about_offer.toml"),
    ),
    (
        "asks_for_human",
        include_str!("../../config/personas/asks_for_human.toml"),
    ),
];

impl Persona {
    /// Parses one persona document.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let p: Persona = toml::from_str(text).map_err(|e| e.to_string())?;
        if p.name.trim().is_empty() {
            return Err("empty name".into());
        }
        Ok(p)
    }

    /// A built-in persona by name.
    pub fn builtin(name: &str) -> Option<Self> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| Self::from_toml(t).expect("built-in persona parses"))
    }

    /// The lines the persona says, in order (handy in tests).
    pub fn lines(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Say { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A set of personas with a number index and a default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Personas {
    by_name: BTreeMap<String, Persona>,
    default: String,
}

impl Default for Personas {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Personas {
    /// The compiled-in personas (same as `config/personas/`).
    pub fn builtin() -> Self {
        let list = BUILTIN
            .iter()
            .map(|(n, _)| Persona::builtin(n).expect("built-in"))
            .collect();
        Self::from_list(list)
    }

    /// From a list; the default is the first marked `default`, else
    /// `interested` if present, else the first.
    pub fn from_list(list: Vec<Persona>) -> Self {
        let default = list
            .iter()
            .find(|p| p.default)
            .or_else(|| list.iter().find(|p| p.name == "interested"))
            .or(list.first())
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let by_name = list.into_iter().map(|p| (p.name.clone(), p)).collect();
        Self { by_name, default }
    }

    /// Loads every `*.toml` of `dir`; built-in personas missing from the
    /// directory (or the whole set, when the directory does not exist) are
    /// added from the compiled-in defaults.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, PersonaError> {
        let dir = dir.as_ref();
        let mut list: Vec<Persona> = Vec::new();
        if dir.is_dir() {
            let io = |source| PersonaError::Io {
                path: dir.display().to_string(),
                source,
            };
            let mut paths: Vec<_> = std::fs::read_dir(dir)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).map_err(|source| PersonaError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                let p = Persona::from_toml(&text).map_err(|message| PersonaError::Parse {
                    path: path.display().to_string(),
                    message,
                })?;
                list.push(p);
            }
        }
        for (name, _) in BUILTIN {
            if !list.iter().any(|p| p.name == *name) {
                list.push(Persona::builtin(name).expect("built-in"));
            }
        }
        Ok(Self::from_list(list))
    }

    /// A persona by name.
    pub fn get(&self, name: &str) -> Option<&Persona> {
        self.by_name.get(name)
    }

    /// Adds or replaces a persona.
    pub fn insert(&mut self, p: Persona) {
        self.by_name.insert(p.name.clone(), p);
    }

    /// Makes `name` the default persona.
    pub fn set_default(&mut self, name: impl Into<String>) {
        self.default = name.into();
    }

    /// The persona that answers `number` (digits, `+` ignored).
    pub fn for_number(&self, number: &str) -> Persona {
        let n = number.trim().trim_start_matches('+');
        self.by_name
            .values()
            .find(|p| p.numbers.iter().any(|x| x.trim_start_matches('+') == n))
            .or_else(|| self.by_name.get(&self.default))
            .or_else(|| self.by_name.values().next())
            .cloned()
            .unwrap_or_else(|| Persona {
                name: "silent".into(),
                numbers: vec![],
                default: true,
                ring_ms: default_ring_ms(),
                outcome: Outcome::Answer,
                steps: vec![],
            })
    }

    /// The number of the persona `name` (its first), for tests and demos.
    pub fn number_of(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|p| p.numbers.first().cloned())
    }
}
