//! The DialerActor: admits calls against the concurrency caps, writes each
//! dial intent before anything is dialled, paces placement with a
//! calls-per-second token bucket, owns the CallActors (linked to it) and
//! reports every call's outcome exactly once — also for a call whose actor
//! crashed, which never takes the dialer, a campaign or another call down.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::admission::Admission;
use super::room::{Room, admit};
use super::{DialRefused, DialRequest, DialSink};
use crate::call::lifecycle::EndCause;
use crate::call::{
    CallActor, CallArgs, CallConfig, CallMsg, CallPorts, CallReport, CallSnapshot, Ports,
    ReportSink,
};
use crate::cluster::ClusterPort;
use crate::ids::{CallId, CampaignId, TenantId};
use crate::ports::{
    CallKey, CallStore, Clock, PortError, PortResult, ProviderCallId, TelephonyPort,
};
use crate::schedule::bucket::TokenBucket;

/// A written dial intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// The call row's id.
    pub call: CallId,
    /// Single-use secret of the call's media socket URL.
    pub media_token: String,
}

/// Why no intent was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    /// This (campaign, contact, attempt) has an intent already.
    #[error("an intent for this attempt exists")]
    Duplicate,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Where dial intents are written (PostgreSQL: the unique call row).
pub trait DialStore: Send + Sync + 'static {
    /// Writes the intent; a second one for the same attempt is `Duplicate`.
    fn create_intent(
        &self,
        req: &DialRequest,
    ) -> impl Future<Output = Result<Intent, IntentError>> + Send;

    /// The provider's id of a call, once the provider accepted it (the
    /// call store wrote it). Read when a call actor crashed, so the
    /// dialer can hang up a leg nobody drives any more. A store that does
    /// not keep it answers `None`.
    fn provider_call(
        &self,
        _key: CallKey,
    ) -> impl Future<Output = PortResult<Option<ProviderCallId>>> + Send {
        async { Ok(None) }
    }
}

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

/// What the dialer needs to place a campaign's calls.
#[derive(Clone)]
pub struct CampaignCalls {
    /// Owner.
    pub tenant: TenantId,
    /// The campaign's concurrent-call cap.
    pub max_concurrent: u32,
    /// Settings of every call (numbers and token are filled per call).
    pub template: CallConfig,
    /// Told each call's outcome (the CampaignActor).
    pub on_report: ReportSink,
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

/// The dialer as the supervisor view shows it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DialerSnapshot {
    /// Calls live now.
    pub live: u32,
    /// Calls admitted, waiting for a CPS token.
    pub queued: usize,
    /// Calls placed since start.
    pub dialled: u64,
    /// Calls whose actor crashed.
    pub crashed: u64,
    /// Each live call.
    pub calls: Vec<CallSnapshot>,
}

/// Everything the dialer handles.
pub enum DialerMsg {
    /// A campaign starts or changed its settings.
    Configure {
        /// Which.
        campaign: CampaignId,
        /// Its call settings.
        calls: Box<CampaignCalls>,
    },
    /// A campaign stopped (live calls still report).
    Forget(CampaignId),
    /// Place a call.
    Dial {
        /// What.
        request: DialRequest,
        /// Accepted or refused.
        reply: RpcReplyPort<Result<(), DialRefused>>,
    },
    /// A call is over (from its report sink).
    CallEnded(CallReport),
    /// A CPS token may be available.
    Pace,
    /// Extend the cluster slots of the admitted and live calls.
    RenewSlots,
    /// Supervisor view.
    Snapshot(RpcReplyPort<DialerSnapshot>),
}

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

pub(super) struct Queued {
    pub(super) request: DialRequest,
    pub(super) intent: Intent,
    pub(super) room: Room,
}

pub(super) struct LiveCall {
    key: CallKey,
    actor: ActorRef<CallMsg>,
    /// Its room, until given back.
    pub(super) room: Option<Room>,
    /// The call reported; the entry waits for the actor to stop.
    reported: bool,
    /// The actor stopped; the entry waits for the report.
    stopped: bool,
}

