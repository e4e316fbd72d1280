//! Post-call analysis end to end: a campaign with an analysis schema run
//! through every emulator (the agent script behind the LLM emulator, which
//! also answers the analyses), the workers of `talky serve`
//! (`Server::run_analysis`), the call view, the re-run route, the
//! results export and tenant isolation.

use std::time::Duration;

use serde_json::{Value, json};
use talky::analysis::config::ResponseFormat;
use talky_sim::deepgram::DeepgramSimConfig;
use talky_sim::elevenlabs::ElevenLabsSimConfig;
use talky_sim::llm::agent::AgentScript;
use talky_sim::llm::{AnalysisFault, AnalysisFaultKind};
use talky_sim::vonage::persona::Personas;

use crate::e2e::{campaign_with, finished_calls, persona_for, world_tweaked};
use crate::personas::by_phone;
use crate::support::{TestApp, eventually};

fn schema() -> Value {
    json!({"type": "object",
           "properties": {"interested": {"type": "boolean"},
                          "callee_words": {"type": "string"},
                          "turns": {"type": "integer", "minimum": 0},
                          "plan": {"type": "string", "enum": ["basic", "premium"]}},
           "required": ["interested", "plan"]})
}

/// The call's analysis once it is `done` or `error` (bounded wait).
async fn settled(app: &TestApp, key: &str, call: &str) -> Value {
    let (analysis, _) = eventually(
        "the analysis is stored",
        Duration::from_secs(60),
        || async {
            let (_, c) = app.get(&format!("/api/v1/calls/{call}"), key).await;
            let a = c["analysis"].clone();
            matches!(a["state"].as_str(), Some("done" | "error")).then_some(a)
        },
    )
    .await;
    analysis
}

/// Structured-output requests the LLM emulator received so far.
fn analysis_requests(llm: &talky_sim::llm::LlmSimHandle) -> usize {
    llm.requests()
        .iter()
        .filter(|r| r.body.get("response_format").is_some())
        .count()
}

