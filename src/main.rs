//! The `talky` binary: configuration, logging, and the CLI's commands.

use clap::Parser;
use talky::cli::{CallsCommand, Cli, Command, TenantCommand};
use talky::config::Config;

/// mimalloc rather than glibc's malloc: thousands of calls allocate and
/// free small buffers on every frame from several threads, and glibc's
/// per-thread arenas keep much of that freed memory resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("talky: {e}");
            std::process::exit(2);
        }
    };
    if matches!(cli.command, Command::Serve)
        && let Err(e) = config.check_serve()
    {
        eprintln!("talky: {e}");
        std::process::exit(2);
    }
    talky::cli::init_logging(&config);
    if matches!(cli.command, Command::Serve) {
        warn_weak_callbacks(&config);
    }
    if let Err(e) = run(cli.command, config).await {
        eprintln!("talky: {e:#}");
        std::process::exit(1);
    }
}

/// Says at start-up what protects provider callbacks when it is weak.
fn warn_weak_callbacks(config: &Config) {
    use talky::providers::vonage::callback::{CallbackKey, KeySource};
    if config.vonage.signature_secret.expose().trim().is_empty() {
        tracing::warn!(
            insecure_flag = config.vonage.insecure_unsigned_callbacks,
            "vonage.signature_secret is not set: provider callbacks are not signed-checked"
        );
    } else if config.vonage.allow_unsigned_webhooks {
        tracing::warn!(
            "vonage.allow_unsigned_webhooks: callbacks without a signature are accepted"
        );
    }
    let twilio = &config.providers.twilio;
    if twilio.is_configured() {
        if twilio.auth_token.expose().trim().is_empty() {
            tracing::warn!(
                insecure_flag = twilio.insecure_unsigned_callbacks,
                "providers.twilio.auth_token is not set: Twilio callbacks are not signature-checked (their URL key alone binds them)"
            );
        } else if twilio.allow_unsigned_webhooks {
            tracing::warn!(
                "providers.twilio.allow_unsigned_webhooks: Twilio callbacks without X-Twilio-Signature are accepted"
            );
        }
    }
    if CallbackKey::from_config(&config.vonage).source() == KeySource::Process {
        tracing::warn!(
            "vonage.callback_key is random for this process: callback URLs given out by other nodes (or before a restart) will not verify here; set it on every node"
        );
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            // Listen for signals before anything runs, so an early SIGTERM
            // is a drain, not the default exit.
            let mut signals = Signals::new()?;
            let providers = config.providers.enabled;
            let server = talky::app::Server::start(config.clone()).await?;
            if providers {
                let ports = talky::runtime::real_ports(
                    &config,
                    server.ctx.live_db.clone(),
                    server.ctx.live.clone(),
                )?;
                server
                    .run_dialer(
                        ports,
                        config.dialer.dialer_config(),
                        config.dialer.campaign_config(),
                        talky_actors::tree::DIALER,
                    )
                    .await?;
                tracing::info!("dialer running");
                server.run_analysis()?;
            } else {
                tracing::info!("providers.enabled is false: campaigns are stored, not dialled");
            }
            let addr = server.addr;
            signals.next().await;
            // Drain: no new calls, live calls may end by themselves for
            // `server.drain_secs`, the rest end politely; a second signal
            // skips the wait, a third exits at once.
            let wait = std::time::Duration::from_secs(config.server.drain_secs);
            tracing::info!(%addr, drain_secs = wait.as_secs(), "stopping: draining");
            let (skip_tx, skip_rx) = tokio::sync::watch::channel(false);
            let watcher = tokio::spawn(async move {
                signals.next().await;
                tracing::warn!("second signal: ending the remaining calls now");
                let _ = skip_tx.send(true);
                signals.next().await;
                eprintln!("talky: third signal: exiting without waiting");
                std::process::exit(1);
            });
            if let Some(report) = server.drain(wait, skip_rx).await {
                tracing::info!(
                    live_at_start = report.live_at_start,
                    interrupted = report.interrupted,
                    left = report.left,
                    campaigns_left = report.campaigns_left,
                    records_lost = report.records_lost,
                    "drained"
                );
            }
            watcher.abort();
            server.stop().await;
            tracing::info!(%addr, "stopped");
            Ok(())
        }
        Command::Migrate => {
            let applied = talky::db::migrate(config.database.url.expose()).await?;
            if applied.is_empty() {
                println!("no pending migrations");
            }
            for version in applied {
                println!("applied {version}");
            }
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Create { name, json, reuse },
        } => tenant_create(config, &name, json, reuse).await,
        Command::Calls {
            command: CallsCommand::Show { id },
        } => calls_show(config, &id).await,
    }
}

