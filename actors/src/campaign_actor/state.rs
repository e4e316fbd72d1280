//! The campaign actor's state: the campaign, its claimed contacts and
//! live calls, and the writes that have not reached the store yet. What
//! it does with them is in [`super::steps`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ractor::MessagingErr;
use ractor::concurrency::JoinHandle;

use super::config::CampaignConfig;
use super::jitter::Jitter;
use super::lease::LeaseKeeper;
use super::msg::{CampaignMsg, CampaignSnapshot};
use super::ports::CampaignSettings;
use crate::campaign::CampaignState;
use crate::ids::{CampaignId, ContactId};
use crate::ports::{Clock, PortError};
use crate::schedule::retry::{CallOutcome, NextStep};

/// Why a campaign actor failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CampaignActorError {
    /// The store kept failing; a restart resumes from it once it is back.
    #[error("campaign store failed {failures} times in a row; last error: {last}")]
    StoreFailing {
        /// Failures in a row.
        failures: u32,
        /// The last one.
        last: PortError,
    },
}

/// An outcome that has not reached the store yet.
#[derive(Clone, Debug)]
pub(super) struct PendingOutcome {
    /// The contact called.
    pub(super) contact: ContactId,
    /// Its attempt number.
    pub(super) attempt: u32,
    /// How the call ended.
    pub(super) outcome: CallOutcome,
    /// When the outcome arrived: retry delays count from here, however
    /// late the write succeeds.
    pub(super) ended_at: DateTime<Utc>,
    /// The step decided on the first try, kept so that a re-sent write
    /// is the same write (the jitter is drawn once).
    pub(super) next: Option<NextStep>,
}

/// A claim to give back that has not reached the store yet.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingRelease {
    /// The contact claimed.
    pub(super) contact: ContactId,
    /// The attempt that was not placed.
    pub(super) attempt: u32,
    /// When it is due again.
    pub(super) until: DateTime<Utc>,
}

/// Where a live call came from, which says how its end is learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// Placed by this incarnation: its outcome arrives as an event (and
    /// the store is re-read in case that event is lost).
    Placed,
    /// Found live in the store when taking over: its outcome may have been
    /// sent to an earlier incarnation or another node, so only the store
    /// can tell when it ends.
    TakenOver,
}

/// A call this incarnation counts as live.
#[derive(Clone, Copy, Debug)]
pub(super) struct LiveCall {
    /// The attempt it was placed for.
    pub(super) attempt: u32,
    /// Where it came from.
    pub(super) origin: Origin,
    /// When this incarnation started counting it (monotonic clock).
    pub(super) since: Instant,
}

/// Whether to go on with the contacts of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// Next contact.
    Continue,
    /// Stop dialling for this tick (dialer full or failing, store failing).
    Stop,
}

/// The state of one campaign actor. See the module docs of [`super`].
pub struct CampaignActorState<S, D> {
    /// The campaign.
    pub(super) campaign: CampaignId,
    /// Its contacts and state.
    pub(super) store: Arc<S>,
    /// Where calls go.
    pub(super) dialer: Arc<D>,
    /// Wall-clock time.
    pub(super) clock: Arc<dyn Clock>,
    /// Pacing and tolerance.
    pub(super) config: CampaignConfig,
    /// Retry jitter.
    pub(super) jitter: Jitter,
    /// The settings, once loaded.
    pub(super) settings: Option<CampaignSettings>,
    /// The settings must be read again.
    pub(super) reload: bool,
    /// Where the campaign is, as this actor acts on it; `None` until
    /// first loaded.
    pub(super) lifecycle: Option<CampaignState>,
    /// The state the store was last seen to hold (read or written).
    pub(super) persisted: Option<CampaignState>,
    /// The stored state must be read again before the next claim: a tick
    /// came, or a command (stored by the REST layer before it was sent,
    /// maybe with later commands stored after it, maybe on another node).
    pub(super) state_stale: bool,
    /// The node is stopping: no dial, no lease, only this incarnation's
    /// own calls and writes are seen through, then the actor stops.
    pub(super) draining: bool,
    /// The dialer must be told to drop this campaign's queued dials
    /// (paused, stopped); kept until it took the message.
    pub(super) withdraw_pending: bool,
    /// What an earlier incarnation left `in_progress` has been taken over.
    pub(super) taken_over: bool,
    /// Live calls this incarnation knows of, by contact.
    pub(super) live: HashMap<ContactId, LiveCall>,
    /// Attempts settled from the store by a re-check (outcome recorded, or
    /// released) whose event may still arrive: it is then dropped, so an
    /// outcome is never counted twice. Small: only calls whose event was
    /// late or lost get here, and each leaves when its event comes.
    pub(super) settled_from_store: HashSet<(ContactId, u32)>,
    /// When `claimed` was last re-read for the live calls (monotonic).
    pub(super) last_recheck: Option<Instant>,
    /// Outcomes to write, oldest first.
    pub(super) unrecorded: Vec<PendingOutcome>,
    /// Claims to give back.
    pub(super) releases: Vec<PendingRelease>,
    /// A store call failed this tick: leave the store alone until the next.
    pub(super) store_suspended: bool,
    /// Store failures since the last success.
    pub(super) consecutive_failures: u32,
    /// The last store failure.
    pub(super) last_error: Option<PortError>,
    /// Counters (the derived fields are filled in by [`Self::snapshot`]).
    pub(super) stats: CampaignSnapshot,
    /// Why the actor is done, once it is.
    pub(super) finished: Option<String>,
    /// The pending tick, so there is never more than one.
    pub(super) tick_timer: Option<JoinHandle<Result<(), MessagingErr<CampaignMsg>>>>,
    /// The campaign's lease: nothing is dialled or taken over without it.
    pub(super) lease: LeaseKeeper,
}
