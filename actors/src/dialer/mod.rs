//! The dialer: admission of new calls (caps and pacing), the dial intent
//! written before any call is placed, and the DialerActor that owns the
//! CallActors.

mod actor;
pub mod admission;
mod room;

#[cfg(test)]
mod tests;

use std::future::Future;

pub use actor::{
    CampaignCalls, DialStore, DialerActor, DialerArgs, DialerConfig, DialerHandle, DialerMsg,
    DialerSnapshot, DialerState, Intent, IntentError, call_name,
};

use crate::ids::{CampaignId, ContactId, TenantId};

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

/// Where the campaign sends its calls (the DialerActor).
pub trait DialSink: Send + Sync + 'static {
    /// Asks for a call. `Ok` means accepted: the dialer reports its outcome
    /// later, exactly once.
    fn dial(&self, req: DialRequest) -> impl Future<Output = Result<(), DialRefused>> + Send;
}