async fn tenant_create(config: Config, name: &str, json: bool, reuse: bool) -> anyhow::Result<()> {
    use diesel_async::{AsyncConnection, AsyncPgConnection};
    let name =
        talky::http::api_keys::valid_name("name", name).map_err(|e| anyhow::anyhow!("{e}"))?;
    talky::db::migrate(config.database.url.expose()).await?;
    let mut conn = AsyncPgConnection::establish(config.database.url.expose()).await?;
    let existing = if reuse {
        talky::db::tenants::find_by_name(&mut conn, &name).await?
    } else {
        None
    };
    let (tenant_id, secret) = match existing {
        Some(tenant) => {
            let key = talky::db::api_keys::create(&mut conn, tenant.tenant_id(), "cli").await?;
            (tenant.id, key.secret)
        }
        None => {
            let created = talky::http::admin::create_tenant_with_key(&mut conn, &name).await?;
            (created.tenant.id, created.api_key.secret)
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "tenant_id": tenant_id, "api_key": secret })
        );
    } else {
        println!("tenant  {tenant_id}  {name}");
        println!("api key {secret}");
        println!("(the key is shown only now; store it)");
    }
    Ok(())
}

/// `talky calls show ID`: one call and its transcript, read from the
/// database (an operator's tool: any tenant's call).
async fn calls_show(config: Config, id: &str) -> anyhow::Result<()> {
    use diesel_async::{AsyncConnection, AsyncPgConnection};
    use talky::db::calls;
    let uuid = uuid::Uuid::parse_str(id.trim())
        .map_err(|_| anyhow::anyhow!("{id:?} is not a call id (a UUID)"))?;
    let mut conn = AsyncPgConnection::establish(config.database.url.expose()).await?;
    let call_id = talky_actors::ids::CallId(uuid);
    let Some(call) = calls::get_unscoped(&mut conn, call_id).await? else {
        anyhow::bail!("no call {uuid}");
    };
    let tenant = talky_actors::ids::TenantId(call.tenant_id);
    println!("call     {}  attempt {}", call.id, call.attempt);
    println!("to       {}", call.phone);
    println!(
        "status   {}  outcome {}  ({})",
        call.status,
        call.outcome.as_deref().unwrap_or("-"),
        call.hangup_reason.as_deref().unwrap_or("-")
    );
    println!(
        "dialled  {}  answered {}  ended {}  talk {} s",
        show_time(call.dialed_at),
        show_time(call.answered_at),
        show_time(call.ended_at),
        call.duration_secs.unwrap_or(0)
    );
    let events = calls::events(&mut conn, tenant, call_id).await?;
    let statuses: Vec<&str> = events.iter().map(|e| e.status.as_str()).collect();
    println!("events   {}", statuses.join(" -> "));
    println!();
    for t in calls::turns(&mut conn, tenant, call_id).await? {
        let heard = t.heard_text.as_deref().unwrap_or(&t.text);
        let cut = if t.interrupted { "  [interrupted]" } else { "" };
        let latency = t
            .voice_to_voice_ms
            .map(|ms| format!("  ({ms} ms voice to voice)"))
            .unwrap_or_default();
        println!("{:>6}: {heard}{cut}{latency}", t.speaker);
    }
    Ok(())
}

fn show_time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// SIGTERM and SIGINT, each delivery one [`Signals::next`].
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
