use std::sync::Arc;

use talky::config::Secret;

use crate::support::{TestApp, TestDb, decode, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_when_both_answer() {
    let app = TestApp::start().await;
    let (status, body) = decode(
        app.client
            .get(app.url("/health/ready"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["postgres"], "ok");
    assert_eq!(body["redis"], "ok");
    let (status, body) = decode(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    app.stop().await;
}

/// Serves a state whose PostgreSQL or Redis URL points at a closed port.
async fn ready_with(adjust: impl FnOnce(&mut talky::config::Config)) -> (u16, serde_json::Value) {
    let db = TestDb::new().await;
    let mut config = test_config(&db.url);
    config.database.connect_timeout_ms = 500;
    config.redis.timeout_ms = 500;
    adjust(&mut config);
    let ctx = talky::app::state(config, None).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(talky::http::serve(listener, Arc::clone(&ctx), async {
        let _ = rx.await;
    }));
    let res = reqwest::get(format!("http://{addr}/health/ready"))
        .await
        .expect("send");
    let out = decode(res).await;
    let _ = tx.send(());
    let _ = server.await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_names_the_dependency_that_is_down() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (status, problem) =
        ready_with(|c| c.redis.url = Secret::new(format!("redis://127.0.0.1:{closed}/0"))).await;
    assert_eq!(status, 503, "{problem}");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains("Redis") && !detail.contains("PostgreSQL"),
        "{detail}"
    );

    let (status, problem) = ready_with(|c| {
        c.database.url = Secret::new(format!("postgres://talky:talky@127.0.0.1:{closed}/talky"))
    })
    .await;
    assert_eq!(status, 503, "{problem}");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(
        detail.contains("PostgreSQL") && !detail.contains("Redis"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_admin_token_and_speak_prometheus() {
    let app = TestApp::start().await;
    let (status, _) = decode(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 401);
    // Something recorded through the facade shows up.
    metrics::counter!("talky_calls_total", "outcome" => "busy").increment(1);
    let res = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = res.text().await.expect("text");
    assert!(
        text.contains("talky_calls_total{outcome=\"busy\"}"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_tree_is_visible_to_the_admin() {
    let app = TestApp::start().await;
    let (status, _) = decode(
        app.client
            .get(app.url("/api/v1/supervisor/actors"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 401);
    let res = app
        .client
        .get(app.url("/api/v1/supervisor/actors"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("send");
    let (status, tree) = decode(res).await;
    assert_eq!(status, 200, "{tree}");
    assert!(
        tree["children"].is_array() && tree["campaigns"].is_array(),
        "{tree}"
    );
    app.stop().await;
}

/// The configuration of every provider with a breaker (Vonage, Twilio,
/// Deepgram, the LLM and its fallback, ElevenLabs; Whisper and Aura come
/// with them), each pointing at a closed port.
fn providers_on_a_closed_port(config: &mut talky::config::Config) {
    let closed = "127.0.0.1:9";
    let p = &mut config.providers;
    p.enabled = true;
    p.vonage.application_id = Some("aaaaaaaa-bbbb-cccc-dddd-0123456789ab".into());
    p.vonage.private_key_file = Some(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/providers/vonage/testdata/test_private.pem"),
    );
    p.vonage.api_base_url = Some(format!("http://{closed}"));
    p.twilio.account_sid = Some("AC0123456789abcdef0123456789abcdef".into());
    p.twilio.auth_token = Secret::new("tw");
    p.twilio.api_base_url = Some(format!("http://{closed}"));
    p.deepgram.api_key = Secret::new("dg");
    p.deepgram.base_url = Some(format!("ws://{closed}"));
    p.llm.api_key = Secret::new("llm");
    p.llm.base_url = Some(format!("http://{closed}"));
    p.llm_fallback.api_key = Secret::new("oa");
    p.llm_fallback.base_url = Some(format!("http://{closed}/v1"));
    p.elevenlabs.api_key = Secret::new("el");
    p.elevenlabs.base_url = Some(format!("http://{closed}"));
}

/// One `# TYPE` line: (name, type).
fn types(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect()
}

/// `/metrics` after requests and a failing provider follows Prometheus'
/// conventions: every series has `# HELP`, durations are seconds (no
/// `_ms`), counters end in `_total`; requests are counted by route
/// template and status, every breaker has its series from start-up, and
/// the provider's failure is timed and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_prometheus_conventions() {
    use talky_actors::ports::{SttConfig, SttPort};
    let app = TestApp::start().await;
    let mut config = test_config(&app.db.url);
    providers_on_a_closed_port(&mut config);
    config.validate().expect("valid");
    let ports = talky::runtime::real_ports(&config, app.pool(), Default::default()).expect("ports");
    // Deepgram's socket cannot be opened: an error of its `listen`.
    let opened = ports.stt[0]
        .open(SttConfig {
            language: "en".into(),
            sample_rate: 16_000,
        })
        .await;
    assert!(opened.is_err(), "nothing listens on the closed port");
    // Requests: a known route without credentials (401), an unknown path.
    let campaign = "0190a6c5-7b7e-7cc0-a2f3-1f0e8b2b9c11";
    let res = app
        .client
        .get(app.url(&format!("/api/v1/campaigns/{campaign}")))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 401);
    let res = app
        .client
        .get(app.url("/no/such/path"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 404);
    let text = crate::vonage::metrics_text(&app).await;

    let types = types(&text);
    assert!(types.len() > 5, "{text}");
    for (name, kind) in &types {
        assert!(
            text.lines().any(|l| l
                .strip_prefix("# HELP ")
                .and_then(|l| l.strip_prefix(name))
                .is_some_and(|rest| rest.starts_with(' ') && rest.len() > 1)),
            "{name} has no # HELP line:\n{text}"
        );
        assert!(!name.ends_with("_ms"), "{name} is not in seconds");
        if *kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name}");
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(!base.ends_with("_ms"), "{line}");
    }

    let sample = |name: &str, labels: &[&str]| {
        text.lines().any(|l| {
            l.starts_with(&format!("{name}{{")) && labels.iter().all(|want| l.contains(want))
        })
    };
    assert!(
        sample(
            "talky_http_requests_total",
            &[
                "route=\"/api/v1/campaigns/{id}\"",
                "method=\"GET\"",
                "status=\"401\""
            ]
        ),
        "{text}"
    );
    assert!(
        sample(
            "talky_http_requests_total",
            &["route=\"other\"", "status=\"404\""]
        ),
        "{text}"
    );
    assert!(!text.contains(campaign), "a raw path in a label: {text}");
    assert!(
        sample(
            "talky_http_request_duration_seconds_bucket",
            &["route=\"/api/v1/campaigns/{id}\"", "le=\""]
        ),
        "{text}"
    );
    for provider in [
        "vonage",
        "twilio",
        "deepgram",
        "whisper",
        "llm",
        "llm_fallback",
        "elevenlabs",
        "aura",
    ] {
        assert!(
            sample(
                "talky_provider_breaker_open",
                &[&format!("provider=\"{provider}\"")]
            ),
            "no breaker series of {provider}: {text}"
        );
    }
    assert!(
        sample(
            "talky_provider_errors_total",
            &["provider=\"deepgram\"", "operation=\"listen\"", "kind=\""]
        ),
        "{text}"
    );
    assert!(
        sample(
            "talky_provider_request_duration_seconds_bucket",
            &["provider=\"deepgram\"", "operation=\"listen\"", "le=\""]
        ),
        "{text}"
    );
    app.stop().await;
}
