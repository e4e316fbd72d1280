//! Tenant B, holding tenant A's ids, sees nothing of A and changes nothing.

use serde_json::json;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_ids_are_404_on_every_route() {
    let app = TestApp::start().await;
    let (tenant_a, a) = app.tenant("a").await;
    let (_, b) = app.tenant("b").await;
    let campaign = app.campaign(&a, "a's").await;
    app.upload(
        &format!("/api/v1/campaigns/{campaign}/contacts"),
        &a,
        "text/csv",
        "phone\n+14155550123\n",
    )
    .await;
    let call = crate::calls::live_call(&app, &tenant_a, &campaign).await;
    app.post("/api/v1/dnc", &a, &json!({ "phone": "+14155550150" }))
        .await;
    let (_, keys) = app.get("/api/v1/api-keys", &a).await;
    let a_key_id = keys["items"][0]["id"].as_str().expect("id").to_string();

    let c = format!("/api/v1/campaigns/{campaign}");
    let checks: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", c.clone(), None),
        ("PATCH", c.clone(), Some(json!({ "name": "mine now" }))),
        ("DELETE", c.clone(), None),
        ("POST", format!("{c}/start"), None),
        ("POST", format!("{c}/pause"), None),
        ("POST", format!("{c}/resume"), None),
        ("POST", format!("{c}/stop"), None),
        ("GET", format!("{c}/contacts"), None),
        ("GET", format!("{c}/summary"), None),
        (
            "POST",
            format!("{c}/contacts"),
            Some(json!([{ "phone": "+14155550124" }])),
        ),
        ("GET", format!("/api/v1/calls/{call}"), None),
        ("DELETE", format!("/api/v1/api-keys/{a_key_id}"), None),
        ("DELETE", "/api/v1/dnc/%2B14155550150".to_string(), None),
    ];
    for (method, path, body) in checks {
        let (status, problem) = match (method, body) {
            ("GET", _) => app.get(&path, &b).await,
            ("DELETE", _) => app.delete(&path, &b).await,
            ("PATCH", Some(body)) => app.patch(&path, &b, &body).await,
            ("POST", Some(body)) => app.post(&path, &b, &body).await,
            _ => app.post_empty(&path, &b).await,
        };
        assert_eq!(status, 404, "{method} {path}: {problem}");
    }
    for path in ["/api/v1/campaigns", "/api/v1/calls", "/api/v1/dnc"] {
        let (status, page) = app.get(path, &b).await;
        assert_eq!(status, 200);
        assert!(
            page["items"].as_array().expect("items").is_empty(),
            "{path}: {page}"
        );
    }
    let (_, keys) = app.get("/api/v1/api-keys", &b).await;
    assert_eq!(
        keys["items"].as_array().expect("items").len(),
        1,
        "only B's own key"
    );
    let (_, calls) = app
        .get(&format!("/api/v1/calls?campaign_id={campaign}"), &b)
        .await;
    assert!(calls["items"].as_array().expect("items").is_empty());

    // A's data is untouched.
    let (status, mine) = app.get(&c, &a).await;
    assert_eq!(
        (status, mine["name"].as_str(), mine["state"].as_str()),
        (200, Some("a's"), Some("draft"))
    );
    let (_, contacts) = app.get(&format!("{c}/contacts"), &a).await;
    assert_eq!(contacts["items"].as_array().expect("items").len(), 1);
    let (status, _) = app.get("/api/v1/api-keys", &a).await;
    assert_eq!(status, 200, "A's key still works");
    let (_, dnc) = app.get("/api/v1/dnc", &a).await;
    assert_eq!(dnc["items"].as_array().expect("items").len(), 1);
    app.stop().await;
}
