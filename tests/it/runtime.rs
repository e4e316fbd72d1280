//! The lifecycle routes drive real actors: start spawns the campaign's
//! actor, which dials through the dialer; pause, resume and stop reach it;
//! a dialer started later on the same database picks up the stored
//! campaigns in their stored state. (Real restarts, with processes
//! stopped and killed mid-campaign, are in `lifetime`.)

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use talky::app::Server;
use talky::store::PgCallStore;
use talky_actors::call::Ports;
use talky_actors::campaign_actor::CampaignConfig;
use talky_actors::dialer::DialerConfig;
use talky_actors::ports::TokioClock;

use crate::store::{BusyLine, PgPorts, Unused};
use crate::support::{TestApp, decode, test_config};

fn ports(app_pool: talky::db::Pool, line: Arc<BusyLine>) -> Ports<PgPorts> {
    Ports::<PgPorts> {
        telephony: line,
        stt: vec![Arc::new(Unused)],
        llm: vec![Arc::new(Unused)],
        tts: vec![Arc::new(Unused)],
        store: Arc::new(PgCallStore {
            pool: app_pool,
            timeout: Duration::from_secs(5),
            live: Default::default(),
        }),
        clock: Arc::new(TokioClock),
    }
}

fn dialer() -> DialerConfig {
    DialerConfig {
        calls_per_second: 50.0,
        cps_burst: 10,
        ..DialerConfig::default()
    }
}

fn campaigns() -> CampaignConfig {
    CampaignConfig {
        tick: Duration::from_millis(200),
        ..CampaignConfig::default()
    }
}

