//! CallActor tests: fake ports, tokio's paused clock, a scripted callee.

mod fakes;
mod scenarios;
