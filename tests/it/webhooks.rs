//! Customer webhooks end to end: the API (CRUD, errors, tenant
//! isolation), events of a real campaign through the emulators arriving
//! at a receiver on loopback that fails its first deliveries, 410, replay.
//! Signatures are verified by the simulated world's receiver
//! (`talky_sim::receiver`, its own HMAC), never with talky's signer.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use talky_sim::llm::agent::AgentScript;
use talky_sim::receiver::ids_by;
use talky_sim::vonage::persona::Personas;

use crate::e2e::{campaign_of, finished_calls, persona_for, world_tweaked};
use crate::support::{TestApp, eventually};

pub(crate) use talky_sim::receiver::{Received, Receiver};

/// Whether `r` carries a valid Standard Webhooks signature under `secret`
/// (checked by the simulated world's receiver, never by talky's signer).
pub(crate) fn verifies(secret: &str, r: &Received) -> bool {
    r.verifies(secret)
}

/// The settings every webhook test runs with: loopback receivers allowed,
/// quick polls and retries.
pub(crate) fn quick(c: &mut talky::config::Config) {
    c.webhooks.allow_private_targets = true;
    c.webhooks.poll_ms = 100;
    c.webhooks.retry_base_ms = 200;
    c.webhooks.retry_max_secs = 2;
    c.webhooks.timeout_ms = 3_000;
}

