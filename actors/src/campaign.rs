//! Campaign lifecycle: the states a campaign moves through and the operator
//! commands that move it. The REST layer checks every command here (an
//! illegal one is a 409), and the CampaignActor drives the transitions that
//! only it can observe (drained, nothing left to dial).

use serde::{Deserialize, Serialize};

/// Where a campaign is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Being set up: editable, nothing is dialled.
    Draft,
    /// Dialling due contacts.
    Running,
    /// No new dials; calls already live run to their end.
    Paused,
    /// Stop requested: no new dials, waiting for live calls to drain.
    Stopping,
    /// Every contact reached a final status.
    Completed,
    /// Stopped by the operator (after draining).
    Cancelled,
}

/// What an operator can ask of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignCommand {
    /// Begin dialling a draft campaign.
    Start,
    /// Stop new dials for a while.
    Pause,
    /// Dial again after a pause.
    Resume,
    /// End the campaign for good once live calls have drained.
    Stop,
}

/// A command that the current state does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {command} a campaign that is {state}")]
pub struct IllegalTransition {
    /// The state the campaign was in.
    pub state: CampaignState,
    /// The command that was refused.
    pub command: CampaignCommand,
}

impl CampaignState {
    /// Every state, in lifecycle order.
    pub const ALL: [CampaignState; 6] = [
        CampaignState::Draft,
        CampaignState::Running,
        CampaignState::Paused,
        CampaignState::Stopping,
        CampaignState::Completed,
        CampaignState::Cancelled,
    ];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Stopping => "stopping",
            CampaignState::Completed => "completed",
            CampaignState::Cancelled => "cancelled",
        }
    }

    /// No command leads anywhere from a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(self, CampaignState::Completed | CampaignState::Cancelled)
    }

    /// Whether the campaign's settings may still be changed.
    pub fn is_editable(self) -> bool {
        matches!(
            self,
            CampaignState::Draft | CampaignState::Running | CampaignState::Paused
        )
    }

    /// Whether the campaign may be deleted (never while calls may be live).
    pub fn is_deletable(self) -> bool {
        matches!(
            self,
            CampaignState::Draft | CampaignState::Completed | CampaignState::Cancelled
        )
    }

    /// The state an operator command leads to. `has_live_calls` decides
    /// whether a stop must drain first (`Stopping`) or is done at once.
    pub fn apply(
        self,
        command: CampaignCommand,
        has_live_calls: bool,
    ) -> Result<CampaignState, IllegalTransition> {
        use CampaignCommand as C;
        use CampaignState as S;
        let next = match (self, command) {
            (S::Draft, C::Start) => S::Running,
            (S::Running, C::Pause) => S::Paused,
            (S::Paused, C::Resume) => S::Running,
            (S::Draft, C::Stop) => S::Cancelled,
            (S::Running | S::Paused, C::Stop) if has_live_calls => S::Stopping,
            (S::Running | S::Paused, C::Stop) => S::Cancelled,
            (state, command) => return Err(IllegalTransition { state, command }),
        };
        Ok(next)
    }

    /// The states a campaign may move to `self` from: the edges of
    /// [`Self::apply`] plus the two only the CampaignActor observes
    /// (`running` to `completed`, a drained `stopping` to `cancelled`).
    /// A stored state is replaced only from one of these (or by itself),
    /// so a write decided on an old reading never lands over a newer
    /// decision: `completed` never over `paused`, `stopping` or
    /// `cancelled`, nothing over a terminal state.
    pub fn valid_from(self) -> &'static [CampaignState] {
        use CampaignState as S;
        match self {
            S::Draft => &[],
            S::Running => &[S::Draft, S::Paused],
            S::Paused => &[S::Running],
            S::Stopping => &[S::Running, S::Paused],
            S::Completed => &[S::Running],
            S::Cancelled => &[S::Draft, S::Running, S::Paused, S::Stopping],
        }
    }

    /// Whether a campaign stored in `stored` may be stored as `self` now
    /// (a repeat of the same state is allowed: writes are idempotent).
    pub fn may_replace(self, stored: CampaignState) -> bool {
        self == stored || self.valid_from().contains(&stored)
    }
}

impl std::fmt::Display for CampaignState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CampaignState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CampaignState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown campaign state {s:?}"))
    }
}

impl CampaignCommand {
    /// The command's name as it appears in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignCommand::Start => "start",
            CampaignCommand::Pause => "pause",
            CampaignCommand::Resume => "resume",
            CampaignCommand::Stop => "stop",
        }
    }
}

impl std::str::FromStr for CampaignCommand {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            CampaignCommand::Start,
            CampaignCommand::Pause,
            CampaignCommand::Resume,
            CampaignCommand::Stop,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| format!("unknown campaign command {s:?}"))
    }
}

impl std::fmt::Display for CampaignCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::CampaignCommand as C;
    use super::CampaignState as S;

    #[test]
    fn lifecycle_happy_path() {
        let s = S::Draft.apply(C::Start, false).expect("start");
        assert_eq!(s, S::Running);
        let s = s.apply(C::Pause, true).expect("pause");
        assert_eq!(s, S::Paused);
        let s = s.apply(C::Resume, true).expect("resume");
        assert_eq!(s, S::Running);
        assert_eq!(s.apply(C::Stop, true), Ok(S::Stopping));
        assert_eq!(s.apply(C::Stop, false), Ok(S::Cancelled));
        assert_eq!(S::Draft.apply(C::Stop, false), Ok(S::Cancelled));
    }

    #[test]
    fn every_other_transition_is_illegal() {
        let legal = [
            (S::Draft, C::Start),
            (S::Draft, C::Stop),
            (S::Running, C::Pause),
            (S::Running, C::Stop),
            (S::Paused, C::Resume),
            (S::Paused, C::Stop),
        ];
        for state in S::ALL {
            for command in [C::Start, C::Pause, C::Resume, C::Stop] {
                let result = state.apply(command, false);
                assert_eq!(
                    result.is_ok(),
                    legal.contains(&(state, command)),
                    "{state} + {command}"
                );
                if let Err(e) = result {
                    assert_eq!(
                        e.to_string(),
                        format!("cannot {command} a campaign that is {state}")
                    );
                }
            }
        }
        for state in [S::Completed, S::Cancelled] {
            assert!(state.is_terminal());
        }
    }

    #[test]
    fn stored_states_are_replaced_only_along_the_lifecycle() {
        // Every command's edge is allowed...
        for state in S::ALL {
            for command in [C::Start, C::Pause, C::Resume, C::Stop] {
                for live in [false, true] {
                    if let Ok(next) = state.apply(command, live) {
                        assert!(next.may_replace(state), "{state} -> {next}");
                    }
                }
            }
        }
        // ...and the actor's own two, and nothing else.
        assert!(S::Completed.may_replace(S::Running));
        assert!(S::Cancelled.may_replace(S::Stopping));
        for stored in [S::Draft, S::Paused, S::Stopping, S::Cancelled] {
            assert!(!S::Completed.may_replace(stored), "completed over {stored}");
        }
        for terminal in [S::Completed, S::Cancelled] {
            for next in S::ALL {
                assert_eq!(
                    next.may_replace(terminal),
                    next == terminal,
                    "{next} over {terminal}"
                );
            }
        }
        assert!(
            !S::Running.may_replace(S::Stopping),
            "a stop is never undone"
        );
        assert!(!S::Paused.may_replace(S::Stopping));
    }

    #[test]
    fn names_round_trip() {
        for state in S::ALL {
            assert_eq!(state.as_str().parse::<S>(), Ok(state));
        }
        assert!("bogus".parse::<S>().is_err());
    }
}
