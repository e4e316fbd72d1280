//! The CallActor's arguments, messages (split by source) and reports.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;

use super::config::CallConfig;
use super::lifecycle::{CallStatus, EndCause};
use crate::media::SegmentId;
use crate::ports::{
    CallKey, CallStore, Clock, LlmEvent, LlmPort, MediaSession, PortError, ProviderCallId,
    SttEvent, SttPort, TelephonyEvent, TelephonyPort, TtsPort,
};
use crate::schedule::retry::CallOutcome;

/// The port implementations a call uses, as one type parameter.
pub trait CallPorts: Send + Sync + 'static {
    /// Telephony.
    type Telephony: TelephonyPort;
    /// Speech to text (one type; a provider chain holds several values).
    type Stt: SttPort;
    /// LLM.
    type Llm: LlmPort;
    /// Text to speech.
    type Tts: TtsPort;
    /// Call records.
    type Store: CallStore;
    /// Time.
    type Clock: Clock;
}

/// The ports of a call: one telephony, store and clock; a provider chain
/// (primary first) for each of STT, LLM and TTS.
pub struct Ports<P: CallPorts> {
    /// Places and ends the call.
    pub telephony: Arc<P::Telephony>,
    /// STT providers, primary first (at least one).
    pub stt: Vec<Arc<P::Stt>>,
    /// LLM providers, primary first (at least one).
    pub llm: Vec<Arc<P::Llm>>,
    /// TTS providers, primary first (at least one).
    pub tts: Vec<Arc<P::Tts>>,
    /// Records.
    pub store: Arc<P::Store>,
    /// Time.
    pub clock: Arc<P::Clock>,
}

impl<P: CallPorts> Clone for Ports<P> {
    fn clone(&self) -> Self {
        Self {
            telephony: self.telephony.clone(),
            stt: self.stt.clone(),
            llm: self.llm.clone(),
            tts: self.tts.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// How a call ended, for whoever placed it (the dialer, the campaign).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallReport {
    /// Which call.
    pub key: CallKey,
    /// Why it ended.
    pub cause: EndCause,
    /// The callee asked to be called back then.
    pub callback_at: Option<DateTime<Utc>>,
    /// The callee asked never to be called again.
    pub do_not_call: bool,
    /// Turns recorded.
    pub turns: u32,
}

impl CallReport {
    /// What the call means for its contact (the campaign's retry input).
    /// The callee's own wishes win: do-not-call, then a callback time.
    /// A call we cancelled before it was answered counts as a technical
    /// failure (it is retried); a call that ran to its time limit, or
    /// whose callee stayed silent, counts as completed or unanswered.
    pub fn outcome(&self) -> CallOutcome {
        campaign_outcome(&self.cause, self.do_not_call, self.callback_at)
    }
}

/// What a call that ended with `cause` means for its contact, given what
/// the callee asked for (see [`CallReport::outcome`]). Also used to read a
/// finished call back from the store.
pub fn campaign_outcome(
    cause: &EndCause,
    do_not_call: bool,
    callback_at: Option<DateTime<Utc>>,
) -> CallOutcome {
    if do_not_call {
        return CallOutcome::DoNotCall;
    }
    if let Some(at) = callback_at {
        return CallOutcome::CallbackRequested(at);
    }
    match cause {
        EndCause::Completed | EndCause::Timeout => CallOutcome::Completed,
        EndCause::Busy => CallOutcome::Busy,
        EndCause::NoAnswer | EndCause::NoInput => CallOutcome::NoAnswer,
        EndCause::Rejected => CallOutcome::Rejected,
        EndCause::Machine => CallOutcome::Machine,
        EndCause::Failed(_) | EndCause::ProviderError(_) | EndCause::Cancelled => {
            CallOutcome::Failed
        }
    }
}

/// Receives the report when a call is over.
pub type ReportSink = Arc<dyn Fn(CallReport) + Send + Sync>;

/// What a CallActor starts from.
pub struct CallArgs<P: CallPorts> {
    /// Who the call belongs to.
    pub key: CallKey,
    /// Its settings.
    pub config: CallConfig,
    /// Its ports.
    pub ports: Ports<P>,
    /// Told once, when the call is over.
    pub report: ReportSink,
}

/// Which child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// Speech to text.
    Stt,
    /// LLM.
    Llm,
    /// Text to speech.
    Tts,
}

/// Timers, each with the token it was set with (a stale one is ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Ringing for too long.
    Ringing,
    /// Talk time is up.
    MaxDuration,
    /// The callee said nothing for a while.
    NoInput,
    /// The apology had its time; hang up now.
    ApologyDone,
    /// `completed` came before any answer; the more specific status
    /// (busy, timeout, rejected…) it stands for had its time to arrive.
    CompletedUnanswered,
}

