//! talky-actors: the actor tree, its messages, the port traits it talks
//! through, turn-taking and pacing. No I/O crates live here (no warp, no
//! diesel, no redis, no HTTP client): the application wires real adapters
//! into the ports, tests wire fakes.

pub mod call;
pub mod campaign;
pub mod campaign_actor;
pub mod cluster;
pub mod dialer;
pub mod ids;
pub mod mask;
pub mod media;
pub mod metrics;
pub mod ports;
pub mod root;
pub mod schedule;
pub mod supervision;
pub mod testing;
pub mod tree;
