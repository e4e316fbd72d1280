use serde_json::json;

use crate::support::{TestApp, campaign_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_patch_delete() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let mut body = campaign_body("spring");
    body["calling_window"] = json!({ "start": "10:30", "end": "19:00", "days": ["sat", "mon"] });
    body["agent"]["voicemail_message"] = json!("Call us back.");
    body["voicemail_action"] = json!("leave_message");
    body["max_attempts"] = json!(5);
    let (status, c) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["state"], "draft");
    assert_eq!(
        c["calling_window"],
        json!({ "start": "10:30", "end": "19:00", "days": ["mon", "sat"] })
    );
    assert_eq!(c["max_attempts"], 5);
    assert_eq!(c["max_concurrent_calls"], 10);
    assert_eq!(c["agent"]["language"], "en-US");
    let id = c["id"].as_str().expect("id");

    let (status, got) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(status, 200);
    assert_eq!(got, c);

    let (status, patched) = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &key,
            &json!({ "name": "summer", "agent": { "greeting": "Hi there" }, "max_concurrent_calls": 50 }),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "summer");
    assert_eq!(patched["agent"]["greeting"], "Hi there");
    assert_eq!(
        patched["agent"]["system_prompt"],
        c["agent"]["system_prompt"]
    );
    assert_eq!(patched["max_concurrent_calls"], 50);

    // Clearing the voicemail message while the action needs it is refused
    // and changes nothing.
    let (status, problem) = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &key,
            &json!({ "agent": { "voicemail_message": null } }),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "agent.voicemail_message");
    let (_, still) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(still["agent"]["voicemail_message"], "Call us back.");

    let (status, _) = app.delete(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_names_every_bad_field() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let (status, problem) = app
        .post(
            "/api/v1/campaigns",
            &key,
            &json!({
                "name": "",
                "caller_id": "12",
                "agent": { "greeting": "Hi", "language": "english!" },
                "calling_window": { "start": "25:00", "end": "08:00", "days": [] },
                "max_concurrent_calls": 0,
                "max_attempts": 1000,
                "retry_backoff_secs": -1,
                "max_call_duration_secs": 5
            }),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    for f in [
        "name",
        "caller_id",
        "agent.language",
        "agent.system_prompt",
        "calling_window.start",
        "calling_window.days",
        "max_concurrent_calls",
        "max_attempts",
        "retry_backoff_secs",
        "max_call_duration_secs",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    // Unknown fields and wrong types are 422 too; broken JSON is 400.
    let (status, _) = app
        .post("/api/v1/campaigns", &key, &json!({ "nmae": "x" }))
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post("/api/v1/campaigns", &key, &json!({ "name": 5 }))
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .upload("/api/v1/campaigns", &key, "application/json", "{\"name\":")
        .await;
    assert_eq!(status, 400);
    let (_, list) = app.get("/api/v1/campaigns", &key).await;
    assert_eq!(
        list["items"].as_array().expect("items").len(),
        0,
        "nothing stored"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_transitions_follow_the_state_machine() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let id = app.campaign(&key, "c").await;
    let cmd = |c: &str| format!("/api/v1/campaigns/{id}/{c}");

    let (status, p) = app.post_empty(&cmd("pause"), &key).await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["detail"], "cannot pause a campaign that is draft");
    let (status, c) = app.post_empty(&cmd("start"), &key).await;
    assert_eq!((status, c["state"].as_str()), (200, Some("running")));
    let (status, _) = app.post_empty(&cmd("start"), &key).await;
    assert_eq!(status, 409);
    let (status, p) = app.delete(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(status, 409, "a running campaign cannot be deleted: {p}");
    let (status, c) = app.post_empty(&cmd("pause"), &key).await;
    assert_eq!((status, c["state"].as_str()), (200, Some("paused")));
    let (status, c) = app.post_empty(&cmd("resume"), &key).await;
    assert_eq!((status, c["state"].as_str()), (200, Some("running")));
    // No live calls: stop is immediate.
    let (status, c) = app.post_empty(&cmd("stop"), &key).await;
    assert_eq!((status, c["state"].as_str()), (200, Some("cancelled")));
    let (status, _) = app.post_empty(&cmd("resume"), &key).await;
    assert_eq!(status, 409);
    let (status, _) = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &key,
            &json!({ "name": "n" }),
        )
        .await;
    assert_eq!(status, 409, "a cancelled campaign is not editable");
    let (status, _) = app.post_empty(&cmd("explode"), &key).await;
    assert_eq!(status, 404, "unknown command");
    let (status, _) = app.delete(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(status, 204);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// The REST side of a stop while a call row is live: `stopping`, and a
/// second stop conflicts. No dialer runs here, so the campaign stays
/// `stopping`; this test does not prove that the live call's end takes it
/// on to `cancelled`.
async fn stop_with_a_live_call_row_is_stopping_and_a_second_stop_conflicts() {
    let app = TestApp::start().await;
    let (tenant, key) = app.tenant("acme").await;
    let id = app.campaign(&key, "c").await;
    let (status, _) = app
        .upload(
            &format!("/api/v1/campaigns/{id}/contacts"),
            &key,
            "text/csv",
            "phone\n+14155550123\n",
        )
        .await;
    assert_eq!(status, 200);
    app.post_empty(&format!("/api/v1/campaigns/{id}/start"), &key)
        .await;
    crate::calls::live_call(&app, &tenant, &id).await;
    let (status, c) = app
        .post_empty(&format!("/api/v1/campaigns/{id}/stop"), &key)
        .await;
    assert_eq!((status, c["state"].as_str()), (200, Some("stopping")));
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{id}/stop"), &key)
        .await;
    assert_eq!(status, 409);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paginates_and_filters() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.campaign(&key, &format!("c{i}")).await);
    }
    app.post_empty(&format!("/api/v1/campaigns/{}/start", ids[1]), &key)
        .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .get(&format!("/api/v1/campaigns?limit=2&cursor={cursor}"), &key)
            .await;
        assert_eq!(status, 200);
        for c in page["items"].as_array().expect("items") {
            seen.push(c["id"].as_str().expect("id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every campaign once, in creation order");
    let (_, running) = app.get("/api/v1/campaigns?state=running", &key).await;
    assert_eq!(running["items"].as_array().expect("items").len(), 1);
    assert_eq!(running["items"][0]["id"], ids[1].as_str());
    let (status, _) = app.get("/api/v1/campaigns?state=sleeping", &key).await;
    assert_eq!(status, 422);
    let (status, _) = app.get("/api/v1/campaigns?limit=0", &key).await;
    assert_eq!(status, 422);
    let (status, _) = app.get("/api/v1/campaigns?limit=abc", &key).await;
    assert_eq!(status, 400);
    let (status, _) = app.get("/api/v1/campaigns?cursor=xyz", &key).await;
    assert_eq!(status, 422);
    let (status, _) = app.get("/api/v1/campaigns?bogus=1", &key).await;
    assert_eq!(status, 400);
    app.stop().await;
}

/// A campaign's telephony: the server's default when it names none, any
/// of the three on a server that only stores campaigns, and only what a
/// dialling server has configured (422 naming the field otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telephony_defaults_from_the_server_and_must_be_placeable_here() {
    use talky::providers::telephony::Telephony;
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let (status, c) = app
        .post("/api/v1/campaigns", &key, &campaign_body("plain"))
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["telephony"], "vonage", "the default default");
    let id = c["id"].as_str().expect("id");
    for t in ["twilio", "vonage_then_twilio", "vonage"] {
        let (status, patched) = app
            .patch(
                &format!("/api/v1/campaigns/{id}"),
                &key,
                &json!({ "telephony": t }),
            )
            .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["telephony"], t);
    }
    let mut body = campaign_body("both");
    body["telephony"] = json!("both");
    let (status, problem) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("vonage_then_twilio")),
        "{problem}"
    );
    app.stop().await;

    // A dialling server with Vonage only, whose default is Vonage.
    let app = TestApp::start_with(|c| {
        c.providers.enabled = true;
        c.providers.vonage.application_id = Some("app".into());
        c.dialer.default_telephony = Telephony::Vonage;
    })
    .await;
    let (_, key) = app.tenant("acme").await;
    for t in ["twilio", "vonage_then_twilio"] {
        let mut body = campaign_body(t);
        body["telephony"] = json!(t);
        let (status, problem) = app.post("/api/v1/campaigns", &key, &body).await;
        assert_eq!(status, 422, "{t}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "telephony", "{problem}");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("providers.twilio")),
            "{problem}"
        );
    }
    let mut body = campaign_body("v");
    body["telephony"] = json!("vonage");
    assert_eq!(app.post("/api/v1/campaigns", &key, &body).await.0, 201);
    app.stop().await;

    // A server whose default is Twilio.
    let app = TestApp::start_with(|c| {
        c.providers.twilio.account_sid = Some("AC1".into());
        c.dialer.default_telephony = Telephony::Twilio;
    })
    .await;
    let (_, key) = app.tenant("acme").await;
    let (status, c) = app
        .post("/api/v1/campaigns", &key, &campaign_body("t"))
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["telephony"], "twilio");
    app.stop().await;
}

