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

use crate::db::{self, campaigns::Campaign};
use crate::store::{PgCampaignStore, PgDialStore};

/// Timeout of the runtime's own RPCs and store calls.
pub const RUNTIME_TIMEOUT: Duration = Duration::from_secs(5);

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
}

fn call_template(c: &Campaign) -> CallConfig {
    let mut t = CallConfig::new("", &c.caller_id, &c.system_prompt, &c.greeting);
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
    t
}

impl<P: CallPorts> Runtime<P> {
    /// Starts the dialer under `root` and resumes the live campaigns.
    pub async fn start(
        root: ActorRef<RootMsg>,
        dialer_name: String,
        pool: db::Pool,
        ports: Ports<P>,
        dialer: DialerConfig,
        campaign_config: CampaignConfig,
        cluster: Arc<dyn ClusterPort>,
    ) -> anyhow::Result<Arc<Self>> {
        let runtime = Arc::new(Self {
            root,
            dialer_name,
            pool,
            ports,
            campaign_config,
            cluster,
        });
        let ports = runtime.ports.clone();
        let store = Arc::new(PgDialStore {
            pool: runtime.pool.clone(),
            timeout: RUNTIME_TIMEOUT,
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
        runtime.resume_live().await?;
        Ok(runtime)
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
        self.configure_dialer(tenant, campaign).await?;
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
                CampaignCommand::Pause => self.control(campaign, CampaignControl::Pause),
                CampaignCommand::Resume => match self.control(campaign, CampaignControl::Resume) {
                    Ok(()) => Ok(()),
                    // Its actor is gone (given up on, or another node's):
                    // start one, which resumes from the store.
                    Err(_) => self
                        .run_campaign(tenant, campaign)
                        .await
                        .map_err(|e| e.to_string()),
                },
                CampaignCommand::Stop => self.control(campaign, CampaignControl::Stop),
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
}

/// Whether a stored state has a live actor.
pub fn is_live(state: CampaignState) -> bool {
    matches!(
        state,
        CampaignState::Running | CampaignState::Paused | CampaignState::Stopping
    )
}

/// The real providers: Vonage, Deepgram (fallback Groq Whisper), an
/// OpenAI-compatible LLM (and an optional second one), ElevenLabs
/// (fallback Deepgram Aura), and PostgreSQL for the records.
pub struct RealPorts;

impl CallPorts for RealPorts {
    type Telephony = crate::providers::vonage::VonageClient;
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

/// Builds the real ports from configuration (start-up only).
pub fn real_ports(
    config: &crate::config::Config,
    pool: db::Pool,
) -> anyhow::Result<Ports<RealPorts>> {
    use crate::providers::breaker::CircuitBreaker;
    use crate::providers::chain::{AnyStt, AnyTts};
    use crate::providers::{aura, deepgram_stt, elevenlabs, openai, vonage, whisper};
    let p = &config.providers;
    let breaker = |name: &str| {
        Arc::new(CircuitBreaker::new(
            name,
            BREAKER_THRESHOLD,
            BREAKER_OPEN_FOR,
        ))
    };
    let mut v = vonage::VonageConfig {
        application_id: p.vonage_application_id.clone(),
        private_key_file: p.vonage_private_key_file.clone(),
        public_url: config.public_url()?,
        answer_mode: p.vonage_answer_mode,
        ..vonage::VonageConfig::default()
    };
    if !p.vonage_api_base_url.is_empty() {
        v.api_base_url = p.vonage_api_base_url.clone();
    }
    let telephony =
        vonage::VonageClient::new(v).map_err(|e| anyhow::anyhow!("providers.vonage: {e}"))?;
    let mut d = deepgram_stt::DeepgramSttConfig::new(p.deepgram_api_key.clone());
    if !p.deepgram_base_url.is_empty() {
        d.base_url = p.deepgram_base_url.clone();
    }
    let stt = deepgram_stt::DeepgramStt::new(d, breaker("deepgram"))
        .map_err(|e| anyhow::anyhow!("providers.deepgram: {e}"))?;
    let mut l = openai::OpenAiConfig::groq(p.llm_api_key.clone());
    if !p.llm_base_url.is_empty() {
        l = openai::OpenAiConfig::new("llm", p.llm_base_url.clone(), p.llm_api_key.clone());
    }
    let llm = openai::OpenAiClient::new(l, breaker("llm"))
        .map_err(|e| anyhow::anyhow!("providers.llm: {e}"))?;
    let mut t = elevenlabs::ElevenLabsConfig::new(p.elevenlabs_api_key.clone());
    if !p.elevenlabs_base_url.is_empty() {
        t.base_url = p.elevenlabs_base_url.clone();
    }
    let tts = elevenlabs::ElevenLabs::new(t, breaker("elevenlabs"))
        .map_err(|e| anyhow::anyhow!("providers.elevenlabs: {e}"))?;
    let whisper_key = if p.whisper_api_key.expose().trim().is_empty() {
        p.llm_api_key.clone()
    } else {
        p.whisper_api_key.clone()
    };
    let mut w = whisper::WhisperConfig::new(whisper_key);
    if !p.whisper_base_url.is_empty() {
        w.base_url = p.whisper_base_url.clone();
    }
    if !p.whisper_model.is_empty() {
        w.model = p.whisper_model.clone();
    }
    let stt_fallback = whisper::WhisperStt::new(w, breaker("whisper"))
        .map_err(|e| anyhow::anyhow!("providers.whisper: {e}"))?;
    let mut a = aura::AuraConfig::new(p.deepgram_api_key.clone());
    if !p.aura_base_url.is_empty() {
        a.base_url = p.aura_base_url.clone();
    }
    if !p.aura_model.is_empty() {
        a.model = p.aura_model.clone();
    }
    let tts_fallback = aura::AuraTts::new(a, breaker("aura"))
        .map_err(|e| anyhow::anyhow!("providers.aura: {e}"))?;
    let mut llms = vec![Arc::new(llm)];
    if !p.llm_fallback_base_url.is_empty() {
        let mut f = openai::OpenAiConfig::new(
            "llm_fallback",
            p.llm_fallback_base_url.clone(),
            p.llm_fallback_api_key.clone(),
        );
        f.use_max_completion_tokens = p.llm_fallback_base_url.contains("api.openai.com");
        let fallback = openai::OpenAiClient::new(f, breaker("llm_fallback"))
            .map_err(|e| anyhow::anyhow!("providers.llm_fallback: {e}"))?;
        llms.push(Arc::new(fallback));
    }
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
        }),
        clock: Arc::new(TokioClock),
    })
}
