//! The analysis workers of one node: `analysis.workers` tasks, each
//! claiming one queued call at a time (`db::analyses::claim`, leased), asking
//! the LLM chain, and storing what came of it.
//!
//! Each try asks the chain in order (`providers.llm`, then
//! `providers.llm_fallback` when the first fails to answer); an answer
//! that is not valid (not JSON, not matching the schema) is tried once
//! more, then stored as the error, never as data. Timeouts nest: one
//! request `analysis.timeout_ms` < the whole analysis
//! ([`AnalysisConfig::job_timeout`]) < the claim's lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use talky_actors::ids::{CallId, CampaignId, TenantId};
use talky_actors::ports::{PortError, PortResult};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{AnalysisConfig, ResponseFormat};
use super::prompt::{self, MAX_TOKENS};
use super::settings::AnalysisSettings;
use crate::db::analyses::{self, Claim, MAX_CLAIMS, Outcome};
use crate::db::calls::CallTurn;
use crate::db::{self};
use crate::providers::openai::OpenAiClient;
use crate::store::with_conn;

/// Analyses finished, by result (`done`, `error`, `deferred`: no LLM
/// answered, claimed again later; `lost`: the lease had passed to another
/// claimer when the result was ready).
pub const ANALYSES: &str = "talky_analysis_total";
/// Seconds one analysis took, claim to stored result.
pub const SECONDS: &str = "talky_analysis_seconds";
/// Analyses queued or running, all nodes (sampled by the workers).
pub const PENDING: &str = "talky_analysis_pending";
/// Tries of one analysis: the first and one retry.
pub const TRIES: usize = 2;
/// Each database step of a worker.
const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// Describes the metrics (their `# HELP` lines).
pub fn describe() {
    metrics::describe_counter!(
        ANALYSES,
        metrics::Unit::Count,
        "Post-call analyses finished, by result: done (stored), error (stored as an error after a retry), deferred (no LLM answered; claimed again later), lost (another claimer had taken it over)"
    );
    metrics::describe_histogram!(
        SECONDS,
        metrics::Unit::Seconds,
        "Time of one post-call analysis, from its claim to its stored result"
    );
    metrics::describe_gauge!(
        PENDING,
        metrics::Unit::Count,
        "Post-call analyses queued or running, on every node"
    );
}

/// One LLM of the analysis chain and how it is asked for JSON.
#[derive(Clone, Debug)]
pub struct Analyst {
    /// The client (its own breaker: analyses never open the live calls').
    pub client: OpenAiClient,
    /// `response_format` it is sent.
    pub format: ResponseFormat,
}

/// Asks `chain` (primary first) about one conversation: at most
/// [`TRIES`] tries; in each, the first provider that answers decides. An
/// invalid answer, or no provider answering, ends the try; after the last
/// the reason is the outcome's error. `Err`: no provider answered at all
/// (down, timed out, circuit open): nothing was judged, so the worker
/// defers the analysis rather than store an error. `ask(i, body)` asks
/// provider `i`.
pub async fn analyse<F, Fut>(
    formats: &[(String, ResponseFormat)],
    mut ask: F,
    model: &str,
    settings: &AnalysisSettings,
    turns: &[CallTurn],
) -> Result<Outcome, String>
where
    F: FnMut(usize, Value) -> Fut,
    Fut: Future<Output = PortResult<String>>,
{
    let mut last = String::from("no LLM configured");
    let mut answered = false;
    for _ in 0..TRIES {
        for (i, (name, format)) in formats.iter().enumerate() {
            let body = prompt::request_body(model, settings, turns, *format);
            match ask(i, body).await {
                Ok(content) => {
                    answered = true;
                    match prompt::parse_answer(&content, settings) {
                        Ok(a) => {
                            return Ok(Outcome::Done {
                                summary: a.summary,
                                structured_data: a.structured_data,
                                success: a.success,
                                provider: name.clone(),
                            });
                        }
                        Err(e) => last = format!("{name}: {e}"),
                    }
                    // It answered: this try is over.
                    break;
                }
                Err(e) => last = format!("{name}: {e}"),
            }
        }
    }
    if answered {
        Ok(Outcome::Error(last))
    } else {
        Err(last)
    }
}

/// How long an analysis no provider answered waits before its next claim
/// (`claims` so far): 10 s, doubling, at most 5 min.
pub fn defer_for(claims: i32) -> Duration {
    let doublings = claims.clamp(1, 6) - 1;
    Duration::from_secs(10 << doublings).min(Duration::from_secs(300))
}

