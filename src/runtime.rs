//! The running dialer: the actor tree started in `talky serve` and driven
//! by the campaign lifecycle routes. Generic over the call ports, so the
//! same wiring runs with the real providers and, in tests, with fakes.
//!
//! - [`Runtime::start`] puts a DialerActor under the RootSupervisor and
//!   resumes every campaign the store says is `running`, `paused` or
//!   `stopping` (after a restart of the server).
//! - [`CampaignRuntime::command`] is what the REST layer calls after a
//!   lifecycle transition: `start` spawns the campaign's actor (after
//!   telling the dialer its call settings), `pause`/`resume`/`stop` go to
//!   the actor.
//! - The same transitions (and settings changes) served by other nodes
//!   arrive as notices over Redis pub/sub ([`crate::redis::notices`]) and
//!   go to this node's actor the same way, so the campaign's lease holder
//!   hears them wherever it runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef};
use talky_actors::call::{CallConfig, CallPorts, MachineAction, Ports};
use talky_actors::campaign::{CampaignCommand, CampaignState};
use talky_actors::campaign_actor::{
    CampaignActor, CampaignArgs, CampaignConfig, CampaignControl, CampaignMsg,
};
use talky_actors::cluster::ClusterPort;
use talky_actors::dialer::{
    CampaignCalls, DialerActor, DialerArgs, DialerConfig, DialerHandle, DialerMsg,
};
use talky_actors::ids::{CampaignId, TenantId};
use talky_actors::ports::{Clock, TokioClock};
use talky_actors::root::{ChildFactory, RootMsg};
use talky_actors::tree::{campaign_name, campaign_report_sink};

use crate::db;
use crate::db::campaigns::{Campaign, REPROMPT_AFTER_SECS, RING_TIMEOUT_SECS};
use crate::reconcile::{Nodes, Reconciler};
use crate::store::{PgCampaignStore, PgDialStore};

/// Timeout of the runtime's own RPCs and store calls.
pub const RUNTIME_TIMEOUT: Duration = Duration::from_secs(5);
/// The start-up reconciliation's bound; what it leaves is retried by the
/// periodic passes.
const STARTUP_RECONCILE: Duration = Duration::from_secs(20);
/// How often a drain looks at what is left.
const DRAIN_POLL: Duration = Duration::from_millis(200);
/// After the drain time: how long the goodbyes and hang-ups may take.
const SHUTDOWN_CALLS_WAIT: Duration = Duration::from_secs(20);
/// How long campaigns get to write their last outcomes and stop.
const CAMPAIGN_FLUSH_WAIT: Duration = Duration::from_secs(15);
/// How long the call records' writers get to empty their queues.
const RECORD_FLUSH_WAIT: Duration = Duration::from_secs(15);
/// Notices heard and not yet acted on, at most (more are dropped: each
/// campaign's lease holder reads the stored state every tick anyway).
const NOTICE_QUEUE: usize = 1024;

