//! The `talky` binary: configuration, logging, and the CLI's commands.

use clap::Parser;
use talky::cli::{CallsCommand, Cli, Command, TenantCommand};
use talky::config::Config;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: thousands of calls allocate and
/// free small buffers on every frame from several threads, and glibc's
/// per-thread arenas keep much of that freed memory resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Command::Sim(args) = &cli.command {
        // The emulators need no database: no talky config is loaded.
        std::process::exit(sim(args).await);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("talky: {e}");
            std::process::exit(2);
        }
    };
    init_logging(&config);
    if let Err(e) = run(cli.command, config).await {
        eprintln!("talky: {e:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let providers = config.providers.enabled;
            let server = talky::app::Server::start(config.clone()).await?;
            if providers {
                let ports = talky::runtime::real_ports(&config, server.ctx.db.clone())?;
                server
                    .run_dialer(
                        ports,
                        config.dialer.dialer_config(),
                        config.dialer.campaign_config(),
                        talky_actors::tree::DIALER,
                    )
                    .await?;
                tracing::info!("dialer running");
            } else {
                tracing::info!("providers.enabled is false: campaigns are stored, not dialled");
            }
            let addr = server.addr;
            shutdown_signal().await;
            tracing::info!(%addr, "shutting down");
            server.stop().await;
            Ok(())
        }
        Command::Sim(_) => Ok(()),
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
        Command::Demo { keep_running } => {
            talky::demo::run(config, talky::demo::DemoOptions { keep_running }).await?;
            Ok(())
        }
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

/// `talky sim`: the emulators until SIGINT/SIGTERM; the exit code.
async fn sim(args: &talky::sim::process::SimArgs) -> i32 {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("talky: {e}");
            return 2;
        }
    };
    match talky::sim::process::run(settings, shutdown_signal()).await {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("talky: {e}");
            1
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
