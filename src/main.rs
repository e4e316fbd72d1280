//! The `talky` binary: configuration, logging, and the CLI's commands.

use clap::Parser;
use talky::cli::{Cli, Command, TenantCommand};
use talky::config::Config;
use tracing_subscriber::EnvFilter;

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
                        talky_actors::dialer::DialerConfig {
                            calls_per_second: config.redis.calls_per_second,
                            cps_burst: config.redis.cps_burst,
                            ..talky_actors::dialer::DialerConfig::default()
                        },
                        talky_actors::campaign_actor::CampaignConfig::default(),
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