/// What the REST layer needs from the running dialer.
pub trait CampaignRuntime: Send + Sync {
    /// A lifecycle command was stored for this campaign; act on it.
    fn command(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        command: CampaignCommand,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;

    /// A live campaign's settings changed: new call settings for the
    /// dialer, a reload for the actor.
    fn changed(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;

    /// The process is stopping: stop dialing at once and give the
    /// campaigns' leases back; let live calls end by themselves for up to
    /// `wait` (or until `skip` turns true: a second signal); end the rest
    /// politely (goodbye, hang-up, outcome `interrupted`); let campaigns
    /// and call records write what they hold. Returns when all is done (or
    /// its bounds passed).
    fn drain(
        &self,
        wait: Duration,
        skip: tokio::sync::watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = DrainReport> + Send + '_>>;
}

/// Who this node is among the others, and how it knows who is alive
/// (see [`crate::reconcile`]).
pub struct Ownership {
    /// This node's id (`redis.node_id`), written on its calls.
    pub node: String,
    /// Who is alive.
    pub nodes: Arc<dyn Nodes>,
    /// Where this node's heartbeat is kept (Redis coordination on).
    pub heartbeat: Option<crate::redis::Keys>,
    /// Where it hears the other nodes' campaign notices (Redis
    /// coordination on).
    pub notices: Option<crate::redis::notices::Subscription>,
    /// Heartbeat lifetime; also how often orphans are looked for.
    pub ttl: Duration,
}

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Calls live when the drain began.
    pub live_at_start: u32,
    /// Calls still live when the drain time was over (ended politely).
    pub interrupted: u32,
    /// Calls still live when the drain gave up waiting.
    pub left: u32,
    /// Campaign actors that had not stopped when the drain gave up.
    pub campaigns_left: usize,
    /// Calls whose record writes were still queued when the drain gave up
    /// waiting for them: lost at exit (warned, and counted in
    /// `talky_call_record_writes_lost_total`).
    pub records_lost: usize,
}

/// The actor tree of one process, over call ports `P`.
pub struct Runtime<P: CallPorts> {
    root: ActorRef<RootMsg>,
    /// The dialer's registry name (`dialer`; unique per test server).
    dialer_name: String,
    pool: db::Pool,
    ports: Ports<P>,
    campaign_config: CampaignConfig,
    /// CPS tokens, call slots and campaign leases shared with other nodes.
    cluster: Arc<dyn ClusterPort>,
    /// This node and the others.
    ownership: Ownership,
    /// Campaigns whose actor was started here.
    campaigns: std::sync::Mutex<std::collections::HashSet<CampaignId>>,
    /// The heartbeat and the periodic reconciliation.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Draining for a stop: no campaign actor is started any more.
    draining: std::sync::atomic::AtomicBool,
}

fn call_template(c: &Campaign) -> CallConfig {
    let mut t = CallConfig::new("", &c.caller_id, &c.system_prompt, &c.greeting);
    t.campaign_name = c.name.clone();
    t.voicemail_message = c.voicemail_message.clone();
    t.machine_action = if c.voicemail_action == "leave_message" {
        MachineAction::LeaveMessage
    } else {
        MachineAction::Hangup
    };
    t.voice = c.voice.clone();
    t.language = c.language.clone();
    t.llm_model = c.llm_model.clone();
    t.max_duration = Duration::from_secs(c.max_call_duration_secs.max(10) as u64);
    let secs = |v: i32, (lo, hi): (i32, i32)| Duration::from_secs(v.clamp(lo, hi) as u64);
    t.ringing_timeout = secs(c.ring_timeout_secs, RING_TIMEOUT_SECS);
    t.no_input_timeout = secs(c.reprompt_after_secs, REPROMPT_AFTER_SECS);
    t.telephony = c.telephony.clone();
    t.transfer = c.transfer();
    t
}

impl<P: CallPorts> Runtime<P> {
    /// Starts this node's heartbeat, reconciles the calls of ended
    /// processes, starts the dialer under `root` and resumes the live
    /// campaigns; then looks for orphans every `ownership.ttl`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        root: ActorRef<RootMsg>,
        dialer_name: String,
        pool: db::Pool,
        ports: Ports<P>,
        dialer: DialerConfig,
        campaign_config: CampaignConfig,
        cluster: Arc<dyn ClusterPort>,
        ownership: Ownership,
    ) -> anyhow::Result<Arc<Self>> {
        let runtime = Arc::new(Self {
            root,
            dialer_name,
            pool,
            ports,
            campaign_config,
            cluster,
            ownership,
            campaigns: Default::default(),
            tasks: Default::default(),
            draining: Default::default(),
        });
        runtime.start_heartbeat().await;
        // Before any campaign resumes: what a dead process left is settled
        // first, so the campaigns take over finished calls, not ghosts.
        let first = tokio::time::timeout(STARTUP_RECONCILE, runtime.reconciler().pass(true)).await;
        match first {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "start-up reconciliation failed; retried periodically")
            }
            Err(_) => {
                tracing::warn!("start-up reconciliation took too long; it goes on periodically")
            }
        }
        let ports = runtime.ports.clone();
        let store = Arc::new(PgDialStore {
            pool: runtime.pool.clone(),
            timeout: RUNTIME_TIMEOUT,
            node: runtime.ownership.node.clone(),
        });
        let name = runtime.dialer_name.clone();
        let cluster = runtime.cluster.clone();
        let factory: ChildFactory = Arc::new(move |supervisor: ActorCell| {
            let args = DialerArgs {
                config: dialer,
                ports: ports.clone(),
                store: store.clone(),
                cluster: cluster.clone(),
            };
            let name = name.clone();
            Box::pin(async move {
                Actor::spawn_linked(
                    Some(name),
                    DialerActor::<P, PgDialStore>::new(),
                    args,
                    supervisor,
                )
                .await
                .map(|(actor, _)| actor.get_cell())
            })
        });
        runtime
            .start_child(runtime.dialer_name.clone(), factory)
            .await?;
        runtime.start_listening();
        runtime.resume_live().await?;
        runtime.start_reconciling();
        Ok(runtime)
    }

    fn reconciler(&self) -> Reconciler<P::Telephony> {
        Reconciler {
            pool: self.pool.clone(),
            telephony: self.ports.telephony.clone(),
            nodes: self.ownership.nodes.clone(),
            me: self.ownership.node.clone(),
            timeout: RUNTIME_TIMEOUT,
        }
    }

    /// Keeps this node's heartbeat while it runs (Redis coordination only).
    async fn start_heartbeat(&self) {
        let Some(keys) = self.ownership.heartbeat.clone() else {
            return;
        };
        let node = self.ownership.node.clone();
        let ttl = self.ownership.ttl;
        if let Err(e) = crate::redis::nodes::beat(&keys, &node, ttl).await {
            tracing::warn!(error = %e, "node heartbeat not written; retried");
        }
        let task = tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(50));
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = crate::redis::nodes::beat(&keys, &node, ttl).await {
                    tracing::warn!(error = %e, "node heartbeat not renewed");
                }
            }
        });
        self.lock_tasks().push(task);
    }

    /// Looks for the orphans of ended processes every `ownership.ttl`.
    /// Also gives every live campaign without an actor here one (started
    /// on another node, or given up on): each node keeps an actor per live
    /// campaign, and the lease decides which one dials, so a campaign
    /// whose node died is taken over by the others.
    fn start_reconciling(self: &Arc<Self>) {
        let reconciler = self.reconciler();
        let every = self.ownership.ttl.max(Duration::from_millis(100));
        let me = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = reconciler.pass(false).await {
                    tracing::warn!(error = %e, "reconciliation pass failed");
                }
                let Some(runtime) = me.upgrade() else {
                    return;
                };
                if runtime.draining.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = runtime.resume_live().await {
                    tracing::warn!(error = %e, "live campaigns not looked up");
                }
            }
        });
        self.lock_tasks().push(task);
    }

    /// Hears the other nodes' campaign notices (Redis coordination on)
    /// and acts on each as on a request served here.
    fn start_listening(self: &Arc<Self>) {
        let Some(sub) = self.ownership.notices.clone() else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(NOTICE_QUEUE);
        let listener = crate::redis::notices::listen(sub, tx);
        let me = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            while let Some(notice) = rx.recv().await {
                let Some(runtime) = me.upgrade() else {
                    return;
                };
                runtime.on_notice(notice).await;
            }
        });
        let mut tasks = self.lock_tasks();
        tasks.push(listener);
        tasks.push(task);
    }

    /// Another node stored a change to a campaign: this node's actor for
    /// it hears of it as if the request had been served here (a notice of
    /// this node's own is skipped: it acted on it already). A campaign
    /// with no actor here gets one when it starts or resumes (each node
    /// keeps one per live campaign; the lease decides which dials); a
    /// pause, stop or settings change of a campaign not run here has
    /// nothing to reach.
    async fn on_notice(&self, notice: crate::redis::notices::Notice) {
        use crate::redis::notices::What;
        if notice.node == self.ownership.node
            || self.draining.load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let (tenant, campaign) = (notice.tenant, notice.campaign);
        let here = ractor::registry::where_is(campaign_name(campaign)).is_some();
        tracing::debug!(campaign.id = %campaign, what = ?notice.what, from = %notice.node, here, "campaign notice");
        let result = match (notice.what, here) {
            (What::Start | What::Resume, false) => self
                .run_campaign(tenant, campaign)
                .await
                .map_err(|e| e.to_string()),
            (What::Start, true) => Ok(()),
            (What::Resume, true) => self.control(campaign, CampaignControl::Resume),
            (What::Pause, true) => self.control_if_here(campaign, CampaignControl::Pause),
            (What::Stop, true) => self.control_if_here(campaign, CampaignControl::Stop),
            (What::Changed, true) => CampaignRuntime::changed(self, tenant, campaign).await,
            (What::Pause | What::Stop | What::Changed, false) => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(campaign.id = %campaign, what = ?notice.what, from = %notice.node, error = %e, "campaign notice not acted on; the store is followed within a tick");
        }
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dialer(&self) -> Option<ActorRef<DialerMsg>> {
        ractor::registry::where_is(self.dialer_name.clone()).map(Into::into)
    }

    /// The dialer's live and queued calls (`None`: it does not answer).
    async fn dialer_counts(&self) -> Option<(u32, usize)> {
        let dialer = self.dialer()?;
        match dialer
            .call(DialerMsg::Snapshot, Some(Duration::from_secs(2)))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(s)) => Some((s.live, s.queued)),
            _ => None,
        }
    }

    /// Stops this node's dialing and lets its calls end (see
    /// [`CampaignRuntime::drain`]).
    async fn drain_here(
        &self,
        wait: Duration,
        mut skip: tokio::sync::watch::Receiver<bool>,
    ) -> DrainReport {
        let mut report = DrainReport::default();
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // 1. No new dial: campaigns stop claiming and give their leases
        //    back (another node may take over at once); the dialer's queue
        //    goes back to the campaigns.
        let campaigns: Vec<CampaignId> = self
            .campaigns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        for campaign in &campaigns {
            let _ = self.control(*campaign, CampaignControl::Drain);
        }
        if let Some(dialer) = self.dialer() {
            let _ = dialer.cast(DialerMsg::Drain);
        }
        report.live_at_start = self.dialer_counts().await.map_or(0, |(live, _)| live);
        tracing::info!(
            live = report.live_at_start,
            wait_s = wait.as_secs(),
            "draining: no new calls; live calls may finish"
        );
        // 2. Live calls go on to their natural end, up to `wait`.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.dialer_counts().await {
                Some((0, 0)) | None => break,
                Some(_) => {}
            }
            if *skip.borrow() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_POLL) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = skip.changed() => {}
            }
        }
        // 3. The rest are ended politely: a short goodbye, then the leg is
        //    hung up; each is recorded `interrupted` (retried).
        if let Some((live, _)) = self.dialer_counts().await
            && live > 0
        {
            report.interrupted = live;
            tracing::info!(live, "drain time over: ending the remaining calls politely");
            if let Some(dialer) = self.dialer() {
                let _ = dialer.cast(DialerMsg::ShutdownCalls);
            }
            let end = tokio::time::Instant::now() + SHUTDOWN_CALLS_WAIT;
            while tokio::time::Instant::now() < end {
                match self.dialer_counts().await {
                    Some((0, _)) | None => break,
                    _ => tokio::time::sleep(DRAIN_POLL).await,
                }
            }
            report.left = self.dialer_counts().await.map_or(0, |(live, _)| live);
        }
        // 4. Campaigns write their last outcomes and stop.
        let end = tokio::time::Instant::now() + CAMPAIGN_FLUSH_WAIT;
        loop {
            let left = campaigns
                .iter()
                .filter(|c| ractor::registry::where_is(campaign_name(**c)).is_some())
                .count();
            report.campaigns_left = left;
            if left == 0 || tokio::time::Instant::now() >= end {
                break;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        // 5. The call records' writers empty their queues; what they still
        //    hold after the bound is lost with the process: said and counted.
        report.records_lost = talky_actors::call::wait_for_record_writers(RECORD_FLUSH_WAIT).await;
        records_lost(report.records_lost);
        for task in self.lock_tasks().drain(..) {
            task.abort();
        }
        if let Some(keys) = &self.ownership.heartbeat
            && let Err(e) = crate::redis::nodes::forget(keys, &self.ownership.node).await
        {
            tracing::warn!(error = %e, "node heartbeat not removed; it lapses");
        }
        report
    }

    async fn start_child(&self, name: String, factory: ChildFactory) -> anyhow::Result<()> {
        ractor::call_t!(
            self.root,
            |reply| RootMsg::Start {
                name,
                factory,
                reply
            },
            5_000
        )
        .map_err(|e| anyhow::anyhow!("the root supervisor did not answer: {e}"))?
        .map_err(|e| anyhow::anyhow!(e))
    }

    /// Every campaign the store has in a live state gets its actor back.
    async fn resume_live(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.get().await?;
        let live = db::campaigns::live(&mut conn).await?;
        drop(conn);
        for campaign in live {
            let (tenant, id) = (TenantId(campaign.tenant_id), CampaignId(campaign.id));
            if ractor::registry::where_is(campaign_name(id)).is_some() {
                continue;
            }
            if let Err(e) = self.run_campaign(tenant, id).await {
                tracing::error!(campaign.id = %id, error = %e, "could not resume campaign");
            } else {
                tracing::info!(campaign.id = %id, state = %campaign.state, "campaign resumed");
            }
        }
        Ok(())
    }

    /// Tells the dialer the campaign's call settings and starts its actor.
    async fn run_campaign(&self, tenant: TenantId, campaign: CampaignId) -> anyhow::Result<()> {
        if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("this node is stopping");
        }
        self.configure_dialer(tenant, campaign).await?;
        self.campaigns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(campaign);
        if ractor::registry::where_is(campaign_name(campaign)).is_some() {
            // Already here (the periodic look-up got there first).
            return Ok(());
        }
        let clock: Arc<dyn Clock> = Arc::new(TokioClock);
        let args = CampaignArgs {
            campaign,
            store: Arc::new(PgCampaignStore {
                pool: self.pool.clone(),
                tenant,
                timeout: RUNTIME_TIMEOUT,
            }),
            dialer: Arc::new(DialerHandle {
                name: self.dialer_name.clone(),
                timeout: RUNTIME_TIMEOUT,
            }),
            clock,
            config: self.campaign_config,
            seed: campaign.0.as_u128() as u64,
            cluster: self.cluster.clone(),
        };
        let factory: ChildFactory = Arc::new(move |supervisor: ActorCell| {
            let args = args.clone();
            Box::pin(async move {
                Actor::spawn_linked(
                    Some(campaign_name(args.campaign)),
                    CampaignActor::<PgCampaignStore, DialerHandle>::new(),
                    args,
                    supervisor,
                )
                .await
                .map(|(actor, _)| actor.get_cell())
            })
        });
        self.start_child(campaign_name(campaign), factory).await
    }

    /// Gives the dialer the campaign's current call settings and cap.
    async fn configure_dialer(&self, tenant: TenantId, campaign: CampaignId) -> anyhow::Result<()> {
        let mut conn = self.pool.get().await?;
        let row = db::campaigns::get(&mut conn, tenant, campaign)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no campaign {campaign}"))?;
        drop(conn);
        let dialer: ActorRef<DialerMsg> = ractor::registry::where_is(self.dialer_name.clone())
            .ok_or_else(|| anyhow::anyhow!("the dialer is not running"))?
            .into();
        dialer.cast(DialerMsg::Configure {
            campaign,
            calls: Box::new(CampaignCalls {
                tenant,
                max_concurrent: row.max_concurrent_calls.max(0) as u32,
                template: call_template(&row),
                on_report: campaign_report_sink(campaign),
            }),
        })?;
        Ok(())
    }

    /// Sends `control` to the campaign's actor if this node runs one.
    fn control_if_here(
        &self,
        campaign: CampaignId,
        control: CampaignControl,
    ) -> Result<(), String> {
        if ractor::registry::where_is(campaign_name(campaign)).is_none() {
            return Ok(());
        }
        self.control(campaign, control)
    }

    fn control(&self, campaign: CampaignId, control: CampaignControl) -> Result<(), String> {
        let actor: ActorRef<CampaignMsg> = ractor::registry::where_is(campaign_name(campaign))
            .ok_or_else(|| format!("campaign {campaign} has no actor here"))?
            .into();
        actor
            .cast(CampaignMsg::Control(control))
            .map_err(|e| e.to_string())
    }
}

