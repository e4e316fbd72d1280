//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Run a whole simulated campaign (every provider emulated on
    /// loopback) and print a table per contact.
    Demo {
        /// Keep the server and emulators running afterwards (Ctrl-C stops).
        #[arg(long)]
        keep_running: bool,
    },
    /// Calls.
    Calls {
        /// What to do with calls.
        #[command(subcommand)]
        command: CallsCommand,
    },
    /// Run every provider emulator on loopback (for load tests and demos).
    Sim(Box<crate::sim::process::SimArgs>),
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
