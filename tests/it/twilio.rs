//! Twilio's routes against a real server, with stand-in call actors:
//! status callbacks (signature over the public URL and form, the per-call
//! key, the leg's CallSid, stored once, routed once) and the media socket
//! (single-use token, `start`, μ-law 8 kHz in as 16 kHz frames, 160-byte
//! μ-law out, marks, `clear`, DTMF, `stop`, limits, recording).
//!
//! Signatures are computed here with the `hmac` and `sha1` crates, and
//! μ-law with G.711's own formulas, never with talky's code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use talky::config::{Config, Secret};
use talky::providers::telephony::TelephonyProvider;
use talky_actors::call::CallMsg;
use talky_actors::dialer::call_name;
use talky_actors::ports::{MediaIn, MediaOut};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::media::{assert_spent, assert_tokens_checked, close_code, refused};
use crate::support::{TestApp, decode, eventually};
use crate::vonage::metrics_text;

const ACCOUNT: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "twilio-auth-token-1";
const CALL_SID: &str = "CA0123456789abcdef0123456789abcdef";
const STREAM_SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

// ----- the world -------------------------------------------------------------

async fn twilio_app(adjust: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::start_with(|c| {
        c.providers.twilio.account_sid = Some(ACCOUNT.into());
        c.providers.twilio.auth_token = Secret::new(TOKEN);
        adjust(c);
    })
    .await
}

/// A call placed on Twilio as the telephony chain leaves it: the intent,
/// its provider recorded before Twilio was asked. (call id, media token,
/// the tenant's API key).
async fn twilio_call(app: &TestApp) -> (String, String, String) {
    let (tenant, key) = app.tenant("acme").await;
    let campaign = app.campaign(&key, "c").await;
    let (call, token) = app.dial_intent(&key, &tenant, &campaign).await;
    let mut conn = app.db.conn().await;
    let placing = talky::db::calls::set_placing_provider(
        &mut conn,
        call.parse().expect("call"),
        TelephonyProvider::Twilio,
    )
    .await
    .expect("ledger");
    assert!(placing);
    (call, token, key)
}

/// The per-call key of a call's Twilio URLs on this server.
fn url_key(app: &TestApp, call: &str) -> String {
    let server_key =
        talky::providers::vonage::CallbackKey::from_config(&app.server().ctx.config.vonage);
    talky::providers::twilio::callback::call_key(&server_key, call)
}

fn status_path(app: &TestApp, call: &str) -> String {
    format!("/twilio/status/{call}/{}", url_key(app, call))
}

/// `X-Twilio-Signature` as Twilio computes it: HMAC-SHA1 keyed with the
/// auth token over the URL and every parameter's name and value, sorted,
/// base64.
fn signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut text = url.to_string();
    for (k, v) in sorted {
        text.push_str(k);
        text.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("key");
    mac.update(text.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

fn status(call_sid: &str, status: &str, seq: &str, at: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AccountSid", ACCOUNT.into()),
        ("ApiVersion", "2010-04-01".into()),
        ("CallSid", call_sid.into()),
        ("CallStatus", status.into()),
        ("CallbackSource", "call-progress-events".into()),
        ("Direction", "outbound-api".into()),
        ("From", "+14155550100".into()),
        ("To", "+14155550123".into()),
        ("SequenceNumber", seq.into()),
        ("Timestamp", at.into()),
    ]
}

fn amd(call_sid: &str, verdict: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AccountSid", ACCOUNT.into()),
        ("CallSid", call_sid.into()),
        ("AnsweredBy", verdict.into()),
        ("MachineDetectionDuration", "2750".into()),
    ]
}

/// How a callback is signed.
enum Sign<'a> {
    /// Not at all.
    No,
    /// Correctly, with this token.
    With(&'a str),
    /// This header, as given.
    Header(String),
}