impl<P: CallPorts> CampaignRuntime for Runtime<P> {
    fn command(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        command: CampaignCommand,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            match command {
                CampaignCommand::Start => self
                    .run_campaign(tenant, campaign)
                    .await
                    .map_err(|e| e.to_string()),
                // No actor here: none to hold back on this node (the
                // stored state is what an actor started later loads).
                CampaignCommand::Pause => self.control_if_here(campaign, CampaignControl::Pause),
                CampaignCommand::Resume => match self.control(campaign, CampaignControl::Resume) {
                    Ok(()) => Ok(()),
                    // Its actor is gone (given up on, or another node's):
                    // start one, which resumes from the store.
                    Err(_) => self
                        .run_campaign(tenant, campaign)
                        .await
                        .map_err(|e| e.to_string()),
                },
                CampaignCommand::Stop => self.control_if_here(campaign, CampaignControl::Stop),
            }
        })
    }

    fn changed(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.configure_dialer(tenant, campaign)
                .await
                .map_err(|e| e.to_string())?;
            self.control(campaign, CampaignControl::Reload)
        })
    }

    fn drain(
        &self,
        wait: Duration,
        skip: tokio::sync::watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = DrainReport> + Send + '_>> {
        Box::pin(self.drain_here(wait, skip))
    }
}

