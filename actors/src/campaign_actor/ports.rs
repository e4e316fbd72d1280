//! What the CampaignActor needs from the world: the campaign's contacts
//! and settings ([`CampaignStore`], PostgreSQL in `src/`) and someone to
//! place calls ([`DialSink`], the DialerActor). Tests wire fakes.
//!
//! # How a contact moves (the store's side of the contract)
//!
//! ```text
//!  pending/retry ──claim──▶ in_progress ──record_outcome──▶ retry | completed | failed | dnc
//!        │  ▲                    │
//!        │  └──────release───────┘   (claimed but not dialled: dialer refused or did not answer)
//!        ├──defer──▶ pending/retry, later next_attempt_at   (outside its calling window)
//!        └──give_up─▶ failed       (its window never opens: unknown zone, or no common opening)
//! ```
//!
//! A contact is in `in_progress` only between a successful `claim` and
//! either its outcome or its release, so it is never handed out twice,
//! and a claim the actor could not turn into a call is always given back.
//! What an actor that died left `in_progress` the next one finds with
//! `claimed` and settles.
//!
//! # The campaign's lifecycle state (the store's side)
//!
//! The stored state is the truth every node follows: the REST layer
//! stores an operator's command (on whichever node served it) before any
//! actor hears of it. So a `claim` succeeds only while the stored campaign
//! is `running` (checked in the same statement), and `set_state` is a
//! conditional write along the lifecycle ([`CampaignState::may_replace`]):
//! an actor's decision taken on an old reading (say `completed`, while an
//! operator paused it elsewhere) loses, and the actor learns the stored
//! state instead.

use std::future::Future;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::campaign::CampaignState;
use crate::ids::{CampaignId, ContactId, TenantId};
use crate::ports::PortResult;
use crate::schedule::retry::{CallOutcome, NextStep, RetryPolicy};
use crate::schedule::window::CallingWindow;

/// A contact whose next attempt is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueContact {
    /// The contact.
    pub id: ContactId,
    /// Number to call, E.164.
    pub phone: String,
    /// Its time zone, or the candidate zones of an ambiguous number (the
    /// window must be open in all of them); empty when unknown.
    pub zones: Vec<Tz>,
    /// Attempts made so far; the next dial is attempt `attempts + 1`.
    pub attempts: u32,
}

/// A campaign's settings and lifecycle state, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignSettings {
    /// Owner.
    pub tenant: TenantId,
    /// The campaign.
    pub campaign: CampaignId,
    /// Its name (the supervisor view names the actor with it).
    pub name: String,
    /// Lifecycle state. A restarted actor (or a new lease holder) resumes
    /// from it; afterwards the lease holder follows it with
    /// [`CampaignStore::state`].
    pub state: CampaignState,
    /// When contacts may be called, in their own zone.
    pub window: CallingWindow,
    /// How unanswered calls are retried.
    pub retry: RetryPolicy,
    /// Most calls of this campaign live at once.
    pub max_concurrent_calls: u32,
}

/// Why a contact was given up on without a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GiveUpReason {
    /// Its time zone is unknown, so no calling window can be trusted (the
    /// most restrictive reading: never open).
    UnknownZone,
    /// Its candidate zones have no common opening within
    /// [`crate::schedule::window::SEARCH_DAYS`] days, so the window never
    /// opens for it.
    WindowNeverOpens,
}

impl GiveUpReason {
    /// The name stored beside the contact's `failed` status.
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUpReason::UnknownZone => "unknown_zone",
            GiveUpReason::WindowNeverOpens => "window_never_opens",
        }
    }
}

/// What became of the attempt a contact left `in_progress` was claimed
/// for, according to the dialer's dial intents and call records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimedCall {
    /// No dial intent: the claim never became a call (the actor that
    /// claimed it died first). The contact must be released.
    NotPlaced,
    /// Dialled and not ended: its outcome will be reported.
    Live,
    /// Ended with this outcome, which was never recorded on the contact
    /// (the actor that placed it died first).
    Ended(CallOutcome),
}

/// A contact found `in_progress` when the actor starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimedContact {
    /// The contact.
    pub contact: ContactId,
    /// The attempt it was claimed for (`attempts + 1`).
    pub attempt: u32,
    /// What became of it.
    pub call: ClaimedCall,
}

