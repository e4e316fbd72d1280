//! The actor itself: its arguments, configuration and the ractor glue.
//! The decisions live in [`super::state`].

use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::config::CampaignConfig;
use super::lease::LeaseStatus;
use super::msg::{CampaignControl, CampaignMsg};
use super::ports::{CampaignStore, DialSink};
use super::state::CampaignActorState;
use crate::campaign::CampaignCommand;
use crate::cluster::ClusterPort;
use crate::ids::CampaignId;
use crate::ports::Clock;

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
            CampaignMsg::Tick if state.is_draining() => state.tick_draining().await,
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
                CampaignControl::Drain => state.drain().await,
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
