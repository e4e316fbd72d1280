use chrono::Utc;
use serde_json::json;
use talky::db;
use talky_actors::ids::{CallId, CampaignId, ContactId, TenantId};

use crate::support::TestApp;

/// Writes a dial intent for the campaign's first contact, as the dialer
/// does, and returns the call id. The call stays live (not finished).
pub async fn live_call(app: &TestApp, tenant: &str, campaign: &str) -> CallId {
    let mut conn = app.db.conn().await;
    let tenant: TenantId = tenant.parse().expect("tenant id");
    let campaign: CampaignId = campaign.parse().expect("campaign id");
    let contacts = db::contacts::list(
        &mut conn,
        tenant,
        campaign,
        None,
        db::Page {
            limit: 1,
            after: None,
        },
    )
    .await
    .expect("contacts");
    let contact = &contacts[0];
    let call = db::calls::create_intent(
        &mut conn,
        db::calls::NewIntent {
            tenant,
            campaign,
            contact: ContactId(contact.id),
            attempt: 1,
            phone: &contact.phone,
            media_token_hash: None,
            node: None,
        },
    )
    .await
    .expect("intent");
    CallId(call.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_turns_and_events() {
    let app = TestApp::start().await;
    let (tenant, key) = app.tenant("acme").await;
    let campaign = app.campaign(&key, "c").await;
    app.upload(
        &format!("/api/v1/campaigns/{campaign}/contacts"),
        &key,
        "text/csv",
        "phone\n+14155550123\n",
    )
    .await;
    let call = live_call(&app, &tenant, &campaign).await;
    let tenant_id: TenantId = tenant.parse().expect("tenant");
    let mut conn = app.db.conn().await;

    // A second intent for the same attempt is refused by the database.
    let first = db::calls::get(&mut conn, tenant_id, call)
        .await
        .expect("get")
        .expect("call");
    let dup = db::calls::create_intent(
        &mut conn,
        db::calls::NewIntent {
            tenant: tenant_id,
            campaign: CampaignId(first.campaign_id),
            contact: ContactId(first.contact_id),
            attempt: 1,
            phone: &first.phone,
            media_token_hash: None,
            node: None,
        },
    )
    .await
    .expect_err("duplicate intent");
    assert!(dup.is_unique_violation(), "{dup}");

    // Events are stored once however often the provider repeats them.
    let at = Utc::now();
    let event = json!({ "status": "answered", "uuid": "u-1" });
    for expected_new in [true, false] {
        let new = db::calls::record_event(
            &mut conn,
            talky::providers::telephony::TelephonyProvider::Vonage,
            Some(tenant_id),
            Some(call),
            "u-1",
            "answered",
            at,
            &event,
        )
        .await
        .expect("event");
        assert_eq!(new, expected_new);
    }
    for (seq, speaker, text, heard) in [
        (
            0,
            "agent",
            "Hello, this is Ada.",
            Some("Hello, this is Ada."),
        ),
        (1, "user", "Who is this?", None),
        (
            2,
            "agent",
            "Ada from Acme, about your order.",
            Some("Ada from Acme"),
        ),
    ] {
        db::calls::insert_turn(
            &mut conn,
            &db::calls::CallTurn {
                tenant_id: tenant_id.0,
                call_id: call.0,
                seq,
                speaker: speaker.into(),
                text: text.into(),
                heard_text: heard.map(Into::into),
                interrupted: seq == 2,
                started_at: at,
                ended_at: Some(at),
                stt_ms: (speaker == "agent").then_some(150),
                llm_first_token_ms: (speaker == "agent").then_some(210),
                tts_first_audio_ms: (speaker == "agent").then_some(120),
                first_frame_ms: (speaker == "agent").then_some(3),
                voice_to_voice_ms: (speaker == "agent").then_some(483),
            },
        )
        .await
        .expect("turn");
    }

    let (status, list) = app
        .get(
            &format!("/api/v1/calls?campaign_id={campaign}&status=queued"),
            &key,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    let (_, none) = app.get("/api/v1/calls?outcome=completed", &key).await;
    assert_eq!(none["items"].as_array().expect("items").len(), 0);
    let (status, _) = app.get("/api/v1/calls?campaign_id=nope", &key).await;
    assert_eq!(status, 422);

    let (status, detail) = app.get(&format!("/api/v1/calls/{call}"), &key).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["phone"], "+14155550123");
    assert_eq!(detail["attempt"], 1);
    assert_eq!(detail["events"].as_array().expect("events").len(), 1);
    assert_eq!(detail["turns"].as_array().expect("turns").len(), 3);
    assert_eq!(detail["turns"][2]["heard_text"], "Ada from Acme");
    assert_eq!(detail["turns"][2]["interrupted"], true);
    assert_eq!(detail["turns"][2]["latency"]["voice_to_voice_ms"], 483);

    db::calls::finish(&mut conn, tenant_id, call, "completed", Some("agent ended"))
        .await
        .expect("finish");
    let (_, done) = app
        .get("/api/v1/calls?outcome=completed&status=finished", &key)
        .await;
    assert_eq!(done["items"][0]["hangup_reason"], "agent ended");
    let (status, _) = app
        .get(&format!("/api/v1/calls/{}", CallId::new()), &key)
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}
