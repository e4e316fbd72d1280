//! Process lifetime, with real processes (like `load_smoke`): `talky-sim
//! sim` and one or two `talky serve` on one database and one Redis prefix.
//! SIGTERM drains, kill -9 is reconciled on restart, a second node takes
//! over a dead one's campaign; in each of these the campaign completes,
//! each contact ends terminal, no call row is left unfinished, and the
//! emulator's legs are exactly the call rows with a provider id. A second
//! SIGTERM cuts the drain's wait short, its live calls still recorded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use talky_sim::loadtest::procs::{self, Proc};
use talky_sim::process::SimUrls;
use talky_sim::vonage::CallBrief;

use crate::support::{TALKY_BINARY as BINARY, TestDb, eventually, redis_url, sim_binary};

/// The tests that run whole `talky-sim sim` + `talky serve` processes take
/// turns: several at once on a 2-core machine starve the timing-sensitive
/// tests running beside them (recordings, personas).
pub static PROCESSES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Contacts per campaign and calls at once.
const CONTACTS: usize = 6;
const AT_ONCE: usize = 3;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/providers/vonage/testdata")
}

/// The emulators, a database and the settings every `talky serve` of a
/// test shares.
pub struct World {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    dir: PathBuf,
    _db: TestDb,
    sim: Option<Proc>,
    urls: SimUrls,
    env: Vec<(String, String)>,
    key: String,
    /// Every node's admin token (the supervisor view).
    admin: String,
    /// Every node's Redis key prefix.
    prefix: String,
    http: reqwest::Client,
    /// Contacts uploaded, by campaign id.
    uploaded: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One `talky serve` process.
pub struct Node {
    proc: Option<Proc>,
    base: String,
    pid: u32,
    /// Its node id (`redis.node_id`): in leases and on its calls.
    pub id: String,
}

impl World {
    pub async fn new(sim_flags: &[&str]) -> World {
        let turn = PROCESSES.lock().await;
        let db = TestDb::new().await;
        let dir = std::env::temp_dir().join(format!("talky-lifetime-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut args: Vec<String> = vec![
            "--public-key-file".into(),
            testdata().join("test_public.pem").display().to_string(),
        ];
        args.extend(sim_flags.iter().map(|s| s.to_string()));
        let (sim, urls) = procs::start_sim(&sim_binary(), &dir, &args)
            .await
            .expect("talky-sim sim");
        let mut env: Vec<(String, String)> = urls.env.clone().into_iter().collect();
        let prefix = format!("talky-life:{}:", uuid::Uuid::new_v4());
        let admin = format!("admin-{}", uuid::Uuid::new_v4());
        env.extend(
            [
                ("DATABASE_URL", db.url.clone()),
                ("REDIS_URL", redis_url()),
                ("TALKY_REDIS__KEY_PREFIX", prefix.clone()),
                ("TALKY_ADMIN_TOKEN", admin.clone()),
                ("TALKY_REDIS__LEASE_TTL_MS", "3000".into()),
                ("TALKY_REDIS__SLOT_TTL_MS", "6000".into()),
                ("TALKY_LOG__FILTER", "info".into()),
                (
                    "TALKY_PROVIDERS__VONAGE__PRIVATE_KEY_FILE",
                    testdata().join("test_private.pem").display().to_string(),
                ),
                ("TALKY_DIALER__CAMPAIGN_TICK_MS", "200".into()),
                ("TALKY_SERVER__DRAIN_SECS", "2".into()),
                ("TALKY_DATABASE__POOL_SIZE", "6".into()),
                // Shared by every node, as in production: any node verifies
                // the callback URLs of any other's calls.
                (
                    "TALKY_VONAGE__CALLBACK_KEY",
                    format!("life-{}", uuid::Uuid::new_v4()),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        let tenant = procs::run_cli(
            Path::new(BINARY),
            &dir,
            &env,
            &["tenant", "create", "life", "--json"],
        )
        .await
        .expect("tenant");
        let tenant: Value = serde_json::from_str(tenant.trim()).expect("tenant json");
        World {
            _turn: turn,
            key: tenant["api_key"].as_str().expect("key").to_string(),
            admin,
            prefix,
            dir,
            _db: db,
            sim: Some(sim),
            urls,
            env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            uploaded: Default::default(),
        }
    }

    /// Starts `talky serve` named `name` (its log in `<dir>/<name>/`).
    pub async fn serve(&self, name: &str) -> Node {
        let port = procs::free_port().expect("port");
        let base = format!("http://127.0.0.1:{port}");
        let mut env = self.env.clone();
        env.push(("TALKY_LISTEN".into(), format!("127.0.0.1:{port}")));
        env.push(("TALKY_PUBLIC_URL".into(), base.clone()));
        let id = format!("{name}-{port}");
        env.push(("TALKY_REDIS__NODE_ID".into(), id.clone()));
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let proc = procs::start_serve(Path::new(BINARY), &dir, &env).expect("talky serve");
        let pid = proc.pid().expect("pid");
        let node = Node {
            proc: Some(proc),
            base,
            pid,
            id,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(node.url("/health/ready")).send().await
                && r.status() == 200
            {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became ready; see {dir:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One REST call; a 503 (a dependency just came back) or a 429 (a
    /// test polling fast) is retried for up to 20 s, as a client would.
    pub async fn api(
        &self,
        node: &Node,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut req = self
                .http
                .request(method.clone(), node.url(path))
                .bearer_auth(&self.key);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let res = req.send().await.expect("request");
            let status = res.status();
            let v: Value = res.json().await.unwrap_or(Value::Null);
            if (status == 503 || status == 429) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            assert!(status.is_success(), "{method} {path}: {status} {v}");
            return v;
        }
    }

    /// A running campaign of [`CONTACTS`] interested callees, [`AT_ONCE`]
    /// at a time, three attempts: contacts wait while calls are live.
    pub async fn campaign(&self, node: &Node) -> String {
        self.campaign_of(node, CONTACTS).await
    }

    /// A running campaign of [`AT_ONCE`] interested callees, all dialled
    /// at once: what a stop or crash interrupts is retried in one wave.
    pub async fn live_campaign(&self, node: &Node) -> String {
        self.campaign_of(node, AT_ONCE).await
    }

    async fn campaign_of(&self, node: &Node, contacts: usize) -> String {
        self.campaign_with(
            node,
            json!({"max_attempts": 3, "retry_backoff_secs": 1, "max_concurrent_calls": AT_ONCE}),
            contacts,
        )
        .await
    }

    /// A running campaign of `contacts` interested callees, its settings
    /// overridden by the fields of `settings`.
    pub async fn campaign_with(&self, node: &Node, settings: Value, contacts: usize) -> String {
        let mut body = json!({
            "name": "lifetime",
            "caller_id": "+14155550100",
            "agent": {"system_prompt": "You are a polite assistant.", "greeting": "Hello, this is Ada."},
            "calling_window": {"start": "00:00", "end": "23:59",
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        });
        if let (Some(body), Some(settings)) = (body.as_object_mut(), settings.as_object()) {
            body.extend(settings.clone());
        }
        let c = self
            .api(node, reqwest::Method::POST, "/api/v1/campaigns", Some(body))
            .await;
        let id = c["id"].as_str().expect("id").to_string();
        let list: Vec<Value> = (0..contacts)
            .map(|i| json!({"phone": format!("+1212{:07}", 3_000_000 + i), "timezone": "America/New_York"}))
            .collect();
        let r = self
            .api(
                node,
                reqwest::Method::POST,
                &format!("/api/v1/campaigns/{id}/contacts"),
                Some(Value::Array(list)),
            )
            .await;
        assert_eq!(r["accepted"], contacts, "{r}");
        self.uploaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), contacts);
        self.api(
            node,
            reqwest::Method::POST,
            &format!("/api/v1/campaigns/{id}/start"),
            Some(json!({})),
        )
        .await;
        id
    }

    pub async fn calls(&self, node: &Node, campaign: &str) -> Vec<Value> {
        let v = self
            .api(
                node,
                reqwest::Method::GET,
                &format!("/api/v1/calls?campaign_id={campaign}&limit=100"),
                None,
            )
            .await;
        v["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn contacts(&self, node: &Node, campaign: &str) -> Vec<Value> {
        let v = self
            .api(
                node,
                reqwest::Method::GET,
                &format!("/api/v1/campaigns/{campaign}/contacts?limit=100"),
                None,
            )
            .await;
        v["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn legs(&self) -> Vec<CallBrief> {
        let url = self.urls.stats_url.replace("/stats", "/stats/calls");
        self.http
            .get(url)
            .send()
            .await
            .expect("sim calls")
            .json()
            .await
            .expect("sim calls json")
    }

    /// Waits until `n` calls of the campaign are in conversation.
    pub async fn wait_conversations(&self, node: &Node, campaign: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let live = self
                .calls(node, campaign)
                .await
                .iter()
                .filter(|c| c["status"] == "conversation")
                .count();
            if live >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {live} calls in conversation"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the node answers `/health/ready` with 503: it took the
    /// signal and drains (it still serves HTTP).
    pub async fn wait_draining(&self, node: &Node) {
        eventually(
            "talky serve draining (/health/ready 503)",
            Duration::from_secs(10),
            || async {
                let r = self.http.get(node.url("/health/ready")).send().await.ok()?;
                (r.status() == 503).then_some(())
            },
        )
        .await;
    }

    /// The stored rows of these calls, read from the database itself (no
    /// `talky serve` needed: a new one would reconcile what it finds).
    pub async fn call_rows(&self, ids: &[String]) -> Vec<talky::db::calls::Call> {
        let mut conn = self._db.conn().await;
        let mut rows = Vec::new();
        for id in ids {
            let id = talky_actors::ids::CallId(uuid::Uuid::parse_str(id).expect("call id"));
            let row = talky::db::calls::get_unscoped(&mut conn, id)
                .await
                .expect("read call")
                .unwrap_or_else(|| panic!("call {id} has no row"));
            rows.push(row);
        }
        rows
    }

    /// The id of the node holding the campaign's lease, as Redis has it.
    pub async fn lease_holder(&self, campaign: &str) -> Option<String> {
        let config = talky::config::RedisConfig::default();
        let keys = talky::redis::Keys {
            pool: talky::redis::pool(&redis_url(), &config).expect("redis pool"),
            prefix: self.prefix.clone(),
            timeout: Duration::from_secs(2),
        };
        let mut get = redis::cmd("GET");
        get.arg(keys.key(&format!("lease:campaign:{campaign}")));
        keys.cmd(get).await.expect("redis GET")
    }

    /// The lifecycle state of the campaign's actor on `node` (the
    /// supervisor view); `None` when no actor runs it there.
    pub async fn actor_state(&self, node: &Node, campaign: &str) -> Option<String> {
        let tree: Value = self
            .http
            .get(node.url("/api/v1/supervisor/actors"))
            .bearer_auth(&self.admin)
            .send()
            .await
            .expect("supervisor view")
            .json()
            .await
            .expect("supervisor json");
        tree["campaigns"]
            .as_array()?
            .iter()
            .find(|c| c["campaign"] == campaign)
            .and_then(|c| c["state"].as_str().map(str::to_string))
    }

    /// The test database's URL.
    /// Every node's admin token.
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// The tenant's API key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The working directory of the nodes named `name`.
    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn database_url(&self) -> String {
        self._db.url.clone()
    }

    /// Sets (or replaces) a variable of the next `talky serve`.
    pub fn set_env(&mut self, key: &str, value: String) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value));
    }

    /// Waits until the campaign is `completed`.
    pub async fn wait_completed(&self, node: &Node, campaign: &str, within: Duration) {
        self.wait_campaign_state(node, campaign, "completed", within)
            .await
    }

    /// Waits until the campaign is in `state`.
    pub async fn wait_campaign_state(
        &self,
        node: &Node,
        campaign: &str,
        state: &str,
        within: Duration,
    ) {
        let deadline = Instant::now() + within;
        loop {
            let c = self
                .api(
                    node,
                    reqwest::Method::GET,
                    &format!("/api/v1/campaigns/{campaign}"),
                    None,
                )
                .await;
            if c["state"] == state {
                return;
            }
            if Instant::now() >= deadline {
                let calls = self.calls(node, campaign).await;
                let contacts = self.contacts(node, campaign).await;
                panic!(
                    "campaign {} after {within:?}\ncalls: {calls:#?}\ncontacts: {contacts:#?}\nlogs in {:?}",
                    c["state"], self.dir
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The invariants every ending must keep.
    pub async fn check_invariants(&self, node: &Node, campaign: &str) {
        let calls = self.calls(node, campaign).await;
        let contacts = self.contacts(node, campaign).await;
        let uploaded = self
            .uploaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(campaign)
            .copied();
        assert_eq!(Some(contacts.len()), uploaded, "every contact listed");
        for c in &contacts {
            assert_eq!(c["status"], "completed", "every contact done: {c}");
        }
        for call in &calls {
            assert_eq!(
                call["status"], "finished",
                "no call left unfinished: {call}"
            );
            assert!(
                call["outcome"].is_string(),
                "every call has an outcome: {call}"
            );
        }
        // One completed call per contact: none dialled again after it.
        for c in &contacts {
            let mine: Vec<&Value> = calls
                .iter()
                .filter(|k| k["contact_id"] == c["id"])
                .collect();
            let completed = mine.iter().filter(|k| k["outcome"] == "completed").count();
            assert_eq!(
                completed, 1,
                "one completed call for {}: {mine:#?}",
                c["id"]
            );
            let last = mine
                .iter()
                .map(|k| k["attempt"].as_i64().unwrap_or(0))
                .max();
            let done_at = mine
                .iter()
                .find(|k| k["outcome"] == "completed")
                .and_then(|k| k["attempt"].as_i64());
            assert_eq!(
                last, done_at,
                "nothing dialled after the completed call: {mine:#?}"
            );
        }
        // The emulator's legs are exactly the call rows with a provider id.
        let legs = self.legs().await;
        let mut with_id: Vec<String> = calls
            .iter()
            .filter_map(|c| c["provider_call_id"].as_str().map(str::to_string))
            .collect();
        with_id.sort();
        let mut leg_ids: Vec<String> = legs.iter().map(|l| l.uuid.clone()).collect();
        leg_ids.sort();
        assert_eq!(leg_ids, with_id, "legs: {legs:#?}\ncalls: {calls:#?}");
        for leg in &legs {
            assert!(leg.ended, "no leg left up: {leg:?}");
        }
    }

    pub async fn finish(mut self, nodes: Vec<Node>) {
        for mut n in nodes {
            if let Some(p) = n.proc.take() {
                p.stop(Duration::from_secs(30)).await;
            }
        }
        if let Some(sim) = self.sim.take() {
            sim.stop(Duration::from_secs(5)).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill {sig} {}", self.pid);
    }

    /// Waits for the process to exit; its status.
    pub async fn exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let proc = self.proc.as_mut().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = proc.exited() {
                self.proc = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "talky serve did not exit in {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_live_calls_and_a_restart_completes_the_campaign() {
    let world = World::new(&[]).await;
    let mut a = world.serve("a").await;
    let campaign = world.live_campaign(&a).await;
    world.wait_conversations(&a, &campaign, AT_ONCE).await;
    a.signal("-TERM");
    // Draining: not ready, yet still serving the calls' callbacks.
    world.wait_draining(&a).await;
    let status = a.exit(Duration::from_secs(45)).await;
    assert!(status.success(), "a drained stop exits 0: {status:?}");
    // Every call of the first process has an outcome; the interrupted
    // ones were ended by talky, politely, and recorded for a retry.
    let b = world.serve("b").await;
    let calls = world.calls(&b, &campaign).await;
    assert!(calls.len() >= AT_ONCE, "{calls:#?}");
    let interrupted: Vec<&Value> = calls
        .iter()
        .filter(|c| c["outcome"] == "interrupted")
        .collect();
    assert!(
        !interrupted.is_empty(),
        "the live calls were interrupted: {calls:#?}"
    );
    for c in &interrupted {
        assert!(
            c["hangup_reason"].as_str().is_some(),
            "an interrupted call says why: {c}"
        );
    }
    world
        .wait_completed(&b, &campaign, Duration::from_secs(120))
        .await;
    world.check_invariants(&b, &campaign).await;
    world.finish(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_skips_the_drain_wait_and_the_live_calls_end_interrupted() {
    // Callees that never speak: talky keeps each call up through its
    // reprompts (tens of seconds), and the drain would wait a minute for
    // them. Only the second signal can end them soon.
    let mut world = World::new(&["--default-persona", "silent"]).await;
    world.set_env("TALKY_SERVER__DRAIN_SECS", "60".into());
    let mut a = world.serve("a").await;
    let campaign = world.live_campaign(&a).await;
    world.wait_conversations(&a, &campaign, AT_ONCE).await;
    let live: Vec<String> = world
        .calls(&a, &campaign)
        .await
        .iter()
        .filter(|c| c["status"] == "conversation")
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    assert!(live.len() >= AT_ONCE, "{live:?}");
    a.signal("-TERM");
    world.wait_draining(&a).await;
    a.signal("-TERM");
    // Well before `drain_secs` (60 s), and before the calls' own end
    // (their reprompts alone last longer): the polite goodbye (at most
    // 8 s) and the last writes.
    let status = a.exit(Duration::from_secs(20)).await;
    assert!(status.success(), "a drained stop exits 0: {status:?}");
    for row in world.call_rows(&live).await {
        assert_eq!(row.status, "finished", "{row:?}");
        assert_eq!(
            row.outcome.as_deref(),
            Some("interrupted"),
            "a live call ended by the stop is recorded interrupted: {row:?}"
        );
        assert!(row.hangup_reason.is_some(), "it says why: {row:?}");
    }
    // talky hung each of their legs up itself (the emulator notes it as
    // the leg's task ends).
    let ids: Vec<String> = world
        .call_rows(&live)
        .await
        .iter()
        .map(|r| r.provider_call_id.clone().expect("a placed call has a leg"))
        .collect();
    eventually(
        "the live calls' legs hung up by talky",
        Duration::from_secs(10),
        || async {
            let legs = world.legs().await;
            ids.iter()
                .all(|id| {
                    legs.iter()
                        .any(|l| &l.uuid == id && l.ended && l.hung_up_by_talky)
                })
                .then_some(())
        },
    )
    .await;
    world.finish(vec![a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_campaign_is_reconciled_and_the_campaign_completes() {
    let world = World::new(&[]).await;
    let mut a = world.serve("a").await;
    let campaign = world.live_campaign(&a).await;
    world.wait_conversations(&a, &campaign, AT_ONCE).await;
    a.signal("-KILL");
    let status = a.exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    let b = world.serve("b").await;
    world
        .wait_completed(&b, &campaign, Duration::from_secs(150))
        .await;
    world.check_invariants(&b, &campaign).await;
    let calls = world.calls(&b, &campaign).await;
    assert!(
        calls.iter().any(|c| c["outcome"] == "interrupted"),
        "the dead process's calls were reconciled as interrupted: {calls:#?}"
    );
    world.finish(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_takes_over_a_dead_nodes_campaign() {
    let world = World::new(&[]).await;
    let mut a = world.serve("a").await;
    let b = world.serve("b").await;
    let campaign = world.live_campaign(&a).await;
    world.wait_conversations(&a, &campaign, AT_ONCE).await;
    a.signal("-KILL");
    let _ = a.exit(Duration::from_secs(10)).await;
    world
        .wait_completed(&b, &campaign, Duration::from_secs(150))
        .await;
    world.check_invariants(&b, &campaign).await;
    world.finish(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_call_answered_after_the_client_timeout_is_one_leg() {
    // The emulator starts every call at once but answers the create-call
    // 12 s later, past the client's 10 s: talky must learn each call's id
    // from its webhooks and never dial the contact again meanwhile.
    let world = World::new(&["--create-response-delay-ms", "12000"]).await;
    let a = world.serve("a").await;
    let campaign = world.live_campaign(&a).await;
    world
        .wait_completed(&a, &campaign, Duration::from_secs(150))
        .await;
    world.check_invariants(&a, &campaign).await;
    let legs = world.legs().await;
    assert_eq!(
        legs.len(),
        AT_ONCE,
        "exactly one leg per contact: {legs:#?}"
    );
    world.finish(vec![a]).await;
}
