//! The CallActor's messages (split by source), its media session, and
//! what it reports.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;
use tokio::sync::mpsc;

use super::lifecycle::{CallStatus, EndCause};
use super::router::CallerAudio;
use crate::media::SegmentId;
#[cfg(doc)]
use crate::ports::MEDIA_OUT_CAPACITY;
use crate::ports::{
    CallKey, CalleeRequest, LlmEvent, MediaOut, PortError, ProviderCallId, SttEvent, TelephonyEvent,
};
use crate::schedule::retry::CallOutcome;

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
        // A transferred callee reached a person: done, never redialled.
        EndCause::Completed | EndCause::Timeout | EndCause::Transferred => CallOutcome::Completed,
        EndCause::Busy => CallOutcome::Busy,
        EndCause::NoAnswer | EndCause::NoInput => CallOutcome::NoAnswer,
        EndCause::Rejected => CallOutcome::Rejected,
        EndCause::Machine => CallOutcome::Machine,
        // An interrupted call is a technical failure for the contact: the
        // retry policy redials it (no new outcome name to store).
        EndCause::Failed(_)
        | EndCause::ProviderError(_)
        | EndCause::Cancelled
        | EndCause::Interrupted => CallOutcome::Failed,
    }
}

/// Receives the report when a call is over.
pub type ReportSink = Arc<dyn Fn(CallReport) + Send + Sync>;

/// Where a media session's callee audio goes: the socket's task pushes
/// each item into the [`CallerAudio`] the call sends back here (no task or
/// channel per 20 ms frame). Dropped unanswered if the call refuses the
/// socket.
pub enum MediaInbound {
    /// The call answers with its [`CallerAudio`].
    Inline(tokio::sync::oneshot::Sender<CallerAudio>),
}

impl std::fmt::Debug for MediaInbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inline")
    }
}

/// A live media socket bound to a call: bounded both ways; closing
/// either side (dropping) ends the session.
#[derive(Debug)]
pub struct MediaSession {
    /// From the callee.
    pub inbound: MediaInbound,
    /// To the callee; capacity [`MEDIA_OUT_CAPACITY`].
    pub outbound: mpsc::Sender<MediaOut>,
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
    /// A do-not-call was not confirmed stored in time: end the call anyway.
    DoNotCallStored,
    /// No event told the id of a leg placed with an unknown outcome: ask
    /// the provider's call list.
    ResolvePlacement,
    /// Armed while a transfer request's answer is lost and our media
    /// stream is up; firing: the provider did not carry it out, the call
    /// goes on.
    TransferSettle,
}

/// A live child as the supervisor view shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChildSnapshot {
    /// Which child.
    pub kind: ChildKind,
    /// The provider in use, by name (`deepgram`, `groq`, `elevenlabs`).
    pub provider: String,
    /// Its place in the child's provider chain (0 = primary, more: a
    /// fallback took over).
    pub position: usize,
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
    /// Its campaign's name.
    pub campaign_name: String,
    /// The number called, masked ([`crate::mask::mask_phone`]): the view
    /// is seen over shoulders.
    pub number: String,
    /// Where it is.
    pub status: CallStatus,
    /// Seconds since the call actor started.
    pub age_secs: u64,
    /// Seconds since it was answered (until it ended); `None` before.
    pub duration_secs: Option<u64>,
    /// Turns recorded.
    pub turns: u32,
    /// Whether the agent is speaking.
    pub agent_speaking: bool,
    /// Its children.
    pub children: Vec<ChildSnapshot>,
    /// Messages handled.
    pub messages: u64,
    /// The telephony route the call was placed through (its campaign's
    /// `telephony`; empty: the server's default).
    pub telephony: String,
    /// The provider's id of the leg, once known.
    pub leg: Option<ProviderCallId>,
    /// The provider holding the leg (`vonage`, `twilio`), named by the
    /// server from `leg` (this crate does not read leg ids; `None` here).
    pub provider: Option<String>,
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
    /// The provider's id of this call's leg, learnt from a webhook event
    /// (sent by the webhook route when an event carries the provider's
    /// uuid). Adopted when the call has none yet (its create-call ended of
    /// unknown outcome); otherwise ignored.
    ProviderId(ProviderCallId),
    /// This node is stopping and its drain time is over (sent by the
    /// dialer): a live call says `CallConfig::shutdown_text` and hangs up,
    /// one not yet answered is hung up at once, both with
    /// `EndCause::Interrupted`; a finished call ignores it.
    Shutdown,
    /// Supervisor view.
    Snapshot(RpcReplyPort<CallSnapshot>),

    // ----- results of port calls made in tasks -----
    /// `place_call` answered.
    Placed(Result<ProviderCallId, PortError>),
    /// `find_call` answered (asked after a create-call of unknown outcome).
    Resolved(Result<Option<ProviderCallId>, PortError>),
    /// `transfer` answered (asked once the handover line played).
    Transferred(Result<(), PortError>),

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
    /// The call's record writer stored what the callee asked for (the
    /// do-not-call is acknowledged to the callee only after this).
    RequestStored(CalleeRequest),

    // ----- media control (from the audio router; no audio here) -----
    /// The callee has spoken for at least the barge-in minimum.
    CallerSpeech,
    /// The callee stopped speaking: the VAD saw its hangover of quiet
    /// audio, which ended `silent_for` ago (audio time).
    CallerSilent {
        /// Quiet audio since the end of the speech.
        silent_for: Duration,
    },
    /// A keypad digit (logged).
    Dtmf(char),
    /// The provider played our audio up to a mark we sent (logged).
    MarkPlayed(String),
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
        assert_eq!(report(EndCause::Interrupted).outcome(), CallOutcome::Failed);
        assert_eq!(
            EndCause::from_stored(EndCause::Interrupted.outcome(), ""),
            EndCause::Interrupted
        );
        assert_eq!(EndCause::Interrupted.outcome(), "interrupted");
        assert_eq!(
            report(EndCause::Transferred).outcome(),
            CallOutcome::Completed,
            "a transferred contact is reached, not retried"
        );
        assert_eq!(
            EndCause::from_stored(EndCause::Transferred.outcome(), ""),
            EndCause::Transferred
        );
        assert_eq!(EndCause::Transferred.outcome(), "transferred");
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
