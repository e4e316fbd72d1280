//! The command line (the simulated world's commands are `talky-sim`'s).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Logs to stderr with `config.log`'s filter (`RUST_LOG` wins), as JSON
/// lines when `log.json` (`talky` and `talky-sim demo`).
pub fn init_logging(config: &Config) {
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

/// talky: actor-based telephony runtime for AI outbound calling.
#[derive(Debug, Parser)]
#[command(name = "talky", version, about)]
pub struct Cli {
    /// Config file (default: config/talky.toml when present).
    #[arg(long, global = true, env = "TALKY_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve the API.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Calls.
    Calls {
        /// What to do with calls.
        #[command(subcommand)]
        command: CallsCommand,
    },
    /// Tenants.
    Tenant {
        /// What to do with tenants.
        #[command(subcommand)]
        command: TenantCommand,
    },
}

/// Tenant subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its first API key (shown once).
    Create {
        /// Display name.
        name: String,
        /// Print {tenant_id, api_key} as JSON.
        #[arg(long)]
        json: bool,
        /// Reuse the tenant of this name if it exists (a new key is made).
        #[arg(long)]
        reuse: bool,
    },
}

/// Call subcommands.
#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// Print one call: status, outcome, events and its transcript.
    Show {
        /// The call's id.
        id: String,
    },
}
