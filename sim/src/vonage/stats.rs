//! Counters of the Vonage emulator that a load test reads while thousands
//! of calls run: cheap atomics (no walk over the call log), plus the
//! barge-in reaction samples.
//!
//! - **Underruns**: a gap in the agent's audio *inside* an utterance, as
//!   the callee hears it: the play-out tick found nothing queued while the
//!   agent was mid-utterance, and more audio of the same utterance followed
//!   (trailing silence after the last word is not a gap; nor is the
//!   silence after a `clear`).
//! - **Barge-in reaction**: from the first frame of a line the callee
//!   starts while the agent is speaking to the `clear` talky sends.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Most barge-in samples kept (bounded memory in long runs).
pub const MAX_BARGE_SAMPLES: usize = 1_000_000;

/// Live counters (shared by every call task).
#[derive(Debug, Default)]
pub struct Counters {
    /// Calls accepted by `POST /v1/calls`.
    pub(crate) created: AtomicU64,
    /// Media sockets opened.
    pub(crate) media_opened: AtomicU64,
    /// Media sockets open now.
    pub(crate) media_live: AtomicU64,
    /// Calls over.
    pub(crate) ended: AtomicU64,
    /// Agent frames played to the callee.
    pub(crate) agent_frames: AtomicU64,
    /// Gaps inside agent utterances.
    pub(crate) underrun_gaps: AtomicU64,
    /// 20 ms ticks those gaps lasted in total.
    pub(crate) underrun_frames: AtomicU64,
    /// Lines started while the agent spoke.
    pub(crate) barge_attempts: AtomicU64,
    /// `clear` commands received.
    pub(crate) clears: AtomicU64,
    /// Barge-in reactions, ms.
    pub(crate) barge_ms: Mutex<Vec<f64>>,
    /// The same from the speech-start event, ms.
    pub(crate) barge_event_ms: Mutex<Vec<f64>>,
}

/// A snapshot of [`Counters`] (the `GET /stats` body of `talky-sim sim`).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct SimStats {
    /// Calls accepted by `POST /v1/calls`.
    pub calls_created: u64,
    /// Media sockets opened (answered calls that reached talky).
    pub media_opened: u64,
    /// Media sockets open now: the calls live in conversation.
    pub media_live: u64,
    /// Calls over.
    pub calls_ended: u64,
    /// Agent audio frames (20 ms) the callees heard.
    pub agent_frames: u64,
    /// Gaps heard inside agent utterances.
    pub underrun_gaps: u64,
    /// Their total length in 20 ms ticks.
    pub underrun_frames: u64,
    /// Lines callees started while the agent was speaking.
    pub barge_attempts: u64,
    /// `clear` commands received.
    pub clears: u64,
    /// Callee speech start -> `clear` received, ms, one per barge-in.
    pub barge_in_ms: Vec<f64>,
    /// Speech-start event -> `clear` received, ms: from the callee frame
    /// with which talky's own VAD (run here on the same frames, with
    /// talky's barge-in minimum) declares speech. One per barge-in whose
    /// frames reached that point.
    #[serde(default)]
    pub barge_after_event_ms: Vec<f64>,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

pub(crate) fn inc(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn dec(a: &AtomicU64) {
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(1))
    });
}

impl Counters {
    /// Records one barge-in reaction: from the first frame, and from the
    /// speech-start event if it came.
    pub(crate) fn barge(&self, ms: f64, after_event: Option<f64>) {
        for (samples, value) in [
            (&self.barge_ms, Some(ms)),
            (&self.barge_event_ms, after_event),
        ] {
            let mut v = super::lock(samples);
            if let Some(value) = value
                && v.len() < MAX_BARGE_SAMPLES
            {
                v.push(value);
            }
        }
    }

    /// The current figures.
    pub fn snapshot(&self, with_samples: bool) -> SimStats {
        SimStats {
            calls_created: get(&self.created),
            media_opened: get(&self.media_opened),
            media_live: get(&self.media_live),
            calls_ended: get(&self.ended),
            agent_frames: get(&self.agent_frames),
            underrun_gaps: get(&self.underrun_gaps),
            underrun_frames: get(&self.underrun_frames),
            barge_attempts: get(&self.barge_attempts),
            clears: get(&self.clears),
            barge_in_ms: if with_samples {
                super::lock(&self.barge_ms).clone()
            } else {
                Vec::new()
            },
            barge_after_event_ms: if with_samples {
                super::lock(&self.barge_event_ms).clone()
            } else {
                Vec::new()
            },
        }
    }
}