/// Creates an endpoint; returns (id, secret).
pub(crate) async fn endpoint(
    app: &TestApp,
    key: &str,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let (status, body) = app
        .post(
            "/api/v1/webhooks",
            key,
            &json!({ "url": url, "events": events }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().expect("id").to_string(),
        body["secret"].as_str().expect("secret").to_string(),
    )
}

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_validates_and_isolates_webhooks() {
    // Default settings: private targets are refused.
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("globex").await;

    let cases = [
        (
            json!({"url": "ftp://example.com/x", "events": ["call.ended"]}),
            "url",
        ),
        (json!({"url": "not a url", "events": ["call.ended"]}), "url"),
        (
            json!({"url": "http://127.0.0.1:9/x", "events": ["call.ended"]}),
            "url",
        ),
        (
            json!({"url": "http://169.254.169.254/x", "events": ["call.ended"]}),
            "url",
        ),
        (
            json!({"url": "http://localhost:9/x", "events": ["call.ended"]}),
            "url",
        ),
        (
            json!({"url": "https://93.184.216.34/x", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://93.184.216.34/x", "events": ["call.ended", "call.exploded"]}),
            "events[1]",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = app.post("/api/v1/webhooks", &key, &body).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    let (status, _) = app
        .post(
            "/api/v1/webhooks",
            &key,
            &json!({"url": "https://93.184.216.34/x"}),
        )
        .await;
    assert_eq!(status, 422, "events missing");

    let (status, created) = app
        .post(
            "/api/v1/webhooks",
            &key,
            &json!({"url": "https://93.184.216.34/hooks", "events": ["call.ended", "campaign.completed"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let secret = created["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"), "{created}");
    let raw = talky_sim::receiver::secret_key(secret).expect("base64");
    assert!(raw.len() >= 24, "{} random bytes", raw.len());
    assert_eq!(
        created["events"],
        json!(["call.ended", "campaign.completed"])
    );
    assert_eq!(created["url"], "https://93.184.216.34/hooks");

    let (status, list) = app.get("/api/v1/webhooks", &key).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(
        list["items"][0].get("secret").is_none(),
        "no secret in lists"
    );
    let (status, one) = app.get(&format!("/api/v1/webhooks/{id}"), &key).await;
    assert_eq!(status, 200);
    assert_eq!(one["id"], id.as_str());
    assert!(one.get("secret").is_none(), "no secret after creation");
    let (status, deliveries) = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"), &key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(deliveries["items"], json!([]));

    // Another tenant's webhook does not exist for this one.
    let (status, _) = app.get("/api/v1/webhooks", &other).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get("/api/v1/webhooks", &other).await.1["items"],
        json!([])
    );
    for path in [
        format!("/api/v1/webhooks/{id}"),
        format!("/api/v1/webhooks/{id}/deliveries"),
    ] {
        let (status, problem) = app.get(&path, &other).await;
        assert_eq!(status, 404, "{path}: {problem}");
    }
    let (status, _) = app
        .post_empty(
            &format!(
                "/api/v1/webhooks/{id}/deliveries/{}/replay",
                uuid::Uuid::now_v7()
            ),
            &other,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.delete(&format!("/api/v1/webhooks/{id}"), &other).await;
    assert_eq!(status, 404);
    let (status, _) = app.get(&format!("/api/v1/webhooks/{id}"), "tk_nope").await;
    assert_eq!(status, 401);

    let (status, _) = app.delete(&format!("/api/v1/webhooks/{id}"), &key).await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/api/v1/webhooks/{id}"), &key).await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/api/v1/webhooks/not-a-uuid", &key).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_an_endpoint_and_replay_resends_the_same_id() {
    let app = TestApp::start_with(quick).await;
    let (_, key) = app.tenant("acme").await;
    let ok = Receiver::start(|_| 204).await.expect("receiver");
    let gone = Receiver::start(|_| 410).await.expect("receiver");
    let (ok_id, ok_secret) = endpoint(&app, &key, &ok.url, &["contact.do_not_call"]).await;
    let (gone_id, _) = endpoint(&app, &key, &gone.url, &["contact.do_not_call"]).await;

    // An operator lists a number: one event to each endpoint.
    let (status, _) = app
        .post(
            "/api/v1/dnc",
            &key,
            &json!({"phone": "+14155550101", "reason": "asked"}),
        )
        .await;
    assert_eq!(status, 201);
    // Listing it again is no new state change: no second event.
    let (status, _) = app
        .post("/api/v1/dnc", &key, &json!({"phone": "+14155550101"}))
        .await;
    assert_eq!(status, 200);
    eventually("the event reaches both receivers", WAIT, || async {
        (ok.accepted().len() == 1 && gone.received().len() == 1).then_some(())
    })
    .await;
    let first = ok.accepted()[0].clone();
    assert!(verifies(&ok_secret, &first), "{first:?}");
    let event = first.json();
    assert_eq!(event["type"], "contact.do_not_call");
    assert_eq!(event["data"]["phone"], "+14155550101");
    assert_eq!(event["data"]["source"], "api");
    assert!(
        chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap_or("")).is_ok(),
        "{event}"
    );

    // 410: the endpoint is disabled, its delivery ends `disabled`.
    let (disabled, _) = eventually("410 disables the endpoint", WAIT, || async {
        let (_, w) = app.get(&format!("/api/v1/webhooks/{gone_id}"), &key).await;
        (!w["disabled_at"].is_null()).then_some(w)
    })
    .await;
    let _ = disabled;
    let (_, deliveries) = app
        .get(&format!("/api/v1/webhooks/{gone_id}/deliveries"), &key)
        .await;
    assert_eq!(deliveries["items"][0]["state"], "disabled", "{deliveries}");
    assert_eq!(
        deliveries["items"][0]["attempt_log"][0]["status_code"], 410,
        "{deliveries}"
    );

    // A second number: the live endpoint gets it, the disabled one nothing.
    let (status, _) = app
        .post("/api/v1/dnc", &key, &json!({"phone": "+14155550102"}))
        .await;
    assert_eq!(status, 201);
    eventually(
        "the second event reaches the live endpoint",
        WAIT,
        || async { (ok.accepted().len() == 2).then_some(()) },
    )
    .await;
    assert_eq!(gone.received().len(), 1, "nothing more to a 410 endpoint");
    let (_, gone_deliveries) = app
        .get(&format!("/api/v1/webhooks/{gone_id}/deliveries"), &key)
        .await;
    assert_eq!(gone_deliveries["items"].as_array().map(Vec::len), Some(1));

    // Replay: the same event again, with the same webhook-id.
    let (_, deliveries) = app
        .get(&format!("/api/v1/webhooks/{ok_id}/deliveries"), &key)
        .await;
    let d0 = &deliveries["items"][0];
    assert_eq!(d0["state"], "delivered", "{deliveries}");
    assert_eq!(d0["webhook_id"], first.id.as_str(), "{deliveries}");
    assert_eq!(d0["attempt_log"][0]["status_code"], 204, "{deliveries}");
    let delivery = d0["id"].as_str().expect("delivery id");
    let (status, replay) = app
        .post_empty(
            &format!("/api/v1/webhooks/{ok_id}/deliveries/{delivery}/replay"),
            &key,
        )
        .await;
    assert_eq!(status, 202, "{replay}");
    assert_eq!(replay["webhook_id"], first.id.as_str());
    eventually("the replay arrives", WAIT, || async {
        (ok.accepted().len() == 3).then_some(())
    })
    .await;
    let again = ok.accepted()[2].clone();
    assert_eq!(again.id, first.id, "same webhook-id");
    assert_eq!(again.json(), first.json(), "same event");
    assert!(verifies(&ok_secret, &again));
    let (after, _) = eventually("the replay is recorded", WAIT, || async {
        let (_, d) = app
            .get(&format!("/api/v1/webhooks/{ok_id}/deliveries"), &key)
            .await;
        let item = d["items"][0].clone();
        (item["state"] == "delivered" && item["attempts"] == 2).then_some(item)
    })
    .await;
    assert_eq!(after["attempt_log"].as_array().map(Vec::len), Some(2));
    // A disabled endpoint's delivery cannot be replayed.
    let gone_delivery = gone_deliveries["items"][0]["id"].as_str().expect("id");
    let (status, _) = app
        .post_empty(
            &format!("/api/v1/webhooks/{gone_id}/deliveries/{gone_delivery}/replay"),
            &key,
        )
        .await;
    assert_eq!(status, 409);
    // A delivery of another endpoint is not this one's.
    let (status, _) = app
        .post_empty(
            &format!("/api/v1/webhooks/{ok_id}/deliveries/{gone_delivery}/replay"),
            &key,
        )
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// A receiver that accepts connections and never answers (a dead
/// endpoint whose host still takes TCP): its URL. Stops with the task.
async fn dead_receiver() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}/hooks"), task)
}

/// A tenant whose receivers hang (each attempt holds a worker until its
/// timeout) takes at most half the workers: another tenant's event is
/// delivered while they hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_with_dead_receivers_never_holds_up_another() {
    let app = TestApp::start_with(|c| {
        quick(c);
        c.webhooks.concurrency = 2;
        c.webhooks.timeout_ms = 60_000;
    })
    .await;
    let (_, slow_key) = app.tenant("slow").await;
    let (_, key) = app.tenant("acme").await;
    let mut dead = Vec::new();
    for _ in 0..3 {
        let (url, task) = dead_receiver().await;
        endpoint(&app, &slow_key, &url, &["contact.do_not_call"]).await;
        dead.push(task);
    }
    let ok = Receiver::start(|_| 204).await.expect("receiver");
    endpoint(&app, &key, &ok.url, &["contact.do_not_call"]).await;
    // Three deliveries of the slow tenant fall due first.
    let (status, _) = app
        .post("/api/v1/dnc", &slow_key, &json!({"phone": "+14155550102"}))
        .await;
    assert_eq!(status, 201);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = app
        .post("/api/v1/dnc", &key, &json!({"phone": "+14155550103"}))
        .await;
    assert_eq!(status, 201);
    // Well inside the hanging attempts' 60 s: no worker was free for it
    // if the slow tenant could take both.
    eventually(
        "the other tenant's event arrives",
        Duration::from_secs(20),
        || async { (ok.accepted().len() == 1).then_some(()) },
    )
    .await;
    let event = ok.accepted()[0].json();
    assert_eq!(event["data"]["phone"], "+14155550103", "{event}");
    for task in dead {
        task.abort();
    }
    app.stop().await;
}

/// The structured data the campaigns of these tests ask for.
fn analysis_schema() -> Value {
    json!({"type": "object",
           "properties": {"interested": {"type": "boolean"},
                          "do_not_call": {"type": "boolean"},
                          "callee_words": {"type": "string"}},
           "required": ["interested", "do_not_call"]})
}

/// The proof, in one process: a campaign with an analysis schema
/// and a receiver that fails its first two deliveries; every call yields
/// exactly one `call.ended` and every conversation one `call.analyzed`
/// (by `webhook-id`), all signed, the data valid against the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reports_every_call_once_through_a_failing_receiver() {
    let (interested, remove, busy) = ("+442079460981", "+442079460982", "+442079460983");
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", interested);
    persona_for(&mut personas, "remove_me", remove);
    persona_for(&mut personas, "busy", busy);
    let world = world_tweaked(
        personas,
        Default::default(),
        Default::default(),
        |_| {},
        |c| {
            quick(c);
            c.analysis.poll_ms = 100;
        },
    )
    .await;
    world._keep.1.set_script(AgentScript);
    let app = &world.app;
    app.server().run_analysis().expect("analysis workers");
    // The receiver fails its first two deliveries.
    let receiver = Receiver::start(|n| if n < 2 { 500 } else { 200 })
        .await
        .expect("receiver");
    let (_, key) = app.tenant("acme").await;
    let (hook, secret) = endpoint(
        app,
        &key,
        &receiver.url,
        &[
            "call.started",
            "call.ended",
            "call.analyzed",
            "contact.do_not_call",
            "campaign.completed",
        ],
    )
    .await;
    let campaign = campaign_of(app, &key, &[interested, remove, busy], |b| {
        b["recording_enabled"] = json!(true);
        b["analysis"] = json!({
            "structured_data_schema": analysis_schema(),
            "success_rubric": "pass/fail: the callee is interested",
        });
    })
    .await;
    let calls = finished_calls(app, &key, &campaign, 3).await;
    assert_eq!(calls.len(), 3, "all three calls finished");

    eventually("campaign.completed arrives", WAIT, || async {
        receiver
            .accepted()
            .iter()
            .any(|r| r.json()["type"] == "campaign.completed")
            .then_some(())
    })
    .await;
    eventually("every call.ended arrives", WAIT, || async {
        (ids_by(&receiver.accepted(), "call.ended", "id").len() == 3).then_some(())
    })
    .await;
    // The two conversations are analysed; the busy call had none.
    eventually("both call.analyzed arrive", WAIT, || async {
        (ids_by(&receiver.accepted(), "call.analyzed", "call_id").len() == 2).then_some(())
    })
    .await;

    let all = receiver.received();
    assert!(all.len() >= 3, "{all:?}");
    assert_eq!(all[0].status, 500);
    assert_eq!(all[1].status, 500);
    for r in &all {
        assert!(verifies(&secret, r), "bad signature: {r:?}");
        assert!(r.id.starts_with("msg_"), "{r:?}");
        let ts: i64 = r.timestamp.parse().expect("unix seconds");
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 600, "{r:?}");
    }
    // The failed deliveries were retried with the same webhook-id.
    for failed in &all[..2] {
        assert!(
            receiver.accepted().iter().any(|r| r.id == failed.id),
            "{} was never delivered",
            failed.id
        );
    }

    // Exactly one call.ended per call (by webhook-id), with the view.
    let ended = ids_by(&all, "call.ended", "id");
    assert_eq!(ended.len(), 3, "{ended:?}");
    for call in &calls {
        let id = call["id"].as_str().expect("call id");
        assert_eq!(ended.get(id).map(BTreeSet::len), Some(1), "{id}: {ended:?}");
    }
    let ended_of = |phone: &str| {
        receiver
            .accepted()
            .into_iter()
            .map(|r| r.json())
            .find(|b| b["type"] == "call.ended" && b["data"]["phone"] == phone)
            .expect("call.ended")
    };
    let talk = ended_of(interested);
    let stored = calls
        .iter()
        .find(|c| c["phone"] == interested)
        .expect("the interested call");
    assert_eq!(talk["data"]["outcome"], stored["outcome"], "{talk}");
    assert_eq!(
        talk["data"]["duration_secs"], stored["duration_secs"],
        "{talk}"
    );
    assert_eq!(
        talk["data"]["hangup_reason"], stored["hangup_reason"],
        "{talk}"
    );
    let heard: Vec<(Value, Value)> = stored["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .map(|t| {
            (
                t["speaker"].clone(),
                if t["heard_text"].is_null() {
                    t["text"].clone()
                } else {
                    t["heard_text"].clone()
                },
            )
        })
        .collect();
    let sent: Vec<(Value, Value)> = talk["data"]["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .map(|t| (t["speaker"].clone(), t["text"].clone()))
        .collect();
    assert!(!sent.is_empty(), "{talk}");
    assert_eq!(sent, heard, "the transcript as heard");
    assert!(
        talk["data"]["turns"]
            .as_array()
            .expect("turns")
            .iter()
            .any(|t| !t["latency"]["voice_to_voice_ms"].is_null()),
        "{talk}"
    );
    assert_eq!(
        talk["data"]["recording_url"],
        format!(
            "{}/api/v1/calls/{}/recording",
            app.base,
            stored["id"].as_str().unwrap_or("")
        ),
        "{talk}"
    );

    // Exactly one call.analyzed per conversation, matching the stored
    // analysis, its data valid against the campaign's schema.
    let validator = jsonschema::validator_for(&analysis_schema()).expect("schema");
    let analyzed = ids_by(&all, "call.analyzed", "call_id");
    assert_eq!(analyzed.len(), 2, "{analyzed:?}");
    for call in &calls {
        let id = call["id"].as_str().expect("id");
        let talked = call["phone"] != busy;
        assert_eq!(
            analyzed.get(id).map(BTreeSet::len),
            talked.then_some(1),
            "{id}: {analyzed:?}"
        );
        if !talked {
            continue;
        }
        let event = receiver
            .accepted()
            .into_iter()
            .map(|r| r.json())
            .find(|b| b["type"] == "call.analyzed" && b["data"]["call_id"] == id)
            .expect("call.analyzed");
        let data = &event["data"];
        assert_eq!(data["state"], "done", "{event}");
        assert!(
            validator.is_valid(&data["structured_data"]),
            "{id}: {event}"
        );
        assert_eq!(
            data["structured_data"]["interested"],
            call["phone"] == interested,
            "{event}"
        );
        assert_eq!(
            data["structured_data"]["do_not_call"],
            call["phone"] == remove,
            "{event}"
        );
        assert!(
            data["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{event}"
        );
        let (_, stored) = app.get(&format!("/api/v1/calls/{id}"), &key).await;
        assert_eq!(
            stored["analysis"]["structured_data"], data["structured_data"],
            "{stored}"
        );
        assert_eq!(stored["analysis"]["success"], data["success"], "{stored}");
    }

    // call.started once for each answered call, none for the busy one.
    let started = ids_by(&all, "call.started", "id");
    for call in &calls {
        let id = call["id"].as_str().expect("id");
        let n = started.get(id).map(BTreeSet::len).unwrap_or(0);
        let answered = !call["answered_at"].is_null();
        assert_eq!(
            n,
            usize::from(answered),
            "{id} answered={answered}: {started:?}"
        );
    }
    assert!(started.len() >= 2, "{started:?}");

    // The callee who asked to be removed.
    let dnc = ids_by(&all, "contact.do_not_call", "phone");
    assert_eq!(dnc.get(remove).map(BTreeSet::len), Some(1), "{dnc:?}");
    let dnc_event = receiver
        .accepted()
        .into_iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "contact.do_not_call")
        .expect("dnc event");
    assert_eq!(dnc_event["data"]["source"], "call");
    // One campaign.completed.
    let completed = ids_by(&all, "campaign.completed", "campaign_id");
    assert_eq!(
        completed.get(&campaign).map(BTreeSet::len),
        Some(1),
        "{completed:?}"
    );

    // The deliveries API shows the failed attempts and their retries.
    let (_, deliveries) = app
        .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &key)
        .await;
    let items = deliveries["items"].as_array().expect("items");
    let retried: Vec<&Value> = items
        .iter()
        .filter(|d| d["attempt_log"][0]["status_code"] == 500)
        .collect();
    assert!(!retried.is_empty(), "{deliveries}");
    for d in retried {
        assert_eq!(d["state"], "delivered", "{d}");
        assert!(d["attempts"].as_i64().unwrap_or(0) >= 2, "{d}");
    }
    // Each call's page lists the deliveries of its own events: the
    // webhook-ids the receiver got for it, to this endpoint, delivered.
    let (_, other_key) = app.tenant("other").await;
    for call in &calls {
        let id = call["id"].as_str().expect("call id");
        let (status, page) = app
            .get(&format!("/api/v1/calls/{id}/deliveries"), &key)
            .await;
        assert_eq!(status, 200, "{page}");
        let listed: BTreeSet<String> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| {
                assert_eq!(d["endpoint_id"], hook.as_str(), "{d}");
                assert_eq!(d["state"], "delivered", "{d}");
                d["webhook_id"].as_str().unwrap_or("").to_owned()
            })
            .collect();
        let mut expected = BTreeSet::new();
        for (kind, by) in [
            ("call.started", "id"),
            ("call.ended", "id"),
            ("call.analyzed", "call_id"),
        ] {
            expected.extend(ids_by(&all, kind, by).remove(id).unwrap_or_default());
        }
        if call["phone"] == remove {
            expected.extend(dnc.get(remove).cloned().unwrap_or_default());
        }
        assert_eq!(listed, expected, "{id}: {page}");
        let (status, _) = app
            .get(&format!("/api/v1/calls/{id}/deliveries"), &other_key)
            .await;
        assert_eq!(status, 404, "another tenant's call");
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("talky_webhook_deliveries_total{result=\"retry\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# HELP talky_webhook_delivery_seconds"),
        "metrics HELP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_deliveries_pending_loses_no_event() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut world = crate::lifetime::World::new(&[]).await;
    for (k, v) in [
        ("TALKY_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
        ("TALKY_WEBHOOKS__POLL_MS", "100"),
        ("TALKY_WEBHOOKS__RETRY_BASE_MS", "200"),
        ("TALKY_WEBHOOKS__RETRY_MAX_SECS", "1"),
        ("TALKY_WEBHOOKS__TIMEOUT_MS", "1000"),
        ("TALKY_ANALYSIS__POLL_MS", "100"),
    ] {
        world.set_env(k, v.into());
    }
    // The receiver fails everything until the first process is dead.
    let up = Arc::new(AtomicBool::new(false));
    let is_up = up.clone();
    let receiver = Receiver::start(move |_| {
        if is_up.load(Ordering::SeqCst) {
            200
        } else {
            503
        }
    })
    .await
    .expect("receiver");
    let mut a = world.serve("a").await;
    let hook = world
        .api(
            &a,
            reqwest::Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": receiver.url,
                "events": ["call.started", "call.ended", "call.analyzed", "campaign.completed"]})),
        )
        .await;
    let secret = hook["secret"].as_str().expect("secret").to_string();
    let campaign = world
        .campaign_with(
            &a,
            json!({"max_attempts": 3, "retry_backoff_secs": 1, "max_concurrent_calls": 3,
                   "analysis": {"structured_data_schema": analysis_schema()}}),
            // All dialled at once: the restart's retries are one wave.
            3,
        )
        .await;
    eventually("deliveries are being attempted", WAIT, || async {
        (receiver.received().len() >= 2).then_some(())
    })
    .await;
    a.signal("-KILL");
    let status = a.exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    let before: BTreeSet<String> = receiver.received().into_iter().map(|r| r.id).collect();
    assert!(!before.is_empty());
    up.store(true, Ordering::SeqCst);

    let b = world.serve("b").await;
    world
        .wait_completed(&b, &campaign, Duration::from_secs(150))
        .await;
    let calls = world.calls(&b, &campaign).await;
    // The calls whose conversations were queued for analysis (before or
    // after the kill), once every analysis is stored.
    let (analysed, _) = eventually(
        "every analysis is stored",
        Duration::from_secs(120),
        || async {
            let mut analysed = Vec::new();
            for c in &calls {
                let id = c["id"].as_str().unwrap_or_default();
                let detail = world
                    .api(
                        &b,
                        reqwest::Method::GET,
                        &format!("/api/v1/calls/{id}"),
                        None,
                    )
                    .await;
                match detail["analysis"]["state"].as_str() {
                    None => {}
                    Some("done") => analysed.push(id.to_string()),
                    Some(_) => return None,
                }
            }
            Some(analysed)
        },
    )
    .await;
    assert!(!analysed.is_empty(), "no conversation was analysed");
    eventually(
        "every event arrives after the restart",
        Duration::from_secs(120),
        || async {
            let accepted = receiver.accepted();
            let ended = ids_by(&accepted, "call.ended", "id");
            let started = ids_by(&accepted, "call.started", "id");
            let all_ended = calls
                .iter()
                .all(|c| ended.contains_key(c["id"].as_str().unwrap_or_default()));
            let all_started = calls
                .iter()
                .filter(|c| !c["answered_at"].is_null())
                .all(|c| started.contains_key(c["id"].as_str().unwrap_or_default()));
            let completed = accepted
                .iter()
                .any(|r| r.json()["type"] == "campaign.completed");
            let analyzed = ids_by(&accepted, "call.analyzed", "call_id");
            let all_analyzed = analysed.iter().all(|id| analyzed.contains_key(id));
            let ids: BTreeSet<String> = accepted.iter().map(|r| r.id.clone()).collect();
            (all_ended && all_started && all_analyzed && completed && before.is_subset(&ids))
                .then_some(())
        },
    )
    .await;
    // At least once, never as two events: one webhook-id per call.ended.
    let received = receiver.received();
    for (call, ids) in ids_by(&received, "call.ended", "id") {
        assert_eq!(ids.len(), 1, "{call}: {ids:?}");
    }
    let analyzed = ids_by(&received, "call.analyzed", "call_id");
    assert_eq!(analyzed.len(), analysed.len(), "{analyzed:?}");
    for (call, ids) in analyzed {
        assert_eq!(ids.len(), 1, "{call}: {ids:?}");
    }
    for r in &received {
        assert!(verifies(&secret, r), "{r:?}");
    }
    world.finish(vec![a, b]).await;
}

