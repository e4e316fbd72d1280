//! What the CampaignActor is sent, by source: operator commands (through
//! the REST layer), call events (from the dialer), and its own timer.

use ractor::RpcReplyPort;

use crate::campaign::CampaignState;
use crate::ids::{CampaignId, ContactId};
use crate::schedule::retry::CallOutcome;

/// A CampaignActor's mailbox.
#[derive(Debug)]
pub enum CampaignMsg {
    /// From the operator, through the REST layer.
    Control(CampaignControl),
    /// From the dialer.
    Event(CampaignEvent),
    /// The actor's own timer: look for due contacts, retry store writes
    /// that failed. Sent only by the actor to itself, one pending at a time;
    /// an extra one from outside does no harm but is not needed.
    Tick,
}

/// Operator commands. Pause, resume and stop are sent after the REST
/// layer stored them (on this node or another): the actor applies them
/// at once and, if it holds the lease, reads the stored state again to
/// follow it (see the module docs, Lifecycle).
#[derive(Debug)]
pub enum CampaignControl {
    /// No new dials; live calls finish and their outcomes are recorded.
    Pause,
    /// Dial again after a pause.
    Resume,
    /// No new dials; once live calls have drained the campaign is
    /// `cancelled` and the actor stops.
    Stop,
    /// The node is stopping (SIGTERM): dial nothing more, withdraw the
    /// dials the dialer queues, give the campaign's lease up at once (and
    /// never take it again), record the outcomes of this incarnation's
    /// own live calls and every pending write, then stop (a normal stop).
    /// The stored lifecycle state is not changed: the campaign stays
    /// `running` for the next start or another node to resume.
    Drain,
    /// The campaign's settings changed: read them again (window, retry
    /// policy, concurrency cap; the lifecycle state is followed through
    /// the commands and the per-tick reading, not taken from here).
    Reload,
    /// Counters and state, for the supervisor view and the REST layer.
    Snapshot(RpcReplyPort<CampaignSnapshot>),
}

/// Events about calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CampaignEvent {
    /// A call the dialer accepted has ended.
    CallEnded {
        /// The contact called.
        contact: ContactId,
        /// Its attempt number, as in the dial request.
        attempt: u32,
        /// How it ended.
        outcome: CallOutcome,
    },
    /// A dial the dialer accepted was dropped before it was placed
    /// (withdrawn, its window closed while it waited, the campaign is not
    /// configured there, the node is draining). Its intent is cancelled:
    /// no attempt was made, the contact's claim is to be given back.
    NotPlaced {
        /// The contact.
        contact: ContactId,
        /// The attempt that was not placed.
        attempt: u32,
    },
}

impl From<CampaignControl> for CampaignMsg {
    fn from(c: CampaignControl) -> Self {
        CampaignMsg::Control(c)
    }
}

impl From<CampaignEvent> for CampaignMsg {
    fn from(e: CampaignEvent) -> Self {
        CampaignMsg::Event(e)
    }
}

/// What a campaign actor is doing. Counters are of this incarnation
/// (since the actor last started).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CampaignSnapshot {
    /// The campaign.
    pub campaign: CampaignId,
    /// Its name; `None` until the settings were first loaded.
    pub name: Option<String>,
    /// Lifecycle state; `None` until the settings were first loaded.
    pub state: Option<CampaignState>,
    /// Calls of this campaign live now (accepted, outcome not yet in).
    pub live_calls: u32,
    /// Dials the dialer accepted.
    pub dialled: u64,
    /// Outcomes recorded (calls ended).
    pub outcomes: u64,
    /// Contacts finished as `completed`.
    pub completed: u64,
    /// Contacts finished as `failed`, by an outcome or given up on.
    pub failed: u64,
    /// Contacts finished as `dnc`.
    pub dnc: u64,
    /// Outcomes that scheduled another attempt.
    pub retries: u64,
    /// Contacts deferred to their next calling window.
    pub deferred: u64,
    /// Contacts given up on without a call (their window never opens);
    /// also counted in `failed`.
    pub given_up: u64,
    /// Dials refused because the dialer was at capacity.
    pub refused: u64,
    /// Dials the dialer reported as already placed.
    pub duplicates: u64,
    /// Dials that failed otherwise (dialer unavailable or timed out).
    pub dial_errors: u64,
    /// Contacts an earlier incarnation left `in_progress`, taken over at
    /// start (live calls, unrecorded outcomes, undialled claims).
    pub taken_over: u64,
    /// Store calls that failed or timed out.
    pub store_errors: u64,
    /// Store failures since the last success.
    pub consecutive_store_errors: u32,
    /// Live calls settled by re-reading the store (their event was lost
    /// or went elsewhere, or they were never placed).
    pub rechecked: u64,
    /// Accepted dials the dialer dropped before placing them.
    pub not_placed: u64,
    /// Store writes waiting for a retry (outcomes and releases).
    pub pending_writes: u32,
}
