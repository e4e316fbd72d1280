//! talky: actor-based telephony runtime for AI outbound calling.
//!
//! The code map lives in ARCHITECTURE.md; this crate holds the application
//! around the actor tree of `talky-actors`: configuration, the PostgreSQL
//! and Redis stores, the warp HTTP layer and the start-up wiring.

pub mod import;
pub mod phone;
