//! The call state machine:
//! `Queued -> Dialing -> Ringing -> Answered -> (Machine | Conversation)
//! -> Ending -> Finished`, with a failure exit from every live state.
//!
//! Provider webhooks arrive late, twice, or out of order, so the machine is
//! monotonic: an event that would move the call backwards (a `ringing`
//! after `answered`) or repeat a step is ignored, never an error, and a
//! finished call stays finished.

use serde::{Deserialize, Serialize};

/// Where a call is. The names are the stored `calls.status` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Intent written, not yet sent to the provider.
    Queued,
    /// The provider was asked to dial.
    Dialing,
    /// The far end rings.
    Ringing,
    /// Picked up; not yet known whether by a person.
    Answered,
    /// An answering machine picked up.
    Machine,
    /// Talking with a person.
    Conversation,
    /// Hanging up (goodbye playing, hang-up sent).
    Ending,
    /// Over; the outcome is final.
    Finished,
}

impl CallStatus {
    /// Every status, in the order of the migration's `CHECK` (the root
    /// crate's schema test holds them to it).
    pub const ALL: [CallStatus; 8] = [
        CallStatus::Queued,
        CallStatus::Dialing,
        CallStatus::Ringing,
        CallStatus::Answered,
        CallStatus::Machine,
        CallStatus::Conversation,
        CallStatus::Ending,
        CallStatus::Finished,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Dialing => "dialing",
            CallStatus::Ringing => "ringing",
            CallStatus::Answered => "answered",
            CallStatus::Machine => "machine",
            CallStatus::Conversation => "conversation",
            CallStatus::Ending => "ending",
            CallStatus::Finished => "finished",
        }
    }
}

/// How a call ended, from the call's point of view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCause {
    /// A conversation ran to its end.
    Completed,
    /// The line was busy.
    Busy,
    /// Nobody answered in time (provider's or our ringing timeout).
    NoAnswer,
    /// The callee declined.
    Rejected,
    /// An answering machine; voicemail left or not.
    Machine,
    /// The provider could not place or keep the call.
    Failed(String),
    /// Cancelled by us before it was answered (campaign stopped).
    Cancelled,
    /// A provider of ours (STT, LLM, TTS) failed beyond its restarts.
    ProviderError(String),
    /// The call hit its maximum duration.
    Timeout,
    /// The callee stayed silent through the reprompts.
    NoInput,
    /// We ended the call because this node is shutting down (its drain
    /// time is over): the callee was told we will call back, and the
    /// campaign redials the contact.
    Interrupted,
    /// Handed over to a person (cold transfer): the provider leg goes on
    /// without us; the contact counts as reached.
    Transferred,
}

impl EndCause {
    /// Reads a stored outcome name back (`reason` fills the causes that
    /// carry one); an unknown name is a failure with the name as reason.
    pub fn from_stored(name: &str, reason: &str) -> EndCause {
        match name {
            "completed" => EndCause::Completed,
            "busy" => EndCause::Busy,
            "no_answer" => EndCause::NoAnswer,
            "rejected" => EndCause::Rejected,
            "machine" => EndCause::Machine,
            "cancelled" => EndCause::Cancelled,
            "timeout" => EndCause::Timeout,
            "no_input" => EndCause::NoInput,
            "interrupted" => EndCause::Interrupted,
            "transferred" => EndCause::Transferred,
            "provider_error" => EndCause::ProviderError(reason.into()),
            "failed" => EndCause::Failed(reason.into()),
            other => EndCause::Failed(format!("unknown outcome {other:?}: {reason}")),
        }
    }

    /// The stored outcome name.
    pub fn outcome(&self) -> &'static str {
        match self {
            EndCause::Completed => "completed",
            EndCause::Busy => "busy",
            EndCause::NoAnswer => "no_answer",
            EndCause::Rejected => "rejected",
            EndCause::Machine => "machine",
            EndCause::Failed(_) => "failed",
            EndCause::Cancelled => "cancelled",
            EndCause::ProviderError(_) => "provider_error",
            EndCause::Timeout => "timeout",
            EndCause::NoInput => "no_input",
            EndCause::Interrupted => "interrupted",
            EndCause::Transferred => "transferred",
        }
    }
}

/// What happens to a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// We asked the provider to dial.
    Dial,
    /// The provider reports ringing.
    Ringing,
    /// The provider reports an answer.
    Answered,
    /// Machine detection says: machine.
    MachineDetected,
    /// The media socket is up and a person (or no verdict) is there.
    ConversationStarted,
    /// We decided to end the call (goodbye, timeout, escalation…).
    Hangup(EndCause),
    /// The provider says the call is over; `cause` is its reason when it
    /// ended before an answer (busy, no answer…), `None` after an answer.
    Ended(Option<EndCause>),
}