/// Says (warn) and counts the calls whose record writes were still queued
/// when a stopping process gave up waiting for them.
fn records_lost(writers: usize) {
    if writers == 0 {
        return;
    }
    tracing::warn!(
        calls = writers,
        waited_s = RECORD_FLUSH_WAIT.as_secs(),
        "stopping with call records still queued: their last writes are lost"
    );
    metrics::counter!(crate::metrics::RECORD_WRITES_LOST).increment(writers as u64);
}

/// Whether a stored state has a live actor.
pub fn is_live(state: CampaignState) -> bool {
    matches!(
        state,
        CampaignState::Running | CampaignState::Paused | CampaignState::Stopping
    )
}

/// The real providers: Vonage and/or Twilio (each campaign's `telephony`
/// picks, through [`TelephonyChain`](crate::providers::telephony_chain::TelephonyChain)),
/// Deepgram (fallback Groq Whisper), an OpenAI-compatible LLM (and an
/// optional second one), ElevenLabs (fallback Deepgram Aura), and
/// PostgreSQL for the records.
pub struct RealPorts;

/// The telephony port of `talky serve`.
pub type RealTelephony = crate::providers::telephony_chain::TelephonyChain<
    crate::providers::vonage::VonageClient,
    crate::providers::twilio::TwilioClient,
