//! Reaching the dialer by its registry name.

use std::time::Duration;

use ractor::ActorRef;
use ractor::rpc::CallResult;

use super::msg::{DialRefused, DialRequest, DialerMsg};
use super::ports::DialSink;
use crate::ids::{CallId, CampaignId};

/// The registry name of a call's actor, for routing webhooks and media.
pub fn call_name(call: CallId) -> String {
    format!("call-{call}")
}

/// A [`DialSink`] over the dialer's mailbox, found by its registry name
/// at every call (so it survives a restart of the dialer), with a timeout.
#[derive(Clone, Debug)]
pub struct DialerHandle {
    /// The dialer's registry name.
    pub name: String,
    /// RPC timeout.
    pub timeout: Duration,
}

impl DialSink for DialerHandle {
    async fn dial(&self, request: DialRequest) -> Result<(), DialRefused> {
        let Some(cell) = ractor::registry::where_is(self.name.clone()) else {
            return Err(DialRefused::Unavailable("the dialer is not running".into()));
        };
        let actor: ActorRef<DialerMsg> = cell.into();
        match actor
            .call(
                |reply| DialerMsg::Dial { request, reply },
                Some(self.timeout),
            )
            .await
        {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(DialRefused::Unavailable("the dialer timed out".into())),
            Ok(CallResult::SenderError) | Err(_) => {
                Err(DialRefused::Unavailable("the dialer is not running".into()))
            }
        }
    }

    async fn withdraw(&self, campaign: CampaignId) -> Result<(), DialRefused> {
        let Some(cell) = ractor::registry::where_is(self.name.clone()) else {
            return Err(DialRefused::Unavailable("the dialer is not running".into()));
        };
        let actor: ActorRef<DialerMsg> = cell.into();
        actor
            .cast(DialerMsg::Withdraw(campaign))
            .map_err(|_| DialRefused::Unavailable("the dialer is not running".into()))
    }
}
