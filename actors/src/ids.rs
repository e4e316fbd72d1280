//! Typed ids, so a campaign id can never be passed where a call id is meant.
//!
//! All ids are UUIDv7: time-ordered, so "order by id" is creation order and
//! keyset pagination needs no second column.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

typed_id!(
    /// A tenant: the unit of isolation; every row it owns carries this id.
    TenantId
);
typed_id!(
    /// An operator API key (not the secret: that is never stored).
    ApiKeyId
);
typed_id!(
    /// A campaign: an agent, a calling policy and a contact list.
    CampaignId
);
typed_id!(
    /// A contact of one campaign.
    ContactId
);
typed_id!(
    /// One dial attempt of one contact, from intent to outcome.
    CallId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = CallId::new();
        let b = CallId::new();
        assert!(a < b, "UUIDv7 ids created later sort later");
        let parsed: CallId = a.to_string().parse().expect("round trip");
        assert_eq!(parsed, a);
        assert!("not-a-uuid".parse::<CallId>().is_err());
    }
}