>;

impl CallPorts for RealPorts {
    type Telephony = RealTelephony;
    type Stt = crate::providers::chain::AnyStt;
    type Llm = crate::providers::openai::OpenAiClient;
    type Tts = crate::providers::chain::AnyTts;
    type Store = crate::store::PgCallStore;
    type Clock = TokioClock;
}

/// Failures before a provider is skipped by every call at once.
const BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker stays open before a probe.
const BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);
/// How long recording the provider of a placement may take (on the dial
/// path, before the create-call).
const LEDGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds the real ports from configuration (start-up only).
pub fn real_ports(
    config: &crate::config::Config,
    pool: db::Pool,
    live: Arc<crate::live::LiveBus>,
) -> anyhow::Result<Ports<RealPorts>> {
    use crate::providers::breaker::CircuitBreaker;
    use crate::providers::chain::{AnyStt, AnyTts};
    use crate::providers::{aura, deepgram_stt, elevenlabs, whisper};
    let p = &config.providers;
    let breaker = |name: &str| {
        Arc::new(CircuitBreaker::new(
            name,
            BREAKER_THRESHOLD,
            BREAKER_OPEN_FOR,
        ))
    };
    let telephony = real_telephony(config, pool.clone(), &breaker)?;
    let mut d = deepgram_stt::DeepgramSttConfig::new(p.deepgram.api_key.clone());
    if let Some(url) = &p.deepgram.base_url {
        d.base_url = url.clone();
    }
    let stt = deepgram_stt::DeepgramStt::new(d, breaker(deepgram_stt::NAME))
        .map_err(|e| anyhow::anyhow!("providers.deepgram: {e}"))?;
    let mut t = elevenlabs::ElevenLabsConfig::new(p.elevenlabs.api_key.clone());
    if let Some(url) = &p.elevenlabs.base_url {
        t.base_url = url.clone();
    }
    let tts = elevenlabs::ElevenLabs::new(t, breaker(elevenlabs::NAME))
        .map_err(|e| anyhow::anyhow!("providers.elevenlabs: {e}"))?;
    let whisper_key = p.whisper.api_key.as_ref().unwrap_or(&p.llm.api_key);
    let mut w = whisper::WhisperConfig::new(whisper_key.clone());
    if let Some(url) = &p.whisper.base_url {
        w.base_url = url.clone();
    }
    if let Some(model) = &p.whisper.model {
        w.model = model.clone();
    }
    let stt_fallback = whisper::WhisperStt::new(w, breaker(whisper::NAME))
        .map_err(|e| anyhow::anyhow!("providers.whisper: {e}"))?;
    let mut a = aura::AuraConfig::new(p.deepgram.api_key.clone());
    if let Some(url) = &p.aura.base_url {
        a.base_url = url.clone();
    }
    if let Some(model) = &p.aura.model {
        a.model = model.clone();
    }
    let tts_fallback = aura::AuraTts::new(a, breaker(aura::NAME))
        .map_err(|e| anyhow::anyhow!("providers.aura: {e}"))?;
    let llms = llm_clients(config, "", &breaker)?
        .into_iter()
        .map(Arc::new)
        .collect();
    Ok(Ports {
        telephony: Arc::new(telephony),
        stt: vec![
            Arc::new(AnyStt::Deepgram(stt)),
            Arc::new(AnyStt::Whisper(stt_fallback)),
        ],
        llm: llms,
        tts: vec![
            Arc::new(AnyTts::ElevenLabs(tts)),
            Arc::new(AnyTts::Aura(tts_fallback)),
        ],
        store: Arc::new(crate::store::PgCallStore {
            pool,
            timeout: RUNTIME_TIMEOUT,
            live,
        }),
        clock: Arc::new(TokioClock),
    })
}