/// A running worker pool; stops when [`AnalysisPool::stop`]ped or dropped.
pub struct AnalysisPool {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl AnalysisPool {
    /// Starts `cfg.workers` workers of `node` over `pool` (the live calls'
    /// pool, never the API's) and the chain.
    pub fn start(
        cfg: AnalysisConfig,
        pool: db::Pool,
        node: String,
        chain: Vec<Analyst>,
    ) -> AnalysisPool {
        describe();
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Worker {
            cfg: cfg.clone(),
            pool,
            node,
            chain,
        });
        let tasks = (0..cfg.workers)
            .map(|_| tokio::spawn(shared.clone().run(stopped.clone())))
            .collect();
        AnalysisPool { stop, tasks }
    }

    /// Stops the workers after their current analysis (an analysis cut
    /// short is claimed again once its lease lapses).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for AnalysisPool {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

struct Worker {
    cfg: AnalysisConfig,
    pool: db::Pool,
    node: String,
    chain: Vec<Analyst>,
}

impl Worker {
    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        while !*stopped.borrow() {
            let claimed = {
                let node = self.node.clone();
                let lease = chrono::Duration::from_std(self.cfg.lease())
                    .unwrap_or(chrono::Duration::minutes(5));
                with_conn(&self.pool, DB_TIMEOUT, async move |conn| {
                    let n = analyses::open_count(conn).await?;
                    metrics::gauge!(PENDING).set(n as f64);
                    analyses::claim(conn, &node, Utc::now(), lease).await
                })
                .await
            };
            match claimed {
                Ok(Some(claim)) => self.process(claim).await,
                Ok(None) => {
                    let _ = tokio::time::timeout(self.cfg.poll(), stopped.changed()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "analysis queue not read");
                    let _ = tokio::time::timeout(self.cfg.poll(), stopped.changed()).await;
                }
            }
        }
    }

    async fn process(&self, claim: Claim) {
        let started = Instant::now();
        let tenant = TenantId(claim.tenant_id);
        let call = CallId(claim.call_id);
        let verdict = if claim.claims > MAX_CLAIMS {
            Ok(Outcome::Error(format!(
                "given up after {MAX_CLAIMS} claims whose workers did not finish"
            )))
        } else {
            match tokio::time::timeout(self.cfg.job_timeout(), self.run_one(&claim)).await {
                Ok(verdict) => verdict,
                Err(_) => Err(format!(
                    "timed out after {} ms",
                    self.cfg.job_timeout().as_millis()
                )),
            }
        };
        let outcome = match verdict {
            Ok(outcome) => outcome,
            Err(why) if claim.claims < MAX_CLAIMS => {
                // Nothing was judged (no provider answered): try later
                // rather than store an error a working model would not
                // have given.
                let node = self.node.clone();
                let until = Utc::now()
                    + chrono::Duration::from_std(defer_for(claim.claims))
                        .unwrap_or(chrono::Duration::seconds(10));
                let released = with_conn(&self.pool, DB_TIMEOUT, async move |conn| {
                    analyses::release(conn, tenant, call, &node, until).await
                })
                .await;
                tracing::info!(call.id = %call, error = %why, released = released.is_ok(), "analysis deferred: no LLM answered");
                metrics::counter!(ANALYSES, "result" => "deferred").increment(1);
                return;
            }
            Err(why) => Outcome::Error(format!(
                "no LLM answered in {MAX_CLAIMS} claims; last: {why}"
            )),
        };
        let node = self.node.clone();
        let stored = with_conn(&self.pool, DB_TIMEOUT, async move |conn| {
            analyses::store(conn, tenant, call, &node, &outcome, Utc::now())
                .await
                .map(|stored| (stored, outcome))
        })
        .await;
        let result = match &stored {
            Ok((true, Outcome::Done { .. })) => "done",
            Ok((true, Outcome::Error(e))) => {
                tracing::info!(call.id = %call, error = %e, "analysis failed; stored as an error");
                "error"
            }
            Ok((false, _)) => "lost",
            Err(e) => {
                // The lease lapses and another claim retries it.
                tracing::warn!(call.id = %call, error = %e, "analysis result not stored");
                "lost"
            }
        };
        metrics::counter!(ANALYSES, "result" => result).increment(1);
        metrics::histogram!(SECONDS).record(started.elapsed().as_secs_f64());
    }

