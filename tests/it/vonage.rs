//! Vonage's event webhook: stored once, before the 2xx; signatures
//! required when a secret is configured; every URL bound to its call by
//! its key and to the call's provider leg by its uuid; events that match
//! no call counted, not stored.

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
    let mut req = app.client.post(app.url(&app.events_path(call))).json(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    decode(req.send().await.expect("send")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_once_in_time_order_and_unknown_calls_are_acknowledged_not_stored() {
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
    // ... and no longer stored (issue 12): counted, dropped.
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
    assert_eq!(orphans.n, 0);

    let (status, _) = post(&app, &call, &json!({ "status": "ringing" }), None).await;
    assert_eq!(status, 400, "no timestamp");
    let res = app
        .client
        .post(app.url(&app.events_path(&call)))
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
    })
    .await;
    let (call, _) = a_call(&app).await;
    let body = event("ringing", "2020-01-01T12:00:01.000Z");
    let bytes = serde_json::to_vec(&body).expect("json");
    let now = chrono::Utc::now().timestamp();
    let send = |auth: Option<String>, bytes: Vec<u8>| {
        let mut req = app
            .client
            .post(app.url(&app.events_path(&call)))
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

/// Stands in for a call's actor: keeps the telephony events routed to it.
struct Seen;

impl ractor::Actor for Seen {
    type Msg = talky_actors::call::CallMsg;
    type State = Arc<Mutex<Vec<String>>>;
    type Arguments = Arc<Mutex<Vec<String>>>;

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        seen: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(seen)
    }

    async fn handle(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        msg: Self::Msg,
        seen: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let talky_actors::call::CallMsg::Telephony(e) = msg {
            seen.lock().expect("seen").push(format!("{e:?}"));
        }
        Ok(())
    }
}

use std::sync::{Arc, Mutex};

/// A stand-in actor for `call`; stop it with the returned ref.
async fn stand_in(
    call: &str,
) -> (
    ractor::ActorRef<talky_actors::call::CallMsg>,
    Arc<Mutex<Vec<String>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let id: talky_actors::ids::CallId = call.parse().expect("call id");
    let (actor, _) = ractor::Actor::spawn(
        Some(talky_actors::dialer::call_name(id)),
        Seen,
        seen.clone(),
    )
    .await
    .expect("stand-in call actor");
    (actor, seen)
}

/// (status, stored event statuses) of a call, over the API.
async fn call_state(app: &TestApp, call: &str, key: &str) -> (String, Vec<String>) {
    let (_, detail) = app.get(&format!("/api/v1/calls/{call}"), key).await;
    let events = detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["status"].as_str().unwrap_or_default().to_string())
        .collect();
    (
        detail["status"].as_str().unwrap_or_default().to_string(),
        events,
    )
}