/// The LLM chain of the configuration: `providers.llm` (Groq by
/// default), then `providers.llm_fallback` when set. Each client reports
/// to `breaker("{prefix}llm")` / `breaker("{prefix}llm_fallback")`: the
/// live calls and the post-call analyses keep separate breakers, so a
/// failing analysis never opens a call's.
pub fn llm_clients(
    config: &crate::config::Config,
    prefix: &str,
    breaker: &dyn Fn(&str) -> Arc<crate::providers::breaker::CircuitBreaker>,
) -> anyhow::Result<Vec<crate::providers::openai::OpenAiClient>> {
    use crate::providers::openai;
    let p = &config.providers;
    let mut l = openai::OpenAiConfig::groq(p.llm.api_key.clone());
    if let Some(url) = &p.llm.base_url {
        l = openai::OpenAiConfig::new("llm", url.clone(), p.llm.api_key.clone());
    }
    let llm = openai::OpenAiClient::new(l, breaker(&format!("{prefix}llm")))
        .map_err(|e| anyhow::anyhow!("providers.llm: {e}"))?;
    let mut llms = vec![llm];
    if let Some(url) = &p.llm_fallback.base_url {
        let mut f =
            openai::OpenAiConfig::new("llm_fallback", url.clone(), p.llm_fallback.api_key.clone());
        f.use_max_completion_tokens = url.contains("api.openai.com");
        let fallback = openai::OpenAiClient::new(f, breaker(&format!("{prefix}llm_fallback")))
            .map_err(|e| anyhow::anyhow!("providers.llm_fallback: {e}"))?;
        llms.push(fallback);
    }
    Ok(llms)
}

