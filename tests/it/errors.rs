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
