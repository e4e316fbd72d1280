//! Tests of the CampaignActor over fake ports on tokio's paused clock.

pub(crate) mod fakes;

mod dialling;
mod drain;
mod elsewhere;
mod failures;
mod lease;
mod lifecycle;
mod recheck;
mod refusals;
mod retry;
mod window;
