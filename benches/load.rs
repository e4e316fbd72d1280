//! The load benchmark (issue 6): N concurrent full calls through the real
//! `talky serve`, the providers emulated by a separate `talky-sim sim`. The
//! driver is `talky_sim::loadtest`; this only finds the two binaries and
//! reads the command line (`talky-sim load` is the same run).
//!
//! `cargo bench --bench load -- --calls 1000 --duration 60` (flags:
//! `--calls --duration --cps --barge-share --telephony vonage|twilio
//! --stt-final-ms
//! --llm-first-token-ms --llm-tokens-per-second --tts-first-audio-ms --out
//! --keep-db`). Needs PostgreSQL (`DATABASE_URL`, a role that may create
//! databases) and Redis (`REDIS_URL`). Writes `target/load/load.{json,md}`.

use std::path::Path;

use talky_sim::loadtest::{LoadOptions, main_with, sibling};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let talky = Path::new(env!("CARGO_BIN_EXE_talky"));
    // cargo builds this package's binary for its bench, not talky-sim's:
    // build it (release, beside `talky`) so the sim is never a stale one.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "talky-sim",
            "--bin",
            "talky-sim",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        eprintln!(
            "load: building talky-sim failed ({built:?}); build it: cargo build --release -p talky-sim"
        );
        std::process::exit(1);
    }
    let mut o = LoadOptions::new(talky, sibling(talky, "talky-sim"), 100, 30);
    o.out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/load");
    o.verbose = true;
    std::process::exit(main_with(o, &args));
}
