//! The `talky-sim` binary: the simulated world's commands. `sim` runs every
//! provider emulator on loopback, `demo` a whole simulated campaign against
//! an in-process talky server, `load` the load benchmark (`talky serve`
//! and `talky-sim sim` as two processes).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use talky::config::Config;
use tracing_subscriber::EnvFilter;

/// mimalloc, as in `talky`: the emulators allocate and free small buffers
/// on every frame of every call, from several threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// talky-sim: talky's simulated world (provider emulators, demo, load).
#[derive(Debug, Parser)]
#[command(name = "talky-sim", version, about)]
struct Cli {
    /// talky's config file for `demo` (default: config/talky.toml when
    /// present).
    #[arg(long, global = true, env = "TALKY_CONFIG")]
    config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run every provider emulator on loopback (for load tests and demos).
    Sim(Box<talky_sim::process::SimArgs>),
    /// Run a whole simulated campaign (every provider emulated on
    /// loopback) and print a table per contact.
    Demo {
        /// Keep the server and emulators running afterwards (Ctrl-C stops).
        #[arg(long)]
        keep_running: bool,
    },
    /// The load benchmark: N calls through `talky serve` and `talky-sim
    /// sim` processes (flags: --calls --duration --cps --barge-share
    /// --telephony vonage|twilio --stt-final-ms --llm-first-token-ms --llm-tokens-per-second
    /// --tts-first-audio-ms --out --keep-db --quiet, --talky PATH: the
    /// `talky` binary, default beside this one).
    Load {
        /// The benchmark's flags.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        // The emulators need no database: no talky config is loaded.
        Command::Sim(args) => on_runtime(async move { sim(&args).await }),
        Command::Demo { keep_running } => on_runtime(demo(cli.config, keep_running)),
        // The load driver runs its own runtime.
        Command::Load { args } => load(&args),
    };
    std::process::exit(code);
}

/// Runs `command` on a multi-threaded runtime; its exit code.
fn on_runtime(command: impl std::future::Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(command),
        Err(e) => {
            eprintln!("talky-sim: runtime: {e}");
            1
        }
    }
}

/// `talky-sim sim`: the emulators until SIGINT/SIGTERM; the exit code.
async fn sim(args: &talky_sim::process::SimArgs) -> i32 {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("talky-sim: {e}");
            return 2;
        }
    };
    match talky_sim::process::run(settings, shutdown_signal()).await {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("talky-sim: {e}");
            1
        }
    }
}

/// `talky-sim demo`: talky's config (database, Redis, listen address) and
/// logging, then the demo; the exit code.
async fn demo(config: Option<PathBuf>, keep_running: bool) -> i32 {
    let config = match Config::load(config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("talky-sim: {e}");
            return 2;
        }
    };
    talky::cli::init_logging(&config);
    let opts = talky_sim::demo::DemoOptions { keep_running };
    match talky_sim::demo::run(config, opts).await {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("talky-sim: {e:#}");
            1
        }
    }
}

/// `talky-sim load`: the benchmark with this binary as the sim and `talky`
/// beside it (or `--talky PATH`); the exit code.
fn load(args: &[String]) -> i32 {
    use talky_sim::loadtest::{LoadOptions, main_with, sibling};
    let me = match std::env::current_exe() {
        Ok(me) => me,
        Err(e) => {
            eprintln!("load: where is talky-sim: {e}");
            return 1;
        }
    };
    let mut o = LoadOptions::new(sibling(&me, "talky"), &me, 100, 30);
    o.verbose = true;
    main_with(o, args)
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