/// The dialer's state.
pub struct DialerState<P: CallPorts, D> {
    pub(super) config: DialerConfig,
    ports: Ports<P>,
    pub(super) store: Arc<D>,
    pub(super) cluster: Arc<dyn ClusterPort>,
    pub(super) admission: Admission,
    bucket: TokenBucket,
    pub(super) campaigns: HashMap<CampaignId, CampaignCalls>,
    pub(super) queue: VecDeque<Queued>,
    pub(super) live: HashMap<ActorId, LiveCall>,
    by_call: HashMap<CallId, ActorId>,
    pace_pending: bool,
    /// The periodic [`DialerMsg::RenewSlots`].
    renew_timer: Option<ractor::concurrency::JoinHandle<()>>,
    dialled: u64,
    crashed: u64,
}

impl<P: CallPorts, D: DialStore> DialerState<P, D> {
    fn forward(&self, report: CallReport) {
        if let Some(campaign) = self.campaigns.get(&report.key.campaign) {
            (campaign.on_report)(report);
        }
    }

    async fn pace(&mut self, myself: &ActorRef<DialerMsg>) {
        let now = self.ports.clock.now();
        while !self.queue.is_empty() {
            if !self.bucket.try_take(now) {
                if !self.pace_pending {
                    self.pace_pending = true;
                    let wait = self
                        .bucket
                        .next_available(now)
                        .saturating_duration_since(now);
                    myself.send_after(wait, || DialerMsg::Pace);
                }
                return;
            }
            if let Some(wait) = self.cluster_wait().await {
                self.pace_pending = true;
                myself.send_after(wait, || DialerMsg::Pace);
                return;
            }
            if let Some(queued) = self.queue.pop_front() {
                self.place(myself, queued).await;
            }
        }
    }

    /// Spawns the call (its `pre_start` does no I/O) and tells it to dial.
    async fn place(&mut self, myself: &ActorRef<DialerMsg>, queued: Queued) {
        let Queued {
            request,
            intent,
            room,
        } = queued;
        let key = CallKey {
            tenant: request.tenant,
            campaign: request.campaign,
            contact: request.contact,
            call: intent.call,
            attempt: request.attempt,
        };
        let Some(campaign) = self.campaigns.get(&request.campaign) else {
            self.free(room);
            return;
        };
        let mut config = campaign.template.clone();
        config.to = request.phone.clone();
        config.media_token = intent.media_token;
        let me = myself.clone();
        let report: ReportSink = Arc::new(move |r| {
            let _ = me.cast(DialerMsg::CallEnded(r));
        });
        let args = CallArgs {
            key,
            config,
            ports: self.ports.clone(),
            report,
        };
        match Actor::spawn_linked(
            Some(call_name(key.call)),
            CallActor::<P>::new(),
            args,
            myself.get_cell(),
        )
        .await
        {
            Ok((actor, _)) => {
                let _ = actor.cast(CallMsg::Dial);
                self.dialled += 1;
                metrics::counter!("talky_calls_placed_total").increment(1);
                self.by_call.insert(key.call, actor.get_id());
                self.live.insert(
                    actor.get_id(),
                    LiveCall {
                        key,
                        actor,
                        room: Some(room),
                        reported: false,
                        stopped: false,
                    },
                );
            }
            Err(e) => {
                self.free(room);
                self.forward(CallReport {
                    key,
                    cause: EndCause::Failed(format!("the call could not start: {e}")),
                    callback_at: None,
                    do_not_call: false,
                    turns: 0,
                });
            }
        }
    }

    fn call_ended(&mut self, report: CallReport) {
        let Some(id) = self.by_call.get(&report.key.call).copied() else {
            return;
        };
        if let Some(call) = self.live.get_mut(&id) {
            if call.reported {
                return;
            }
            call.reported = true;
            let room = call.room.take();
            let stopped = call.stopped;
            if let Some(room) = room {
                self.free(room);
            }
            if stopped {
                self.remove(id);
            }
        }
        self.forward(report);
    }

