//! The dialer's limits.

use std::time::Duration;

/// Default: calls live in the process at once.
pub const DEFAULT_GLOBAL_CAP: u32 = 1000;
/// Default: calls live per tenant at once.
pub const DEFAULT_TENANT_CAP: u32 = 200;
/// Default: calls placed per second on the telephony account.
pub const DEFAULT_CALLS_PER_SECOND: f64 = 10.0;
/// Default: calls that may be placed at once after a quiet spell.
pub const DEFAULT_CPS_BURST: u32 = 10;
/// Default: timeout of RPCs to the dialer and of its store calls.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// The dialer's limits.
#[derive(Clone, Copy, Debug)]
pub struct DialerConfig {
    /// Calls live in the process at once.
    pub global_cap: u32,
    /// Calls live per tenant at once.
    pub tenant_cap: u32,
    /// Calls placed per second (the telephony account's limit).
    pub calls_per_second: f64,
    /// Burst of the CPS bucket.
    pub cps_burst: u32,
    /// Timeout of RPCs and store calls.
    pub rpc_timeout: Duration,
}

impl Default for DialerConfig {
    fn default() -> Self {
        Self {
            global_cap: DEFAULT_GLOBAL_CAP,
            tenant_cap: DEFAULT_TENANT_CAP,
            calls_per_second: DEFAULT_CALLS_PER_SECOND,
            cps_burst: DEFAULT_CPS_BURST,
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
        }
    }
}
