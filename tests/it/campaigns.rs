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
    assert_eq!(c["ring_timeout_secs"], 45, "the default ring time");
    assert_eq!(c["reprompt_after_secs"], 8, "the default reprompt time");
    assert_eq!(c["agent"]["language"], "en-US");
    let id = c["id"].as_str().expect("id");

    let (status, got) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(status, 200);
    assert_eq!(got, c);

    let (status, patched) = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &key,
            &json!({ "name": "summer", "agent": { "greeting": "Hi there" }, "max_concurrent_calls": 50,
                     "ring_timeout_secs": 20, "reprompt_after_secs": 5 }),
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
    assert_eq!(patched["ring_timeout_secs"], 20);
    assert_eq!(patched["reprompt_after_secs"], 5);

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
                "max_call_duration_secs": 5,
                "ring_timeout_secs": 10,
                "reprompt_after_secs": 61
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
        "ring_timeout_secs",
        "reprompt_after_secs",
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

/// One call of `contact` as the runtime leaves it: a dial intent moved
/// through `statuses`, with `agent_v2v` as its agent turns' voice-to-voice
/// latencies (each followed by a callee turn) and, given `end` (outcome,
/// the contact's status after it), finished with that outcome and recorded
/// on the contact.
#[allow(clippy::too_many_arguments)]
async fn summary_call(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: talky_actors::ids::TenantId,
    campaign: talky_actors::ids::CampaignId,
    contact: &serde_json::Value,
    attempt: i32,
    statuses: &[&str],
    agent_v2v: &[Option<i32>],
    end: Option<(&str, &str)>,
) {
    use talky::db;
    use talky_actors::ids::{CallId, ContactId};
    let contact_id = ContactId(
        contact["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("contact id"),
    );
    let phone = contact["phone"].as_str().expect("phone");
    let call = db::calls::create_intent(
        conn,
        db::calls::NewIntent {
            tenant,
            campaign,
            contact: contact_id,
            attempt,
            phone,
            media_token_hash: None,
            node: None,
        },
    )
    .await
    .expect("intent");
    let call = CallId(call.id);
    let at = chrono::Utc::now();
    for status in statuses {
        db::calls::set_status(conn, tenant, call, status, at)
            .await
            .expect("status");
    }
    let mut seq = 0;
    for v2v in agent_v2v {
        for speaker in ["agent", "user"] {
            db::calls::insert_turn(
                conn,
                &db::calls::CallTurn {
                    tenant_id: tenant.0,
                    call_id: call.0,
                    seq,
                    speaker: speaker.into(),
                    text: format!("turn {seq}"),
                    heard_text: None,
                    interrupted: false,
                    started_at: at,
                    ended_at: Some(at),
                    stt_ms: None,
                    llm_first_token_ms: None,
                    tts_first_audio_ms: None,
                    first_frame_ms: None,
                    // The callee's turns carry no latency.
                    voice_to_voice_ms: if speaker == "agent" { *v2v } else { Some(1) },
                },
            )
            .await
            .expect("turn");
            seq += 1;
        }
    }
    if let Some((outcome, contact_status)) = end {
        db::calls::finish(conn, tenant, call, outcome, None)
            .await
            .expect("finish");
        db::contacts::record_outcome(
            conn,
            tenant,
            campaign,
            contact_id,
            outcome,
            contact_status,
            None,
            attempt,
        )
        .await
        .expect("outcome");
    }
}

/// The q-quantile as PostgreSQL's `percentile_disc` takes it: the first
/// value (ascending) whose cumulative share reaches q.
fn percentile_disc(sorted: &[i64], q: f64) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_counts_what_the_lists_show() {
    use talky_actors::ids::{CampaignId, TenantId};
    let app = TestApp::start().await;
    let (tenant_s, key) = app.tenant("acme").await;
    let (_, other_key) = app.tenant("other").await;
    let tenant: TenantId = tenant_s.parse().expect("tenant");
    let id = app.campaign(&key, "summed").await;
    let campaign: CampaignId = id.parse().expect("campaign");
    let summary_path = format!("/api/v1/campaigns/{id}/summary");

    // Empty: every status listed with zero, no latency figures.
    let (status, empty) = app.get(&summary_path, &key).await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["state"], "draft");
    assert_eq!(empty["contacts"]["total"], 0);
    assert_eq!(
        empty["contacts"]["by_status"],
        json!({ "pending": 0, "in_progress": 0, "retry": 0, "completed": 0, "failed": 0, "dnc": 0 })
    );
    assert_eq!(empty["calls"]["by_outcome"], json!({}));
    assert_eq!(empty["latency"]["count"], 0);
    assert_eq!(empty["latency"]["p50_ms"], serde_json::Value::Null);
    assert_eq!(
        empty["latency"]["histogram_ms"]
            .as_array()
            .expect("buckets")
            .len(),
        9
    );

    // Six contacts, one of them on the do-not-call list.
    let (status, _) = app
        .post("/api/v1/dnc", &key, &json!({ "phone": "+14155550105" }))
        .await;
    assert_eq!(status, 201);
    let (status, report) = app
        .upload(
            &format!("/api/v1/campaigns/{id}/contacts"),
            &key,
            "text/csv",
            "phone\n+14155550101\n+14155550102\n+14155550103\n+14155550104\n+14155550105\n+14155550106\n",
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{id}/contacts?limit=100"), &key)
        .await;
    let by_phone = |phone: &str| {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|c| c["phone"] == phone)
            .cloned()
            .unwrap_or_else(|| panic!("no contact {phone}"))
    };
    let mut conn = app.db.conn().await;
    type Step<'a> = (
        &'a str,
        i32,
        &'a [&'a str],
        &'a [Option<i32>],
        Option<(&'a str, &'a str)>,
    );
    let script: [Step; 5] = [
        // A conversation that completed.
        (
            "+14155550101",
            1,
            &["dialing", "answered", "conversation"],
            &[Some(200), Some(480)],
            Some(("completed", "completed")),
        ),
        // Busy, then a machine (its voicemail message measured).
        (
            "+14155550102",
            1,
            &["dialing"],
            &[],
            Some(("busy", "retry")),
        ),
        (
            "+14155550102",
            2,
            &["dialing", "answered", "machine"],
            &[Some(900)],
            Some(("machine", "failed")),
        ),
        // A first call still in conversation (values on the buckets'
        // edges; a greeting without a measured latency).
        (
            "+14155550103",
            1,
            &["dialing", "answered", "conversation"],
            &[
                None,
                Some(250),
                Some(251),
                Some(5000),
                Some(5001),
                Some(1200),
            ],
            None,
        ),
        // Nobody answered.
        (
            "+14155550104",
            1,
            &["dialing", "ringing"],
            &[],
            Some(("no_answer", "retry")),
        ),
    ];
    for (phone, attempt, statuses, v2v, end) in script {
        summary_call(
            &mut conn,
            tenant,
            campaign,
            &by_phone(phone),
            attempt,
            statuses,
            v2v,
            end,
        )
        .await;
    }

    // Another campaign of the tenant: none of its figures count here.
    let elsewhere = app.campaign(&key, "elsewhere").await;
    app.upload(
        &format!("/api/v1/campaigns/{elsewhere}/contacts"),
        &key,
        "text/csv",
        "phone\n+14155550101\n",
    )
    .await;
    let (_, other_page) = app
        .get(&format!("/api/v1/campaigns/{elsewhere}/contacts"), &key)
        .await;
    summary_call(
        &mut conn,
        tenant,
        elsewhere.parse().expect("id"),
        &other_page["items"][0],
        1,
        &["dialing", "answered"],
        &[Some(7)],
        Some(("completed", "completed")),
    )
    .await;

    let (status, s) = app.get(&summary_path, &key).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["state"], "draft");
    assert!(
        s["at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some(),
        "{s}"
    );

    // Contacts, as their list shows them.
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{id}/contacts?limit=100"), &key)
        .await;
    let contacts = page["items"].as_array().expect("items");
    assert_eq!(s["contacts"]["total"], contacts.len());
    assert_eq!(contacts.len(), 6);
    for status in talky::db::contacts::STATUSES {
        let n = contacts.iter().filter(|c| c["status"] == status).count();
        assert_eq!(s["contacts"]["by_status"][status], n, "{status}: {s}");
    }
    assert_eq!(s["contacts"]["by_status"]["dnc"], 1);

    // Calls, as their list shows them.
    let (_, page) = app
        .get(&format!("/api/v1/calls?campaign_id={id}&limit=100"), &key)
        .await;
    let calls = page["items"].as_array().expect("items");
    assert_eq!(calls.len(), 5);
    assert_eq!(s["calls"]["total"], calls.len());
    let distinct = |pick: &dyn Fn(&&serde_json::Value) -> bool| {
        calls
            .iter()
            .filter(pick)
            .map(|c| c["contact_id"].as_str().expect("contact"))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert_eq!(s["contacts"]["dialled"], distinct(&|_| true));
    assert_eq!(s["contacts"]["dialled"], 4);
    assert_eq!(
        s["calls"]["live"],
        calls.iter().filter(|c| c["status"] != "finished").count()
    );
    assert_eq!(s["calls"]["live"], 1);
    let mut outcomes = serde_json::Map::new();
    for c in calls.iter().filter(|c| c["status"] == "finished") {
        let o = c["outcome"]
            .as_str()
            .expect("finished calls have an outcome");
        let n = outcomes.get(o).and_then(|v| v.as_i64()).unwrap_or(0);
        outcomes.insert(o.to_string(), json!(n + 1));
    }
    assert_eq!(
        s["calls"]["by_outcome"],
        serde_json::Value::Object(outcomes)
    );
    let answered = |c: &&serde_json::Value| !c["answered_at"].is_null();
    assert_eq!(s["calls"]["answered_contacts"], distinct(&answered));
    assert_eq!(s["calls"]["answered_contacts"], 3);
    assert_eq!(
        s["calls"]["conversation_contacts"],
        distinct(&|c| answered(c) && c["outcome"] != "machine" && c["status"] != "machine")
    );
    assert_eq!(s["calls"]["conversation_contacts"], 2);

    // Latency, from every call's turns.
    let mut values = Vec::new();
    for c in calls {
        let (status, detail) = app
            .get(
                &format!("/api/v1/calls/{}", c["id"].as_str().expect("id")),
                &key,
            )
            .await;
        assert_eq!(status, 200, "{detail}");
        for t in detail["turns"].as_array().expect("turns") {
            if t["speaker"] == "agent"
                && let Some(v) = t["latency"]["voice_to_voice_ms"].as_i64()
            {
                values.push(v);
            }
        }
    }
    values.sort_unstable();
    let lat = &s["latency"];
    assert_eq!(lat["count"], values.len());
    assert_eq!(values.len(), 8);
    for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        assert_eq!(
            lat[field].as_i64(),
            percentile_disc(&values, q),
            "{field}: {lat}"
        );
    }
    let buckets = lat["histogram_ms"].as_array().expect("buckets");
    let mut below = i64::MIN;
    for b in buckets {
        let le = b["le"].as_i64();
        let n = values
            .iter()
            .filter(|v| **v > below && le.is_none_or(|le| **v <= le))
            .count();
        assert_eq!(b["count"], n, "bucket {b}: {lat}");
        below = le.unwrap_or(i64::MAX);
    }
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["count"].as_i64().expect("count"))
            .collect::<Vec<_>>(),
        vec![2, 2, 0, 1, 1, 0, 0, 1, 1],
        "{lat}"
    );
    assert!(buckets.last().expect("open bucket")["le"].is_null());

    // Another tenant's campaign is not found; so are unknown ids; a
    // malformed id is a bad request (all problem+json, checked by `get`).
    let (status, _) = app.get(&summary_path, &other_key).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get(
            &format!("/api/v1/campaigns/{}/summary", CampaignId::new()),
            &key,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/api/v1/campaigns/not-a-uuid/summary", &key).await;
    assert_eq!(status, 400);
    app.stop().await;
}
