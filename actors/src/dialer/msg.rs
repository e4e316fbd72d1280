//! What the dialer is asked (by campaigns, its calls, the node) and what
//! it tells campaigns.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;

use crate::call::{CallConfig, CallMsg, CallReport, CallSnapshot};
use crate::ids::{CampaignId, ContactId, TenantId};
use crate::ports::CallKey;

/// One call the campaign asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialRequest {
    /// Owner.
    pub tenant: TenantId,
    /// Campaign.
    pub campaign: CampaignId,
    /// Contact.
    pub contact: ContactId,
    /// Number to call, E.164.
    pub phone: String,
    /// Attempt number, from 1: with campaign and contact, the key of the
    /// dialer's dial intent (one call per key, ever).
    pub attempt: u32,
    /// When the opening of the contact's calling window that was open at
    /// the request closes (the campaign computes it). A dial still queued
    /// then is not placed: it would ring outside the window. `None`: no
    /// limit.
    pub place_by: Option<DateTime<Utc>>,
}

/// Why the dialer did not take a call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialRefused {
    /// A concurrency cap (global, tenant or campaign) is full: ask again later.
    #[error("dialer at capacity")]
    AtCapacity,
    /// This (campaign, contact, attempt) was already dialled; its outcome
    /// is, or will be, reported.
    #[error("attempt already dialled")]
    Duplicate,
    /// Anything else; the campaign tries the contact again later.
    #[error("dialer unavailable: {0}")]
    Unavailable(String),
}

/// What the dialer tells a campaign about a dial it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialReport {
    /// The call was placed and is over.
    Ended(CallReport),
    /// The dial was dropped before it was placed; its intent was
    /// cancelled (or the cancellation was tried), its room freed.
    NotPlaced {
        /// Which attempt.
        key: CallKey,
        /// Why.
        why: NotPlacedWhy,
    },
}

/// Why an accepted dial was not placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotPlacedWhy {
    /// The campaign withdrew its queued dials (paused, stopped, draining).
    Withdrawn,
    /// The campaign is no longer configured on this dialer.
    CampaignGone,
    /// The contact's calling window closed while the dial waited.
    WindowClosed,
    /// The dialer is draining (its node is stopping).
    Draining,
}

/// Receives what becomes of a campaign's accepted dials.
pub type CampaignSink = Arc<dyn Fn(DialReport) + Send + Sync>;

/// The message the dialer sends its live calls when the node stops and
/// the drain time is over: a short goodbye, then the hang-up, recorded
/// `interrupted`.
pub fn shutdown_message() -> CallMsg {
    CallMsg::Shutdown
}

/// What the dialer needs to place a campaign's calls.
#[derive(Clone)]
pub struct CampaignCalls {
    /// Owner.
    pub tenant: TenantId,
    /// The campaign's concurrent-call cap.
    pub max_concurrent: u32,
    /// Settings of every call (numbers and token are filled per call).
    pub template: CallConfig,
    /// Told each call's outcome and each accepted dial dropped before it
    /// was placed (the CampaignActor: [`crate::tree::campaign_report_sink`]).
    pub on_report: CampaignSink,
}

/// The dialer as the supervisor view shows it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DialerSnapshot {
    /// Calls placed and not over (admitted calls still queued are not
    /// counted here but in `queued`).
    pub live: u32,
    /// Calls admitted, waiting for a CPS token.
    pub queued: usize,
    /// Calls placed since start.
    pub dialled: u64,
    /// Calls whose actor crashed.
    pub crashed: u64,
    /// Accepted dials dropped before they were placed.
    pub not_placed: u64,
    /// The dialer refuses new dials (its node is stopping).
    pub draining: bool,
    /// Each live call.
    pub calls: Vec<CallSnapshot>,
}

/// Everything the dialer handles.
pub enum DialerMsg {
    /// A campaign starts or changed its settings.
    Configure {
        /// Which.
        campaign: CampaignId,
        /// Its call settings.
        calls: Box<CampaignCalls>,
    },
    /// A campaign stopped (live calls still report); its queued dials are
    /// dropped as by [`DialerMsg::Withdraw`].
    Forget(CampaignId),
    /// Drop every queued dial of a campaign (paused, stopped, draining):
    /// intents cancelled, rooms freed, the campaign told `NotPlaced`.
    /// Its placed calls go on.
    Withdraw(CampaignId),
    /// The node is stopping: refuse every new dial from now on and drop
    /// every queued one (as `Withdraw`). Live calls go on.
    Drain,
    /// Tell every live call to end (after `Drain`, when the node cannot
    /// wait for them any longer).
    ShutdownCalls,
    /// Place a call.
    Dial {
        /// What.
        request: DialRequest,
        /// Accepted or refused.
        reply: RpcReplyPort<Result<(), DialRefused>>,
    },
    /// A call is over (from its report sink).
    CallEnded(CallReport),
    /// A CPS token may be available.
    Pace,
    /// Extend the cluster slots of the admitted and live calls.
    RenewSlots,
    /// Supervisor view.
    Snapshot(RpcReplyPort<DialerSnapshot>),
}
