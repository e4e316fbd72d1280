//! How a campaign actor paces itself and tolerates failures.

use std::time::Duration;

/// Default time between ticks (looking for due contacts).
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);
/// Default limit on each store and dialer call.
pub const DEFAULT_PORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of store failures in a row that make the actor fail.
pub const DEFAULT_MAX_STORE_FAILURES: u32 = 5;
/// Default wait before a contact the dialer did not take is due again.
pub const DEFAULT_REFUSAL_BACKOFF: Duration = Duration::from_secs(5);
/// Default most batches of due contacts read per tick.
pub const DEFAULT_BATCHES_PER_TICK: u32 = 4;
/// Default age of a live call after which the store is re-read for it,
/// and least time between two such reads.
pub const DEFAULT_RECHECK_EVERY: Duration = Duration::from_secs(10);
/// Shortest tick, so a zero interval cannot spin.
pub const MIN_TICK: Duration = Duration::from_millis(1);

/// How a campaign actor paces itself and tolerates failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CampaignConfig {
    /// Time between ticks (at least [`MIN_TICK`]).
    pub tick: Duration,
    /// Limit on each store and dialer call; a call that takes longer
    /// counts as failed.
    pub port_timeout: Duration,
    /// Store failures in a row (one counted per tick at most: after a
    /// failure the store is left alone until the next tick) after which
    /// the actor fails, for its supervisor to restart it. At least 1.
    pub max_store_failures: u32,
    /// How long a contact the dialer refused (or did not answer for) waits
    /// before it is due again.
    pub refusal_backoff: Duration,
    /// Most batches of due contacts read in one tick (each at most twice
    /// the free call slots), so contacts outside their window do not hold
    /// up those inside it for long. At least 1.
    pub batches_per_tick: u32,
    /// How often the live calls are checked against the store
    /// (`CampaignStore::claimed`), once one has been live this long: a
    /// call whose outcome event was lost, or whose row another process
    /// finished, is settled from the store within about this time.
    pub recheck_every: Duration,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            tick: DEFAULT_TICK,
            port_timeout: DEFAULT_PORT_TIMEOUT,
            max_store_failures: DEFAULT_MAX_STORE_FAILURES,
            refusal_backoff: DEFAULT_REFUSAL_BACKOFF,
            batches_per_tick: DEFAULT_BATCHES_PER_TICK,
            recheck_every: DEFAULT_RECHECK_EVERY,
        }
    }
}
