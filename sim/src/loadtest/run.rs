//! One run of the benchmark, step by step (see the module doc).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::collect::{self, Stored};
use super::procfs;
use super::procs::{self, Proc};
use super::report::{BargeIn, CallCounts, Pcts, Report, Stage, Steady, Underruns};
use super::{CALLEE_LINE, LoadError, LoadOptions, TURN_SECS, number, personas};
use crate::vonage::stats::SimStats;
use talky::providers::telephony::TelephonyProvider;

/// Timeout of each REST request of the driver.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The `endpointing` talky asks Deepgram for (the spec's §2 query, talky's
/// default), part of the STT stage. Written here, not read from talky's
/// client: a talky that asked for more would show in the STT figure.
const ENDPOINTING_MS: f64 = 300.0;
/// The earliest the speech-start event can come after the first frame of
/// a barge-in: talky needs `DEFAULT_BARGE_IN_MIN_SPEECH` of speech (300
/// ms, 15 frames), whole once the 15th frame arrives, which the callee
/// sends 14 frames (280 ms) after the first; later if a frame of the line
/// is too quiet for the VAD (the emulator times each event exactly).
const BARGE_IN_MIN_MS: f64 =
    talky_actors::call::config::DEFAULT_BARGE_IN_MIN_SPEECH.as_millis() as f64 - 20.0;

fn step(e: impl std::fmt::Display) -> LoadError {
    LoadError::Step(e.to_string())
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, LoadError> {
        let res = req
            .bearer_auth(&self.key)
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .map_err(step)?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(LoadError::Step(format!("talky answered {status}: {body}")));
        }
        Ok(body)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, LoadError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
}

async fn sim_stats(http: &reqwest::Client, url: &str) -> Result<SimStats, LoadError> {
    http.get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(step)?
        .json()
        .await
        .map_err(step)
}

fn log(o: &LoadOptions, msg: &str) {
    if o.verbose {
        eprintln!("load: {msg}");
    }
}

/// Runs the benchmark; the report (also written to `out_dir`).
pub async fn run(o: &LoadOptions) -> Result<Report, LoadError> {
    let started = Instant::now();
    let run_id = format!("{}_{}", std::process::id(), rand::random::<u32>());
    let out_dir = absolute(&o.out_dir)?;
    let dir = out_dir.join(format!("run-{run_id}"));
    std::fs::create_dir_all(&dir).map_err(|e| LoadError::io(&dir, e))?;
    let db_name = format!("talky_load_{run_id}");
    collect::database(&o.admin_database_url, &db_name, true).await?;
    let db_url = collect::with_database(&o.admin_database_url, &db_name);
    let result = run_in(o, &dir, &db_url, started).await;
    if !o.keep_database {
        let _ = collect::database(&o.admin_database_url, &db_name, false).await;
    }
    let report = result?;
    let json = serde_json::to_string_pretty(&report).map_err(step)?;
    let md = report.markdown();
    for (name, text) in [("load.json", &json), ("load.md", &md)] {
        for base in [&out_dir, &dir] {
            let p = base.join(name);
            std::fs::write(&p, text).map_err(|e| LoadError::io(&p, e))?;
        }
    }
    Ok(report)
}

/// `path` made absolute against the current directory: the sim runs in
/// the run's directory, so a relative `--out` would point its
/// `--personas-dir` elsewhere (and a missing personas directory means the
/// built-in personas, not the run's talkers).
fn absolute(path: &Path) -> Result<std::path::PathBuf, LoadError> {
    std::path::absolute(path).map_err(|e| LoadError::io(path, e))
}