/// The call's lifecycle state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// Current status.
    status: CallStatus,
    /// Why it is ending or ended, once known (the first cause wins).
    cause: Option<EndCause>,
    /// The callee picked up at some point (a later `Ending` keeps this).
    answered: bool,
}

/// What an event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The status changed to this.
    Moved(CallStatus),
    /// Stale, repeated or out-of-order: nothing changed.
    Ignored,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A queued call.
    pub fn new() -> Self {
        Self {
            status: CallStatus::Queued,
            cause: None,
            answered: false,
        }
    }

    /// Current status.
    pub fn status(&self) -> CallStatus {
        self.status
    }

    /// The end cause, once decided.
    pub fn cause(&self) -> Option<&EndCause> {
        self.cause.as_ref()
    }

    /// Whether the callee picked up at some point.
    pub fn was_answered(&self) -> bool {
        self.answered
    }

    fn advance(&mut self, to: CallStatus) -> Step {
        if to > self.status {
            self.status = to;
            if matches!(
                to,
                CallStatus::Answered | CallStatus::Machine | CallStatus::Conversation
            ) {
                self.answered = true;
            }
            Step::Moved(to)
        } else {
            Step::Ignored
        }
    }

    /// A machine verdict that arrives after the conversation started
    /// (asynchronous machine detection answers seconds after the call was
    /// answered): the status stays, the cause becomes `Machine`. False when
    /// the call is already ending or the verdict came too late to matter.
    pub fn machine_after_answer(&mut self) -> bool {
        if self.status != CallStatus::Conversation {
            return false;
        }
        self.cause.get_or_insert(EndCause::Machine);
        true
    }

    /// Applies an event.
    pub fn apply(&mut self, event: CallEvent) -> Step {
        use CallStatus as S;
        if self.status == S::Finished {
            return Step::Ignored;
        }
        match event {
            CallEvent::Dial => self.advance(S::Dialing),
            CallEvent::Ringing if self.status <= S::Ringing => self.advance(S::Ringing),
            CallEvent::Answered if self.status <= S::Answered => self.advance(S::Answered),
            CallEvent::MachineDetected if self.status < S::Conversation => {
                self.cause.get_or_insert(EndCause::Machine);
                self.advance(S::Machine)
            }
            CallEvent::ConversationStarted if self.status == S::Answered => {
                self.advance(S::Conversation)
            }
            CallEvent::Hangup(cause) if self.status < S::Ending => {
                self.cause.get_or_insert(cause);
                self.advance(S::Ending)
            }
            CallEvent::Ended(cause) => {
                let fallback = if self.answered {
                    EndCause::Completed
                } else {
                    EndCause::Failed("ended before it was answered".into())
                };
                let cause = match (self.answered, cause) {
                    // After an answer the provider's "completed" carries no
                    // cause of its own; ours (goodbye, machine…) stands.
                    (true, _) | (false, None) => fallback,
                    (false, Some(c)) => c,
                };
                self.cause.get_or_insert(cause);
                self.advance(S::Finished)
            }
            _ => Step::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CallEvent as E;
    use super::CallStatus as S;
    use super::*;

    fn run(events: Vec<CallEvent>) -> Lifecycle {
        let mut l = Lifecycle::new();
        for e in events {
            l.apply(e);
        }
        l
    }

    #[test]
    fn a_conversation_from_dial_to_finish() {
        let mut l = Lifecycle::new();
        assert_eq!(l.apply(E::Dial), Step::Moved(S::Dialing));
        assert_eq!(l.apply(E::Ringing), Step::Moved(S::Ringing));
        assert_eq!(l.apply(E::Answered), Step::Moved(S::Answered));
        assert_eq!(
            l.apply(E::ConversationStarted),
            Step::Moved(S::Conversation)
        );
        assert_eq!(
            l.apply(E::Hangup(EndCause::Completed)),
            Step::Moved(S::Ending)
        );
        assert_eq!(l.apply(E::Ended(None)), Step::Moved(S::Finished));
        assert_eq!(l.cause().map(EndCause::outcome), Some("completed"));
    }

    #[test]
    fn failure_exits_before_an_answer_keep_the_providers_cause() {
        for (cause, outcome) in [
            (EndCause::Busy, "busy"),
            (EndCause::NoAnswer, "no_answer"),
            (EndCause::Rejected, "rejected"),
            (EndCause::Failed("521".into()), "failed"),
            (EndCause::Cancelled, "cancelled"),
        ] {
            let l = run(vec![E::Dial, E::Ringing, E::Ended(Some(cause))]);
            assert_eq!(l.status(), S::Finished);
            assert_eq!(l.cause().map(EndCause::outcome), Some(outcome));
        }
        // Straight from dialing, too.
        let l = run(vec![E::Dial, E::Ended(Some(EndCause::Busy))]);
        assert_eq!(l.cause(), Some(&EndCause::Busy));
    }

    #[test]
    fn our_cause_wins_over_the_providers_completed() {
        let l = run(vec![
            E::Dial,
            E::Answered,
            E::ConversationStarted,
            E::Hangup(EndCause::Timeout),
            E::Ended(Some(EndCause::Failed("late".into()))),
        ]);
        assert_eq!(l.cause(), Some(&EndCause::Timeout));
        let l = run(vec![
            E::Dial,
            E::Answered,
            E::MachineDetected,
            E::Ended(None),
        ]);
        assert_eq!(l.cause(), Some(&EndCause::Machine));
        // The callee hangs up mid-conversation: completed.
        let l = run(vec![
            E::Dial,
            E::Answered,
            E::ConversationStarted,
            E::Ended(None),
        ]);
        assert_eq!(l.cause(), Some(&EndCause::Completed));
    }

    #[test]
    fn late_duplicate_and_reordered_events_are_ignored() {
        let mut l = run(vec![E::Dial, E::Answered]);
        assert_eq!(l.apply(E::Ringing), Step::Ignored, "ringing after answered");
        assert_eq!(l.apply(E::Answered), Step::Ignored, "answered twice");
        assert_eq!(l.apply(E::Dial), Step::Ignored);
        l.apply(E::ConversationStarted);
        assert_eq!(
            l.apply(E::MachineDetected),
            Step::Ignored,
            "verdict after talking"
        );
        l.apply(E::Ended(None));
        for e in [
            E::Ringing,
            E::Answered,
            E::Hangup(EndCause::Busy),
            E::Ended(None),
        ] {
            assert_eq!(l.apply(e), Step::Ignored, "finished stays finished");
        }
        assert_eq!(l.status(), S::Finished);
    }

    #[test]
    fn a_late_machine_verdict_sets_the_cause() {
        let mut l = run(vec![E::Dial, E::Answered, E::ConversationStarted]);
        assert_eq!(
            l.apply(E::MachineDetected),
            Step::Ignored,
            "the status does not go back"
        );
        assert!(l.machine_after_answer());
        l.apply(E::Hangup(EndCause::Machine));
        l.apply(E::Ended(None));
        assert_eq!(l.cause(), Some(&EndCause::Machine));
        let mut ending = run(vec![
            E::Dial,
            E::Answered,
            E::ConversationStarted,
            E::Hangup(EndCause::Completed),
        ]);
        assert!(!ending.machine_after_answer(), "too late once ending");
    }

    #[test]
    fn a_transferred_call_stays_transferred_whatever_comes_late() {
        let mut l = run(vec![
            E::Dial,
            E::Answered,
            E::ConversationStarted,
            E::Hangup(EndCause::Transferred),
        ]);
        // The provider's `completed` when the person hangs up, long after.
        assert_eq!(l.apply(E::Ended(None)), Step::Moved(S::Finished));
        assert_eq!(l.cause(), Some(&EndCause::Transferred));
        for e in [
            E::Ended(Some(EndCause::Failed("late".into()))),
            E::Hangup(EndCause::Completed),
            E::Answered,
        ] {
            assert_eq!(l.apply(e), Step::Ignored);
        }
        assert_eq!(l.cause().map(EndCause::outcome), Some("transferred"));
    }

    #[test]
    fn ringing_timeout_is_our_hangup() {
        let l = run(vec![
            E::Dial,
            E::Ringing,
            E::Hangup(EndCause::NoAnswer),
            E::Ended(None),
        ]);
        assert_eq!(l.cause(), Some(&EndCause::NoAnswer));
        assert_eq!(l.status(), S::Finished);
        assert!(!l.was_answered());
        // The provider's end without a cause before any answer is a failure.
        let l = run(vec![E::Dial, E::Ended(None)]);
        assert_eq!(l.cause().map(EndCause::outcome), Some("failed"));
    }

    #[test]
    /// The stored names never change (rows hold them); that the database
    /// allows exactly these is `tests/it/schema.rs`'s check.
    fn status_names_are_stable() {
        let names: Vec<&str> = S::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "queued",
                "dialing",
                "ringing",
                "answered",
                "machine",
                "conversation",
                "ending",
                "finished"
            ]
        );
    }
}
