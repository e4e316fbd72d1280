//! The dialer: admission of new calls (caps and pacing), the dial intent
//! written before any call is placed, and the DialerActor that owns the
//! CallActors.

mod actor;
pub mod admission;
mod config;
mod dialing;
mod handle;
mod msg;
mod ports;
mod room;
mod state;

#[cfg(test)]
pub(crate) mod tests;

pub use actor::{DialerActor, DialerArgs};
pub use config::{
    DEFAULT_CALLS_PER_SECOND, DEFAULT_CPS_BURST, DEFAULT_GLOBAL_CAP, DEFAULT_RPC_TIMEOUT,
    DEFAULT_TENANT_CAP, DialerConfig,
};
pub use handle::{DialerHandle, call_name};
pub use msg::{
    CampaignCalls, CampaignSink, DialRefused, DialReport, DialRequest, DialerMsg, DialerSnapshot,
    NotPlacedWhy, shutdown_message,
};
pub use ports::{DialSink, DialStore, Intent, IntentError};
pub use state::DialerState;