async fn run_in(
    o: &LoadOptions,
    dir: &Path,
    db_url: &str,
    started: Instant,
) -> Result<Report, LoadError> {
    let n = o.calls;
    let turns = ((ramp_budget_s(n, o.cps) + o.duration_s as f64) / TURN_SECS).ceil() as u64 + 1;
    let barge_count = (n as f64 * o.barge_share).round() as u64;
    let barge: Vec<String> = (0..barge_count)
        .map(|i| number(i).trim_start_matches('+').to_string())
        .collect();
    let (talker, barger) = personas(turns, &barge);
    let pdir = dir.join("personas");
    std::fs::create_dir_all(&pdir).map_err(|e| LoadError::io(&pdir, e))?;
    for (name, text) in [("talker.toml", &talker), ("talker_barge.toml", &barger)] {
        let p = pdir.join(name);
        std::fs::write(&p, text).map_err(|e| LoadError::io(&p, e))?;
    }
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/providers/vonage/testdata");
    let sim_args: Vec<String> = vec![
        "--personas-dir".into(),
        pdir.display().to_string(),
        "--default-persona".into(),
        "talker".into(),
        "--public-key-file".into(),
        testdata.join("test_public.pem").display().to_string(),
        "--stt-final-ms".into(),
        o.stt_final_ms.to_string(),
        "--llm-first-token-ms".into(),
        o.llm_first_token_ms.to_string(),
        "--llm-tokens-per-second".into(),
        o.llm_tokens_per_second.to_string(),
        "--tts-first-audio-ms".into(),
        o.tts_first_audio_ms.to_string(),
        "--stats-file".into(),
        dir.join("sim_stats.json").display().to_string(),
    ];
    log(
        o,
        &format!("starting talky-sim sim ({turns} turns per callee)"),
    );
    let (sim, urls) = procs::start_sim(&o.sim_binary, dir, &sim_args).await?;
    // The counters of the emulator that carries the run's calls (the sim
    // serves Twilio's under `/stats/twilio`).
    let stats_url = match o.telephony {
        TelephonyProvider::Vonage => urls.stats_url.clone(),
        TelephonyProvider::Twilio => format!("{}/twilio", urls.stats_url),
    };
    let port = procs::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut env: Vec<(String, String)> = urls.env.clone().into_iter().collect();
    let cap = n.max(1).to_string();
    env.extend(
        [
            ("DATABASE_URL", db_url.to_string()),
            ("REDIS_URL", o.redis_url.clone()),
            ("TALKY_LISTEN", format!("127.0.0.1:{port}")),
            ("TALKY_PUBLIC_URL", base.clone()),
            ("TALKY_LOG__FILTER", "warn".into()),
            (
                "TALKY_PROVIDERS__VONAGE__PRIVATE_KEY_FILE",
                testdata.join("test_private.pem").display().to_string(),
            ),
            ("TALKY_DIALER__GLOBAL_CAP", cap.clone()),
            ("TALKY_DIALER__TENANT_CAP", cap.clone()),
            ("TALKY_DIALER__CALLS_PER_SECOND", o.cps.to_string()),
            (
                "TALKY_DIALER__CPS_BURST",
                (o.cps.ceil() as u64).max(1).to_string(),
            ),
            ("TALKY_DIALER__CAMPAIGN_TICK_MS", "200".into()),
            (
                "TALKY_DATABASE__POOL_SIZE",
                (16 + n / 50).min(64).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v)),
    );
    let tenant = procs::run_cli(
        &o.binary,
        dir,
        &env,
        &["tenant", "create", "load", "--json"],
    )
    .await?;
    let tenant: Value = serde_json::from_str(tenant.trim()).map_err(step)?;
    let key = tenant["api_key"].as_str().unwrap_or_default().to_string();
    log(o, "starting talky serve");
    let mut serve = procs::start_serve(&o.binary, dir, &env)?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(step)?;
    let outcome = drive(
        o,
        &http,
        &mut serve,
        sim.pid(),
        &base,
        &key,
        &stats_url,
        turns,
    )
    .await;
    serve.stop(Duration::from_secs(10)).await;
    sim.stop(Duration::from_secs(10)).await;
    let (counts_sim, steady, samples) = outcome?;
    let stored = collect::stored(db_url).await?;
    Ok(build_report(
        o, counts_sim, steady, samples, stored, started,
    ))
}

/// How long the ramp may take, s: the calls last this plus the window, so
/// the first calls are still live when the last is answered. The dialer
/// places at most `cps` calls a second, but under load fewer (each one is
/// a claim, a dial intent and a provider request on a busy machine), so
/// the budget is three times the nominal ramp plus 10 s.
fn ramp_budget_s(n: u64, cps: f64) -> f64 {
    3.0 * n as f64 / cps + 10.0
}