#[tokio::test]
async fn the_retention_sweep_keeps_pending_and_recent_events() {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use talky::db::schema::{webhook_attempts, webhook_deliveries, webhook_events};
    use talky::webhooks::outbox;

    let app = TestApp::start().await;
    let (tenant, _) = app.tenant("sweep").await;
    let tenant: uuid::Uuid = tenant.parse().expect("tenant id");
    let mut conn = app.db.conn().await;
    let endpoint = outbox::create_endpoint(
        &mut conn,
        talky_actors::ids::TenantId(tenant),
        "https://receiver.example/hooks",
        &["call.ended".to_string()],
        "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
    )
    .await
    .expect("endpoint");
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::days(40);
    // Four events: three old (delivered, pending, failed), one recent.
    let mut events = Vec::new();
    for (i, (at, state)) in [
        (old, "delivered"),
        (old, "pending"),
        (old, "failed"),
        (now - chrono::Duration::days(1), "delivered"),
    ]
    .into_iter()
    .enumerate()
    {
        outbox::emit(&mut conn, tenant, "call.ended", json!({"n": i}), at)
            .await
            .expect("emit");
        let event: uuid::Uuid = webhook_events::table
            .filter(webhook_events::tenant_id.eq(tenant))
            .order(webhook_events::id.desc())
            .select(webhook_events::id)
            .first(&mut conn)
            .await
            .expect("event");
        let delivery: uuid::Uuid = diesel::update(
            webhook_deliveries::table.filter(webhook_deliveries::event_id.eq(event)),
        )
        .set((
            webhook_deliveries::state.eq(state),
            webhook_deliveries::attempts.eq(1),
        ))
        .returning(webhook_deliveries::id)
        .get_result(&mut conn)
        .await
        .expect("delivery");
        diesel::insert_into(webhook_attempts::table)
            .values((
                webhook_attempts::tenant_id.eq(tenant),
                webhook_attempts::delivery_id.eq(delivery),
                webhook_attempts::attempt.eq(1),
                webhook_attempts::started_at.eq(at),
                webhook_attempts::duration_ms.eq(5),
                webhook_attempts::status_code.eq(Some(200)),
            ))
            .execute(&mut conn)
            .await
            .expect("attempt");
        events.push(event);
    }
    // In batches of one: the delivered and the failed old events go.
    let before = now - chrono::Duration::days(30);
    assert_eq!(outbox::sweep(&mut conn, before, 1).await.expect("sweep"), 1);
    assert_eq!(outbox::sweep(&mut conn, before, 1).await.expect("sweep"), 1);
    assert_eq!(outbox::sweep(&mut conn, before, 1).await.expect("sweep"), 0);
    let left: BTreeSet<uuid::Uuid> = webhook_events::table
        .filter(webhook_events::tenant_id.eq(tenant))
        .select(webhook_events::id)
        .load(&mut conn)
        .await
        .expect("events")
        .into_iter()
        .collect();
    assert_eq!(left, BTreeSet::from([events[1], events[3]]));
    // Their deliveries and attempts went with them.
    let deliveries: i64 = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint.id))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(deliveries, 2);
    let attempts: i64 = webhook_attempts::table
        .filter(webhook_attempts::tenant_id.eq(tenant))
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(attempts, 2);
    app.stop().await;
}