/// The post-call analysis chain: [`llm_clients`] with their own breakers
/// (`analysis_llm`, ...) and the `response_format` configured for each
/// (`analysis.response_format`, `analysis.fallback_response_format`).
pub fn analysis_chain(
    config: &crate::config::Config,
) -> anyhow::Result<Vec<crate::analysis::worker::Analyst>> {
    use crate::providers::breaker::CircuitBreaker;
    let breaker = |name: &str| {
        Arc::new(CircuitBreaker::new(
            name,
            BREAKER_THRESHOLD,
            BREAKER_OPEN_FOR,
        ))
    };
    let formats = [
        config.analysis.response_format,
        config.analysis.fallback_response_format,
    ];
    Ok(llm_clients(config, "analysis_", &breaker)?
        .into_iter()
        .zip(formats)
        .map(|(client, format)| crate::analysis::worker::Analyst {
            format: format.resolve(client.base_url()),
            client,
        })
        .collect())
}

/// The telephony chain over the configured providers: Vonage when
/// `providers.vonage.application_id` is set, Twilio when
/// `providers.twilio.account_sid` is (its REST base URL from
/// `providers.twilio.api_base_url`, so an emulator can stand in), each
/// campaign's calls placed through its `telephony` (default
/// `dialer.default_telephony`).
pub fn real_telephony(
    config: &crate::config::Config,
    pool: db::Pool,
    breaker: &dyn Fn(&str) -> Arc<crate::providers::breaker::CircuitBreaker>,
) -> anyhow::Result<RealTelephony> {
    use crate::providers::telephony_chain::TelephonyChain;
    use crate::providers::{twilio, vonage};
    let p = &config.providers;
    let public_url = config.public_url()?;
    let callback_key = vonage::CallbackKey::from_config(&config.vonage);
    let vonage = match &p.vonage.application_id {
        Some(application_id) => {
            let mut v = vonage::VonageConfig {
                application_id: application_id.clone(),
                private_key_file: p.vonage.private_key_file.clone(),
                public_url: public_url.clone(),
                answer_mode: p.vonage.answer_mode,
                callback_key: callback_key.clone(),
                ..vonage::VonageConfig::default()
            };
            if let Some(url) = &p.vonage.api_base_url {
                v.api_base_url = url.clone();
            }
            Some(
                vonage::VonageClient::new(v)
                    .map_err(|e| anyhow::anyhow!("providers.vonage: {e}"))?,
            )
        }
        None => None,
    };
    let twilio = if p.twilio.is_configured() {
        let cfg = p.twilio.client_config(public_url, callback_key);
        Some(
            twilio::TwilioClient::new(cfg, breaker("twilio"))
                .map_err(|e| anyhow::anyhow!("providers.twilio: {e}"))?,
        )
    } else {
        None
    };
    if vonage.is_none() && twilio.is_none() {
        anyhow::bail!("no telephony provider: configure [providers.vonage] or [providers.twilio]");
    }
    let ledger = Arc::new(crate::store::PgLegLedger {
        pool,
        timeout: LEDGER_TIMEOUT,
    });
    Ok(TelephonyChain::new(
        vonage,
        twilio,
        breaker("vonage"),
        config.dialer.default_telephony,
        ledger,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counter of lost record writes, as `/metrics` renders it.
    fn rendered(writers: &[usize]) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            crate::metrics::describe();
            for n in writers {
                records_lost(*n);
            }
        });
        handle.render()
    }

    #[test]
    fn records_still_queued_at_exit_are_counted_with_a_help_line() {
        let text = rendered(&[0, 3, 2]);
        let name = crate::metrics::RECORD_WRITES_LOST;
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > name.len() + 10),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l == format!("{name} 5")),
            "3 + 2 calls lost: {text}"
        );
    }

    #[test]
    fn a_drain_that_wrote_everything_counts_nothing() {
        let text = rendered(&[0]);
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with(crate::metrics::RECORD_WRITES_LOST)),
            "{text}"
        );
    }
}
