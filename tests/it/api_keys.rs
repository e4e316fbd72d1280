use serde_json::json;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_and_revoke_keys() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;

    let (status, created) = app
        .post("/api/v1/api-keys", &key, &json!({ "name": "ci" }))
        .await;
    assert_eq!(status, 201, "{created}");
    let second = created["secret"].as_str().expect("secret").to_string();
    assert!(second.starts_with("tk_"));
    assert!(second.starts_with(created["prefix"].as_str().expect("prefix")));

    let (status, list) = app.get("/api/v1/api-keys", &second).await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|k| k.get("secret").is_none() && k.get("key_hash").is_none())
    );

    // Revoke the first key using the second; the first stops working.
    let first_id = items[0]["id"].as_str().expect("id").to_string();
    let (status, _) = app
        .delete(&format!("/api/v1/api-keys/{first_id}"), &second)
        .await;
    assert_eq!(status, 204);
    let (status, problem) = app.get("/api/v1/api-keys", &key).await;
    assert_eq!(status, 401);
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("revoked")
    );
    // Revoking again is idempotent; an unknown id is a 404.
    let (status, _) = app
        .delete(&format!("/api/v1/api-keys/{first_id}"), &second)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .delete(
            &format!("/api/v1/api-keys/{}", uuid::Uuid::now_v7()),
            &second,
        )
        .await;
    assert_eq!(status, 404);
    let (_, list) = app.get("/api/v1/api-keys", &second).await;
    assert!(list["items"][0]["revoked_at"].is_string());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_are_401_problems() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let url = app.url("/api/v1/campaigns");
    for header in [
        None,
        Some("Basic abc"),
        Some("Bearer"),
        Some("Bearer tk_nope"),
        Some("Bearer nottk"),
    ] {
        let mut req = app.client.get(&url);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let (status, problem) = crate::support::decode(req.send().await.expect("send")).await;
        assert_eq!(status, 401, "{header:?}: {problem}");
    }
    // Admin routes refuse tenant keys and wrong tokens.
    let (status, _) = app
        .post("/api/v1/admin/tenants", &key, &json!({ "name": "x" }))
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post("/api/v1/admin/tenants", "wrong", &json!({ "name": "x" }))
        .await;
    assert_eq!(status, 401);
    // Validation of the tenant name.
    let (status, problem) = app
        .post(
            "/api/v1/admin/tenants",
            &app.admin_token.clone(),
            &json!({ "name": "  " }),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "name");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_is_off_without_a_token() {
    let app = TestApp::start_with(|c| c.admin.token = talky::config::Secret::default()).await;
    let (status, problem) = app
        .post("/api/v1/admin/tenants", "anything", &json!({ "name": "x" }))
        .await;
    assert_eq!(status, 401);
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("disabled")
    );
    app.stop().await;
}