async fn get_text(app: &TestApp, path: &str, key: &str, accept: &str) -> (u16, String, String) {
    let res = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(key)
        .header("accept", accept)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, res.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_analysed_to_the_schema_rerun_and_exported() {
    let yes = "+442079460981";
    let no = "+442079460982";
    let busy = "+442079460983";
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", yes);
    persona_for(&mut personas, "not_interested", no);
    persona_for(&mut personas, "busy", busy);
    let world = world_tweaked(
        personas,
        DeepgramSimConfig::default(),
        ElevenLabsSimConfig::default(),
        |_| {},
        |cfg| {
            // The emulator holds json_schema requests to OpenAI's rules.
            cfg.analysis.response_format = ResponseFormat::JsonSchema;
            cfg.analysis.poll_ms = 100;
            cfg.analysis.timeout_ms = 10_000;
        },
    )
    .await;
    let app = &world.app;
    let llm = &world._keep.1;
    llm.set_script(AgentScript);
    app.server().run_analysis().expect("analysis workers");
    let (id, key) = campaign_with(app, &[yes, no, busy], |b| {
        b["analysis"] = json!({
            "structured_data_schema": schema(),
            "success_rubric": "pass/fail: the callee is interested",
        });
    })
    .await;
    let (_, campaign) = app.get(&format!("/api/v1/campaigns/{id}"), &key).await;
    assert_eq!(
        campaign["analysis"]["structured_data_schema"],
        schema(),
        "{campaign}"
    );
    let calls = finished_calls(app, &key, &id, 3).await;
    assert_eq!(calls.len(), 3, "all three calls finished");

    // Every conversation is analysed; the data validates against the schema.
    let validator = jsonschema::validator_for(&schema()).expect("schema");
    let mut analyses = Vec::new();
    for (phone, interested) in [(yes, true), (no, false)] {
        let call = by_phone(&calls, phone);
        let cid = call["id"].as_str().expect("id");
        let a = settled(app, &key, cid).await;
        assert_eq!(a["state"], "done", "{phone}: {a}");
        let data = &a["structured_data"];
        assert!(validator.is_valid(data), "{phone}: {data}");
        assert_eq!(data["interested"], interested, "{phone}: {data}");
        assert_eq!(a["success"], interested, "{phone}: {a}");
        assert!(a["summary"].as_str().is_some_and(|s| !s.is_empty()), "{a}");
        analyses.push((cid.to_string(), a));
    }
    // The busy callee never talked: no analysis, and none can be asked for.
    let busy_call = by_phone(&calls, busy);
    let busy_id = busy_call["id"].as_str().expect("id");
    let (_, detail) = app.get(&format!("/api/v1/calls/{busy_id}"), &key).await;
    assert!(detail.get("analysis").is_none(), "{detail}");
    let (status, _) = app
        .post_empty(&format!("/api/v1/calls/{busy_id}/analyze"), &key)
        .await;
    assert_eq!(status, 409);
    assert_eq!(analysis_requests(llm), 2, "one request per conversation");

    // Invalid JSON twice: one retry, then the error is stored, not data.
    let (yes_id, _) = &analyses[0];
    llm.update(|c| {
        c.analysis_fault = Some(AnalysisFault {
            kind: AnalysisFaultKind::InvalidJson,
            next: 2,
        })
    });
    let (status, body) = app
        .post_empty(&format!("/api/v1/calls/{yes_id}/analyze"), &key)
        .await;
    assert_eq!(status, 202, "{body}");
    let a = settled(app, &key, yes_id).await;
    assert_eq!(a["state"], "error", "{a}");
    assert!(
        a["error"].as_str().is_some_and(|e| e.contains("not JSON")),
        "{a}"
    );
    assert_eq!(analysis_requests(llm), 4, "the first try and one retry");

    // A re-run with a working model stores data again.
    let (status, _) = app
        .post_empty(&format!("/api/v1/calls/{yes_id}/analyze"), &key)
        .await;
    assert_eq!(status, 202);
    let a = settled(app, &key, yes_id).await;
    assert_eq!(a["state"], "done", "{a}");
    assert_eq!(a["structured_data"]["interested"], true, "{a}");
    assert!(a["error"].is_null(), "{a}");

    // Results: one row per contact, the schema's properties as columns.
    let (status, ct, csv) = get_text(
        app,
        &format!("/api/v1/campaigns/{id}/results"),
        &key,
        "text/csv",
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let mut reader = csv_rows(&csv);
    let header = reader.remove(0);
    // The fixed columns, then the schema's properties in alphabetical order.
    let mut expected: Vec<&str> = talky::http::results::FIXED_COLUMNS.to_vec();
    expected.extend(["callee_words", "interested", "plan", "turns"]);
    assert_eq!(header, expected);
    assert_eq!(reader.len(), 3, "{csv}");
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let row_of = |phone: &str| {
        reader
            .iter()
            .find(|r| r[col("phone")] == phone)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {phone}: {csv}"))
    };
    assert_eq!(row_of(yes)[col("interested")], "true");
    assert_eq!(row_of(no)[col("interested")], "false");
    assert_eq!(row_of(no)[col("success")], "false");
    assert_eq!(row_of(busy)[col("summary")], "");
    assert_eq!(row_of(busy)[col("interested")], "");
    let (status, json) = app
        .get(&format!("/api/v1/campaigns/{id}/results?format=json"), &key)
        .await;
    assert_eq!(status, 200, "{json}");
    let items = json["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{json}");
    assert_eq!(json["columns"][8], "callee_words");
    let no_row = items
        .iter()
        .find(|r| r["phone"] == no)
        .cloned()
        .unwrap_or_default();
    assert_eq!(no_row["interested"], false, "{no_row}");
    assert!(no_row["turns"].is_i64(), "{no_row}");

    // Another tenant sees none of it.
    let (_, other) = app.tenant("other").await;
    for path in [
        format!("/api/v1/calls/{yes_id}"),
        format!("/api/v1/campaigns/{id}/results"),
    ] {
        let (status, _) = app.get(&path, &other).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = app
        .post_empty(&format!("/api/v1/calls/{yes_id}/analyze"), &other)
        .await;
    assert_eq!(status, 404);
}

/// A campaign's analysis schema must be a valid JSON Schema (422 naming
/// the field), on create and on PATCH; `null` turns analysis off.
#[tokio::test]
async fn invalid_analysis_schemas_are_refused() {
    let app = TestApp::start().await;
    let (_, key) = app.tenant("acme").await;
    let mut body = crate::support::campaign_body("a");
    body["analysis"] = json!({"structured_data_schema": {"type": "object",
        "properties": {"x": {"type": "no-such-type"}}}});
    let (status, problem) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"], "analysis.structured_data_schema",
        "{problem}"
    );
    body["analysis"] = json!({"summary_prompt": "One sentence."});
    let (status, c) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().expect("id");
    assert_eq!(c["analysis"]["summary_prompt"], "One sentence.");
    let path = format!("/api/v1/campaigns/{id}");
    let (status, problem) = app
        .patch(
            &path,
            &key,
            &json!({"analysis": {"structured_data_schema": [1]}}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"],
        "analysis.structured_data_schema"
    );
    let (status, problem) = app
        .patch(&path, &key, &json!({"analysis": {"unknown": 1}}))
        .await;
    assert_eq!(status, 422, "{problem}");
    let (status, c) = app.patch(&path, &key, &json!({"analysis": null})).await;
    assert_eq!(status, 200, "{c}");
    assert!(c.get("analysis").is_none(), "{c}");
}

/// RFC 4180 rows of a CSV text (quoted fields, doubled quotes, CRLF).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

/// The queue: finishing a conversation queues it once (in the finishing
/// transaction; a second finish adds nothing), a claim is leased to its
/// node, a lapsed lease is taken again by another node, and only the
/// lease's holder stores a result.
#[tokio::test]
async fn finished_conversations_are_queued_once_and_lapsed_claims_retaken() {
    use chrono::Utc;
    use talky::db;
    use talky::db::analyses::Outcome;
    use talky_actors::ids::{CallId, TenantId};

    let app = TestApp::start().await;
    let (tenant, key) = app.tenant("acme").await;
    let mut body = crate::support::campaign_body("q");
    body["analysis"] = json!({});
    let (_, c) = app.post("/api/v1/campaigns", &key, &body).await;
    let campaign = c["id"].as_str().expect("id").to_string();
    let (call, _) = app.dial_intent(&key, &tenant, &campaign).await;
    let tenant = TenantId(tenant.parse().expect("tenant"));
    let call = CallId(call.parse().expect("call"));
    let mut conn = app.db.conn().await;
    let turn = |seq: i32, speaker: &str| db::calls::CallTurn {
        tenant_id: tenant.0,
        call_id: call.0,
        seq,
        speaker: speaker.into(),
        text: "hello".into(),
        heard_text: None,
        interrupted: false,
        started_at: Utc::now(),
        ended_at: None,
        stt_ms: None,
        llm_first_token_ms: None,
        tts_first_audio_ms: None,
        first_frame_ms: None,
        voice_to_voice_ms: None,
    };
    db::calls::insert_turn(&mut conn, &turn(0, "agent"))
        .await
        .expect("turn");
    // Only the agent spoke: no conversation, nothing queued.
    db::calls::finish(&mut conn, tenant, call, "completed", None)
        .await
        .expect("finish");
    assert!(
        db::analyses::get(&mut conn, tenant, call)
            .await
            .expect("get")
            .is_none()
    );
    db::calls::insert_turn(&mut conn, &turn(1, "user"))
        .await
        .expect("turn");
    db::calls::finish(&mut conn, tenant, call, "completed", None)
        .await
        .expect("finish");
    db::calls::finish(&mut conn, tenant, call, "completed", None)
        .await
        .expect("finish");
    let queued = db::analyses::get(&mut conn, tenant, call)
        .await
        .expect("get")
        .expect("queued");
    assert_eq!(queued.state, "pending");
    assert_eq!(db::analyses::open_count(&mut conn).await.expect("count"), 1);

    let now = Utc::now();
    let lease = chrono::Duration::seconds(30);
    let a = db::analyses::claim(&mut conn, "node-a", now, lease)
        .await
        .expect("claim");
    assert_eq!(a.as_ref().map(|c| (c.call_id, c.claims)), Some((call.0, 1)));
    // Leased: node B finds nothing until the lease lapses (node A died).
    let b = db::analyses::claim(&mut conn, "node-b", now, lease)
        .await
        .expect("claim");
    assert!(b.is_none());
    let later = now + chrono::Duration::seconds(31);
    let b = db::analyses::claim(&mut conn, "node-b", later, lease)
        .await
        .expect("claim");
    assert_eq!(b.map(|c| c.claims), Some(2));
    // Node A's late result is not stored; node B's is.
    let done = |summary: &str| Outcome::Done {
        summary: summary.into(),
        structured_data: None,
        success: None,
        provider: "llm".into(),
    };
    let stored = db::analyses::store(&mut conn, tenant, call, "node-a", &done("late"), later)
        .await
        .expect("store");
    assert!(!stored, "a lapsed claimer stores nothing");
    let stored = db::analyses::store(&mut conn, tenant, call, "node-b", &done("fresh"), later)
        .await
        .expect("store");
    assert!(stored);
    let row = db::analyses::get(&mut conn, tenant, call)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(
        (row.state.as_str(), row.summary.as_deref()),
        ("done", Some("fresh"))
    );
    assert_eq!(db::analyses::open_count(&mut conn).await.expect("count"), 0);
    let none = db::analyses::claim(&mut conn, "node-b", later, lease)
        .await
        .expect("claim");
    assert!(none.is_none(), "a stored analysis is not claimed again");

    // A re-run queues it again; a claim no LLM answered is released to
    // be claimed again only after its delay.
    let rerun = db::analyses::rerun(&mut conn, tenant, call, later)
        .await
        .expect("rerun");
    assert_eq!(rerun, db::analyses::Rerun::Queued);
    let c = db::analyses::claim(&mut conn, "node-c", later, lease)
        .await
        .expect("claim");
    assert_eq!(
        c.map(|c| c.claims),
        Some(1),
        "a re-run starts its claims afresh"
    );
    let until = later + chrono::Duration::seconds(10);
    let released = db::analyses::release(&mut conn, tenant, call, "node-c", until)
        .await
        .expect("release");
    assert!(released);
    let early = db::analyses::claim(&mut conn, "node-c", later, lease)
        .await
        .expect("claim");
    assert!(early.is_none(), "not before its delay");
    let after = until + chrono::Duration::seconds(1);
    let again = db::analyses::claim(&mut conn, "node-d", after, lease)
        .await
        .expect("claim");
    assert_eq!(again.map(|c| c.claims), Some(2));
    app.stop().await;
}