/// The answer to a [`CampaignStore::claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The contact is `in_progress` now, for this actor to dial.
    Claimed,
    /// It is no longer due (another claim took it, or it changed).
    NotDue,
    /// Nothing was claimed: the stored campaign is not `running` (an
    /// operator paused or stopped it, through any node). The stored state
    /// is given, for the actor to follow.
    NotRunning(CampaignState),
}

/// The answer to a [`CampaignStore::set_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateWrite {
    /// The state is stored (or already was).
    Written,
    /// Not written: the stored state may not move to the one asked for
    /// (see [`CampaignState::may_replace`]); this is the stored state.
    Refused(CampaignState),
}

/// Persistence of one campaign's contacts and state. Every method is
/// scoped to `campaign`; the implementation scopes it to its tenant too.
pub trait CampaignStore: Send + Sync + 'static {
    /// (Re)reads the settings and the lifecycle state. A restarted actor
    /// resumes from here.
    fn load(
        &self,
        campaign: CampaignId,
    ) -> impl Future<Output = PortResult<CampaignSettings>> + Send;

    /// The stored lifecycle state alone. The lease holder reads it every
    /// tick and after every command it hears of, so a pause, stop or
    /// resume stored through any node reaches it even when the command's
    /// notice does not.
    fn state(&self, campaign: CampaignId)
    -> impl Future<Output = PortResult<CampaignState>> + Send;

    /// Every contact of the campaign in `in_progress`, with what became of
    /// the attempt it was claimed for. Read once when the actor starts, so
    /// a new incarnation takes over what an earlier one left: it counts
    /// live calls as its own, records outcomes the earlier one could not,
    /// and releases claims that were never dialled.
    fn claimed(
        &self,
        campaign: CampaignId,
    ) -> impl Future<Output = PortResult<Vec<ClaimedContact>>> + Send;

    /// Up to `limit` contacts due at `now`, oldest due first: status
    /// `pending`, or `retry` with `next_attempt_at <= now`; attempts below
    /// the campaign's `max_attempts` unless a requested callback is due (a
    /// callback is honoured even when attempts are exhausted, as
    /// [`crate::schedule::retry::next_step`] decides); not on the tenant's
    /// do-not-call list. Marks nothing.
    fn due_contacts(
        &self,
        campaign: CampaignId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = PortResult<Vec<DueContact>>> + Send;

    /// Atomically moves a due contact (`pending` or `retry`) to
    /// `in_progress`, if and only if the stored campaign is `running` at
    /// that moment: once a pause or stop is stored, nothing more is
    /// claimed, whichever node's actor asks and whatever it believes.
    fn claim(
        &self,
        campaign: CampaignId,
        contact: ContactId,
    ) -> impl Future<Output = PortResult<Claim>> + Send;

    /// Gives back a claim that did not become a call: `in_progress` goes
    /// back to `pending` (no attempt made yet) or `retry`, with
    /// `next_attempt_at = until`, attempts unchanged. A no-op when the
    /// contact is not `in_progress` (an outcome got there first).
    fn release(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        until: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Outside its calling window: `next_attempt_at = until`, status
    /// unchanged (`pending` or `retry`).
    fn defer(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        until: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Ends a `pending` or `retry` contact as `failed` without a call,
    /// with the reason; attempts unchanged.
    fn give_up(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        reason: GiveUpReason,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// The outcome of attempt number `attempts`: stores the outcome,
    /// `attempts`, the status of `next` and, for a retry, its
    /// `next_attempt_at`. Applied only when `attempts` is above the stored
    /// attempt count, so a repeat of an outcome already recorded is a
    /// no-op (the actor re-sends outcomes whose write failed or timed out).
    fn record_outcome(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        outcome: CallOutcome,
        next: NextStep,
        attempts: u32,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// Stores the campaign's lifecycle state, only if the stored one may
    /// move there ([`CampaignState::may_replace`]); otherwise nothing is
    /// written and the stored state is returned.
    fn set_state(
        &self,
        campaign: CampaignId,
        state: CampaignState,
    ) -> impl Future<Output = PortResult<StateWrite>> + Send;

    /// Contacts not in a final status (`pending`, `retry`, `in_progress`).
    fn remaining(&self, campaign: CampaignId) -> impl Future<Output = PortResult<u64>> + Send;
}

// The dialer's interface, as the campaign sees it.
pub use crate::dialer::{DialRefused, DialRequest, DialSink};
