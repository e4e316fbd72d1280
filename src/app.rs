//! Start-up wiring: configuration in, a running server out. Shared by
//! `talky serve` and the integration tests, so the tests run the real
//! thing.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use talky_actors::ports::TokioClock;
use talky_actors::root::{RootArgs, RootMsg, RootSupervisor};
use talky_actors::supervision::RestartPolicy;

use crate::config::Config;
use crate::http::{AppState, Ctx};
use crate::import::ImportOptions;
use crate::{db, http, redis};

/// Builds the shared state (pools connect lazily) and starts the
/// recordings' encoder pool (so it needs a tokio runtime); `root` is the
/// actor tree this server runs, if any.
pub fn state(config: Config, root: Option<ractor::ActorRef<RootMsg>>) -> anyhow::Result<Ctx> {
    let db = db::pool(config.database.url.expose(), &config.database);
    let live_db = db::live_pool(config.database.url.expose(), &config.database);
    let redis = redis::pool(config.redis.url.expose(), &config.redis)?;
    let import = ImportOptions {
        default_region: config.default_region(),
        max_rows: config.contacts.max_rows,
        max_field_len: config.contacts.max_field_len,
        max_columns: config.contacts.max_columns,
    };
    let recorder = crate::recording::Recorder::start(&config.recordings, live_db.clone())?;
    let limiter = http::ratelimit::RateLimiter::new(config.api.rate_per_second, config.api.burst);
    let node = config.redis.node();
    Ok(Arc::new(AppState {
        db,
        live_db,
        redis,
        node,
        config: Arc::new(config),
        import,
        root,
        runtime: std::sync::OnceLock::new(),
        recorder,
        draining: std::sync::atomic::AtomicBool::new(false),
        limiter,
        live: Arc::default(),
    }))
}