    /// Reads what the analysis needs and asks the chain.
    async fn run_one(&self, claim: &Claim) -> Result<Outcome, String> {
        let tenant = TenantId(claim.tenant_id);
        let call = CallId(claim.call_id);
        let campaign = CampaignId(claim.campaign_id);
        let read = with_conn(&self.pool, DB_TIMEOUT, async move |conn| {
            let c = db::campaigns::get(conn, tenant, campaign).await?;
            let turns = db::calls::turns(conn, tenant, call).await?;
            Ok((c, turns))
        })
        .await;
        let (campaign, turns) = match read {
            Ok((Some(c), turns)) => (c, turns),
            Ok((None, _)) => return Ok(Outcome::Error("the campaign is gone".into())),
            Err(e) => return Err(format!("not read: {e}")),
        };
        let Some(settings) = campaign.analysis() else {
            return Ok(Outcome::Error(
                "the campaign has no analysis settings".into(),
            ));
        };
        let formats: Vec<(String, ResponseFormat)> = self
            .chain
            .iter()
            .map(|a| (a.client.name().to_string(), a.format))
            .collect();
        let timeout = self.cfg.request_timeout();
        let chain = &self.chain;
        analyse(
            &formats,
            |i, body| async move {
                match chain.get(i) {
                    Some(a) => a.client.complete(body, MAX_TOKENS, timeout).await,
                    None => Err(PortError::Rejected("no such provider".into())),
                }
            },
            &campaign.llm_model,
            &settings,
            &turns,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::json;

    use super::*;

    fn settings() -> AnalysisSettings {
        AnalysisSettings {
            summary_prompt: None,
            structured_data_schema: Some(json!({"type": "object",
                "properties": {"interested": {"type": "boolean"}}, "required": ["interested"]})),
            success_rubric: None,
        }
    }

    fn two() -> Vec<(String, ResponseFormat)> {
        vec![
            ("llm".into(), ResponseFormat::JsonObject),
            ("llm_fallback".into(), ResponseFormat::JsonSchema),
        ]
    }

    /// Runs [`analyse`] against scripted answers; returns the outcome and
    /// which provider each request went to.
    fn run(script: Vec<PortResult<&str>>) -> (Result<Outcome, String>, Vec<usize>) {
        let asked = RefCell::new(Vec::new());
        let script = RefCell::new(script.into_iter());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let outcome = rt.block_on(analyse(
            &two(),
            |i, body| {
                asked.borrow_mut().push(i);
                // Each request names the format of the provider it goes to.
                let expected = if i == 0 { "json_object" } else { "json_schema" };
                assert_eq!(body["response_format"]["type"], expected);
                let next = script.borrow_mut().next();
                async move {
                    next.unwrap_or_else(|| Err(PortError::Unavailable("script ended".into())))
                        .map(str::to_string)
                }
            },
            "m",
            &settings(),
            &[],
        ));
        (outcome, asked.into_inner())
    }

    const GOOD: &str = r#"{"summary":"s","structured_data":{"interested":true},"success":null}"#;

    #[test]
    fn unanswered_analyses_wait_longer_each_claim() {
        assert_eq!(defer_for(1), Duration::from_secs(10));
        assert_eq!(defer_for(2), Duration::from_secs(20));
        assert_eq!(defer_for(MAX_CLAIMS), Duration::from_secs(160));
        assert_eq!(defer_for(50), Duration::from_secs(300));
    }

    #[test]
    fn a_valid_answer_is_stored_at_once() {
        let (o, asked) = run(vec![Ok(GOOD)]);
        assert!(
            matches!(o, Ok(Outcome::Done { ref provider, .. }) if provider == "llm"),
            "{o:?}"
        );
        assert_eq!(asked, [0]);
    }

    #[test]
    fn an_invalid_answer_is_retried_once_then_stored_as_the_error() {
        let (o, asked) = run(vec![
            Ok("{oops"),
            Ok(r#"{"summary":"s","structured_data":{"interested":"yes"}}"#),
        ]);
        match o {
            Ok(Outcome::Error(e)) => assert!(e.contains("does not match"), "{e}"),
            other => panic!("{other:?}"),
        }
        // An answer ends a try: the fallback is not asked for a bad one.
        assert_eq!(asked, [0, 0]);
        let (o, asked) = run(vec![Ok("{oops"), Ok(GOOD)]);
        assert!(matches!(o, Ok(Outcome::Done { .. })), "{o:?}");
        assert_eq!(asked, [0, 0]);
    }

    #[test]
    fn a_failing_primary_hands_the_try_to_the_fallback() {
        let (o, asked) = run(vec![Err(PortError::Unavailable("down".into())), Ok(GOOD)]);
        assert!(
            matches!(o, Ok(Outcome::Done { ref provider, .. }) if provider == "llm_fallback"),
            "{o:?}"
        );
        assert_eq!(asked, [0, 1]);
        let (o, asked) = run(vec![]);
        assert!(
            matches!(o, Err(ref e) if e.contains("llm_fallback")),
            "{o:?}"
        );
        assert_eq!(asked, [0, 1, 0, 1]);
    }
}
