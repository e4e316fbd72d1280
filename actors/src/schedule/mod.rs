//! Scheduling logic for the CampaignActor and the DialerActor: when a
//! contact may be called ([`window`]), what happens to a contact after a
//! call ([`retry`]) and how fast calls are placed ([`bucket`]).
//!
//! Everything here is pure and deterministic: every function is told the
//! time (`now`/`at` arguments) and randomness (`jitter_unit`), and none reads
//! a clock or a random source, so the actors stay testable with fake time.

pub mod bucket;
pub mod retry;
pub mod window;