/// The `/metrics` exposition (admin token).
pub(crate) async fn metrics_text(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_unsigned_completed_is_refused_and_the_call_goes_on() {
    // Secure by default: the secret alone requires signatures.
    let app = TestApp::start_with(|c| c.vonage.signature_secret = Secret::new("sig-secret")).await;
    let (call, key) = a_call(&app).await;
    let (actor, seen) = stand_in(&call).await;
    let forged = json!({"uuid":"evil","status":"completed","direction":"outbound",
        "timestamp":"2020-01-01T12:00:09.000Z","from":"447700900000","to":"14155550123"});
    let (status, problem) = post(&app, &call, &forged, None).await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(
        problem["type"], "urn:talky:problem:unauthorized",
        "{problem}"
    );
    let bytes = serde_json::to_vec(&forged).expect("json");
    let now = chrono::Utc::now().timestamp();
    let (status, _) = post(
        &app,
        &call,
        &forged,
        Some(&signed("guessed-secret", &bytes, now)),
    )
    .await;
    assert_eq!(status, 401, "badly signed");
    // Refused before the call is looked up: the same for an unknown call.
    let (status, _) = post(&app, &uuid::Uuid::now_v7().to_string(), &forged, None).await;
    assert_eq!(status, 401);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(seen.lock().expect("seen").is_empty(), "nothing routed");
    let (state, events) = call_state(&app, &call, &key).await;
    assert_ne!(state, "finished");
    assert!(events.is_empty(), "{events:?}");
    // The real, signed event still goes through to the call.
    let ringing = serde_json::to_vec(&event("ringing", "2020-01-01T12:00:01.000Z")).expect("json");
    let res = app
        .client
        .post(app.url(&app.events_path(&call)))
        .header("content-type", "application/json")
        .header("authorization", signed("sig-secret", &ringing, now))
        .body(ringing)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 204);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(*seen.lock().expect("seen"), ["Ringing"]);
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_webhooks_need_the_named_opt_out() {
    let app = TestApp::start_with(|c| {
        c.vonage.signature_secret = Secret::new("sig-secret");
        c.vonage.allow_unsigned_webhooks = true;
    })
    .await;
    let (call, _) = a_call(&app).await;
    let body = event("ringing", "2020-01-01T12:00:01.000Z");
    assert_eq!(
        post(&app, &call, &body, None).await.0,
        204,
        "unsigned: allowed"
    );
    let bytes = serde_json::to_vec(&body).expect("json");
    let bad = signed("other", &bytes, chrono::Utc::now().timestamp());
    assert_eq!(
        post(&app, &call, &body, Some(&bad)).await.0,
        401,
        "bad: never"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_urls_are_bound_to_their_call_and_its_leg() {
    let app = TestApp::start().await;
    let (call, key) = a_call(&app).await;
    let (other, _) = {
        // A second call of another tenant.
        let (tenant, key) = app.tenant("other").await;
        let campaign = app.campaign(&key, "c2").await;
        app.upload(
            &format!("/api/v1/campaigns/{campaign}/contacts"),
            &key,
            "text/csv",
            "phone\n+14155550124\n",
        )
        .await;
        let c = crate::calls::live_call(&app, &tenant, &campaign).await;
        (c.to_string(), key)
    };
    let (actor, seen) = stand_in(&call).await;
    let completed = event("completed", "2020-01-01T12:00:09.000Z");
    let send = |path: String| app.client.post(app.url(&path)).json(&completed).send();
    let no_such = |res: reqwest::Response| async move {
        let (status, problem) = decode(res).await;
        assert_eq!(status, 404, "{problem}");
        problem["detail"].as_str().unwrap_or_default().to_string()
    };
    // No key (the URL of old), a wrong key, another call's key, a
    // truncated key: the same 404 as an unknown call's.
    let right = app.callback_key(&call);
    let missing = no_such(send(format!("/vonage/events/{call}")).await.expect("send")).await;
    let wrong = no_such(
        send(format!("/vonage/events/{call}/{}", "0".repeat(32)))
            .await
            .expect("send"),
    )
    .await;
    let others = no_such(
        send(format!(
            "/vonage/events/{call}/{}",
            app.callback_key(&other)
        ))
        .await
        .expect("send"),
    )
    .await;
    no_such(
        send(format!("/vonage/events/{call}/{}", &right[..31]))
            .await
            .expect("send"),
    )
    .await;
    let unknown = no_such(
        send(format!(
            "/vonage/events/{}/{}",
            uuid::Uuid::now_v7(),
            "0".repeat(32)
        ))
        .await
        .expect("send"),
    )
    .await;
    let stray = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        post(&app, &stray, &completed, None).await.0,
        204,
        "our key, no row: dropped"
    );
    assert_eq!(missing, unknown);
    assert_eq!(wrong, unknown);
    assert_eq!(others, unknown);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(seen.lock().expect("seen").is_empty(), "nothing routed");
    assert_eq!(call_state(&app, &call, &key).await.1, Vec::<String>::new());

    // The first keyed event teaches the provider's id (the create-call
    // answer was lost) ...
    let ringing = event("ringing", "2020-01-01T12:00:01.000Z");
    assert_eq!(post(&app, &call, &ringing, None).await.0, 204);
    // ... after which another leg's uuid is refused, even on the right URL.
    let mut forged = completed.clone();
    forged["uuid"] = json!("aaaaaaaa-0000-4000-8000-000000000000");
    let (status, _) = post(&app, &call, &forged, None).await;
    assert_eq!(status, 404);
    // The media leg's events carry their own uuid: accepted on the key.
    let media = json!({"uuid":"bbbbbbbb-0000-4000-8000-000000000000",
        "conversation_uuid":"CON-1","status":"answered",
        "timestamp":"2020-01-01T12:00:02.000Z","from":"447700900001",
        "to":format!("ws://127.0.0.1/vonage/media/{call}"),"headers":{"call_id":call}});
    assert_eq!(post(&app, &call, &media, None).await.0, 204);
    let mut media_other = media.clone();
    media_other["headers"]["call_id"] = json!(other);
    media_other["status"] = json!("failed");
    assert_eq!(post(&app, &call, &media_other, None).await.0, 404);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(*seen.lock().expect("seen"), ["Ringing"], "the call goes on");
    let (state, events) = call_state(&app, &call, &key).await;
    assert_ne!(state, "finished");
    assert_eq!(events, ["ringing", "answered"]);
    let m = metrics_text(&app).await;
    for reason in ["key", "unknown_call"] {
        assert!(
            m.contains(&format!(
                "talky_webhooks_unmatched_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {m}"
        );
    }
    assert!(
        m.contains("talky_webhooks_refused_total{reason=\"uuid_mismatch\"}"),
        "{m}"
    );
    actor.stop(None);
    app.stop().await;
}
