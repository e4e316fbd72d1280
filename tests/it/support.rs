//! Test support: a fresh PostgreSQL database per test, cloned from a
//! template migrated once per migration set, and the real server on
//! 127.0.0.1:0.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use talky::app::Server;
use talky::config::{Config, Secret};
use tokio::sync::OnceCell;

/// The server every test talks to, plus what it needs to talk.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client.
    pub client: reqwest::Client,
    /// The admin token this server accepts.
    pub admin_token: String,
    /// Its database (dropped with the app).
    pub db: TestDb,
    server: Option<Server>,
}

/// A database of one test.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

pub fn base_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://talky:talky@127.0.0.1:5432/talky".to_string())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string())
}

/// The same server with another database name.
pub fn url_for(db: &str) -> String {
    let base = base_url();
    let (main, query) = match base.split_once('?') {
        Some((m, q)) => (m.to_string(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let (server, _) = main
        .rsplit_once('/')
        .expect("DATABASE_URL has a database name");
    format!("{server}/{db}{query}")
}

fn migrations_hash() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    let mut hasher = Sha256::new();
    for path in entries {
        // Relative: checkouts in other folders share the template instead
        // of dropping each other's as stale.
        let name = path.strip_prefix(&dir).unwrap_or(&path);
        hasher.update(name.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&path).expect("read migration"));
    }
    let digest = hasher.finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("migrations dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn admin_conn() -> AsyncPgConnection {
    AsyncPgConnection::establish(&base_url())
        .await
        .expect("connect to DATABASE_URL (run `make services`)")
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) -> Result<usize, diesel::result::Error> {
    diesel::sql_query(sql).execute(conn).await
}

#[derive(diesel::QueryableByName)]
struct DbName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
/// Templates of other migration sets kept (see [`template`]).
const KEEP_OTHER_TEMPLATES: usize = 4;
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The migrated template's name; built once per migration set, under an
/// advisory lock so parallel test processes do not race.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("talky_tpl_{}", migrations_hash());
            let mut conn = admin_conn().await;
            exec(&mut conn, "SELECT pg_advisory_lock(827364)").await.expect("lock");
            // Newest first (database OIDs grow with creation).
            let existing: Vec<DbName> = diesel::sql_query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'talky_tpl_%' OR datname LIKE 'talky_t_%' ORDER BY oid DESC",
            )
            .load(&mut conn)
            .await
            .expect("list databases");
            // Templates of other migration sets may be in use by another
            // checkout's tests running now: keep the newest few, drop the
            // older ones.
            let mut other_templates = 0;
            for db in &existing {
                let other_template = db.datname.starts_with("talky_tpl_") && db.datname != name;
                other_templates += usize::from(other_template);
                let stale_template = other_template && other_templates > KEEP_OTHER_TEMPLATES;
                let dead_test = db
                    .datname
                    .strip_prefix("talky_t_")
                    .and_then(|rest| rest.split('_').next())
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
                if stale_template || dead_test {
                    let _ = exec(&mut conn, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", db.datname)).await;
                }
            }
            if !existing.iter().any(|d| d.datname == name) {
                build_template(&mut conn, &name).await;
            }
            exec(&mut conn, "SELECT pg_advisory_unlock(827364)").await.expect("unlock");
            name
        })
        .await
}

/// Migrates a fresh database and publishes it as template `name`; the
/// caller holds the advisory lock.
async fn build_template(conn: &mut AsyncPgConnection, name: &str) {
    let building = format!("{name}_build");
    exec(
        conn,
        &format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
    )
    .await
    .expect("drop half-built template");
    exec(conn, &format!("CREATE DATABASE \"{building}\""))
        .await
        .expect("create template");
    talky::db::migrate(&url_for(&building))
        .await
        .expect("migrate template");
    // The migration connection may linger a moment; rename
    // needs the database idle.
    for attempt in 0.. {
        match exec(
            conn,
            &format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""),
        )
        .await
        {
            Ok(_) => break,
            Err(e) if attempt < 50 => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("publish template: {e}"),
        }
    }
}

