//! Vonage's answer webhook (answer_url mode): a fresh single-use media
//! token per answer while the old one is unspent, the connect NCCO, 404
//! for calls that cannot be connected, signatures; and a whole call in
//! answer_url mode through the emulators.

use serde_json::Value;
use talky::config::Secret;
use talky::providers::vonage::AnswerMode;
use talky_actors::ids::{CallId, TenantId};
use talky_sim::deepgram::DeepgramSimConfig;
use talky_sim::elevenlabs::ElevenLabsSimConfig;
use talky_sim::vonage::persona::Personas;

use crate::e2e::{World, campaign_with, finished_calls, world_tweaked};
use crate::support::TestApp;

/// A dial intent: (tenant, call id, the intent's media token).
async fn intent(app: &TestApp) -> (TenantId, String, String) {
    let (tenant, key) = app.tenant("acme").await;
    let campaign = app.campaign(&key, "c").await;
    let (call, token) = app.dial_intent(&key, &tenant, &campaign).await;
    (tenant.parse().expect("tenant"), call, token)
}

/// A server placing calls in answer_url mode (the answer URL exists only then).
async fn answer_url_app(adjust: impl FnOnce(&mut talky::config::Config)) -> TestApp {
    TestApp::start_with(|c| {
        c.providers.vonage.answer_mode = AnswerMode::AnswerUrl;
        adjust(c);
    })
    .await
}

/// `/vonage/answer/{call}/{key}`.
fn answer_path(app: &TestApp, call: &str) -> String {
    format!("/vonage/answer/{call}/{}", app.callback_key(call))
}

/// `GET /vonage/answer/{call}/{key}` with Vonage's query: (status, content type, body).
async fn answer(app: &TestApp, call: &str, auth: Option<String>) -> (u16, String, Value) {
    answer_at(app, &answer_path(app, call), "u-1", auth).await
}

/// `GET {path}` with Vonage's query naming leg `uuid`.
async fn answer_at(
    app: &TestApp,
    path: &str,
    uuid: &str,
    auth: Option<String>,
) -> (u16, String, Value) {
    let mut req = app.client.get(app.url(&format!(
        "{path}?to=14155550123&from=447700900001&uuid={uuid}&conversation_uuid=CON-1"
    )));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, ct, body)
}

/// The media URI of an answer NCCO, and its token.
fn media_uri(ncco: &Value) -> (String, String) {
    assert_eq!(ncco[0]["action"], "connect", "{ncco}");
    let ep = &ncco[0]["endpoint"][0];
    assert_eq!(ep["type"], "websocket", "{ncco}");
    assert_eq!(ep["content-type"], "audio/l16;rate=16000", "{ncco}");
    let uri = ep["uri"].as_str().expect("uri").to_string();
    let token = uri.split("token=").nth(1).expect("token").to_string();
    (uri, token)
}

fn ws_url(app: &TestApp, call: &str, token: &str) -> String {
    let base = app.base.replace("http://", "ws://");
    format!("{base}/vonage/media/{call}?token={token}")
}

