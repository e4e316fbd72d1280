//! The actor itself: its arguments, configuration and the ractor glue.
//! The decisions live in [`super::state`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::lease::LeaseStatus;
use super::messages::{CampaignControl, CampaignMsg};
use super::ports::{CampaignStore, DialSink};
use super::state::CampaignActorState;
use crate::campaign::CampaignCommand;
use crate::cluster::ClusterPort;
use crate::ids::CampaignId;
use crate::ports::{Clock, PortError};

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
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            tick: DEFAULT_TICK,
            port_timeout: DEFAULT_PORT_TIMEOUT,
            max_store_failures: DEFAULT_MAX_STORE_FAILURES,
            refusal_backoff: DEFAULT_REFUSAL_BACKOFF,
            batches_per_tick: DEFAULT_BATCHES_PER_TICK,
        }
    }
}

/// What a campaign actor is started with. Cheap to clone, so a supervisor
/// keeps it to restart the actor (which then resumes from the store).
pub struct CampaignArgs<S, D> {
    /// The campaign to run.
    pub campaign: CampaignId,
    /// Its contacts and state.
    pub store: Arc<S>,
    /// Where calls go.
    pub dialer: Arc<D>,
    /// Wall-clock time for due dates and calling windows.
    pub clock: Arc<dyn Clock>,
    /// Pacing and failure tolerance.
    pub config: CampaignConfig,
    /// Seed of the retry jitter.
    pub seed: u64,
    /// Where the campaign's lease lives (one node runs the campaign).
    pub cluster: Arc<dyn ClusterPort>,
}

impl<S, D> Clone for CampaignArgs<S, D> {
    fn clone(&self) -> Self {
        CampaignArgs {
            campaign: self.campaign,
            store: Arc::clone(&self.store),
            dialer: Arc::clone(&self.dialer),
            clock: Arc::clone(&self.clock),
            config: self.config,
            seed: self.seed,
            cluster: Arc::clone(&self.cluster),
        }
    }
}

/// Why a campaign actor failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CampaignActorError {
    /// The store kept failing; a restart resumes from it once it is back.
    #[error("campaign store failed {failures} times in a row; last error: {last}")]
    StoreFailing {
        /// Failures in a row.
        failures: u32,
        /// The last one.
        last: PortError,
    },
}

/// The actor running one campaign: see the module docs of
/// [`super`] for what it does.
pub struct CampaignActor<S, D>(PhantomData<fn() -> (S, D)>);

impl<S, D> CampaignActor<S, D> {
    /// The actor (it holds nothing; the state is built from the args).
    pub fn new() -> Self {
        CampaignActor(PhantomData)
    }
}

impl<S, D> Default for CampaignActor<S, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: CampaignStore, D: DialSink> Actor for CampaignActor<S, D> {
    type Msg = CampaignMsg;
    type State = CampaignActorState<S, D>;
    type Arguments = CampaignArgs<S, D>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // The store is not touched here: a failing store must not make the
        // spawn fail, it is retried tick by tick like every other call.
        Ok(CampaignActorState::new(args))
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // First tick at once: load and start dialling.
        myself.send_message(CampaignMsg::Tick)?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.is_finished() {
            if let CampaignMsg::Control(CampaignControl::Snapshot(reply)) = message {
                let _ = reply.send(state.snapshot());
            }
            return Ok(());
        }
        let is_tick = matches!(message, CampaignMsg::Tick);
        match message {
            CampaignMsg::Tick => match state.lease.hold().await {
                LeaseStatus::Held => state.tick().await,
                LeaseStatus::Fresh => {
                    state.fresh_incarnation();
                    state.tick().await;
                }
                LeaseStatus::Idle => {}
            },
            CampaignMsg::Control(control) => match control {
                CampaignControl::Pause => state.command(CampaignCommand::Pause),
                CampaignControl::Resume => state.command(CampaignCommand::Resume),
                CampaignControl::Stop => state.command(CampaignCommand::Stop),
                CampaignControl::Reload => state.request_reload(),
                CampaignControl::Snapshot(reply) => {
                    let _ = reply.send(state.snapshot());
                    return Ok(());
                }
            },
            CampaignMsg::Event(event) => state.event(event),
        }
        state.settle().await;
        if let Some(err) = state.store_failure() {
            state.cancel_tick();
            return Err(Box::new(err));
        }
        if let Some(reason) = state.finished_reason() {
            state.cancel_tick();
            myself.stop(Some(reason));
        } else if is_tick {
            state.schedule_tick(&myself);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.cancel_tick();
        state.lease.release().await;
        Ok(())
    }
}
