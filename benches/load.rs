//! The load benchmark (issue 6): N concurrent full calls through the real
//! `talky serve`, the providers emulated by a separate `talky sim`. The
//! driver is `talky::loadtest`; this only reads the command line.
//!
//! `cargo bench --bench load -- --calls 1000 --duration 60` (flags:
//! `--calls --duration --cps --barge-share --stt-final-ms
//! --llm-first-token-ms --llm-tokens-per-second --tts-first-audio-ms --out
//! --keep-db`). Needs PostgreSQL (`DATABASE_URL`, a role that may create
//! databases) and Redis (`REDIS_URL`). Writes `target/load/load.{json,md}`.

use std::path::Path;

use talky::loadtest::{LoadOptions, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = LoadOptions::new(env!("CARGO_BIN_EXE_talky"), 100, 30);
    o.out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/load");
    o.verbose = true;
    if let Err(e) = o.apply_args(&args) {
        eprintln!("load: {e}");
        std::process::exit(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(&o)) {
        Ok(report) => println!("{}", report.markdown()),
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(1);
        }
    }
}
