//! Every error is problem+json, and a client's mistake is never a 5xx.

use crate::support::{TestApp, decode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_rejections_become_problems() {
    let app = TestApp::start_with(|c| c.server.max_json_body_bytes = 1024).await;
    let (_, key) = app.tenant("acme").await;
    let c = &app.client;

    let (status, _) = decode(c.get(app.url("/nope")).send().await.expect("send")).await;
    assert_eq!(status, 404);
    let (status, _) = decode(
        c.get(app.url("/api/v1/campaigns/not-a-uuid"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = decode(
        c.put(app.url("/api/v1/campaigns"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 405);
    let (status, _) = decode(c.delete(app.url("/health")).send().await.expect("send")).await;
    assert_eq!(status, 405);
    // 411: a JSON route without Content-Length (chunked body).
    let body =
        reqwest::Body::wrap_stream(futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
            "{}",
        )]));
    let (status, _) = decode(
        c.post(app.url("/api/v1/campaigns"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 411);
    // 413 past the JSON limit.
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(4096));
    let (status, _) = app
        .upload("/api/v1/campaigns", &key, "application/json", big)
        .await;
    assert_eq!(status, 413);
    // 415 without or with the wrong content type.
    let (status, _) = app
        .upload("/api/v1/campaigns", &key, "text/plain", "{}")
        .await;
    assert_eq!(status, 415);
    let (status, _) = decode(
        c.post(app.url("/api/v1/campaigns"))
            .bearer_auth(&key)
            .body("{}")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 415);
    // 400 broken JSON, 422 wrong shape.
    let (status, p) = app
        .upload("/api/v1/campaigns", &key, "application/json", "{")
        .await;
    assert_eq!(status, 400, "{p}");
    let (status, _) = app
        .upload("/api/v1/campaigns", &key, "application/json", "[]")
        .await;
    assert_eq!(status, 422);
    // Missing auth on a real route: 401 with WWW-Authenticate.
    let res = c.get(app.url("/api/v1/calls")).send().await.expect("send");
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let (status, _) = decode(res).await;
    assert_eq!(status, 401);
    app.stop().await;
}

/// A NUL character anywhere a client's text would reach PostgreSQL is a
/// 422 naming the field: cursors and every query parameter, JSON body
/// fields (nested too), never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_naming_the_field() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let campaign = app.campaign(&key, "c").await;
    for path in [
        "/api/v1/dnc?cursor=%00".to_string(),
        "/api/v1/dnc?cursor=%2B1415%00".to_string(),
        "/api/v1/campaigns?cursor=a%00b".to_string(),
        "/api/v1/calls?cursor=%00".to_string(),
        format!("/api/v1/campaigns/{campaign}/contacts?cursor=%00"),
    ] {
        let (status, problem) = app.get(&path, &key).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "cursor", "{path}: {problem}");
    }
    let (status, problem) = app
        .get(
            &format!("/api/v1/campaigns/{campaign}/contacts?status=a%00"),
            &key,
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("status"))
    );

    let mut body = crate::support::campaign_body("a\u{0}b");
    let (status, problem) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("name")),
        "{problem}"
    );
    body["name"] = serde_json::json!("ok");
    body["agent"]["greeting"] = serde_json::json!("Hi\u{0}");
    let (status, problem) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("agent.greeting")),
        "{problem}"
    );
    let (status, problem) = app
        .patch(
            &format!("/api/v1/campaigns/{campaign}"),
            &key,
            &serde_json::json!({ "agent": { "system_prompt": "\u{0}" } }),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("agent.system_prompt"))
    );
    let (status, problem) = app
        .post(
            "/api/v1/dnc",
            &key,
            &serde_json::json!({ "phone": "+14155550150", "reason": "no\u{0}" }),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("reason"))
    );
    let (status, problem) = app
        .post(
            "/api/v1/api-keys",
            &key,
            &serde_json::json!({ "name": "\u{0}" }),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("name"))
    );
    let res = app
        .client
        .post(app.url("/api/v1/admin/tenants"))
        .bearer_auth(&app.admin_token)
        .json(&serde_json::json!({ "name": "t\u{0}" }))
        .send()
        .await
        .expect("send");
    let (status, problem) = decode(res).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("name"))
    );
    // An escaped backslash before "u0000" is text, not a NUL.
    let (status, _) = app
        .post(
            "/api/v1/dnc",
            &key,
            &serde_json::json!({ "phone": "+14155550151", "reason": "\\u0000" }),
        )
        .await;
    assert_eq!(status, 201);
    app.stop().await;
}

/// Each API key has its own token bucket: past the burst, 429 with
/// `Retry-After` and problem+json; another key, the admin token and
/// unauthenticated routes are not limited; the bucket refills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_rate_limited() {
    let app = TestApp::start_with(|c| {
        c.api.rate_per_second = 2.0;
        c.api.burst = 3;
    })
    .await;
    let (_, a) = app.tenant("a").await;
    let (_, b) = app.tenant("b").await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/campaigns", &a).await.0, 200);
    }
    let res = app
        .client
        .get(app.url("/api/v1/campaigns"))
        .bearer_auth(&a)
        .send()
        .await
        .expect("send");
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let (status, problem) = decode(res).await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(problem["type"], "urn:talky:problem:too-many-requests");
    // Another key has its own bucket; the admin token has none.
    assert_eq!(app.get("/api/v1/campaigns", &b).await.0, 200);
    for i in 0..6 {
        app.tenant(&format!("t{i}")).await;
    }
    for _ in 0..6 {
        let res = app
            .client
            .get(app.url("/health"))
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(app.get("/api/v1/campaigns", &a).await.0, 200, "refilled");
    app.stop().await;
}
