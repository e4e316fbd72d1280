//! talky: actor-based telephony runtime for AI outbound calling.
//!
//! The code map lives in ARCHITECTURE.md; this crate holds the application
//! around the actor tree of `talky-actors`: configuration, the PostgreSQL
//! and Redis stores, the warp HTTP layer and the start-up wiring.

pub mod analysis;
pub mod app;
pub mod audio;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod http;
pub mod import;
pub mod live;
pub mod metrics;
pub mod net;
pub mod phone;
pub mod providers;
pub mod reconcile;
pub mod recording;
pub mod redis;
pub mod runtime;
pub mod store;
pub mod webhooks;