/// A live child as the supervisor view shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChildSnapshot {
    /// Which child.
    pub kind: ChildKind,
    /// Index of the provider in use in its chain (0 = primary).
    pub provider: usize,
    /// Restarts so far.
    pub restarts: u64,
    /// Whether it is running now.
    pub running: bool,
}

/// The call as the supervisor view shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CallSnapshot {
    /// Which call.
    pub key: CallKey,
    /// Where it is.
    pub status: CallStatus,
    /// Turns recorded.
    pub turns: u32,
    /// Whether the agent is speaking.
    pub agent_speaking: bool,
    /// Its children.
    pub children: Vec<ChildSnapshot>,
    /// Messages handled.
    pub messages: u64,
}

/// Everything a CallActor handles.
pub enum CallMsg {
    // ----- commands (dialer, webhooks, media socket, operators) -----
    /// Ask the provider to dial.
    Dial,
    /// The provider reports call progress.
    Telephony(TelephonyEvent),
    /// The call's media socket is up.
    AttachMedia(MediaSession),
    /// End the call (campaign stopped, operator).
    Hangup(EndCause),
    /// Supervisor view.
    Snapshot(RpcReplyPort<CallSnapshot>),

    // ----- results of port calls made in tasks -----
    /// `place_call` answered.
    Placed(Result<ProviderCallId, PortError>),

    // ----- child events -----
    /// From the STT child of this generation.
    Stt {
        /// Child generation (stale events of a replaced child are dropped).
        generation: u64,
        /// The event.
        event: SttEvent,
    },
    /// From the LLM child.
    Llm {
        /// Child generation.
        generation: u64,
        /// The agent turn the stream belongs to.
        turn: u64,
        /// The event.
        event: LlmEvent,
    },
    /// TTS audio is waiting in the bounded TTS channel.
    TtsReady,
    /// TTS finished a segment.
    TtsDone {
        /// Child generation.
        generation: u64,
        /// The segment.
        segment: SegmentId,
    },
    /// A child is to be started again.
    Restart(ChildKind),

    // ----- media control (from the audio router; no audio here) -----
    /// The callee has spoken for at least the barge-in minimum.
    CallerSpeech,
    /// The callee stopped speaking (after the VAD's hangover).
    CallerSilent,
    /// A keypad digit.
    Dtmf(char),
    /// The media socket closed.
    MediaClosed,

    // ----- time -----
    /// Time to poll the playout.
    Tick,
    /// A timer fired.
    Timer(TimerKind, u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CallId, CampaignId, ContactId, TenantId};

    fn report(cause: EndCause) -> CallReport {
        CallReport {
            key: CallKey {
                tenant: TenantId::new(),
                campaign: CampaignId::new(),
                contact: ContactId::new(),
                call: CallId::new(),
                attempt: 1,
            },
            cause,
            callback_at: None,
            do_not_call: false,
            turns: 0,
        }
    }

    #[test]
    fn outcomes_for_the_campaign() {
        assert_eq!(report(EndCause::Busy).outcome(), CallOutcome::Busy);
        assert_eq!(report(EndCause::NoInput).outcome(), CallOutcome::NoAnswer);
        assert_eq!(report(EndCause::Timeout).outcome(), CallOutcome::Completed);
        assert_eq!(
            report(EndCause::ProviderError("x".into())).outcome(),
            CallOutcome::Failed
        );
        let mut r = report(EndCause::Completed);
        let at = Utc::now();
        r.callback_at = Some(at);
        assert_eq!(r.outcome(), CallOutcome::CallbackRequested(at));
        r.do_not_call = true;
        assert_eq!(r.outcome(), CallOutcome::DoNotCall, "do-not-call wins");
    }
}
