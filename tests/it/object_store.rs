//! Recordings in S3-compatible object storage, against the real `moto`
//! server `scripts/services.sh` starts (`TALKY_TEST_S3_ENDPOINT`, default
//! `http://127.0.0.1:9000`; each test makes its own bucket).
//!
//! Two real `talky serve` processes share PostgreSQL and the bucket: node
//! A records calls while its bucket endpoint is wrong (uploads fail and
//! are retried; the recordings stay 409), is killed with SIGKILL, and at
//! its next start (right endpoint) uploads what it left; node B, which
//! never held a file, then serves every recording byte-identical to the
//! object in the bucket, a byte range of it too. Past its campaign's
//! retention a recording is deleted from the bucket and answers 404.
//! In process: an upload to an endpoint that does not answer is retried
//! until it does (a forwarder to moto starts late), and the sweeper
//! expires exactly the ready recordings past their campaign's retention.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::lifetime::{Node, World};
use crate::support::{TestApp, campaign_body, eventually};

/// The moto endpoint.
fn endpoint() -> String {
    std::env::var("TALKY_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

/// A fresh bucket on moto; its name.
async fn bucket(http: &reqwest::Client) -> String {
    let name = format!("talky-{}", uuid::Uuid::new_v4());
    let res = http
        .put(format!("{}/{name}", endpoint()))
        .send()
        .await
        .expect("moto (run scripts/services.sh)");
    assert!(res.status().is_success(), "create bucket: {}", res.status());
    name
}

/// The object's bytes read from the bucket with talky's S3 client (moto
/// refuses unsigned reads); `None` when it is not there.
/// Recordings in `bucket` on moto.
fn s3_config(bucket: &str) -> talky::recording::config::RecordingsConfig {
    use talky::recording::config::{RecordingsConfig, S3Config, StoreKind};
    RecordingsConfig {
        store: StoreKind::S3,
        s3: S3Config {
            bucket: bucket.into(),
            endpoint: endpoint(),
            allow_http: true,
            access_key_id: "testing".into(),
            secret_access_key: talky::config::Secret::new("testing"),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn object(bucket: &str, key: &str) -> Option<Vec<u8>> {
    use futures_util::TryStreamExt;
    use talky::recording::store::{Location, RecordingStore, StoreError};
    let store = RecordingStore::from_config(&s3_config(bucket)).expect("store");
    match store.open(&Location::S3(key.into()), None).await {
        Ok(stream) => {
            let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("object");
            Some(chunks.concat())
        }
        Err(StoreError::NotFound) => None,
        Err(e) => panic!("moto: {e}"),
    }
}

async fn get_recording(
    http: &reqwest::Client,
    node: &Node,
    key: &str,
    call: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = http
        .get(node.url(&format!("/api/v1/calls/{call}/recording")))
        .bearer_auth(key);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.expect("body").to_vec())
}

/// (call id, recording status, store, key) of every recorded call.
async fn recorded(db: &str) -> Vec<(uuid::Uuid, String, Option<String>, Option<String>)> {
    use talky::db::schema::calls;
    let mut conn = AsyncPgConnection::establish(db).await.expect("db");
    calls::table
        .filter(calls::recording_status.is_not_null())
        .select((
            calls::id,
            calls::recording_status.assume_not_null(),
            calls::recording_store,
            calls::recording_key,
        ))
        .order(calls::id)
        .load(&mut conn)
        .await
        .expect("calls")
}

fn s3_env(world: &mut World, bucket: &str, endpoint: &str) {
    for (k, v) in [
        ("TALKY_RECORDINGS__STORE", "s3"),
        ("TALKY_RECORDINGS__S3__BUCKET", bucket),
        ("TALKY_RECORDINGS__S3__ENDPOINT", endpoint),
        ("TALKY_RECORDINGS__S3__ALLOW_HTTP", "true"),
        ("TALKY_RECORDINGS__S3__ACCESS_KEY_ID", "testing"),
        ("TALKY_RECORDINGS__S3__SECRET_ACCESS_KEY", "testing"),
        ("TALKY_RECORDINGS__S3__PREFIX", "rec/"),
        ("TALKY_RECORDINGS__S3__TIMEOUT_SECS", "10"),
        ("TALKY_RECORDINGS__S3__CONNECT_TIMEOUT_SECS", "2"),
        ("TALKY_RECORDINGS__SWEEP_INTERVAL_SECS", "1"),
    ] {
        world.set_env(k, v.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_made_on_node_a_is_served_by_node_b_after_a_crash_and_expires() {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let bucket = bucket(&http).await;
    let mut world = World::new(&[]).await;
    // Node A first with an endpoint nothing listens on: every upload fails.
    let dead = format!(
        "http://127.0.0.1:{}",
        talky_sim::loadtest::procs::free_port().expect("port")
    );
    s3_env(&mut world, &bucket, &dead);
    let mut a = world.serve("a").await;
    let campaign = world
        .campaign_with(
            &a,
            json!({"max_attempts": 1, "max_concurrent_calls": 2, "recording_enabled": true}),
            2,
        )
        .await;
    world
        .wait_completed(&a, &campaign, Duration::from_secs(120))
        .await;
    let db = world.database_url();
    // Both recordings encoded, neither uploaded: they stay `uploading`.
    let (rows, _) = eventually(
        "both recordings encoded and waiting for the bucket",
        Duration::from_secs(60),
        || async {
            let rows = recorded(&db).await;
            (rows.len() == 2 && rows.iter().all(|r| r.1 == "uploading")).then_some(rows)
        },
    )
    .await;
    let calls: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
    let key = world.key().to_string();
    for call in &calls {
        let (status, _, body) = get_recording(&http, &a, &key, call, None).await;
        assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    }
    let metrics = http
        .get(a.url("/metrics"))
        .bearer_auth(world.admin())
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("talky_recording_uploads_total{result=\"error\"}"),
        "failed uploads are counted:\n{metrics}"
    );

    // SIGKILL: the files stay on A's disk, the rows say uploading.
    a.signal("-KILL");
    a.exit(Duration::from_secs(30)).await;
    s3_env(&mut world, &bucket, &endpoint());
    let b = world.serve("b").await;
    for call in &calls {
        let (status, _, _) = get_recording(&http, &b, &key, call, None).await;
        assert_eq!(status, 409, "not in the bucket yet");
    }
    // A's next start uploads what it left.
    let a = world.serve("a").await;
    let (rows, _) = eventually(
        "both recordings uploaded by A's restart",
        Duration::from_secs(60),
        || async {
            let rows = recorded(&db).await;
            rows.iter().all(|r| r.1 == "ready").then_some(rows)
        },
    )
    .await;
    for (call, _, store, object_key) in &rows {
        assert_eq!(store.as_deref(), Some("s3"));
        let object_key = object_key.as_deref().expect("key");
        assert!(
            object_key.starts_with("rec/") && object_key.ends_with(&format!("/{call}.ogg")),
            "{object_key}"
        );
        let stored = object(&bucket, object_key)
            .await
            .expect("the object is in the bucket");
        let (status, headers, body) = get_recording(&http, &b, &key, &call.to_string(), None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "audio/ogg");
        assert!(
            body.len() > 1000 && body.starts_with(b"OggS"),
            "{} bytes",
            body.len()
        );
        assert_eq!(body, stored, "B serves the object byte for byte");
        // A range of it, as the browser's audio element asks.
        let (status, headers, part) =
            get_recording(&http, &b, &key, &call.to_string(), Some("bytes=100-199")).await;
        assert_eq!(status, 206);
        assert_eq!(
            headers["content-range"],
            format!("bytes 100-199/{}", body.len()).as_str()
        );
        assert_eq!(part, body[100..200]);
    }
    // A's uploaded files are gone from its disk; B never had one.
    let a_files = walk(&world.node_dir("a").join(".talky/recordings"));
    assert!(a_files.iter().all(|p| !p.ends_with(".ogg")), "{a_files:?}");

    // Retention: one recording made three days ago, one just now; a
    // two-day retention expires the first only.
    world
        .api(
            &b,
            reqwest::Method::PATCH,
            &format!("/api/v1/campaigns/{campaign}"),
            Some(json!({"recording_retention_days": 2})),
        )
        .await;
    let (old, young) = (rows[0].0, rows[1].0);
    {
        use talky::db::schema::calls;
        let mut conn = AsyncPgConnection::establish(&db).await.expect("db");
        diesel::update(calls::table.filter(calls::id.eq(old)))
            .set(calls::recording_ready_at.eq(chrono::Utc::now() - chrono::Duration::days(3)))
            .execute(&mut conn)
            .await
            .expect("age");
    }
    let old_key = rows[0].3.clone().expect("key");
    eventually(
        "the old recording expired",
        Duration::from_secs(60),
        || async {
            let (status, _, body) = get_recording(&http, &b, &key, &old.to_string(), None).await;
            (status == 404 && String::from_utf8_lossy(&body).contains("expired")).then_some(())
        },
    )
    .await;
    assert_eq!(
        object(&bucket, &old_key).await,
        None,
        "deleted from the bucket"
    );
    let (status, _, _) = get_recording(&http, &a, &key, &young.to_string(), None).await;
    assert_eq!(status, 200, "the young recording is kept");
    let rows = recorded(&db).await;
    let status_of = |id| rows.iter().find(|r| r.0 == id).map(|r| r.1.clone());
    assert_eq!(status_of(old).as_deref(), Some("expired"));
    assert_eq!(status_of(young).as_deref(), Some("ready"));
    world.finish(vec![a, b]).await;
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_days_are_validated_and_can_be_cleared() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let mut body = campaign_body("kept");
    body["recording_retention_days"] = json!(30);
    let (status, c) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["recording_retention_days"], 30);
    let path = format!("/api/v1/campaigns/{}", c["id"].as_str().expect("id"));
    for bad in [json!(0), json!(3651), json!(-1)] {
        let (status, p) = app
            .patch(&path, &key, &json!({"recording_retention_days": bad}))
            .await;
        assert_eq!(status, 422, "{bad}: {p}");
        assert_eq!(p["errors"][0]["field"], "recording_retention_days", "{p}");
    }
    let (status, p) = app
        .patch(&path, &key, &json!({"recording_retention_days": "ten"}))
        .await;
    assert!((400..500).contains(&status), "{p}");
    let (status, c) = app.patch(&path, &key, &json!({"name": "renamed"})).await;
    assert_eq!((status, &c["recording_retention_days"]), (200, &json!(30)));
    let (status, c) = app
        .patch(&path, &key, &json!({"recording_retention_days": null}))
        .await;
    assert_eq!(
        (status, &c["recording_retention_days"]),
        (200, &Value::Null)
    );
    let (status, c) = app.get(&path, &key).await;
    assert_eq!(
        (status, &c["recording_retention_days"]),
        (200, &Value::Null)
    );
    app.stop().await;
}

/// A ready recording of a fresh campaign (with `retention` days) of
/// `tenant`, made `age` ago; its call id.
async fn aged_recording(
    app: &TestApp,
    tenant: &(String, String),
    retention: Option<i32>,
    age: chrono::Duration,
) -> uuid::Uuid {
    let (id, key) = tenant;
    let mut body = campaign_body("swept");
    body["recording_retention_days"] = json!(retention);
    let (status, c) = app.post("/api/v1/campaigns", key, &body).await;
    assert_eq!(status, 201, "{c}");
    let (call, _) = app
        .dial_intent(key, id, c["id"].as_str().expect("id"))
        .await;
    let call: uuid::Uuid = call.parse().expect("call");
    let (tenant_id, call_id) = (id.parse().expect("tenant"), talky_actors::ids::CallId(call));
    let mut conn = app.db.conn().await;
    let key = talky::recording::store::object_key("", tenant_id, call_id);
    assert!(
        talky::db::recordings::set_encoded(
            &mut conn,
            tenant_id,
            call_id,
            4,
            1,
            Some(("local", &key))
        )
        .await
        .expect("ready")
    );
    use talky::db::schema::calls;
    diesel::update(calls::table.filter(calls::id.eq(call)))
        .set(calls::recording_ready_at.eq(chrono::Utc::now() - age))
        .execute(&mut conn)
        .await
        .expect("age");
    let path = app.server().ctx.recorder.dir().join(&key);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    std::fs::write(&path, b"OggS").expect("file");
    call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_expires_only_ready_recordings_past_their_campaigns_retention() {
    let app = TestApp::start().await;
    let acme = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let day = chrono::Duration::days(1);
    let due = aged_recording(&app, &acme, Some(2), day * 3).await;
    let young = aged_recording(&app, &acme, Some(2), day).await;
    let forever = aged_recording(&app, &other, None, day * 300).await;
    let other_due = aged_recording(&app, &other, Some(10), day * 11).await;
    let store = std::sync::Arc::new(
        talky::recording::store::RecordingStore::from_config(&app.server().ctx.config.recordings)
            .expect("store"),
    );
    let sweeper = talky::recording::sweep::Sweeper {
        store,
        db: app.pool(),
        batch: 10,
    };
    assert_eq!(sweeper.sweep(chrono::Utc::now()).await, Ok(2));
    assert_eq!(sweeper.sweep(chrono::Utc::now()).await, Ok(0), "done once");
    let mut conn = app.db.conn().await;
    for (tenant, call, expect) in [
        (&acme, due, "expired"),
        (&acme, young, "ready"),
        (&other, forever, "ready"),
        (&other, other_due, "expired"),
    ] {
        let tenant_id = tenant.0.parse().expect("tenant");
        let row = talky::db::recordings::get(&mut conn, tenant_id, talky_actors::ids::CallId(call))
            .await
            .expect("row")
            .expect("call");
        assert_eq!(row.status.as_deref(), Some(expect), "{call}");
        let file = app
            .server()
            .ctx
            .recorder
            .dir()
            .join(format!("{}/{call}.ogg", tenant.0));
        assert_eq!(file.exists(), expect == "ready", "{}", file.display());
        if expect == "expired" {
            let (status, p) = app
                .get(&format!("/api/v1/calls/{call}/recording"), &tenant.1)
                .await;
            assert_eq!(status, 404, "{p}");
            assert!(
                p["detail"].as_str().unwrap_or("").contains("expired"),
                "{p}"
            );
        }
    }
    app.stop().await;
}

/// Forwards every connection to `port` on to moto: the bucket's endpoint
/// "comes back" when this starts.
async fn forward_to_moto(port: u16) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the endpoint");
    let target = endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_an_unreachable_bucket_is_retried_until_it_lands() {
    let http = reqwest::Client::new();
    let bucket = bucket(&http).await;
    let app = TestApp::start().await;
    let (tenant, key) = app.tenant("acme").await;
    let (call, _) = crate::recording::intent(&app, &key, &tenant, true).await;
    let (tenant_id, call_id) = (tenant.parse().expect("tenant"), call.parse().expect("call"));
    let mut conn = app.db.conn().await;
    talky::db::recordings::set_status(&mut conn, tenant_id, call_id, Some("spooled"))
        .await
        .expect("status");
    // A node whose bucket endpoint nothing answers yet finds the spool.
    let port = talky_sim::loadtest::procs::free_port().expect("port");
    let mut config = crate::support::test_config(&app.db.url);
    crate::recording::write_crash_spool(&config.recordings.dir, tenant_id, call_id);
    config.recordings.store = talky::recording::config::StoreKind::S3;
    config.recordings.s3 = talky::recording::config::S3Config {
        bucket: bucket.clone(),
        endpoint: format!("http://127.0.0.1:{port}"),
        allow_http: true,
        access_key_id: "testing".into(),
        secret_access_key: talky::config::Secret::new("testing"),
        timeout_secs: 5,
        connect_timeout_secs: 1,
        ..Default::default()
    };
    let node = talky::app::Server::start(config).await.expect("node");
    let url = format!("http://{}/api/v1/calls/{call}/recording", node.addr);
    let status = |http: reqwest::Client, url: String, key: String| async move {
        let res = http.get(url).bearer_auth(key).send().await.expect("get");
        (
            res.status().as_u16(),
            res.bytes().await.expect("body").to_vec(),
        )
    };
    let db = app.db.url.clone();
    eventually(
        "encoded, upload failing",
        Duration::from_secs(60),
        || async {
            let rows = recorded(&db).await;
            (rows.len() == 1 && rows[0].1 == "uploading").then_some(())
        },
    )
    .await;
    let (code, _) = status(http.clone(), url.clone(), key.clone()).await;
    assert_eq!(code, 409, "not served before it is in the bucket");
    let object_key = format!("{tenant}/{call}.ogg");
    assert_eq!(object(&bucket, &object_key).await, None);
    // The endpoint comes back: the retry lands it.
    let forwarder = forward_to_moto(port).await;
    let (body, _) = eventually("uploaded after retries", Duration::from_secs(90), || {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        async move {
            let (code, body) = status(http, url, key).await;
            (code == 200).then_some(body)
        }
    })
    .await;
    assert_eq!(Some(body), object(&bucket, &object_key).await);
    let rows = recorded(&db).await;
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_deref()),
        ("ready", Some("s3"))
    );
    forwarder.abort();
    node.stop().await;
    app.stop().await;
}

/// A campaign deleted with its calls leaves no recording behind: the
/// deletion queues each file and object in its transaction, and the
/// sweeper deletes them (local directory and bucket alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_campaign_deletes_its_recordings_from_disk_and_bucket() {
    use talky::recording::store::{RecordingStore, object_key};
    use talky::recording::sweep::Sweeper;
    let http = reqwest::Client::new();
    let bucket = bucket(&http).await;
    let app = TestApp::start().await;
    let acme = app.tenant("acme").await;
    let tenant_id: talky_actors::ids::TenantId = acme.0.parse().expect("tenant");

    // A local recording: its campaign deleted, the local sweeper purges it.
    let local_call = aged_recording(&app, &acme, None, chrono::Duration::hours(1)).await;
    let file = app
        .server()
        .ctx
        .recorder
        .dir()
        .join(format!("{}/{local_call}.ogg", acme.0));
    assert!(file.exists());
    let (_, call) = app
        .get(&format!("/api/v1/calls/{local_call}"), &acme.1)
        .await;
    let campaign = call["campaign_id"].as_str().expect("campaign").to_string();
    let (status, body) = app
        .delete(&format!("/api/v1/campaigns/{campaign}"), &acme.1)
        .await;
    assert_eq!(status, 204, "{body}");
    let local = Sweeper {
        store: std::sync::Arc::new(
            RecordingStore::from_config(&app.server().ctx.config.recordings).expect("store"),
        ),
        db: app.pool(),
        batch: 10,
    };
    assert_eq!(local.purge_deleted().await, Ok(1));
    assert!(!file.exists(), "{} is gone", file.display());
    assert_eq!(local.purge_deleted().await, Ok(0), "done once");

    // An object in the bucket.
    let s3 = std::sync::Arc::new(RecordingStore::from_config(&s3_config(&bucket)).expect("store"));
    let mut body = campaign_body("deleted");
    body["recording_enabled"] = json!(true);
    let (status, c) = app.post("/api/v1/campaigns", &acme.1, &body).await;
    assert_eq!(status, 201, "{c}");
    let campaign = c["id"].as_str().expect("id").to_string();
    let (call, _) = app.dial_intent(&acme.1, &acme.0, &campaign).await;
    let call_id = talky_actors::ids::CallId(call.parse().expect("call"));
    let key = object_key("", tenant_id, call_id);
    let spool = std::env::temp_dir().join(format!("talky-purge-{call}.ogg"));
    std::fs::write(&spool, b"OggS-purge").expect("file");
    s3.upload(&spool, &key).await.expect("upload to moto");
    let _ = std::fs::remove_file(&spool);
    let mut conn = app.db.conn().await;
    assert!(
        talky::db::recordings::set_encoded(
            &mut conn,
            tenant_id,
            call_id,
            10,
            1,
            Some(("s3", &key))
        )
        .await
        .expect("ready")
    );
    assert!(object(&bucket, &key).await.is_some());
    let (status, body) = app
        .delete(&format!("/api/v1/campaigns/{campaign}"), &acme.1)
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = app.get(&format!("/api/v1/calls/{call}"), &acme.1).await;
    assert_eq!(status, 404, "the call went with its campaign");
    let purger = Sweeper {
        store: s3,
        db: app.pool(),
        batch: 10,
    };
    assert_eq!(purger.purge_deleted().await, Ok(1));
    assert_eq!(object(&bucket, &key).await, None, "the object is gone");
    assert_eq!(purger.purge_deleted().await, Ok(0));
    app.stop().await;
}
