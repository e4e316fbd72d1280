//! The dialer's caps and pace (`[dialer]`).

use serde::{Deserialize, Serialize};

use crate::providers::telephony::Telephony;

/// The dialer's limits: how many calls may be live at once and how fast
/// they are placed. Defaults are the actor crate's; a load test raises them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialerSettings {
    /// Calls live in the process at once (`TALKY_DIALER__GLOBAL_CAP`).
    pub global_cap: u32,
    /// Calls live per tenant at once (`TALKY_DIALER__TENANT_CAP`).
    pub tenant_cap: u32,
    /// Calls placed per second, the telephony account's limit
    /// (`TALKY_DIALER__CALLS_PER_SECOND`).
    pub calls_per_second: f64,
    /// Burst of the calls-per-second bucket (`TALKY_DIALER__CPS_BURST`).
    pub cps_burst: u32,
    /// How often a campaign looks for due contacts, ms
    /// (`TALKY_DIALER__CAMPAIGN_TICK_MS`).
    pub campaign_tick_ms: u64,
    /// The telephony of a campaign created without one
    /// (`TALKY_DIALER__DEFAULT_TELEPHONY`): `vonage`, `twilio` or
    /// `vonage_then_twilio`. With the dialer on, its providers must be
    /// configured.
    pub default_telephony: Telephony,
}

impl Default for DialerSettings {
    fn default() -> Self {
        let d = talky_actors::dialer::DialerConfig::default();
        Self {
            global_cap: d.global_cap,
            tenant_cap: d.tenant_cap,
            calls_per_second: d.calls_per_second,
            cps_burst: d.cps_burst,
            campaign_tick_ms: talky_actors::campaign_actor::DEFAULT_TICK.as_millis() as u64,
            default_telephony: Telephony::default(),
        }
    }
}

impl DialerSettings {
    /// The actor crate's dialer configuration.
    pub fn dialer_config(&self) -> talky_actors::dialer::DialerConfig {
        talky_actors::dialer::DialerConfig {
            global_cap: self.global_cap.max(1),
            tenant_cap: self.tenant_cap.max(1),
            calls_per_second: self.calls_per_second.max(0.1),
            cps_burst: self.cps_burst.max(1),
            ..talky_actors::dialer::DialerConfig::default()
        }
    }

    /// The campaign actors' configuration.
    pub fn campaign_config(&self) -> talky_actors::campaign_actor::CampaignConfig {
        talky_actors::campaign_actor::CampaignConfig {
            tick: std::time::Duration::from_millis(self.campaign_tick_ms.max(1)),
            ..talky_actors::campaign_actor::CampaignConfig::default()
        }
    }
}
