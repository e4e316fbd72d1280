//! Customer webhooks (Standard Webhooks): a tenant's endpoints receive
//! signed events about its calls, contacts and campaigns.
//!
//! `outbox` holds the model functions (events written in the transaction
//! of the state change they report, deliveries, attempts), `events` the
//! event types and their data, `sign` the signature, `target` which URLs
//! may be sent to, `deliver` the worker that sends them.

pub mod deliver;
pub mod events;
pub mod outbox;
pub mod sign;
pub mod target;

pub use outbox::emit;
