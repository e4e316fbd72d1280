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
