//! The dialer's ports: where dial intents are written, and the sink a
//! campaign sends its calls to.

use std::future::Future;

use super::msg::{DialRefused, DialRequest};
use crate::ids::{CallId, CampaignId};
use crate::ports::{CallKey, PortError, PortResult, ProviderCallId};

/// Where the campaign sends its calls (the DialerActor).
pub trait DialSink: Send + Sync + 'static {
    /// Asks for a call. `Ok` means accepted: the dialer reports its outcome
    /// later, exactly once.
    fn dial(&self, req: DialRequest) -> impl Future<Output = Result<(), DialRefused>> + Send;

    /// Drops every accepted dial of `campaign` not placed yet (paused,
    /// stopped, draining): each one's intent is cancelled and the campaign
    /// is told [`crate::campaign_actor::CampaignEvent::NotPlaced`]. Calls
    /// already placed go on.
    fn withdraw(
        &self,
        _campaign: CampaignId,
    ) -> impl Future<Output = Result<(), DialRefused>> + Send {
        async { Ok(()) }
    }
}

/// A written dial intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// The call row's id.
    pub call: CallId,
    /// Single-use secret of the call's media socket URL.
    pub media_token: String,
}

/// Why no intent was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    /// This (campaign, contact, attempt) has an intent already.
    #[error("an intent for this attempt exists")]
    Duplicate,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Where dial intents are written (PostgreSQL: the unique call row).
pub trait DialStore: Send + Sync + 'static {
    /// Writes the intent; a second one for the same attempt is `Duplicate`.
    fn create_intent(
        &self,
        req: &DialRequest,
    ) -> impl Future<Output = Result<Intent, IntentError>> + Send;

    /// The provider's id of a call, once the provider accepted it (the
    /// call store wrote it). Read when a call actor crashed, so the
    /// dialer can hang up a leg nobody drives any more. A store that does
    /// not keep it answers `None`.
    fn provider_call(
        &self,
        _key: CallKey,
    ) -> impl Future<Output = PortResult<Option<ProviderCallId>>> + Send {
        async { Ok(None) }
    }

    /// Cancels the intent of an attempt that was never placed (dropped
    /// from the queue), so the attempt may be dialled again later and the
    /// campaign's take-over sees it as not placed. A store without
    /// cancellation answers `Ok`.
    fn cancel_intent(&self, _key: CallKey) -> impl Future<Output = PortResult<()>> + Send {
        async { Ok(()) }
    }
}
