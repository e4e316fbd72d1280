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
        ("post", "/api/v1/calls/{id}/analyze"),
        ("get", "/api/v1/campaigns/{id}/results"),
        ("get", "/api/v1/campaigns/{id}/summary"),
        ("get", "/api/v1/webhooks"),
        ("post", "/api/v1/webhooks"),
        ("get", "/api/v1/webhooks/{id}"),
        ("delete", "/api/v1/webhooks/{id}"),
        ("get", "/api/v1/webhooks/{id}/deliveries"),
        ("post", "/api/v1/webhooks/{id}/deliveries/{delivery}/replay"),
        ("get", "/api/v1/calls/{id}/deliveries"),
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

/// Each input schema lists as `required` exactly what the handlers refuse
/// to go without, and each of those is refused (422 naming it) when left
/// out of a create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_schemas_state_their_required_fields() {
    let app = TestApp::start().await;
    let (_, doc) = decode(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    let schemas = &doc["components"]["schemas"];
    let required = |name: &str| -> Vec<String> {
        let mut r: Vec<String> = schemas[name]["required"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().expect("name").to_string())
                    .collect()
            })
            .unwrap_or_default();
        r.sort();
        r
    };
    let expected: [(&str, &[&str]); 11] = [
        ("CampaignInput", &["agent", "caller_id", "name"]),
        ("TransferInput", &["number"]),
        ("TransferView", &["announce", "number"]),
        ("AgentInput", &["greeting", "system_prompt"]),
        ("CampaignPatch", &[]),
        ("AgentPatch", &[]),
        ("WindowInput", &[]),
        ("AddDnc", &["phone"]),
        ("CreateApiKey", &["name"]),
        ("CreateTenant", &["name"]),
        ("CreateWebhook", &["events", "url"]),
    ];
    for (schema, fields) in expected {
        assert!(schemas[schema].is_object(), "{schema} is documented");
        assert_eq!(required(schema), fields, "{schema}");
    }
    let body_of = |method: &str, path: &str| {
        doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        body_of("post", "/api/v1/campaigns"),
        "#/components/schemas/CampaignInput"
    );
    assert_eq!(
        body_of("patch", "/api/v1/campaigns/{id}"),
        "#/components/schemas/CampaignPatch"
    );
    // Rate-limited routes document their 429.
    assert!(doc["paths"]["/api/v1/campaigns"]["get"]["responses"]["429"].is_object());
    assert!(doc["paths"]["/api/v1/webhooks"]["post"]["responses"]["429"].is_object());
    assert!(doc["paths"]["/api/v1/admin/tenants"]["post"]["responses"]["429"].is_null());

    // What the document requires, the server requires.
    let (_, key) = app.tenant("acme").await;
    let full = crate::support::campaign_body("c");
    for (path, field) in [
        (vec!["name"], "name"),
        (vec!["caller_id"], "caller_id"),
        (vec!["agent"], "agent.system_prompt"),
        (vec!["agent", "system_prompt"], "agent.system_prompt"),
        (vec!["agent", "greeting"], "agent.greeting"),
    ] {
        let mut body = full.clone();
        let mut at = &mut body;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at.as_object_mut()
            .expect("object")
            .remove(path[path.len() - 1]);
        let (status, problem) = app.post("/api/v1/campaigns", &key, &body).await;
        assert_eq!(status, 422, "{path:?}: {problem}");
        let named: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(named.contains(&field), "{path:?}: {problem}");
    }
    app.stop().await;
}