/// A server running in the background.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub ctx: Ctx,
    /// The actor tree's root.
    pub root: ractor::ActorRef<RootMsg>,
    /// This node's id (`redis.node_id`), fixed for the process.
    pub node_id: String,
    analysis: std::sync::Mutex<Option<crate::analysis::worker::AnalysisPool>>,
    /// The webhook delivery worker (stops claiming when dropped).
    webhooks: Option<crate::webhooks::deliver::WorkerHandle>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Applies migrations, binds `config.server.listen` and serves.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let addr = config.listen_addr()?;
        let applied = db::migrate(config.database.url.expose()).await?;
        for version in &applied {
            tracing::info!(%version, "migration applied");
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let mut config = config;
        if config.server.public_url.is_none() && config.server.listen.trim().ends_with(":0") {
            // An ephemeral port: the bound address is the only public URL
            // the answer webhook could put in an NCCO.
            config.server.public_url = Some(format!("http://{addr}"));
        }
        let (root, _) = ractor::Actor::spawn(
            None,
            RootSupervisor::<TokioClock>::new(),
            RootArgs {
                policy: RestartPolicy::default(),
                clock: Arc::new(TokioClock),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the actor tree: {e}"))?;
        let ctx = state(config, Some(root.clone()))?;
        ctx.recorder.recover().await;
        crate::metrics::handle();
        // Customer webhooks: on its own pool, in its own tasks; nothing a
        // call does waits for it.
        let webhooks = crate::webhooks::deliver::start(
            db::webhooks_pool(ctx.config.database.url.expose(), &ctx.config.database),
            &ctx.config.webhooks,
            ctx.config.public_url()?,
        )?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, ctx.clone(), async {
            let _ = rx.await;
        }));
        tracing::info!(%addr, "talky listening");
        let node_id = ctx.node.clone();
        Ok(Server {
            addr,
            ctx,
            root,
            node_id,
            analysis: std::sync::Mutex::new(None),
            webhooks: Some(webhooks),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Starts the dialer over these call ports under this server's root,
    /// resumes the live campaigns, and lets the lifecycle routes drive
    /// them. `dialer_name` is `dialer` in production (registry names are
    /// per process, so tests running several servers use unique ones).
    pub async fn run_dialer<P: talky_actors::call::CallPorts>(
        &self,
        ports: talky_actors::call::Ports<P>,
        dialer: talky_actors::dialer::DialerConfig,
        campaigns: talky_actors::campaign_actor::CampaignConfig,
        dialer_name: &str,
    ) -> anyhow::Result<()> {
        let runtime = crate::runtime::Runtime::start(
            self.root.clone(),
            dialer_name.to_string(),
            self.ctx.live_db.clone(),
            ports,
            dialer,
            campaigns,
            self.cluster(),
            self.ownership(),
        )
        .await?;
        self.ctx
            .runtime
            .set(runtime)
            .map_err(|_| anyhow::anyhow!("this server already runs a dialer"))
    }

    /// Starts this node's post-call analysis workers (`[analysis]`) over
    /// the configured LLM chain, on the live calls' pool. No workers
    /// (`analysis.workers = 0`): other nodes take the queue.
    pub fn run_analysis(&self) -> anyhow::Result<()> {
        let config = &self.ctx.config;
        if config.analysis.workers == 0 {
            return Ok(());
        }
        let chain = crate::runtime::analysis_chain(config)?;
        let pool = crate::analysis::worker::AnalysisPool::start(
            config.analysis.clone(),
            self.ctx.live_db.clone(),
            self.node_id.clone(),
            chain,
        );
        let mut slot = self
            .analysis
            .lock()
            .map_err(|_| anyhow::anyhow!("analysis pool lock poisoned"))?;
        if slot.is_some() {
            anyhow::bail!("this server already runs analysis workers");
        }
        *slot = Some(pool);
        Ok(())
    }

    /// The cluster port this server's dialer and campaigns share with
    /// other nodes: Redis when `redis.cluster`, else in memory.
    pub fn cluster(&self) -> Arc<dyn talky_actors::cluster::ClusterPort> {
        let c = &self.ctx.config.redis;
        let node = self.node_id.clone();
        let lease_ttl = std::time::Duration::from_millis(c.lease_ttl_ms);
        let slot_ttl = std::time::Duration::from_millis(c.slot_ttl_ms);
        if c.cluster {
            Arc::new(redis::RedisCluster {
                keys: self.redis_keys(),
                node,
                account: c.cps_account.clone(),
                lease_ttl,
                slot_ttl,
            })
        } else {
            Arc::new(talky_actors::cluster::LocalCluster::new(
                node,
                Arc::new(TokioClock),
                lease_ttl,
                slot_ttl,
            ))
        }
    }

    /// This node among the others: its id, who is alive (Redis
    /// heartbeats, or this process alone), its heartbeat, and where it
    /// hears the others' campaign notices.
    pub fn ownership(&self) -> crate::runtime::Ownership {
        let c = &self.ctx.config.redis;
        let node = self.node_id.clone();
        let ttl = std::time::Duration::from_millis(c.lease_ttl_ms);
        if c.cluster {
            // The pool accepted this URL already; should the client not,
            // the lease holder still follows the store every tick.
            let notices = match ::redis::Client::open(c.url.expose()) {
                Ok(client) => Some(crate::redis::notices::Subscription {
                    client,
                    keys: self.redis_keys(),
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "campaign notices cannot be heard: invalid Redis URL");
                    None
                }
            };
            crate::runtime::Ownership {
                node,
                nodes: Arc::new(crate::reconcile::RedisNodes {
                    keys: self.redis_keys(),
                }),
                heartbeat: Some(self.redis_keys()),
                notices,
                ttl,
            }
        } else {
            crate::runtime::Ownership {
                nodes: Arc::new(crate::reconcile::LocalNodes { me: node.clone() }),
                node,
                heartbeat: None,
                notices: None,
                ttl,
            }
        }
    }

    /// Stops the process's work for a stop (SIGTERM): `/health/ready`
    /// answers 503 from now on, and the dialer, if any, drains (see
    /// [`crate::runtime::CampaignRuntime::drain`]); the HTTP server keeps
    /// serving the provider's callbacks meanwhile. Then [`Self::stop`].
    pub async fn drain(
        &self,
        wait: std::time::Duration,
        skip: tokio::sync::watch::Receiver<bool>,
    ) -> Option<crate::runtime::DrainReport> {
        self.ctx
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        match self.ctx.runtime.get() {
            Some(runtime) => Some(runtime.drain(wait, skip).await),
            None => None,
        }
    }

    /// This server's Redis keys (pool, prefix, timeout).
    pub fn redis_keys(&self) -> redis::Keys {
        self.ctx.redis_keys()
    }

    /// Stops accepting, lets in-flight requests finish, and returns.
    pub async fn stop(mut self) {
        let analysis = self.analysis.lock().ok().and_then(|mut a| a.take());
        if let Some(pool) = analysis {
            pool.stop().await;
        }
        if let Some(webhooks) = self.webhooks.take() {
            webhooks.stop();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.root.stop(Some("server stopped".into()));
    }
}
