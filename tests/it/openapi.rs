use crate::support::{TestApp, decode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_every_route() {
    let app = TestApp::start().await;
    let (status, doc) = decode(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let expected = [
        ("post", "/api/v1/admin/tenants"),
        ("get", "/api/v1/api-keys"),
        ("post", "/api/v1/api-keys"),
        ("delete", "/api/v1/api-keys/{id}"),
        ("get", "/api/v1/campaigns"),
        ("post", "/api/v1/campaigns"),
        ("get", "/api/v1/campaigns/{id}"),
        ("patch", "/api/v1/campaigns/{id}"),
        ("delete", "/api/v1/campaigns/{id}"),
        ("post", "/api/v1/campaigns/{id}/{command}"),
        ("post", "/api/v1/campaigns/{id}/contacts"),
        ("get", "/api/v1/campaigns/{id}/contacts"),
        ("get", "/api/v1/dnc"),
        ("post", "/api/v1/dnc"),
        ("delete", "/api/v1/dnc/{phone}"),
        ("get", "/api/v1/calls"),
        ("get", "/api/v1/calls/{id}"),
        ("get", "/api/v1/calls/{id}/recording"),
        ("get", "/health"),
        ("get", "/health/ready"),
        ("get", "/metrics"),
        ("get", "/api/v1/supervisor/actors"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    let mut count = 0;
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            assert!(
                expected.contains(&(method.as_str(), path.as_str())),
                "documented but not expected: {method} {path}"
            );
            count += 1;
        }
    }
    assert_eq!(count, expected.len(), "every route is documented");
    for scheme in ["bearer", "admin"] {
        assert!(doc["components"]["securitySchemes"][scheme].is_object());
    }
    app.stop().await;
}
