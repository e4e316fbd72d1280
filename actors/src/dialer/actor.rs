//! The DialerActor: admits calls against the concurrency caps, writes each
//! dial intent before anything is dialled, paces placement with a
//! calls-per-second token bucket, owns the CallActors (linked to it) and
//! reports every call's outcome exactly once — also for a call whose actor
//! crashed, which never takes the dialer, a campaign or another call down.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::admission::Admission;
use super::config::DialerConfig;
use super::msg::shutdown_message;
use super::msg::{DialerMsg, DialerSnapshot, NotPlacedWhy};
use super::ports::DialStore;
use super::room::{Room, admit};
use super::state::DialerState;
use crate::call::{CallMsg, CallPorts, Ports};
use crate::cluster::ClusterPort;
use crate::ports::Clock;
use crate::schedule::bucket::TokenBucket;

/// The actor.
pub struct DialerActor<P, D>(std::marker::PhantomData<fn() -> (P, D)>);

impl<P, D> DialerActor<P, D> {
    /// The actor value to spawn.
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<P, D> Default for DialerActor<P, D> {
    fn default() -> Self {
        Self::new()
    }
}

/// What the dialer starts from.
pub struct DialerArgs<P: CallPorts, D> {
    /// Limits.
    pub config: DialerConfig,
    /// The ports every call gets.
    pub ports: Ports<P>,
    /// Where intents are written.
    pub store: Arc<D>,
    /// What is shared with the other nodes: CPS tokens and call slots.
    pub cluster: Arc<dyn ClusterPort>,
}

impl<P: CallPorts, D: DialStore> Actor for DialerActor<P, D> {
    type Msg = DialerMsg;
    type State = DialerState<P, D>;
    type Arguments = DialerArgs<P, D>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let now = args.ports.clock.now();
        let every = args
            .cluster
            .slot_renew_every()
            .max(Duration::from_millis(10));
        let renew_timer = Some(myself.send_interval(every, || DialerMsg::RenewSlots));
        Ok(DialerState {
            cluster: args.cluster,
            renew_timer,
            admission: Admission::new(args.config.global_cap, args.config.tenant_cap),
            bucket: TokenBucket::new(args.config.calls_per_second, args.config.cps_burst, now),
            config: args.config,
            ports: args.ports,
            store: args.store,
            campaigns: HashMap::new(),
            queue: VecDeque::new(),
            live: HashMap::new(),
            by_call: HashMap::new(),
            pace_pending: false,
            dialled: 0,
            crashed: 0,
            not_placed: 0,
            draining: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DialerMsg::Configure { campaign, calls } => {
                state
                    .admission
                    .set_campaign_cap(campaign, calls.max_concurrent);
                state.campaigns.insert(campaign, *calls);
            }
            DialerMsg::Forget(campaign) => {
                state.admission.set_campaign_cap(campaign, 0);
                state.withdraw_where(NotPlacedWhy::CampaignGone, |q| {
                    q.request.campaign == campaign
                });
            }
            DialerMsg::Withdraw(campaign) => {
                state.withdraw_where(NotPlacedWhy::Withdrawn, |q| q.request.campaign == campaign);
            }
            DialerMsg::Drain => {
                if !state.draining {
                    tracing::info!(
                        queued = state.queue.len(),
                        live = state.live_calls(),
                        "dialer draining"
                    );
                }
                state.draining = true;
                state.withdraw_where(NotPlacedWhy::Draining, |_| true);
            }
            DialerMsg::ShutdownCalls => {
                for call in state.live.values().filter(|c| !c.reported) {
                    let _ = call.actor.cast(shutdown_message());
                }
            }
            DialerMsg::Dial { request, reply } => {
                let result = admit(state, request).await;
                let accepted = result.is_ok();
                let _ = reply.send(result);
                if accepted {
                    state.pace(&myself).await;
                }
            }
            DialerMsg::CallEnded(report) => state.call_ended(report),
            DialerMsg::RenewSlots => state.renew_slots(),
            DialerMsg::Pace => {
                state.pace_pending = false;
                state.pace(&myself).await;
            }
            DialerMsg::Snapshot(reply) => {
                let calls: Vec<ActorRef<CallMsg>> =
                    state.live.values().map(|c| c.actor.clone()).collect();
                let mut snapshot = DialerSnapshot {
                    live: state.live_calls(),
                    queued: state.queue.len(),
                    dialled: state.dialled,
                    crashed: state.crashed,
                    not_placed: state.not_placed,
                    draining: state.draining,
                    calls: Vec::new(),
                };
                // Ask the calls off the dialer's own time.
                tokio::spawn(async move {
                    for call in calls {
                        if let Ok(CallResult::Success(s)) = call
                            .call(CallMsg::Snapshot, Some(Duration::from_millis(200)))
                            .await
                        {
                            snapshot.calls.push(s);
                        }
                    }
                    let _ = reply.send(snapshot);
                });
            }
        }
        state.gauges();
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.renew_timer.take() {
            timer.abort();
        }
        // Give back every room at once; what a crash leaves lapses.
        let queued: Vec<Room> = state.queue.drain(..).map(|q| q.room).collect();
        for room in queued {
            state.free(room);
        }
        let live: Vec<Room> = state
            .live
            .values_mut()
            .filter_map(|c| c.room.take())
            .collect();
        for room in live {
            state.free(room);
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Never ractor's default (which would stop the dialer with any
        // call): a crashed call is finalised here and nothing else stops.
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                state.call_crashed(cell.get_id(), err.to_string());
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                let id = cell.get_id();
                if let Some(call) = state.live.get_mut(&id) {
                    call.stopped = true;
                    if call.reported {
                        state.remove(id);
                    }
                    // Otherwise its report is still in the mailbox.
                }
            }
            _ => {}
        }
        Ok(())
    }
}