/// The `transfer` setting: stored with its number normalised, shown,
/// replaced whole or removed by a PATCH, each bad part a 422 naming its
/// field, and absent by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_is_validated_stored_patched_and_removed() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let (status, plain) = app
        .post("/api/v1/campaigns", &key, &campaign_body("no transfer"))
        .await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!(plain["transfer"], serde_json::Value::Null);

    let mut body = campaign_body("with transfer");
    body["transfer"] =
        json!({ "number": "+1 415 555 0199", "announce": "  Connecting you now.  " });
    let (status, c) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(
        c["transfer"],
        json!({ "number": "+14155550199", "announce": "Connecting you now." })
    );
    let id = c["id"].as_str().expect("id");
    let (_, got) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(got["transfer"], c["transfer"]);

    // Bad parts: each named; nothing changes.
    for (transfer, field) in [
        (json!({ "announce": "Hold on." }), "transfer.number"),
        (json!({ "number": "12" }), "transfer.number"),
        (
            json!({ "number": "+14155550199", "announce": " " }),
            "transfer.announce",
        ),
        (
            json!({ "number": "+14155550199", "announce": "x".repeat(1001) }),
            "transfer.announce",
        ),
    ] {
        let (status, problem) = app
            .patch(
                &format!("/api/v1/campaigns/{id}"),
                &key,
                &json!({ "transfer": transfer }),
            )
            .await;
        assert_eq!(status, 422, "{transfer}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, problem) = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &key,
            &json!({ "transfer": { "number": "+14155550199", "extension": "12" } }),
        )
        .await;
    assert_eq!(status, 422, "unknown field: {problem}");
    let (_, still) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(still["transfer"], c["transfer"]);

    // Replaced whole (the announce takes its default), then removed.
    let (status, patched) = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &key,
            &json!({ "transfer": { "number": "+442079460999" } }),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["transfer"],
        json!({ "number": "+442079460999",
                "announce": "Please hold while I connect you to a colleague." })
    );
    let (status, patched) = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &key,
            &json!({ "name": "renamed" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["transfer"]["number"], "+442079460999", "kept");
    let (status, patched) = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &key,
            &json!({ "transfer": null }),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["transfer"], serde_json::Value::Null);
    app.stop().await;
}