    fn remove(&mut self, id: ActorId) {
        if let Some(call) = self.live.remove(&id) {
            self.by_call.remove(&call.key.call);
            if let Some(room) = call.room {
                self.free(room);
            }
        }
        self.gauges();
    }

    /// Live and queued calls, for the supervisor's dashboards.
    fn gauges(&self) {
        metrics::gauge!("talky_calls_active").set(f64::from(self.admission.live()));
        metrics::gauge!("talky_dial_queue").set(self.queue.len() as f64);
    }

    /// A call's actor died without finishing: record and report a failure
    /// for it, so its contact is retried and its room freed.
    fn call_crashed(&mut self, id: ActorId, why: String) {
        let Some(call) = self.live.get(&id) else {
            return;
        };
        if call.reported {
            self.remove(id);
            return;
        }
        let key = call.key;
        self.crashed += 1;
        metrics::counter!("talky_call_crashes_total").increment(1);
        tracing::error!(call.id = %key.call, campaign.id = %key.campaign, error = %why, "call actor crashed");
        self.remove(id);
        let store = self.ports.store.clone();
        let at = self.ports.clock.utc();
        let timeout = self.config.rpc_timeout;
        let reason = format!("call actor crashed: {why}");
        let stored = reason.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, store.finish(key, "failed", &stored, at)).await;
        });
        // The provider's leg may still be up, with nobody listening:
        // hang it up (a leg already gone counts as success).
        let dials = self.store.clone();
        let telephony = self.ports.telephony.clone();
        tokio::spawn(async move {
            let leg = tokio::time::timeout(timeout, dials.provider_call(key)).await;
            if let Ok(Ok(Some(leg))) = leg {
                match tokio::time::timeout(timeout, telephony.hang_up(leg)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(call.id = %key.call, error = %e, "hang-up of a crashed call failed")
                    }
                    Err(_) => {
                        tracing::warn!(call.id = %key.call, "hang-up of a crashed call timed out")
                    }
                }
            }
        });
        self.forward(CallReport {
            key,
            cause: EndCause::Failed(reason),
            callback_at: None,
            do_not_call: false,
            turns: 0,
        });
    }
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
                let queued = std::mem::take(&mut state.queue);
                for q in queued {
                    if q.request.campaign == campaign {
                        state.free(q.room);
                    } else {
                        state.queue.push_back(q);
                    }
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
                    live: state.admission.live(),
                    queued: state.queue.len(),
                    dialled: state.dialled,
                    crashed: state.crashed,
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

/// The registry name of a call's actor, for routing webhooks and media.
pub fn call_name(call: CallId) -> String {
    format!("call-{call}")
}

/// A [`DialSink`] over the dialer's mailbox, found by its registry name
/// at every call (so it survives a restart of the dialer), with a timeout.
#[derive(Clone, Debug)]
pub struct DialerHandle {
    /// The dialer's registry name.
    pub name: String,
    /// RPC timeout.
    pub timeout: Duration,
}

impl DialSink for DialerHandle {
    async fn dial(&self, request: DialRequest) -> Result<(), DialRefused> {
        let Some(cell) = ractor::registry::where_is(self.name.clone()) else {
            return Err(DialRefused::Unavailable("the dialer is not running".into()));
        };
        let actor: ActorRef<DialerMsg> = cell.into();
        match actor
            .call(
                |reply| DialerMsg::Dial { request, reply },
                Some(self.timeout),
            )
            .await
        {
            Ok(CallResult::Success(result)) => result,
            Ok(CallResult::Timeout) => Err(DialRefused::Unavailable("the dialer timed out".into())),
            Ok(CallResult::SenderError) | Err(_) => {
                Err(DialRefused::Unavailable("the dialer is not running".into()))
            }
        }
    }
}
