//! Which telephony provider carries a call: the providers, a campaign's
//! choice among them ([`Telephony`]), and leg ids that name the provider
//! that placed them.
//!
//! A call keeps its leg's [`ProviderCallId`] and hands it back for the
//! hang-up and the status query, so the id itself says which provider to
//! ask: a Vonage leg's id is its bare `uuid` (as it always was, and as
//! every row written before Twilio holds it), a Twilio leg's is
//! `twilio:` + its `CallSid` ([`leg_id`], [`split_leg`]). Only memory
//! holds the qualified form: the call row keeps the provider in `provider`
//! and the bare id in `provider_call_id` (what callbacks carry and what
//! the `(provider, provider_call_id)` index is unique on).

use serde::{Deserialize, Serialize};
use talky_actors::ports::ProviderCallId;

/// A telephony provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelephonyProvider {
    /// Vonage Voice API (the first, and the call row's default).
    Vonage,
    /// Twilio Programmable Voice.
    Twilio,
}

impl TelephonyProvider {
    /// Every provider, as `calls.provider` allows them.
    pub const ALL: [TelephonyProvider; 2] = [TelephonyProvider::Vonage, TelephonyProvider::Twilio];

    /// The name stored in `calls.provider` and `call_events.provider`.
    pub fn as_str(self) -> &'static str {
        match self {
            TelephonyProvider::Vonage => "vonage",
            TelephonyProvider::Twilio => "twilio",
        }
    }

    /// From a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for TelephonyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A campaign's telephony: which provider places its calls.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Telephony {
    /// Vonage only.
    #[default]
    Vonage,
    /// Twilio only.
    Twilio,
    /// Vonage, and Twilio for an attempt Vonage provably did not place
    /// (its circuit is open, or its create-call failed before any leg
    /// existed); never both for one attempt.
    VonageThenTwilio,
}

impl Telephony {
    /// Every choice, as the `campaigns.telephony` CHECK allows them.
    pub const ALL: [Telephony; 3] = [
        Telephony::Vonage,
        Telephony::Twilio,
        Telephony::VonageThenTwilio,
    ];

    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Telephony::Vonage => "vonage",
            Telephony::Twilio => "twilio",
            Telephony::VonageThenTwilio => "vonage_then_twilio",
        }
    }

    /// The providers it places through, in order.
    pub fn providers(self) -> &'static [TelephonyProvider] {
        match self {
            Telephony::Vonage => &[TelephonyProvider::Vonage],
            Telephony::Twilio => &[TelephonyProvider::Twilio],
            Telephony::VonageThenTwilio => &[TelephonyProvider::Vonage, TelephonyProvider::Twilio],
        }
    }
}

impl std::fmt::Display for Telephony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Telephony {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s.trim())
            .ok_or_else(|| format!("{s:?} is not one of vonage, twilio, vonage_then_twilio"))
    }
}

/// What a qualified Twilio leg id starts with.
const TWILIO_PREFIX: &str = "twilio:";

/// The in-memory id of a leg `provider` placed as `id` (module docs).
pub fn leg_id(provider: TelephonyProvider, id: &str) -> ProviderCallId {
    match provider {
        TelephonyProvider::Vonage => ProviderCallId(id.to_owned()),
        TelephonyProvider::Twilio => ProviderCallId(format!("{TWILIO_PREFIX}{id}")),
    }
}

/// The provider of a leg id and the provider's own id of it.
pub fn split_leg(id: &ProviderCallId) -> (TelephonyProvider, &str) {
    match id.0.strip_prefix(TWILIO_PREFIX) {
        Some(sid) => (TelephonyProvider::Twilio, sid),
        None => (TelephonyProvider::Vonage, &id.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Telephony::ALL {
            assert_eq!(t.as_str().parse::<Telephony>(), Ok(t));
            assert_eq!(
                serde_json::to_value(t).expect("json"),
                serde_json::json!(t.as_str())
            );
        }
        assert!("both".parse::<Telephony>().is_err());
        assert!("".parse::<Telephony>().is_err());
        assert_eq!(Telephony::default(), Telephony::Vonage);
        for p in TelephonyProvider::ALL {
            assert_eq!(TelephonyProvider::parse(p.as_str()), Some(p));
        }
        assert_eq!(TelephonyProvider::parse("plivo"), None);
        assert_eq!(
            Telephony::VonageThenTwilio.providers(),
            [TelephonyProvider::Vonage, TelephonyProvider::Twilio]
        );
    }

    #[test]
    fn leg_ids_name_their_provider() {
        let v = leg_id(
            TelephonyProvider::Vonage,
            "63f61863-4a51-4f6b-86e1-46edebcf9356",
        );
        assert_eq!(
            v.0, "63f61863-4a51-4f6b-86e1-46edebcf9356",
            "bare, as stored"
        );
        assert_eq!(
            split_leg(&v),
            (
                TelephonyProvider::Vonage,
                "63f61863-4a51-4f6b-86e1-46edebcf9356"
            )
        );
        let t = leg_id(TelephonyProvider::Twilio, "CA0123");
        assert_eq!(t.0, "twilio:CA0123");
        assert_eq!(split_leg(&t), (TelephonyProvider::Twilio, "CA0123"));
        // Ids of old (and of fakes) are Vonage's.
        assert_eq!(
            split_leg(&ProviderCallId("prov-1".into())),
            (TelephonyProvider::Vonage, "prov-1")
        );
    }
}