/// Starts the campaign, measures the steady state, waits for the end.
#[allow(clippy::too_many_arguments)]
async fn drive(
    o: &LoadOptions,
    http: &reqwest::Client,
    serve: &mut Proc,
    sim_pid: Option<u32>,
    base: &str,
    key: &str,
    stats_url: &str,
    turns: u64,
) -> Result<(SimStats, Steady, SimStats), LoadError> {
    let n = o.calls;
    // Wait for talky to serve.
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = serve.exited() {
            return Err(LoadError::Step(format!(
                "{} exited: {status} (see serve.log)",
                serve.name
            )));
        }
        let ok = http
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        if Instant::now() > ready_by {
            return Err(LoadError::Step("talky serve not up in 60 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = serve
        .pid()
        .ok_or_else(|| LoadError::Step("talky serve has no pid".into()))?;
    let api = Api {
        http: http.clone(),
        base: base.to_string(),
        key: key.to_string(),
    };
    let ramp_s = ramp_budget_s(n, o.cps);
    let max_secs = (ramp_s + turns as f64 * super::TURN_SECS * 2.0 + 30.0)
        .clamp(10.0, 7200.0)
        .ceil();
    let campaign = api
        .post(
            "/api/v1/campaigns",
            &json!({
                "name": "load",
                "caller_id": "+14155550100",
                "agent": {"system_prompt": "You are a polite assistant.", "greeting": "Hello, this is Ada."},
                "calling_window": {"start": "00:00", "end": "23:59",
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
                "max_attempts": 1,
                "telephony": o.telephony.as_str(),
                "max_concurrent_calls": n.min(10_000),
                "max_call_duration_secs": max_secs as i64,
            }),
        )
        .await?;
    let id = campaign["id"].as_str().unwrap_or_default().to_string();
    let csv: String = std::iter::once("phone,timezone".to_string())
        .chain((0..n).map(|i| format!("{},America/New_York", number(i))))
        .collect::<Vec<_>>()
        .join("\n");
    let report = api
        .send(
            http.post(format!("{base}/api/v1/campaigns/{id}/contacts"))
                .header("content-type", "text/csv")
                .body(csv),
        )
        .await?;
    if report["accepted"].as_u64() != Some(n) {
        return Err(LoadError::Step(format!(
            "contacts not all accepted: {report}"
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_idle, anon_idle) = procfs::rss_kib(pid).unwrap_or((0, 0));
    log(o, &format!("starting the campaign ({n} calls)"));
    api.post(&format!("/api/v1/campaigns/{id}/start"), &json!({}))
        .await?;

    // Ramp: until every call is live (or it is clear they will not be).
    let ramp_start = Instant::now();
    let ramp_by = ramp_start + Duration::from_secs_f64(ramp_s + 30.0);
    let mut reached = false;
    while Instant::now() < ramp_by {
        if serve.exited().is_some() {
            return Err(LoadError::Step("talky serve died during the ramp".into()));
        }
        let s = sim_stats(http, stats_url).await?;
        if s.media_live >= n {
            reached = true;
            break;
        }
        if s.calls_created >= n && s.media_live + s.calls_ended >= n && s.calls_ended > 0 {
            break; // some calls are already over: the best window is now
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp_took = ramp_start.elapsed().as_secs_f64();
    log(
        o,
        &format!("steady state (all live: {reached}, ramp {ramp_took:.1} s)"),
    );

    // Steady state: sample while the calls are live.
    let t0 = Instant::now();
    let cpu0 = procfs::cpu_seconds(pid).unwrap_or(0.0);
    let sim_cpu = || sim_pid.and_then(procfs::cpu_seconds).unwrap_or(0.0);
    let machine = || procfs::machine_cpu_seconds().unwrap_or((0.0, 0.0));
    let (sim0, machine0) = (sim_cpu(), machine());
    let (mut sim1, mut machine1) = (sim0, machine0);
    let mut live_sum = 0.0;
    let mut rss_sum = 0.0;
    let mut anon_sum = 0.0;
    let mut samples = 0.0;
    let window = Duration::from_secs(o.duration_s.max(1));
    let mut t1 = t0;
    let mut cpu1 = cpu0;
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let s = sim_stats(http, stats_url).await?;
        if reached && s.media_live < n {
            break;
        }
        live_sum += s.media_live as f64;
        let (rss, anon) = procfs::rss_kib(pid).unwrap_or((0, 0));
        rss_sum += rss as f64;
        anon_sum += anon as f64;
        samples += 1.0;
        t1 = Instant::now();
        cpu1 = procfs::cpu_seconds(pid).unwrap_or(cpu0);
        sim1 = sim_cpu();
        machine1 = machine();
    }
    let secs = (t1 - t0).as_secs_f64();
    let live_mean = if samples > 0.0 {
        live_sum / samples
    } else {
        0.0
    };
    let mean = |sum: f64| if samples > 0.0 { sum / samples } else { 0.0 };
    let (rss_steady, anon_steady) = (mean(rss_sum), mean(anon_sum));
    let per_call = |steady: f64, idle: u64| {
        if live_mean > 0.0 {
            (steady - idle as f64) / live_mean
        } else {
            0.0
        }
    };
    let pct = |used: f64| {
        if secs > 0.0 { used / secs * 100.0 } else { 0.0 }
    };
    let cpu_pct = pct(cpu1 - cpu0);
    let steady = Steady {
        reached,
        seconds: secs,
        live_mean,
        cpu_pct_core: cpu_pct,
        cpu_pct_core_per_call: if live_mean > 0.0 {
            cpu_pct / live_mean
        } else {
            0.0
        },
        rss_idle_kib: rss_idle,
        rss_steady_kib: rss_steady as u64,
        rss_per_call_kib: per_call(rss_steady, rss_idle),
        anon_per_call_kib: per_call(anon_steady, anon_idle),
        ramp_s: ramp_took,
        sim_cpu_pct_core: pct(sim1 - sim0),
        machine_cpu_pct_core: pct(machine1.0 - machine0.0),
    };

    // The end: every call over at the sim, then stored finished by talky.
    log(o, "waiting for the calls to end");
    let end_by = Instant::now() + Duration::from_secs_f64(max_secs + 30.0);
    let mut last = sim_stats(http, stats_url).await?;
    while Instant::now() < end_by && last.calls_ended < last.calls_created.max(n) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = sim_stats(http, stats_url).await?;
    }
    let settle_by = Instant::now() + Duration::from_secs(30);
    while Instant::now() < settle_by {
        let c = api
            .send(http.get(format!("{base}/api/v1/campaigns/{id}")))
            .await?;
        if c["state"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let full = sim_stats(http, &format!("{stats_url}/full")).await?;
    Ok((last, steady, full))
}

fn values(turns: &[collect::TurnRow], f: impl Fn(&collect::TurnRow) -> Option<i32>) -> Vec<f64> {
    turns.iter().filter_map(&f).map(f64::from).collect()
}

fn build_report(
    o: &LoadOptions,
    sim: SimStats,
    steady: Steady,
    full: SimStats,
    stored: Stored,
    started: Instant,
) -> Report {
    let mut counts = CallCounts {
        expected: o.calls,
        placed: sim.calls_created,
        answered: sim.media_opened,
        ..CallCounts::default()
    };
    for (status, outcome, k) in &stored.outcomes {
        let outcome = outcome.clone().unwrap_or_else(|| "-".into());
        if status == "finished" {
            counts.finished += k;
        }
        if outcome == "completed" {
            counts.completed += k;
        }
        if status != "finished" || outcome == "failed" || outcome == "provider_error" {
            counts.errors += k;
        }
        counts.outcomes.push((format!("{status}/{outcome}"), *k));
    }
    // A call another provider carried is not what the run measures.
    counts.providers = stored.providers.clone();
    counts.errors += stored
        .providers
        .iter()
        .filter(|(p, _)| p != o.telephony.as_str())
        .map(|(_, k)| k)
        .sum::<u64>();
    counts.errors += o
        .calls
        .saturating_sub(stored.outcomes.iter().map(|r| r.2).sum());
    // The echo "You said: <line>." streams token by token; the first
    // sentence is complete after all its tokens.
    let reply_tokens = crate::llm::tokens(&format!("You said: {CALLEE_LINE}.")).len() as f64;
    let stream_ms = if o.llm_tokens_per_second > 0.0 {
        (reply_tokens - 1.0).max(0.0) * 1000.0 / o.llm_tokens_per_second
    } else {
        0.0
    };
    let cfg_stt = ENDPOINTING_MS + o.stt_final_ms as f64;
    let cfg_llm = o.llm_first_token_ms as f64;
    let cfg_tts = o.tts_first_audio_ms as f64 + stream_ms;
    let t = &stored.turns;
    let stage = |column: &str, v: Vec<f64>, configured: f64| {
        let measured = Pcts::of(&v);
        Stage {
            column: column.into(),
            added: measured.minus(configured),
            measured,
            configured_ms: configured,
        }
    };
    let stages = vec![
        stage("stt_ms", values(t, |r| r.stt_ms), cfg_stt),
        stage(
            "llm_first_token_ms",
            values(t, |r| r.llm_first_token_ms),
            cfg_llm,
        ),
        stage(
            "tts_first_audio_ms",
            values(t, |r| r.tts_first_audio_ms),
            cfg_tts,
        ),
        stage("first_frame_ms", values(t, |r| r.first_frame_ms), 0.0),
    ];
    let reaction = Pcts::of(&full.barge_in_ms);
    Report {
        machine: Some(procfs::machine()),
        calls: o.calls,
        duration_s: o.duration_s,
        cps: o.cps,
        barge_share: o.barge_share,
        telephony: o.telephony.as_str().into(),
        counts,
        steady,
        stages,
        voice_to_voice: Pcts::of(&values(t, |r| r.voice_to_voice_ms)),
        underruns: Underruns {
            gaps: full.underrun_gaps,
            gap_frames: full.underrun_frames,
            agent_frames: full.agent_frames,
        },
        barge_in: BargeIn {
            attempts: full.barge_attempts,
            added: Pcts::of(&full.barge_after_event_ms),
            reaction,
            min_speech_ms: BARGE_IN_MIN_MS,
        },
        wall_s: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_out_dir_is_made_absolute() {
        let cwd = std::env::current_dir().expect("cwd");
        let out = absolute(Path::new("target/load/x")).expect("absolute");
        assert!(out.is_absolute(), "{out:?}");
        assert_eq!(out, cwd.join("target/load/x"));
        let already = cwd.join("y");
        assert_eq!(absolute(&already).expect("absolute"), already);
    }
}