/// POSTs a form to `path` as Twilio does: (status, problem or nothing).
async fn post_form(
    app: &TestApp,
    path: &str,
    params: &[(&'static str, String)],
    sign: Sign<'_>,
) -> (u16, Value) {
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = serde_urlencoded::to_string(&pairs).expect("form");
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    match sign {
        Sign::No => {}
        Sign::With(token) => {
            req = req.header(
                "x-twilio-signature",
                signature(token, &app.url(path), &pairs),
            )
        }
        Sign::Header(h) => req = req.header("x-twilio-signature", h),
    }
    decode(req.send().await.expect("send")).await
}

/// What a stand-in call actor saw.
#[derive(Default)]
struct Seen {
    telephony: Vec<String>,
    provider_ids: Vec<String>,
    hangups: Vec<String>,
    media: Vec<MediaIn>,
    /// The socket's outbound queue, while attached.
    out: Option<mpsc::Sender<MediaOut>>,
    /// The call's media closed (its inbound channel ended).
    media_closed: bool,
}

type Shared = Arc<Mutex<Seen>>;

fn seen(s: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stands in for a call's actor: notes what is routed to it, takes the
/// media socket's audio, and lets the test speak through it.
struct StandIn;

impl Actor for StandIn {
    type Msg = CallMsg;
    type State = Shared;
    type Arguments = Shared;

    async fn pre_start(
        &self,
        _: ActorRef<CallMsg>,
        s: Shared,
    ) -> Result<Shared, ActorProcessingErr> {
        Ok(s)
    }

    async fn handle(
        &self,
        _: ActorRef<CallMsg>,
        msg: CallMsg,
        s: &mut Shared,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Telephony(e) => seen(s).telephony.push(format!("{e:?}")),
            CallMsg::ProviderId(id) => seen(s).provider_ids.push(id.0),
            CallMsg::Hangup(cause) => {
                let why = match cause {
                    talky_actors::call::lifecycle::EndCause::Failed(why) => why,
                    other => format!("{other:?}"),
                };
                seen(s).hangups.push(why);
            }
            CallMsg::AttachMedia(session) => {
                seen(s).out = Some(session.outbound);
                let mut inbound = talky_actors::testing::inbound_channel(session.inbound);
                let s = s.clone();
                tokio::spawn(async move {
                    while let Some(item) = inbound.recv().await {
                        seen(&s).media.push(item);
                    }
                    let mut g = seen(&s);
                    g.media_closed = true;
                    g.out = None;
                });
            }
            _ => {}
        }
        Ok(())
    }
}

async fn stand_in(call: &str) -> (ActorRef<CallMsg>, Shared) {
    let s = Shared::default();
    let id: talky_actors::ids::CallId = call.parse().expect("call id");
    let (actor, _) = Actor::spawn(Some(call_name(id)), StandIn, s.clone())
        .await
        .expect("stand-in call actor");
    (actor, s)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// (status, stored event statuses, provider, provider call id) of a call,
/// over the API.
async fn call_state(app: &TestApp, call: &str, key: &str) -> (String, Vec<String>, Value, Value) {
    let (status, detail) = app.get(&format!("/api/v1/calls/{call}"), key).await;
    assert_eq!(status, 200, "{detail}");
    let events = detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["status"].as_str().unwrap_or_default().to_string())
        .collect();
    (
        detail["status"].as_str().unwrap_or_default().to_string(),
        events,
        detail["provider"].clone(),
        detail["provider_call_id"].clone(),
    )
}

/// A call placed on Twilio ([`twilio_call`]) with its stand-in actor:
/// (call id, media token, API key, actor, what it saw).
async fn stood_in(app: &TestApp) -> (String, String, String, ActorRef<CallMsg>, Shared) {
    let (call, token, key) = twilio_call(app).await;
    let (actor, s) = stand_in(&call).await;
    (call, token, key, actor, s)
}

/// The first callback of `CALL_SID`: `ringing`.
fn ringing() -> Vec<(&'static str, String)> {
    status(CALL_SID, "ringing", "1", "Fri, 01 Mar 2024 12:00:01 +0000")
}

/// POSTs `form` to `path` signed with the account's token: the status.
async fn signed(app: &TestApp, path: &str, form: &[(&'static str, String)]) -> u16 {
    post_form(app, path, form, Sign::With(TOKEN)).await.0
}

/// Every one of `reasons` is counted in `metric` of the exposition `m`.
fn assert_counted(m: &str, metric: &str, reasons: &[&str]) {
    for reason in reasons {
        assert!(
            m.contains(&format!("{metric}{{reason=\"{reason}\"}}")),
            "{reason}: {m}"
        );
    }
}

// ----- status callbacks ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_must_be_signed_over_the_public_url_and_form() {
    let app = twilio_app(|_| {}).await;
    let (call, _, key, actor, s) = stood_in(&app).await;
    let path = status_path(&app, &call);
    let ringing = ringing();
    let refused = |(status, problem): (u16, Value), what: &str| {
        assert_eq!(status, 401, "{what}: {problem}");
        assert_eq!(
            problem["type"], "urn:talky:problem:unauthorized",
            "{problem}"
        );
    };
    refused(post_form(&app, &path, &ringing, Sign::No).await, "unsigned");
    refused(
        post_form(&app, &path, &ringing, Sign::With("another-token")).await,
        "another token",
    );
    refused(
        post_form(&app, &path, &ringing, Sign::Header("bm90IGl0".into())).await,
        "garbage",
    );
    // Signed for other parameters (a changed status), or another URL.
    let pairs: Vec<(&str, &str)> = ringing.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut forged = ringing.clone();
    forged[3].1 = "completed".into();
    refused(
        post_form(
            &app,
            &path,
            &forged,
            Sign::Header(signature(TOKEN, &app.url(&path), &pairs)),
        )
        .await,
        "tampered",
    );
    let elsewhere = signature(TOKEN, &format!("https://other.example{path}"), &pairs);
    refused(
        post_form(&app, &path, &ringing, Sign::Header(elsewhere)).await,
        "another URL",
    );
    // Refused before the call is looked up: the same for an unknown call.
    let stranger = uuid::Uuid::now_v7().to_string();
    refused(
        post_form(&app, &status_path(&app, &stranger), &ringing, Sign::No).await,
        "unknown call",
    );
    settle().await;
    assert!(seen(&s).telephony.is_empty(), "nothing routed");
    assert!(
        call_state(&app, &call, &key).await.1.is_empty(),
        "nothing stored"
    );
    // The real one goes through.
    assert_eq!(signed(&app, &path, &ringing).await, 204);
    settle().await;
    assert_eq!(seen(&s).telephony, ["Ringing"]);
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_callbacks_need_the_named_opt_out_or_no_token() {
    let app = twilio_app(|c| c.providers.twilio.allow_unsigned_webhooks = true).await;
    let (call, _, _) = twilio_call(&app).await;
    let path = status_path(&app, &call);
    let ringing = ringing();
    assert_eq!(post_form(&app, &path, &ringing, Sign::No).await.0, 204);
    assert_eq!(
        post_form(&app, &path, &ringing, Sign::With("another"))
            .await
            .0,
        401,
        "a bad signature never"
    );
    app.stop().await;

    // No auth token: nothing to check a signature with; the URL key binds.
    let app = twilio_app(|c| c.providers.twilio.auth_token = Secret::default()).await;
    let (call, _, _) = twilio_call(&app).await;
    let path = status_path(&app, &call);
    assert_eq!(post_form(&app, &path, &ringing, Sign::No).await.0, 204);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_the_same_404_as_an_unknown_call() {
    let app = twilio_app(|_| {}).await;
    let (call, _, key) = twilio_call(&app).await;
    let (other, _, _) = twilio_call(&app).await;
    let (actor, s) = stand_in(&call).await;
    let completed = status(
        CALL_SID,
        "completed",
        "3",
        "Fri, 01 Mar 2024 12:00:09 +0000",
    );
    // Each URL correctly signed: only the key is wrong.
    async fn no_such(app: &TestApp, path: String, form: &[(&'static str, String)]) -> String {
        let (status, problem) = post_form(app, &path, form, Sign::With(TOKEN)).await;
        assert_eq!(status, 404, "{path}: {problem}");
        problem["detail"].as_str().unwrap_or_default().to_string()
    }
    let right = url_key(&app, &call);
    let vonage_key = app.callback_key(&call);
    let unknown = no_such(
        &app,
        format!("/twilio/status/{}/{}", uuid::Uuid::now_v7(), "0".repeat(32)),
        &completed,
    )
    .await;
    for path in [
        format!("/twilio/status/{call}"),
        format!("/twilio/status/{call}/{}", "0".repeat(32)),
        format!("/twilio/status/{call}/{}", url_key(&app, &other)),
        format!("/twilio/status/{call}/{vonage_key}"),
        format!("/twilio/status/{call}/{}", &right[..31]),
    ] {
        assert_eq!(no_such(&app, path, &completed).await, unknown);
    }
    // Our key, no row: acknowledged, dropped.
    let stray = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        post_form(
            &app,
            &status_path(&app, &stray),
            &completed,
            Sign::With(TOKEN)
        )
        .await
        .0,
        204
    );
    settle().await;
    assert!(seen(&s).telephony.is_empty(), "nothing routed");
    assert!(call_state(&app, &call, &key).await.1.is_empty());
    let m = metrics_text(&app).await;
    assert_counted(
        &m,
        "talky_webhooks_unmatched_total",
        &["key", "unknown_call"],
    );
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_stored_once_and_routed_once_and_teach_the_call_sid() {
    let app = twilio_app(|_| {}).await;
    let (call, _, key, actor, s) = stood_in(&app).await;
    let path = status_path(&app, &call);
    let ringing = ringing();
    for _ in 0..3 {
        assert_eq!(
            post_form(&app, &path, &ringing, Sign::With(TOKEN)).await.0,
            204,
            "duplicates are acknowledged"
        );
    }
    let answered = status(
        CALL_SID,
        "in-progress",
        "2",
        "Fri, 01 Mar 2024 12:00:05 +0000",
    );
    assert_eq!(signed(&app, &path, &answered).await, 204);
    // The asynchronous AMD verdict (no CallStatus, no Timestamp), twice.
    for _ in 0..2 {
        assert_eq!(
            post_form(
                &app,
                &path,
                &amd(CALL_SID, "machine_end_beep"),
                Sign::With(TOKEN)
            )
            .await
            .0,
            204
        );
    }
    // Out of order: an older status arriving late is kept too.
    let initiated = status(
        CALL_SID,
        "initiated",
        "0",
        "Fri, 01 Mar 2024 12:00:00 +0000",
    );
    assert_eq!(
        post_form(&app, &path, &initiated, Sign::With(TOKEN))
            .await
            .0,
        204
    );
    settle().await;
    {
        let g = seen(&s);
        assert_eq!(g.telephony, ["Ringing", "Answered", "Machine"], "each once");
        assert_eq!(
            g.provider_ids,
            [format!("twilio:{CALL_SID}")],
            "the first callback taught the leg, qualified with its provider"
        );
    }
    let (state, events, provider, sid) = call_state(&app, &call, &key).await;
    assert_ne!(state, "finished");
    assert_eq!(
        events,
        [
            "initiated",
            "ringing",
            "in-progress",
            "amd:machine_end_beep"
        ],
        "stored once each, in provider time order (the verdict at the call's dial time or later)"
    );
    assert_eq!(provider, "twilio");
    assert_eq!(sid, CALL_SID, "the bare CallSid on the row");
    // Stored as Twilio's, with the form as sent.
    #[derive(diesel::QueryableByName)]
    struct Ev {
        #[diesel(sql_type = diesel::sql_types::Text)]
        provider: String,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = app.db.conn().await;
    let rows: Vec<Ev> = diesel::sql_query(
        "SELECT provider, payload FROM call_events WHERE call_id = $1 AND status = 'ringing'",
    )
    .bind::<diesel::sql_types::Uuid, _>(call.parse::<uuid::Uuid>().expect("uuid"))
    .load(&mut conn)
    .await
    .expect("events");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].provider, "twilio");
    assert_eq!(rows[0].payload["CallSid"], CALL_SID);
    assert_eq!(rows[0].payload["SequenceNumber"], "1");
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_leg_s_callbacks_are_refused_and_the_call_goes_on() {
    let app = twilio_app(|_| {}).await;
    let (call, _, key, actor, s) = stood_in(&app).await;
    let path = status_path(&app, &call);
    let ringing = ringing();
    assert_eq!(signed(&app, &path, &ringing).await, 204);
    // The call's CallSid is known now: another's is refused, even signed
    // on the right URL.
    let other_sid = "CAffffffffffffffffffffffffffffffff";
    let forged = status(
        other_sid,
        "completed",
        "9",
        "Fri, 01 Mar 2024 12:00:09 +0000",
    );
    let (status_code, problem) = post_form(&app, &path, &forged, Sign::With(TOKEN)).await;
    assert_eq!(status_code, 404, "{problem}");
    // Another account's callback.
    let mut theirs = status(
        CALL_SID,
        "completed",
        "9",
        "Fri, 01 Mar 2024 12:00:09 +0000",
    );
    theirs[0].1 = "AC99999999999999999999999999999999".into();
    assert_eq!(signed(&app, &path, &theirs).await, 404);
    settle().await;
    assert_eq!(seen(&s).telephony, ["Ringing"], "the call goes on");
    let (state, events, _, _) = call_state(&app, &call, &key).await;
    assert_ne!(state, "finished");
    assert_eq!(events, ["ringing"]);

    // A call Vonage placed has no Twilio leg.
    let (tenant, vkey) = app.tenant("v").await;
    let campaign = app.campaign(&vkey, "v").await;
    let (vcall, _) = app.dial_intent(&vkey, &tenant, &campaign).await;
    assert_eq!(
        post_form(
            &app,
            &status_path(&app, &vcall),
            &ringing,
            Sign::With(TOKEN)
        )
        .await
        .0,
        404
    );
    // ... and Vonage's events for a call Twilio placed are refused too.
    let event = json!({"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","status":"ringing",
        "direction":"outbound","timestamp":"2020-01-01T12:00:01.000Z",
        "from":"447700900000","to":"14155550123"});
    let res = app
        .client
        .post(app.url(&app.events_path(&call)))
        .json(&event)
        .send()
        .await
        .expect("send");
    assert_eq!(decode(res).await.0, 404);
    let m = metrics_text(&app).await;
    assert_counted(
        &m,
        "talky_webhooks_refused_total",
        &["call_sid_mismatch", "account_mismatch", "provider_mismatch"],
    );
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_callbacks_are_client_errors() {
    let app = twilio_app(|_| {}).await;
    let (call, _, _) = twilio_call(&app).await;
    let path = status_path(&app, &call);
    // A NUL in a value: PostgreSQL cannot keep it; a 422 naming it.
    let mut nul = ringing();
    nul[5].1 = "outbound\0api".into();
    let (code, problem) = post_form(&app, &path, &nul, Sign::With(TOKEN)).await;
    assert_eq!(code, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Direction", "{problem}");
    // No CallSid, or neither a status nor a verdict.
    let no_sid: Vec<(&'static str, String)> = vec![
        ("AccountSid", ACCOUNT.into()),
        ("CallStatus", "ringing".into()),
    ];
    assert_eq!(signed(&app, &path, &no_sid).await, 400);
    let no_status: Vec<(&'static str, String)> = vec![("CallSid", CALL_SID.into())];
    assert_eq!(
        post_form(&app, &path, &no_status, Sign::With(TOKEN))
            .await
            .0,
        400
    );
    // Not a form.
    let res = app
        .client
        .post(app.url(&path))
        .json(&json!({"CallSid": CALL_SID}))
        .send()
        .await
        .expect("send");
    assert_eq!(decode(res).await.0, 415);
    // Too big.
    let res = app
        .client
        .post(app.url(&path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("CallSid={}", "A".repeat(70 * 1024)))
        .send()
        .await
        .expect("send");
    assert_eq!(decode(res).await.0, 413);
    app.stop().await;
}

/// The call row, the store and the ledger keep a Twilio leg's provider
/// with it, and hand it back qualified to whoever hangs it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_row_names_the_provider_of_its_leg() {
    use talky::providers::telephony_chain::LegLedger;
    use talky_actors::dialer::DialStore;
    use talky_actors::ports::{CallKey, CallStore, ProviderCallId};
    let app = TestApp::start().await;
    let (tenant, key) = app.tenant("acme").await;
    let campaign = app.campaign(&key, "c").await;
    let (call, _) = app.dial_intent(&key, &tenant, &campaign).await;
    let id: talky_actors::ids::CallId = call.parse().expect("call");
    let ledger = talky::store::PgLegLedger {
        pool: app.live_pool(),
        timeout: Duration::from_secs(5),
    };
    assert_eq!(
        ledger.provider_of(id).await,
        Ok(Some(TelephonyProvider::Vonage)),
        "an intent says vonage"
    );
    ledger
        .placing(id, TelephonyProvider::Twilio)
        .await
        .expect("placing");
    assert_eq!(
        ledger.provider_of(id).await,
        Ok(Some(TelephonyProvider::Twilio))
    );
    assert_eq!(
        ledger.provider_of(talky_actors::ids::CallId::new()).await,
        Ok(None)
    );
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{campaign}/contacts"), &key)
        .await;
    let call_key = CallKey {
        tenant: tenant.parse().expect("tenant"),
        campaign: campaign.parse().expect("campaign"),
        contact: page["items"][0]["id"]
            .as_str()
            .expect("contact")
            .parse()
            .expect("contact"),
        call: id,
        attempt: 1,
    };
    let store = talky::store::PgCallStore {
        pool: app.live_pool(),
        timeout: Duration::from_secs(5),
        live: Default::default(),
    };
    store
        .provider_id(call_key, ProviderCallId(format!("twilio:{CALL_SID}")))
        .await
        .expect("provider id");
    let (_, _, provider, sid) = call_state(&app, &call, &key).await;
    assert_eq!((provider, sid), (json!("twilio"), json!(CALL_SID)));
    let dial = talky::store::PgDialStore {
        pool: app.live_pool(),
        timeout: Duration::from_secs(5),
        node: "n".into(),
    };
    assert_eq!(
        dial.provider_call(call_key).await,
        Ok(Some(ProviderCallId(format!("twilio:{CALL_SID}")))),
        "qualified again for the hang-up"
    );
    // Once the leg is known the ledger changes nothing any more.
    ledger
        .placing(id, TelephonyProvider::Vonage)
        .await
        .expect("no-op");
    assert_eq!(
        ledger.provider_of(id).await,
        Ok(Some(TelephonyProvider::Twilio))
    );
    app.stop().await;
}

// ----- the media socket ------------------------------------------------------

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn media_url(app: &TestApp, call: &str, token: Option<&str>) -> String {
    let base = app.base.replace("http://", "ws://");
    match token {
        Some(t) => format!("{base}/twilio/media/{call}/{t}"),
        None => format!("{base}/twilio/media/{call}"),
    }
}

/// Opens `call`'s media socket with `token`.
async fn open(app: &TestApp, call: &str, token: &str) -> Socket {
    tokio_tungstenite::connect_async(media_url(app, call, Some(token)))
        .await
        .expect("upgrade")
        .0
}

fn connected() -> Message {
    Message::text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)
}

fn start(call: &str, call_sid: &str) -> Message {
    Message::text(
        json!({
            "event": "start", "sequenceNumber": "1", "streamSid": STREAM_SID,
            "start": {
                "streamSid": STREAM_SID, "accountSid": ACCOUNT, "callSid": call_sid,
                "tracks": ["inbound"], "customParameters": { "call_id": call },
                "mediaFormat": { "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 }
            }
        })
        .to_string(),
    )
}

fn media(seq: usize, payload: &[u8]) -> Message {
    Message::text(
        json!({
            "event": "media", "sequenceNumber": (seq + 2).to_string(), "streamSid": STREAM_SID,
            "media": {
                "track": "inbound", "chunk": (seq + 1).to_string(),
                "timestamp": (seq * 20).to_string(), "payload": B64.encode(payload)
            }
        })
        .to_string(),
    )
}

fn mark_echo(name: &str) -> Message {
    Message::text(
        json!({"event":"mark","sequenceNumber":"90","streamSid":STREAM_SID,"mark":{"name":name}})
            .to_string(),
    )
}

fn stop() -> Message {
    Message::text(
        json!({"event":"stop","sequenceNumber":"99","streamSid":STREAM_SID,
            "stop":{"accountSid":ACCOUNT,"callSid":CALL_SID}})
        .to_string(),
    )
}

/// G.711 μ-law, from the standard's formulas.
fn mulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = x.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && x & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (x >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

fn mulaw_decode(byte: u8) -> i16 {
    const BIAS: i32 = 0x84;
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let x = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if u & 0x80 != 0 { -x } else { x }) as i16
}

fn sine(rate: f64, freq: f64, amplitude: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
        .collect()
}

/// `got[skip..]` fitted to a sine of `freq` (least squares over sine and
/// cosine, so any delay a resampler adds fits too): (its amplitude, the
/// RMS of what is left).
fn sine_fit(got: &[i16], rate: f64, freq: f64, skip: usize) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let xs: Vec<(f64, f64, f64)> = got
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, &y)| ((w * i as f64).sin(), (w * i as f64).cos(), f64::from(y)))
        .collect();
    let (mut ss, mut cc, mut sc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(s, c, y) in &xs {
        ss += s * s;
        cc += c * c;
        sc += s * c;
        ys += y * s;
        yc += y * c;
    }
    let det = ss * cc - sc * sc;
    let a = (ys * cc - yc * sc) / det;
    let b = (yc * ss - ys * sc) / det;
    let residual = xs
        .iter()
        .map(|&(s, c, y)| (y - a * s - b * c).powi(2))
        .sum::<f64>()
        / xs.len() as f64;
    ((a * a + b * b).sqrt(), residual.sqrt())
}

async fn next_message(socket: &mut Socket) -> Message {
    match tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a message in time")
    {
        Some(Ok(m)) => m,
        other => panic!("socket ended: {other:?}"),
    }
}

/// The next text message as JSON (skipping control frames).
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let m = next_message(socket).await;
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).expect("json");
        }
        assert!(!m.is_close(), "closed: {m:?}");
    }
}

/// A call's socket open, `start`ed, with a stand-in behind it.
async fn started(app: &TestApp) -> (Socket, Shared, ActorRef<CallMsg>, String) {
    let (call, token, _, actor, s) = stood_in(app).await;
    let mut socket = open(app, &call, &token).await;
    socket.send(connected()).await.expect("connected");
    socket.send(start(&call, CALL_SID)).await.expect("start");
    eventually("the call is attached", Duration::from_secs(5), || async {
        seen(&s).out.clone()
    })
    .await;
    (socket, s, actor, call)
}

async fn asked_to_hang_up(s: &Shared) -> Vec<String> {
    eventually(
        "the call is asked to hang up",
        Duration::from_secs(5),
        || async {
            let asked = seen(s).hangups.clone();
            (!asked.is_empty()).then_some(asked)
        },
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_tokens_are_spent_once_before_the_upgrade() {
    let app = twilio_app(|_| {}).await;
    let (call, token, _) = twilio_call(&app).await;
    assert_tokens_checked(|c, t| media_url(&app, c, t), &call, &token).await;
    // A Vonage call's token does not open Twilio's socket (nor is spent).
    let (tenant, key) = app.tenant("v").await;
    let campaign = app.campaign(&key, "v").await;
    let (vcall, vtoken) = app.dial_intent(&key, &tenant, &campaign).await;
    assert_eq!(refused(media_url(&app, &vcall, Some(&vtoken))).await, 403);
    let base = app.base.replace("http://", "ws://");
    let (mut vsocket, _) =
        tokio_tungstenite::connect_async(format!("{base}/vonage/media/{vcall}?token={vtoken}"))
            .await
            .expect("still good on Vonage's socket");
    let _ = vsocket.close(None).await;
    // The right token opens once (the call is not live here: closed).
    let mut socket = open(&app, &call, &token).await;
    assert_eq!(close_code(&mut socket).await, Some(1011));
    let reused = media_url(&app, &call, Some(&token));
    assert_spent(&app, reused, &format!("/twilio/media/{call}/x")).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_audio_reaches_the_call_as_16_khz_frames_with_keys_and_marks() {
    let app = twilio_app(|_| {}).await;
    let (mut socket, s, actor, _) = started(&app).await;
    // 400 ms of a 440 Hz tone at 8 kHz, in 20 ms μ-law payloads.
    let tone = sine(8000.0, 440.0, 8000.0, 3200);
    for (i, chunk) in tone.chunks(160).enumerate() {
        let payload: Vec<u8> = chunk.iter().map(|&x| mulaw_encode(x)).collect();
        socket.send(media(i, &payload)).await.expect("media");
    }
    socket
        .send(Message::text(
            r#"{"event":"dtmf","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","sequenceNumber":"50","dtmf":{"track":"inbound_track","digit":"5"}}"#,
        ))
        .await
        .expect("dtmf");
    // An event Twilio may add later is ignored.
    socket
        .send(Message::text(r#"{"event":"hologram","streamSid":"MZ1"}"#))
        .await
        .expect("unknown");
    let (frames, _) = eventually("20 frames and the key", Duration::from_secs(5), || async {
        let g = seen(&s);
        let frames: Vec<Vec<u8>> = g
            .media
            .iter()
            .filter_map(|m| match m {
                MediaIn::Audio(f) => Some(f.clone()),
                _ => None,
            })
            .collect();
        (frames.len() >= 20 && g.media.contains(&MediaIn::Dtmf('5'))).then_some(frames)
    })
    .await;
    assert_eq!(frames.len(), 20, "20 ms at 16 kHz per 20 ms at 8 kHz");
    assert!(frames.iter().all(|f| f.len() == 640), "640-byte frames");
    let pcm: Vec<i16> = frames
        .concat()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // The tone at 16 kHz, within μ-law's error (about 1 % at this level)
    // and the resampler's (past its first few milliseconds).
    let (amplitude, residual) = sine_fit(&pcm, 16000.0, 440.0, 160);
    assert!(
        (amplitude - 8000.0).abs() < 200.0 && residual < 150.0,
        "amplitude {amplitude:.0}, residual rms {residual:.0}"
    );

    // A mark the call sends comes back as played when Twilio echoes it.
    let out = seen(&s).out.clone().expect("attached");
    out.send(MediaOut::Mark("m1".into())).await.expect("mark");
    let sent = next_json(&mut socket).await;
    assert_eq!(
        sent,
        json!({"event":"mark","streamSid":STREAM_SID,"mark":{"name":"m1"}})
    );
    socket.send(mark_echo("m1")).await.expect("echo");
    eventually("the mark is heard", Duration::from_secs(5), || async {
        seen(&s)
            .media
            .contains(&MediaIn::Mark("m1".into()))
            .then_some(())
    })
    .await;

    // `stop` ends the stream: the call learns its media closed, the
    // socket is closed.
    socket.send(stop()).await.expect("stop");
    eventually("media closed", Duration::from_secs(5), || async {
        seen(&s).media_closed.then_some(())
    })
    .await;
    drop(out);
    let code = close_code(&mut socket).await;
    assert!(matches!(code, None | Some(1000)), "{code:?}");
    assert!(seen(&s).hangups.is_empty(), "a stop is no failure");
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_audio_leaves_as_160_byte_mulaw_payloads_with_marks_and_clear() {
    let app = twilio_app(|_| {}).await;
    let (mut socket, s, actor, _) = started(&app).await;
    let out = seen(&s).out.clone().expect("attached");
    // 200 ms of a 660 Hz tone at 16 kHz, in the call's 20 ms frames.
    let tone = sine(16000.0, 660.0, 8000.0, 3200);
    for frame in tone.chunks(320) {
        let bytes: Vec<u8> = frame.iter().flat_map(|x| x.to_le_bytes()).collect();
        out.send(MediaOut::Audio(bytes)).await.expect("frame");
    }
    let mut heard = Vec::new();
    for _ in 0..10 {
        let m = next_json(&mut socket).await;
        assert_eq!(m["event"], "media", "{m}");
        assert_eq!(m["streamSid"], STREAM_SID, "{m}");
        let payload = B64
            .decode(m["media"]["payload"].as_str().expect("payload"))
            .expect("base64");
        assert_eq!(payload.len(), 160, "20 ms of 8 kHz μ-law");
        heard.extend(payload.iter().map(|&b| mulaw_decode(b)));
    }
    let (amplitude, residual) = sine_fit(&heard, 8000.0, 660.0, 80);
    assert!(
        (amplitude - 8000.0).abs() < 200.0 && residual < 150.0,
        "amplitude {amplitude:.0}, residual rms {residual:.0}"
    );

    // A mark after audio, then a barge-in: `clear`, and the mark whose
    // audio was cleared is not reported as played when Twilio echoes it.
    let half: Vec<u8> = tone[..160].iter().flat_map(|x| x.to_le_bytes()).collect();
    out.send(MediaOut::Audio(half)).await.expect("half a frame");
    out.send(MediaOut::Mark("before-clear".into()))
        .await
        .expect("mark");
    out.send(MediaOut::Clear).await.expect("clear");
    out.send(MediaOut::Mark("after-clear".into()))
        .await
        .expect("mark");
    let padded = next_json(&mut socket).await;
    assert_eq!(
        padded["event"], "media",
        "the partial payload, padded: {padded}"
    );
    let payload = B64
        .decode(padded["media"]["payload"].as_str().expect("payload"))
        .expect("base64");
    assert_eq!(payload.len(), 160);
    assert_eq!(
        next_json(&mut socket).await,
        json!({"event":"mark","streamSid":STREAM_SID,"mark":{"name":"before-clear"}})
    );
    assert_eq!(
        next_json(&mut socket).await,
        json!({"event":"clear","streamSid":STREAM_SID})
    );
    assert_eq!(
        next_json(&mut socket).await,
        json!({"event":"mark","streamSid":STREAM_SID,"mark":{"name":"after-clear"}})
    );
    // Twilio echoes both (the cleared one at once).
    socket.send(mark_echo("before-clear")).await.expect("echo");
    socket.send(mark_echo("after-clear")).await.expect("echo");
    eventually(
        "the later mark is heard",
        Duration::from_secs(5),
        || async {
            seen(&s)
                .media
                .contains(&MediaIn::Mark("after-clear".into()))
                .then_some(())
        },
    )
    .await;
    assert!(
        !seen(&s)
            .media
            .contains(&MediaIn::Mark("before-clear".into())),
        "its audio was cleared, not played"
    );
    drop(out);
    let _ = socket.close(None).await;
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_messages_close_the_stream_with_a_clear_code_and_end_the_call() {
    let app = twilio_app(|_| {}).await;
    let (mut socket, s, actor, _) = started(&app).await;
    socket
        .send(Message::binary(vec![0xffu8; 160]))
        .await
        .expect("binary");
    assert_eq!(close_code(&mut socket).await, Some(1003));
    let asked = asked_to_hang_up(&s).await;
    assert_eq!(
        asked,
        ["binary message of 160 bytes on a Twilio media stream"]
    );
    actor.stop(None);

    // Before `start` too, and a message Twilio would never send.
    let (call, token, _, actor, s) = stood_in(&app).await;
    let mut socket = open(&app, &call, &token).await;
    socket.send(connected()).await.expect("connected");
    socket
        .send(Message::text(r#"{"event":"media","media":{}}"#))
        .await
        .expect("junk");
    assert_eq!(close_code(&mut socket).await, Some(1007));
    let asked = asked_to_hang_up(&s).await;
    assert_eq!(asked.len(), 1);
    assert!(asked[0].contains("media.payload"), "{asked:?}");
    assert!(seen(&s).out.is_none(), "never attached");
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_another_call_or_format_is_refused_at_start() {
    let app = twilio_app(|_| {}).await;
    let (call, _, _) = twilio_call(&app).await;
    let path = status_path(&app, &call);
    // The call's CallSid is known (from its first callback).
    let ringing = ringing();
    assert_eq!(signed(&app, &path, &ringing).await, 204);
    let (tenant, key) = app.tenant("other").await;
    let campaign = app.campaign(&key, "o").await;
    let (other, _) = app.dial_intent(&key, &tenant, &campaign).await;
    // Its own token, but a `start` naming another call, another CallSid,
    // or another format.
    let cases: [(Message, u16, &str); 3] = [
        (start(&other, CALL_SID), 1008, "names call"),
        (
            start(&call, "CAffffffffffffffffffffffffffffffff"),
            1008,
            "another CallSid",
        ),
        (
            Message::text(
                json!({"event":"start","streamSid":STREAM_SID,"start":{"callSid":CALL_SID,
                    "customParameters":{"call_id":call},
                    "mediaFormat":{"encoding":"audio/l16","sampleRate":16000,"channels":1}}})
                .to_string(),
            ),
            1007,
            "unsupported media format",
        ),
    ];
    for (i, (message, code, why)) in cases.into_iter().enumerate() {
        // A fresh token for each attempt (the first spent the last one).
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = app.db.conn().await;
        use diesel_async::RunQueryDsl;
        diesel::sql_query(
            "UPDATE calls SET media_token_hash = $1, media_token_used_at = NULL WHERE id = $2",
        )
        .bind::<diesel::sql_types::Bytea, _>(talky::db::api_keys::hash(&token))
        .bind::<diesel::sql_types::Uuid, _>(call.parse::<uuid::Uuid>().expect("uuid"))
        .execute(&mut conn)
        .await
        .expect("new token");
        let (actor, s) = stand_in(&call).await;
        let (mut socket, _) =
            tokio_tungstenite::connect_async(media_url(&app, &call, Some(&token)))
                .await
                .unwrap_or_else(|e| panic!("{i}: {e}"));
        socket.send(message).await.expect("start");
        assert_eq!(close_code(&mut socket).await, Some(code), "{why}");
        let asked = asked_to_hang_up(&s).await;
        assert!(asked[0].contains(why), "{why}: {asked:?}");
        assert!(seen(&s).out.is_none(), "{why}: never attached");
        actor.stop(None);
        // The registry name is free again before the next stand-in.
        eventually("stand-in gone", Duration::from_secs(5), || async {
            ractor::registry::where_is(call_name(call.parse().expect("call")))
                .is_none()
                .then_some(())
        })
        .await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_unstarted_streams_are_closed_and_end_the_call() {
    let app = twilio_app(|c| c.media.idle_timeout_secs = 1).await;
    // No audio for longer than media.idle_timeout_secs after `start`.
    let (mut socket, s, actor, _) = started(&app).await;
    socket.send(media(0, &[0xffu8; 160])).await.expect("media");
    let began = std::time::Instant::now();
    assert_eq!(close_code(&mut socket).await, Some(1008));
    assert!(began.elapsed() >= Duration::from_millis(900));
    assert_eq!(asked_to_hang_up(&s).await, ["media socket idle for 1 s"]);
    actor.stop(None);

    // Never a `start`.
    let (call, token, _, actor, s) = stood_in(&app).await;
    let mut socket = open(&app, &call, &token).await;
    socket.send(connected()).await.expect("connected");
    assert_eq!(close_code(&mut socket).await, Some(1008));
    assert_eq!(
        asked_to_hang_up(&s).await,
        ["media stream did not start within 1 s"]
    );
    actor.stop(None);

    // A message over media.max_message_bytes (8 KiB) is not read whole.
    let (mut socket, s, actor, _) = started(&app).await;
    let _ = socket.send(media(0, &vec![0xffu8; 16 * 1024])).await;
    let code = close_code(&mut socket).await;
    assert!(matches!(code, Some(1009) | None), "{code:?}");
    let asked = asked_to_hang_up(&s).await;
    assert!(asked[0].starts_with("media socket error"), "{asked:?}");
    actor.stop(None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_twilio_call_taps_both_directions_at_16_khz() {
    let app = twilio_app(|_| {}).await;
    let (tenant, key) = app.tenant("acme").await;
    let mut body = crate::support::campaign_body("rec");
    body["recording_enabled"] = json!(true);
    let (status_code, campaign) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status_code, 201, "{campaign}");
    let campaign = campaign["id"].as_str().expect("id").to_string();
    let (call, token) = app.dial_intent(&key, &tenant, &campaign).await;
    let mut conn = app.db.conn().await;
    talky::db::calls::set_placing_provider(
        &mut conn,
        call.parse().expect("call"),
        TelephonyProvider::Twilio,
    )
    .await
    .expect("ledger");
    let (actor, s) = stand_in(&call).await;
    let mut socket = open(&app, &call, &token).await;
    socket.send(connected()).await.expect("connected");
    socket.send(start(&call, CALL_SID)).await.expect("start");
    let (out, _) = eventually("attached", Duration::from_secs(5), || async {
        seen(&s).out.clone()
    })
    .await;
    // One second each way: the callee at 440 Hz, the agent at 660 Hz.
    let callee = sine(8000.0, 440.0, 8000.0, 8000);
    for (i, chunk) in callee.chunks(160).enumerate() {
        let payload: Vec<u8> = chunk.iter().map(|&x| mulaw_encode(x)).collect();
        socket.send(media(i, &payload)).await.expect("media");
    }
    let agent = sine(16000.0, 660.0, 8000.0, 16000);
    for frame in agent.chunks(320) {
        let bytes: Vec<u8> = frame.iter().flat_map(|x| x.to_le_bytes()).collect();
        out.send(MediaOut::Audio(bytes)).await.expect("frame");
    }
    for _ in 0..50 {
        assert_eq!(next_json(&mut socket).await["event"], "media");
    }
    eventually(
        "the callee's second heard",
        Duration::from_secs(5),
        || async { (seen(&s).media.len() >= 50).then_some(()) },
    )
    .await;
    drop(out);
    socket.send(stop()).await.expect("stop");
    let _ = close_code(&mut socket).await;
    actor.stop(None);

    let (bytes, _) = eventually("the recording", Duration::from_secs(60), || async {
        let res = app
            .client
            .get(app.url(&format!("/api/v1/calls/{call}/recording")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("request");
        (res.status().as_u16() == 200).then_some(res)
    })
    .await;
    let bytes = bytes.bytes().await.expect("body");
    let path = std::env::temp_dir().join(format!("{}.ogg", uuid::Uuid::now_v7()));
    std::fs::write(&path, &bytes).expect("write");
    let decoded = talky::recording::encode::decode_file(&path).expect("decode");
    let _ = std::fs::remove_file(&path);
    // Each side holds its tone: (mostly) its own frequency, at its level.
    let tone_of = |pcm: &[i16], freq: f64| {
        let n = pcm.len() as f64;
        let (mut re, mut im, mut energy) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &x) in pcm.iter().enumerate() {
            let t = 2.0 * std::f64::consts::PI * freq * i as f64 / 16000.0;
            re += f64::from(x) * t.cos();
            im += f64::from(x) * t.sin();
            energy += f64::from(x) * f64::from(x);
        }
        let rms = (energy / n).sqrt();
        let amplitude = 2.0 * (re * re + im * im).sqrt() / n;
        (rms, amplitude)
    };
    let (left_rms, left_440) = tone_of(&decoded.left, 440.0);
    let (right_rms, right_660) = tone_of(&decoded.right, 660.0);
    assert!(
        left_rms > 1000.0,
        "the callee on the left: rms {left_rms:.0}"
    );
    assert!(
        right_rms > 1000.0,
        "the agent on the right: rms {right_rms:.0}"
    );
    assert!(
        left_440 > left_rms * 0.5,
        "440 Hz on the left: {left_440:.0} of {left_rms:.0}"
    );
    assert!(
        right_660 > right_rms * 0.5,
        "660 Hz on the right: {right_660:.0} of {right_rms:.0}"
    );
    app.stop().await;
}
