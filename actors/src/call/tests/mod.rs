//! CallActor tests: fake ports, tokio's paused clock, a scripted callee.

pub(crate) mod fakes;
mod scenarios;