async fn statuses(app: &TestApp, key: &str, campaign: &str) -> Vec<String> {
    let (_, page) = app
        .get(
            &format!("/api/v1/campaigns/{campaign}/contacts?limit=100"),
            key,
        )
        .await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn wait_for(
    app: &TestApp,
    key: &str,
    campaign: &str,
    want: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut last = Vec::new();
    for _ in 0..60 {
        last = statuses(app, key, campaign).await;
        if want(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_routes_drive_the_actors() {
    let app = TestApp::start().await;
    let line = Arc::new(BusyLine::default());
    let dialer_name = format!("dialer-{}", uuid::Uuid::new_v4());
    app.server()
        .run_dialer(
            ports(app.pool(), line.clone()),
            dialer(),
            campaigns(),
            &dialer_name,
        )
        .await
        .expect("dialer");
    let (_, key) = app.tenant("acme").await;
    let mut body = crate::support::campaign_body("c");
    body["calling_window"] = json!({ "start": "00:00", "end": "23:59",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] });
    body["max_attempts"] = json!(1);
    body["max_concurrent_calls"] = json!(3);
    let (_, c) = app.post("/api/v1/campaigns", &key, &body).await;
    let id = c["id"].as_str().expect("id").to_string();
    let csv: String = std::iter::once("phone,timezone".to_string())
        .chain((0..6).map(|i| format!("+1415555{:04},UTC", 300 + i)))
        .collect::<Vec<_>>()
        .join("\n");
    app.upload(
        &format!("/api/v1/campaigns/{id}/contacts"),
        &key,
        "text/csv",
        csv,
    )
    .await;

    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{id}/start"), &key)
        .await;
    assert_eq!(status, 200);
    // Busy on the only attempt: every contact ends failed, the campaign completes.
    let done = wait_for(&app, &key, &id, |s| s.iter().all(|x| x == "failed")).await;
    assert!(done.iter().all(|x| x == "failed"), "{done:?}");
    assert_eq!(
        line.placed.lock().unwrap_or_else(|e| e.into_inner()).len(),
        6
    );
    let mut state = String::new();
    for _ in 0..40 {
        let (_, c) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
        state = c["state"].as_str().unwrap_or("").to_string();
        if state == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(state, "completed", "the actor completed the campaign");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_started_later_takes_up_a_paused_campaign_paused_and_resume_dials() {
    let app = TestApp::start().await;
    let line = Arc::new(BusyLine::default());
    let (_, key) = app.tenant("acme").await;
    let mut body = crate::support::campaign_body("c");
    body["calling_window"] = json!({ "start": "00:00", "end": "23:59",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] });
    body["max_attempts"] = json!(1);
    let (_, c) = app.post("/api/v1/campaigns", &key, &body).await;
    let id = c["id"].as_str().expect("id").to_string();
    app.upload(
        &format!("/api/v1/campaigns/{id}/contacts"),
        &key,
        "text/csv",
        "phone,timezone\n+14155550401,UTC\n",
    )
    .await;
    // Started while no dialer runs here (as after a crash): stored only.
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{id}/start"), &key)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{id}/pause"), &key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&app, &key, &id).await, ["pending"]);

    // A second server on the same database starts its dialer: it resumes
    // the paused campaign (paused: no dials) ...
    let mut config = test_config(&app.db.url);
    config.admin.token = talky::config::Secret::new(app.admin_token.clone());
    let second = Server::start(config).await.expect("second server");
    second
        .run_dialer(
            ports(second.ctx.db.clone(), line.clone()),
            dialer(),
            campaigns(),
            &format!("dialer-{}", uuid::Uuid::new_v4()),
        )
        .await
        .expect("dialer");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        line.placed.lock().unwrap_or_else(|e| e.into_inner()).len(),
        0,
        "paused: nothing dialled"
    );
    let res = app
        .client
        .get(format!("http://{}/api/v1/supervisor/actors", second.addr))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("send");
    let (_, tree) = decode(res).await;
    assert_eq!(tree["campaigns"][0]["state"], "paused", "{tree}");
    // ... and resume reaches it.
    let res = app
        .client
        .post(format!(
            "http://{}/api/v1/campaigns/{id}/resume",
            second.addr
        ))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let mut placed = 0;
    for _ in 0..40 {
        placed = line.placed.lock().unwrap_or_else(|e| e.into_inner()).len();
        if placed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(placed, 1, "resumed: dialled");
    second.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_providers_are_built_from_configuration() {
    let app = TestApp::start().await;
    let mut config = test_config(&app.db.url);
    config.providers.enabled = true;
    let err = config.validate().expect_err("keys missing");
    assert!(
        err.to_string().contains("providers.vonage.application_id"),
        "{err}"
    );
    config.providers.vonage.application_id = Some("aaaaaaaa-bbbb-cccc-dddd-0123456789ab".into());
    config.providers.vonage.private_key_file = Some(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/providers/vonage/testdata/test_private.pem"),
    );
    config.providers.vonage.api_base_url = Some("http://127.0.0.1:9".into());
    config.providers.deepgram.api_key = talky::config::Secret::new("dg");
    config.providers.deepgram.base_url = Some("ws://127.0.0.1:9".into());
    config.providers.llm.api_key = talky::config::Secret::new("llm");
    config.providers.llm.base_url = Some("http://127.0.0.1:9".into());
    config.providers.elevenlabs.api_key = talky::config::Secret::new("el");
    config.providers.elevenlabs.base_url = Some("http://127.0.0.1:9".into());
    config.validate().expect("valid");
    let ports = talky::runtime::real_ports(&config, app.pool(), Default::default()).expect("ports");
    // Chains: [Deepgram, Whisper], [LLM], [ElevenLabs, Aura].
    assert_eq!(
        (ports.stt.len(), ports.llm.len(), ports.tts.len()),
        (2, 1, 2)
    );
    assert_eq!(
        (ports.stt[1].name(), ports.tts[1].name()),
        ("whisper", "aura")
    );
    // A second LLM only when its base URL is set, and then with its key.
    config.providers.llm_fallback.base_url = Some("http://127.0.0.1:9/v1".into());
    let err = config.validate().expect_err("fallback key missing");
    assert!(
        err.to_string().contains("providers.llm_fallback.api_key"),
        "{err}"
    );
    config.providers.llm_fallback.api_key = talky::config::Secret::new("oa");
    config.validate().expect("valid");
    let ports = talky::runtime::real_ports(&config, app.pool(), Default::default()).expect("ports");
    assert_eq!(ports.llm.len(), 2);
    // A key file that does not exist is a start-up error naming Vonage.
    config.providers.vonage.private_key_file = Some("/nonexistent.pem".into());
    let err = talky::runtime::real_ports(&config, app.pool(), Default::default())
        .err()
        .expect("bad key file");
    assert!(err.to_string().contains("vonage"), "{err}");
    app.stop().await;
}

/// Live calls have their own pool: with every connection of the API's pool
/// held (as by stalled API requests), a dialer started now still reconciles,
/// resumes the stored campaign and dials, and its calls' records land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_calls_do_not_wait_for_the_api_pool() {
    let app = TestApp::start_with(|c| {
        c.database.pool_size = 2;
        c.database.live_pool_size = 2;
        c.database.connect_timeout_ms = 1_000;
    })
    .await;
    let line = Arc::new(BusyLine::default());
    let (_, key) = app.tenant("acme").await;
    let mut body = crate::support::campaign_body("c");
    body["calling_window"] = json!({ "start": "00:00", "end": "23:59",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] });
    body["max_attempts"] = json!(1);
    let (_, c) = app.post("/api/v1/campaigns", &key, &body).await;
    let id = c["id"].as_str().expect("id").to_string();
    app.upload(
        &format!("/api/v1/campaigns/{id}/contacts"),
        &key,
        "text/csv",
        "phone,timezone\n+14155550501,UTC\n",
    )
    .await;
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{id}/start"), &key)
        .await;
    assert_eq!(status, 200);

    // Every API connection taken.
    let api = app.pool();
    let held = (api.get().await.expect("one"), api.get().await.expect("two"));
    assert_eq!(api.state().idle_connections, 0);
    app.server()
        .run_dialer(
            ports(app.live_pool(), line.clone()),
            dialer(),
            campaigns(),
            &format!("dialer-{}", uuid::Uuid::new_v4()),
        )
        .await
        .expect("the dialer starts without an API connection");
    let mut placed = 0;
    for _ in 0..40 {
        placed = line.placed.lock().unwrap_or_else(|e| e.into_inner()).len();
        if placed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(placed, 1, "dialled while the API pool is exhausted");
    drop(held);
    let done = wait_for(&app, &key, &id, |s| s.iter().all(|x| x == "failed")).await;
    assert_eq!(done, ["failed"], "the call's outcome was stored");
    app.stop().await;
}