async fn ws_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(other) => panic!("expected an HTTP answer, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_answer_per_call_mints_the_only_token() {
    let app = answer_url_app(|_| {}).await;
    let (_, call, inline_token) = intent(&app).await;
    let (status, ct, first) = answer(&app, &call, None).await;
    assert_eq!(status, 200, "{first}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let (uri, t1) = media_uri(&first);
    assert!(
        uri.starts_with("ws://") && uri.ends_with(&format!("/vonage/media/{call}?token={t1}")),
        "{uri}"
    );
    // Caller id and length limit come from the campaign; the leg's events
    // go to the call's keyed event URL.
    assert_eq!(first[0]["from"], "14155550100", "{first}");
    assert_eq!(first[0]["limit"], 600, "{first}");
    assert_eq!(first[0]["endpoint"][0]["headers"]["call_id"], call.as_str());
    assert_eq!(
        first[0]["eventUrl"][0],
        app.url(&app.events_path(&call)),
        "{first}"
    );
    assert_ne!(t1, inline_token, "a new token");
    // Once per call: a second fetch gets nothing, and t1 stays the token.
    let (status, _, second) = answer(&app, &call, None).await;
    assert_eq!(status, 404, "{second}");
    // Only the answer's token opens the socket, and only once.
    assert_eq!(ws_status(&ws_url(&app, &call, &inline_token)).await, 403);
    assert_eq!(ws_status(&ws_url(&app, &call, &t1)).await, 101);
    assert_eq!(ws_status(&ws_url(&app, &call, &t1)).await, 403);
    // Spent: no new token.
    let (status, _, body) = answer(&app, &call, None).await;
    assert_eq!(status, 404, "{body}");
    let post = app
        .client
        .post(app.url(&answer_path(&app, &call)))
        .header("content-type", "application/json")
        .body(r#"{"to":"14155550123","uuid":"u-1"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(post.status().as_u16(), 404);
    let unknown = CallId::new().to_string();
    let (status, _, body) = answer(&app, &unknown, None).await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_call_gets_no_ncco_and_post_answers_work() {
    let app = answer_url_app(|_| {}).await;
    let (tenant, call, _) = intent(&app).await;
    let post = |call: String| {
        app.client
            .post(app.url(&answer_path(&app, &call)))
            .header("content-type", "application/json")
            .body(r#"{"to":"14155550123","from":"447700900001","uuid":"u-1"}"#)
            .send()
    };
    let res = post(call.clone()).await.expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let ncco: Value = res.json().await.expect("json");
    media_uri(&ncco);
    let id: CallId = call.parse().expect("call");
    let mut conn = app.db.conn().await;
    talky::db::calls::finish(&mut conn, tenant, id, "failed", Some("test"))
        .await
        .expect("finish")
        .expect("row");
    let (status, _, body) = answer(&app, &call, None).await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

fn signed(secret: &str, body: &[u8]) -> String {
    let claims = serde_json::json!({
        "api_key": "abc123",
        "iat": chrono::Utc::now().timestamp(),
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
async fn answers_are_verified_when_a_secret_is_configured() {
    let app = answer_url_app(|c| {
        c.vonage.signature_secret = Secret::new("sig-secret");
    })
    .await;
    let (_, call, _) = intent(&app).await;
    assert_eq!(answer(&app, &call, None).await.0, 401, "unsigned");
    let wrong = signed("other-secret", b"");
    assert_eq!(
        answer(&app, &call, Some(wrong)).await.0,
        401,
        "wrong secret"
    );
    let good = signed("sig-secret", b"");
    let (status, _, ncco) = answer(&app, &call, Some(good)).await;
    assert_eq!(status, 200, "{ncco}");
    media_uri(&ncco);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_call_in_answer_url_mode() {
    let World {
        vonage, app, _keep, ..
    } = world_tweaked(
        Personas::builtin(),
        DeepgramSimConfig::default(),
        ElevenLabsSimConfig::default(),
        |sim| sim.signature = Some(("abc123".into(), "sig-secret".into())),
        |c| {
            c.providers.vonage.answer_mode = AnswerMode::AnswerUrl;
            c.vonage.signature_secret = Secret::new("sig-secret");
        },
    )
    .await;
    let (id, key) = campaign_with(&app, &["+442079460958"], |_| {}).await;
    let calls = finished_calls(&app, &key, &id, 1).await;
    let call = calls.first().cloned().unwrap_or(Value::Null);
    let texts: Vec<(String, String)> = crate::personas::turns(&call)
        .into_iter()
        .map(|(speaker, text, _)| (speaker, text))
        .collect();
    assert!(texts.len() >= 2, "{call}");
    assert_eq!(
        texts[0],
        ("agent".to_string(), "Hello, this is Ada.".to_string())
    );
    assert_eq!(
        texts[1],
        ("user".to_string(), "Yes, I am interested.".to_string())
    );
    let sim = vonage.calls();
    let record = sim.first().expect("one call");
    assert!(record.request.get("ncco").is_none(), "{}", record.request);
    assert_eq!(record.request["answer_method"], "GET");
    let url = record.request["answer_url"][0].as_str().unwrap_or_default();
    let id = call["id"].as_str().unwrap_or("?");
    assert!(
        url.ends_with(&answer_path(&app, id)),
        "the call's keyed answer URL: {url}"
    );
    assert!(record.socket_opened, "the fetched NCCO's socket opened");
    assert_eq!(record.answer_error, None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_gets_no_media_uri_while_dialling() {
    let app = answer_url_app(|c| c.vonage.signature_secret = Secret::new("sig-secret")).await;
    let (tenant, call, _) = intent(&app).await;
    // Dialling: the provider's id is known, the callee has not answered.
    let id: CallId = call.parse().expect("call");
    let mut conn = app.db.conn().await;
    assert!(
        talky::db::calls::learn_provider_id(&mut conn, tenant, id, "u-real")
            .await
            .expect("provider id")
    );
    drop(conn);
    let path = answer_path(&app, &call);
    let no_uri = |(status, _, body): (u16, String, Value), want: u16, what: &str| {
        assert_eq!(status, want, "{what}: {body}");
        assert!(!body.to_string().contains("token="), "{what}: {body}");
    };
    // Unsigned, or signed with a guessed secret.
    no_uri(
        answer_at(&app, &path, "u-real", None).await,
        401,
        "unsigned",
    );
    let guessed = signed("guessed", b"");
    no_uri(
        answer_at(&app, &path, "u-real", Some(guessed)).await,
        401,
        "bad signature",
    );
    // Another call's URL key, or no key (the URL of old): as unknown.
    let other_key = app.callback_key(&CallId::new().to_string());
    no_uri(
        answer_at(
            &app,
            &format!("/vonage/answer/{call}/{other_key}"),
            "u-real",
            Some(signed("sig-secret", b"")),
        )
        .await,
        404,
        "another call's key",
    );
    no_uri(
        answer_at(
            &app,
            &format!("/vonage/answer/{call}"),
            "u-real",
            Some(signed("sig-secret", b"")),
        )
        .await,
        404,
        "no key",
    );
    // Another leg than the one the provider dials.
    no_uri(
        answer_at(&app, &path, "u-other", Some(signed("sig-secret", b""))).await,
        404,
        "another uuid",
    );
    // The real fetch still works, once ...
    let real = signed("sig-secret", b"");
    let (status, _, ncco) = answer_at(&app, &path, "u-real", Some(real.clone())).await;
    assert_eq!(status, 200, "{ncco}");
    media_uri(&ncco);
    // ... and its captured token, replayed, gets nothing.
    no_uri(
        answer_at(&app, &path, "u-real", Some(real)).await,
        401,
        "replayed token",
    );
    no_uri(
        answer_at(&app, &path, "u-real", Some(signed("sig-secret", b""))).await,
        404,
        "a second fetch",
    );
    app.stop().await;

    // Inline mode has no answer URL at all.
    let inline = TestApp::start().await;
    let (_, call, _) = intent(&inline).await;
    no_uri(answer(&inline, &call, None).await, 404, "inline mode");
    inline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_another_provider_placed_gets_no_ncco() {
    let app = answer_url_app(|_| {}).await;
    let (_, call, _) = intent(&app).await;
    let mut conn = app.db.conn().await;
    talky::db::calls::set_placing_provider(
        &mut conn,
        call.parse().expect("call"),
        talky::providers::telephony::TelephonyProvider::Twilio,
    )
    .await
    .expect("ledger");
    drop(conn);
    let (status, _, body) = answer(&app, &call, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.to_string().contains("token="), "{body}");
    app.stop().await;
}
