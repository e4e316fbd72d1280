//! Vonage's event webhook: stored once, before the 2xx; unknown calls
//! stored too; signatures checked when configured.

use serde_json::json;
use talky::config::Secret;

use crate::support::{TestApp, decode};

async fn a_call(app: &TestApp) -> (String, String) {
    let (tenant, key) = app.tenant("acme").await;
    let campaign = app.campaign(&key, "c").await;
    app.upload(
        &format!("/api/v1/campaigns/{campaign}/contacts"),
        &key,
        "text/csv",
        "phone\n+14155550123\n",
    )
    .await;
    let call = crate::calls::live_call(app, &tenant, &campaign).await;
    (call.to_string(), key)
}

fn event(status: &str, at: &str) -> serde_json::Value {
    json!({
        "uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356",
        "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
        "status": status,
        "direction": "outbound",
        "timestamp": at,
        "from": "447700900000",
        "to": "14155550123"
    })
}

async fn post(
    app: &TestApp,
    call: &str,
    body: &serde_json::Value,
    auth: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/vonage/events/{call}")))
        .json(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    decode(req.send().await.expect("send")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_once_and_unknown_calls_are_kept() {
    let app = TestApp::start().await;
    let (call, key) = a_call(&app).await;
    let ringing = event("ringing", "2020-01-01T12:00:01.000Z");
    for _ in 0..3 {
        let (status, _) = post(&app, &call, &ringing, None).await;
        assert_eq!(status, 204, "duplicates are acknowledged");
    }
    let (status, _) = post(
        &app,
        &call,
        &event("answered", "2020-01-01T12:00:05.000Z"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    // Out of order: an older event arriving late is still kept.
    let (status, _) = post(
        &app,
        &call,
        &event("started", "2020-01-01T12:00:00.000Z"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, detail) = app.get(&format!("/api/v1/calls/{call}"), &key).await;
    let statuses: Vec<&str> = detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        ["started", "ringing", "answered"],
        "in provider time order"
    );

    let unknown = uuid::Uuid::now_v7();
    let mut other_leg = ringing.clone();
    other_leg["uuid"] = json!("aaaaaaaa-4a51-4f6b-86e1-46edebcf9356");
    let (status, _) = post(&app, &unknown.to_string(), &other_leg, None).await;
    assert_eq!(status, 204, "an unknown call is answered 2xx");
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = app.db.conn().await;
    let orphans: N =
        diesel::sql_query("SELECT count(*) AS n FROM call_events WHERE tenant_id IS NULL")
            .get_result(&mut conn)
            .await
            .expect("count");
    assert_eq!(orphans.n, 1);

    let (status, _) = post(&app, &call, &json!({ "status": "ringing" }), None).await;
    assert_eq!(status, 400, "no timestamp");
    let res = app
        .client
        .post(app.url(&format!("/vonage/events/{call}")))
        .body("not json")
        .send()
        .await
        .expect("send");
    assert_eq!(decode(res).await.0, 400);
    app.stop().await;
}

fn signed(secret: &str, body: &[u8], iat: i64) -> String {
    let claims = json!({
        "api_key": "abc123",
        "iat": iat,
        "jti": uuid::Uuid::new_v4().to_string(),
        "payload_hash": talky::providers::vonage::signature::payload_hash(body),
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign");
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_checked_when_configured() {
    let app = TestApp::start_with(|c| {
        c.vonage.signature_secret = Secret::new("sig-secret");
        c.vonage.require_signed_webhooks = true;
    })
    .await;
    let (call, _) = a_call(&app).await;
    let body = event("ringing", "2020-01-01T12:00:01.000Z");
    let bytes = serde_json::to_vec(&body).expect("json");
    let now = chrono::Utc::now().timestamp();
    let send = |auth: Option<String>, bytes: Vec<u8>| {
        let mut req = app
            .client
            .post(app.url(&format!("/vonage/events/{call}")))
            .header("content-type", "application/json")
            .body(bytes);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    assert_eq!(
        decode(send(None, bytes.clone()).await.expect("send"))
            .await
            .0,
        401,
        "unsigned"
    );
    let wrong = signed("other-secret", &bytes, now);
    assert_eq!(
        decode(send(Some(wrong), bytes.clone()).await.expect("send"))
            .await
            .0,
        401,
        "wrong secret"
    );
    let stale = signed("sig-secret", &bytes, now - 3600);
    assert_eq!(
        decode(send(Some(stale), bytes.clone()).await.expect("send"))
            .await
            .0,
        401,
        "too old"
    );
    let good = signed("sig-secret", &bytes, now);
    let mut tampered = bytes.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        decode(send(Some(good.clone()), tampered).await.expect("send"))
            .await
            .0,
        401,
        "body changed"
    );
    assert_eq!(
        decode(send(Some(good), bytes).await.expect("send")).await.0,
        204
    );
    app.stop().await;
}
