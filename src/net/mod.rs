//! Network plumbing shared by the HTTP layer and the provider clients (no
//! routes, no provider wire formats).
//!
//! - [`ws`]: WebSocket buffer sizes for 20 ms media frames, and a warp
//!   upgrade filter that uses them.

pub mod ws;