/// Builds template `name` again if it is gone (an older checkout's test
/// run may have dropped it meanwhile).
async fn rebuild_template(name: &str) {
    let mut conn = admin_conn().await;
    exec(&mut conn, "SELECT pg_advisory_lock(827364)")
        .await
        .expect("lock");
    let existing: Vec<DbName> = diesel::sql_query(format!(
        "SELECT datname FROM pg_database WHERE datname = '{name}'"
    ))
    .load(&mut conn)
    .await
    .expect("list databases");
    if existing.is_empty() {
        build_template(&mut conn, name).await;
    }
    exec(&mut conn, "SELECT pg_advisory_unlock(827364)")
        .await
        .expect("unlock");
}

impl TestDb {
    /// A fresh, migrated database for one test.
    pub async fn new() -> TestDb {
        let template = template().await;
        let name = format!(
            "talky_t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = admin_conn().await;
        for attempt in 0.. {
            match exec(
                &mut conn,
                &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
            )
            .await
            {
                Ok(_) => break,
                Err(e) if e.to_string().contains("does not exist") && attempt < 100 => {
                    rebuild_template(template).await;
                }
                // "source database is being accessed by other users":
                // another test's CREATE holds it for a moment.
                Err(_) if attempt < 100 => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("create test database: {e}"),
            }
        }
        TestDb {
            url: url_for(&name),
            name,
        }
    }

    /// A connection to this test's database.
    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect test db")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a
        // thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&base_url()).await {
                    let _ = exec(
                        &mut conn,
                        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

/// A config for a test server on its own database.
pub fn test_config(db_url: &str) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.database.url = Secret::new(db_url);
    config.redis.url = Secret::new(redis_url());
    config.redis.key_prefix = format!("talky-test:{}:", uuid::Uuid::new_v4());
    // Each server its own node, as separate processes are.
    config.redis.node_id = Some(format!("test-{}", uuid::Uuid::new_v4()));
    config.admin.token = Secret::new(format!("admin-{}", uuid::Uuid::new_v4()));
    config.database.pool_size = 4;
    config.database.live_pool_size = 4;
    // Each server its own recordings: a start encodes every spool found.
    config.recordings.dir =
        std::env::temp_dir().join(format!("talky-rec-{}", uuid::Uuid::now_v7()));
    config
}

impl TestApp {
    /// A server with default settings.
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// A server with adjusted settings.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new().await;
        let mut config = test_config(&db.url);
        adjust(&mut config);
        let admin_token = config.admin.token.expose().to_string();
        let server = Server::start(config).await.expect("server starts");
        TestApp {
            base: format!("http://{}", server.addr),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()
                .expect("client"),
            admin_token,
            db,
            server: Some(server),
        }
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// The server's PostgreSQL pool.
    pub fn pool(&self) -> talky::db::Pool {
        self.server.as_ref().expect("running").ctx.db.clone()
    }

    /// The server's live-call pool (stores, dialer, reconciler, webhooks).
    pub fn live_pool(&self) -> talky::db::Pool {
        self.server.as_ref().expect("running").ctx.live_db.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The callback key of a call's Vonage URLs on this server.
    pub fn callback_key(&self, call: &str) -> String {
        talky::providers::vonage::CallbackKey::from_config(&self.server().ctx.config.vonage)
            .for_call(call)
    }

    /// A call's event webhook path: `/vonage/events/{call}/{key}`.
    pub fn events_path(&self, call: &str) -> String {
        format!("/vonage/events/{call}/{}", self.callback_key(call))
    }

    /// Creates a tenant; returns (tenant id, API key).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        let res = self
            .client
            .post(self.url("/api/v1/admin/tenants"))
            .bearer_auth(&self.admin_token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("json");
        (
            body["tenant"]["id"].as_str().expect("id").to_string(),
            body["api_key"]["secret"]
                .as_str()
                .expect("secret")
                .to_string(),
        )
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        decode(res).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        decode(res).await
    }

    pub async fn post_empty(&self, path: &str, key: &str) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        decode(res).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let res = self
            .client
            .patch(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        decode(res).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (u16, Value) {
        let res = self
            .client
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        decode(res).await
    }

    pub async fn upload(
        &self,
        path: &str,
        key: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        decode(res).await
    }

    /// A valid campaign; returns its id.
    pub async fn campaign(&self, key: &str, name: &str) -> String {
        let (status, body) = self
            .post("/api/v1/campaigns", key, &campaign_body(name))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// A dial intent for one contact (+14155550123) uploaded to
    /// `campaign`, as the dialer writes it before placing the call:
    /// (call id, the intent's media token).
    pub async fn dial_intent(&self, key: &str, tenant: &str, campaign: &str) -> (String, String) {
        use talky_actors::dialer::{DialRequest, DialStore};
        let (_, report) = self
            .upload(
                &format!("/api/v1/campaigns/{campaign}/contacts"),
                key,
                "text/csv",
                "phone\n+14155550123\n",
            )
            .await;
        assert_eq!(report["accepted"], 1, "{report}");
        let (_, page) = self
            .get(&format!("/api/v1/campaigns/{campaign}/contacts"), key)
            .await;
        let contact = page["items"][0]["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("contact");
        let store = talky::store::PgDialStore {
            pool: self.pool(),
            timeout: Duration::from_secs(5),
            node: "test-node".into(),
        };
        let intent = store
            .create_intent(&DialRequest {
                place_by: None,
                tenant: tenant.parse().expect("tenant"),
                campaign: campaign.parse().expect("campaign"),
                contact,
                phone: "+14155550123".into(),
                attempt: 1,
            })
            .await
            .expect("intent");
        (intent.call.to_string(), intent.media_token)
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

pub fn campaign_body(name: &str) -> Value {
    json!({
        "name": name,
        "caller_id": "+14155550100",
        "agent": { "system_prompt": "You are a polite assistant.", "greeting": "Hello, this is Ada." }
    })
}

/// Status and JSON body; asserts that errors are problem+json.
pub async fn decode(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = res.bytes().await.expect("body");
    if status >= 400 {
        assert_eq!(
            content_type,
            "application/problem+json",
            "status {status}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let problem: Value = serde_json::from_slice(&bytes).expect("problem json");
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{problem}"
        );
        assert!(problem["type"].as_str().is_some(), "{problem}");
        return (status, problem);
    }
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    (status, serde_json::from_slice(&bytes).expect("json body"))
}

/// Polls `check` every 20 ms until it returns `Some`, for at most
/// `within`; its value and how long it took. Panics naming `what` when
/// the deadline passes: a test proves "happens" with a deadline, never
/// with a sleep that guesses how long it takes.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 20 ms for `during` and panics naming `what` the
/// first time it fails: how a test shows that something does not happen
/// (say, no dial after a pause) over a window it names, as
/// [`eventually`] shows that something does.
pub async fn throughout<F, Fut>(what: &str, during: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = tokio::time::Instant::now();
    while started.elapsed() < during {
        if let Err(why) = check().await {
            panic!("{what}: broken after {:?}: {why}", started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `talky` binary cargo built for this suite.
pub const TALKY_BINARY: &str = env!("CARGO_BIN_EXE_talky");

/// The `talky-sim` binary beside `talky` (cargo builds a dependency's
/// binaries only on request: `scripts/test.sh` builds every binary of the
/// workspace before the tests).
pub fn sim_binary() -> std::path::PathBuf {
    let path = talky_sim::loadtest::sibling(std::path::Path::new(TALKY_BINARY), "talky-sim");
    assert!(
        path.is_file(),
        "{} is missing; build it: cargo build -p talky-sim",
        path.display()
    );
    path
}
