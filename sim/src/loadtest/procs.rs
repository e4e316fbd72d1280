//! The two processes of a run: `talky-sim sim` and `talky serve`, each with its
//! log file, stopped with SIGTERM (then killed) at the end.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::LoadError;
use crate::process::SimUrls;

/// A child process (killed when dropped).
pub struct Proc {
    /// What it is, for messages.
    pub name: &'static str,
    child: Child,
}

impl Proc {
    /// Its pid (`None` once it exited).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Exited already (with its status)?
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        }
    }
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, LoadError> {
    let path = dir.join(name);
    std::fs::File::create(&path).map_err(|e| LoadError::io(&path, e))
}

/// Starts `talky-sim sim` (`binary` is `talky-sim`) with `args`; its URL
/// line.
pub async fn start_sim(
    binary: &Path,
    dir: &Path,
    args: &[String],
) -> Result<(Proc, SimUrls), LoadError> {
    let mut child = Command::new(binary)
        .arg("sim")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(dir, "sim.log")?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LoadError::io(binary, e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| LoadError::Step("talky-sim sim: no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| LoadError::Step("talky-sim sim printed no URL line in 30 s".into()))?
        .map_err(|e| LoadError::Step(format!("talky-sim sim: {e}")))?
        .ok_or_else(|| LoadError::Step("talky-sim sim exited (see sim.log)".into()))?;
    let urls: SimUrls = serde_json::from_str(&line)
        .map_err(|e| LoadError::Step(format!("talky-sim sim URL line {line:?}: {e}")))?;
    // Keep draining stdout so the sim never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((
        Proc {
            name: "talky-sim sim",
            child,
        },
        urls,
    ))
}

/// Runs `talky <args>` to the end with `env`; its stdout.
pub async fn run_cli(
    binary: &Path,
    dir: &Path,
    env: &[(String, String)],
    args: &[&str],
) -> Result<String, LoadError> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(binary)
            .args(args)
            .current_dir(dir)
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| LoadError::Step(format!("talky {args:?} took over 60 s")))?
    .map_err(|e| LoadError::io(binary, e))?;
    if !out.status.success() {
        return Err(LoadError::Step(format!(
            "talky {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Environment variable naming a command to run `talky serve` under, for
/// profiling (e.g. `heaptrack` or `perf record -g -o serve.perf`); split on
/// whitespace. The CPU and RSS figures of such a run are the wrapper's.
pub const SERVE_WRAPPER_ENV: &str = "TALKY_LOAD_SERVE_WRAPPER";

/// Starts `talky serve` with `env` (under the wrapper, if one is set).
pub fn start_serve(binary: &Path, dir: &Path, env: &[(String, String)]) -> Result<Proc, LoadError> {
    let wrapper = std::env::var(SERVE_WRAPPER_ENV).unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let child = command
        .arg("serve")
        .current_dir(dir)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(log_file(dir, "serve.out")?)
        .stderr(log_file(dir, "serve.log")?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LoadError::io(binary, e))?;
    Ok(Proc {
        name: "talky serve",
        child,
    })
}

/// A free loopback port (bound then released).
pub fn free_port() -> Result<u16, LoadError> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| LoadError::Step(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| LoadError::Step(format!("no free port: {e}")))
}
