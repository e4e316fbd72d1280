//! The PostgreSQL adapters of the actor ports, against a real database:
//! their contracts, and a campaign run by the real CampaignActor and
//! DialerActor through them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Duration as TimeDelta, Utc};
use serde_json::json;
use talky::store::{PgCallStore, PgCampaignStore, PgDialStore};
use talky_actors::call::{CallMsg, CallPorts, Ports};
use talky_actors::campaign::CampaignState;
use talky_actors::campaign_actor::{
    CampaignActor, CampaignArgs, CampaignConfig, CampaignStore, Claim, ClaimedCall, GiveUpReason,
    StateWrite,
};
use talky_actors::dialer::{
    CampaignCalls, DialRequest, DialStore, DialerActor, DialerArgs, DialerConfig, DialerHandle,
    DialerMsg, IntentError, call_name,
};
use talky_actors::ids::{CampaignId, TenantId};
use talky_actors::ports::*;
use talky_actors::schedule::retry::{CallOutcome, ContactStatus, NextStep};
use talky_actors::tree::{campaign_name, campaign_report_sink};

use crate::support::TestApp;

async fn campaign_with_contacts(
    app: &TestApp,
    csv: &str,
    body: serde_json::Value,
) -> (TenantId, CampaignId, String) {
    let (tenant, key) = app.tenant("acme").await;
    let (status, c) = app.post("/api/v1/campaigns", &key, &body).await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().expect("id").to_string();
    let (status, report) = app
        .upload(
            &format!("/api/v1/campaigns/{id}/contacts"),
            &key,
            "text/csv",
            csv.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    (
        tenant.parse().expect("tenant"),
        id.parse().expect("campaign"),
        key,
    )
}

fn stores(app: &TestApp, tenant: TenantId) -> (PgCampaignStore, PgDialStore, PgCallStore) {
    let pool = app.pool();
    let timeout = Duration::from_secs(5);
    (
        PgCampaignStore {
            pool: pool.clone(),
            tenant,
            timeout,
        },
        PgDialStore {
            pool: pool.clone(),
            timeout,
            node: "test-node".into(),
        },
        PgCallStore {
            pool,
            timeout,
            live: Default::default(),
        },
    )
}

fn always_open_body() -> serde_json::Value {
    let mut body = crate::support::campaign_body("c");
    body["calling_window"] = json!({ "start": "00:00", "end": "23:59",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] });
    body["max_attempts"] = json!(2);
    body["retry_backoff_secs"] = json!(60);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_store_contract() {
    let app = TestApp::start().await;
    let csv = "phone,timezone\n+14155550101,America/Los_Angeles\n+14155550102,\n+442079460958,\n+14155550103,\n";
    let (tenant, campaign, key) = campaign_with_contacts(&app, csv, always_open_body()).await;
    let (store, dial, calls) = stores(&app, tenant);

    let settings = store.load(campaign).await.expect("load");
    assert_eq!(settings.state, CampaignState::Draft);
    assert_eq!(settings.retry.max_attempts, 2);
    assert_eq!(settings.max_concurrent_calls, 10);

    // One number goes on the do-not-call list: never due.
    app.post("/api/v1/dnc", &key, &json!({ "phone": "+14155550103" }))
        .await;
    let now = Utc::now();
    let due = store.due_contacts(campaign, now, 10).await.expect("due");
    let phones: Vec<&str> = due.iter().map(|d| d.phone.as_str()).collect();
    assert_eq!(phones, ["+14155550101", "+14155550102", "+442079460958"]);
    assert_eq!(due[0].zones, vec![chrono_tz::America::Los_Angeles]);
    assert!(
        due[1].zones.len() > 5,
        "a US number without a zone: every US zone"
    );
    assert_eq!(
        due[2].zones,
        vec![chrono_tz::Europe::London],
        "derived at upload"
    );

    // Nothing is claimed unless the stored campaign is running.
    let (a, b, c) = (due[0].id, due[1].id, due[2].id);
    assert_eq!(
        store.claim(campaign, a).await,
        Ok(Claim::NotRunning(CampaignState::Draft))
    );
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{campaign}/start"), &key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(store.state(campaign).await, Ok(CampaignState::Running));
    // Claims are exclusive; a release gives the contact back.
    assert_eq!(store.claim(campaign, a).await, Ok(Claim::Claimed));
    assert_eq!(store.claim(campaign, a).await, Ok(Claim::NotDue));
    store
        .release(campaign, a, now - TimeDelta::seconds(1))
        .await
        .expect("release");
    assert_eq!(store.claim(campaign, a).await, Ok(Claim::Claimed));

    // Deferred: not due until then.
    store
        .defer(campaign, b, now + TimeDelta::hours(1))
        .await
        .expect("defer");
    let due = store.due_contacts(campaign, now, 10).await.expect("due");
    assert!(due.iter().all(|d| d.id != b));
    assert!(
        store
            .due_contacts(campaign, now + TimeDelta::hours(2), 10)
            .await
            .expect("due")
            .iter()
            .any(|d| d.id == b)
    );

    // Given up: failed, never due again.
    store
        .give_up(campaign, c, GiveUpReason::UnknownZone)
        .await
        .expect("give up");

    // What a restarted actor finds: a, claimed, no intent yet.
    let claimed = store.claimed(campaign).await.expect("claimed");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].contact, claimed[0].attempt, claimed[0].call),
        (a, 1, ClaimedCall::NotPlaced)
    );
    // ...then dialled (live)...
    let req = DialRequest {
        place_by: None,
        tenant,
        campaign,
        contact: a,
        phone: "+14155550101".into(),
        attempt: 1,
    };
    let intent = dial.create_intent(&req).await.expect("intent");
    assert_eq!(dial.create_intent(&req).await, Err(IntentError::Duplicate));
    assert_eq!(
        store.claimed(campaign).await.expect("claimed")[0].call,
        ClaimedCall::Live
    );
    // ...then ended with the callee asking to be called back.
    let key_ = CallKey {
        tenant,
        campaign,
        contact: a,
        call: intent.call,
        attempt: 1,
    };
    let at = now + TimeDelta::days(1);
    calls.status(key_, "answered", now).await.expect("status");
    calls
        .requested(key_, CalleeRequest::Callback(at))
        .await
        .expect("request");
    calls
        .finish(key_, "completed", "completed", now + TimeDelta::seconds(42))
        .await
        .expect("finish");
    let ended = store.claimed(campaign).await.expect("claimed")[0].call;
    let ClaimedCall::Ended(CallOutcome::CallbackRequested(got)) = ended else {
        panic!("{ended:?}");
    };
    assert_eq!(got.timestamp(), at.timestamp());

    // Outcomes apply once.
    let next = NextStep::RetryAt(at);
    store
        .record_outcome(campaign, a, CallOutcome::CallbackRequested(at), next, 1)
        .await
        .expect("outcome");
    store
        .record_outcome(
            campaign,
            a,
            CallOutcome::Failed,
            NextStep::Done {
                status: ContactStatus::Failed,
            },
            1,
        )
        .await
        .expect("repeat");
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{campaign}/contacts"), &key)
        .await;
    let contact_a = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|x| x["id"] == a.to_string())
        .expect("a")
        .clone();
    assert_eq!(contact_a["status"], "retry");
    assert_eq!(contact_a["attempts"], 1);
    assert_eq!(contact_a["last_outcome"], "callback_requested");
    let (_, call) = app
        .get(&format!("/api/v1/calls/{}", intent.call), &key)
        .await;
    assert_eq!(
        (call["status"].as_str(), call["duration_secs"].as_i64()),
        (Some("finished"), Some(42))
    );

    assert_eq!(
        store.remaining(campaign).await.expect("remaining"),
        2,
        "a (retry) and b (pending)"
    );
    // An operator's pause, stored through the API (on any node): no claim
    // any more, and the actor's `completed` does not land over it.
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{campaign}/pause"), &key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        store.claim(campaign, b).await,
        Ok(Claim::NotRunning(CampaignState::Paused))
    );
    assert_eq!(
        store.set_state(campaign, CampaignState::Completed).await,
        Ok(StateWrite::Refused(CampaignState::Paused))
    );
    assert_eq!(store.state(campaign).await, Ok(CampaignState::Paused));
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{campaign}/resume"), &key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        store.set_state(campaign, CampaignState::Completed).await,
        Ok(StateWrite::Written)
    );
    assert_eq!(
        store.set_state(campaign, CampaignState::Completed).await,
        Ok(StateWrite::Written),
        "a repeat is idempotent"
    );
    assert_eq!(
        store.load(campaign).await.expect("load").state,
        CampaignState::Completed
    );
    assert_eq!(
        store.set_state(campaign, CampaignState::Cancelled).await,
        Ok(StateWrite::Refused(CampaignState::Completed)),
        "nothing over a terminal state"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_do_not_call_request_lists_the_number_at_once() {
    let app = TestApp::start().await;
    let (tenant, campaign, key) =
        campaign_with_contacts(&app, "phone\n+14155550101\n", always_open_body()).await;
    let (store, dial, calls) = stores(&app, tenant);
    let due = store
        .due_contacts(campaign, Utc::now(), 10)
        .await
        .expect("due");
    let contact = due[0].id;
    let req = DialRequest {
        place_by: None,
        tenant,
        campaign,
        contact,
        phone: due[0].phone.clone(),
        attempt: 1,
    };
    let intent = dial.create_intent(&req).await.expect("intent");
    let key_ = CallKey {
        tenant,
        campaign,
        contact,
        call: intent.call,
        attempt: 1,
    };
    // The dialer reads the provider's id back when a call actor crashed.
    assert_eq!(dial.provider_call(key_).await, Ok(None));
    calls
        .provider_id(key_, ProviderCallId("uuid-1".into()))
        .await
        .expect("provider id");
    assert_eq!(
        dial.provider_call(key_).await,
        Ok(Some(ProviderCallId("uuid-1".into())))
    );
    let elsewhere = CallKey {
        tenant: TenantId::new(),
        ..key_
    };
    assert_eq!(
        dial.provider_call(elsewhere).await,
        Ok(None),
        "tenant-scoped"
    );
    calls
        .requested(key_, CalleeRequest::DoNotCall)
        .await
        .expect("dnc");
    let (_, list) = app.get("/api/v1/dnc", &key).await;
    assert_eq!(list["items"][0]["phone"], "+14155550101");
    assert!(
        list["items"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&intent.call.to_string()))
    );
    app.stop().await;
}

// ----- a campaign run by the real actors over PostgreSQL -------------------

/// Every call rings half a second, then the line is busy.
#[derive(Default)]
pub struct BusyLine {
    pub placed: Mutex<Vec<String>>,
}

impl TelephonyPort for BusyLine {
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        self.placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.to.clone());
        let call = req.call;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Some(actor) = ractor::registry::where_is(call_name(call)) {
                let _ = actor.send_message(CallMsg::Telephony(TelephonyEvent::Busy));
            }
        });
        Ok(ProviderCallId(format!("p-{call}")))
    }
    async fn hang_up(&self, _id: ProviderCallId) -> PortResult<()> {
        Ok(())
    }
}

/// Providers a call that never connects media does not reach.
pub struct Unused;

impl SttPort for Unused {
    fn provider_name(&self) -> &str {
        "unused"
    }
    async fn open(&self, _cfg: SttConfig) -> PortResult<SttSession> {
        Err(PortError::Unavailable("unused".into()))
    }
}
impl LlmPort for Unused {
    fn provider_name(&self) -> &str {
        "unused"
    }
    async fn stream(&self, _req: ChatRequest) -> PortResult<tokio::sync::mpsc::Receiver<LlmEvent>> {
        Err(PortError::Unavailable("unused".into()))
    }
}
impl TtsPort for Unused {
    fn provider_name(&self) -> &str {
        "unused"
    }
    async fn synthesize(
        &self,
        _req: TtsRequest,
    ) -> PortResult<tokio::sync::mpsc::Receiver<TtsEvent>> {
        Err(PortError::Unavailable("unused".into()))
    }
}

pub struct PgPorts;

impl CallPorts for PgPorts {
    type Telephony = BusyLine;
    type Stt = Unused;
    type Llm = Unused;
    type Tts = Unused;
    type Store = PgCallStore;
    type Clock = TokioClock;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actors_run_a_campaign_over_postgresql() {
    let app = TestApp::start().await;
    let csv: String = std::iter::once("phone,timezone".to_string())
        .chain((0..12).map(|i| format!("+1415555{:04},UTC", 200 + i)))
        .collect::<Vec<_>>()
        .join("\n");
    let (tenant, campaign, key) = campaign_with_contacts(&app, &csv, always_open_body()).await;
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{campaign}/start"), &key)
        .await;
    assert_eq!(status, 200);
    let (store, dial, calls) = stores(&app, tenant);
    let line = Arc::new(BusyLine::default());
    let dialer_name = format!("dialer-{}", uuid::Uuid::new_v4());
    let (dialer, _) = ractor::Actor::spawn(
        Some(dialer_name.clone()),
        DialerActor::<PgPorts, PgDialStore>::new(),
        DialerArgs {
            config: DialerConfig {
                calls_per_second: 50.0,
                cps_burst: 10,
                ..DialerConfig::default()
            },
            ports: Ports::<PgPorts> {
                telephony: line.clone(),
                stt: vec![Arc::new(Unused)],
                llm: vec![Arc::new(Unused)],
                tts: vec![Arc::new(Unused)],
                store: Arc::new(calls),
                clock: Arc::new(TokioClock),
            },
            store: Arc::new(dial),
            cluster: app.server().cluster(),
        },
    )
    .await
    .expect("dialer");
    let mut template = talky_actors::call::CallConfig::new("", "+14155550100", "p", "g");
    template.port_timeout = Duration::from_secs(2);
    dialer
        .cast(DialerMsg::Configure {
            campaign,
            calls: Box::new(CampaignCalls {
                tenant,
                max_concurrent: 4,
                template,
                on_report: campaign_report_sink(campaign),
            }),
        })
        .expect("configure");
    let (actor, handle) = ractor::Actor::spawn(
        Some(campaign_name(campaign)),
        CampaignActor::<PgCampaignStore, DialerHandle>::new(),
        CampaignArgs {
            campaign,
            store: Arc::new(store),
            dialer: Arc::new(DialerHandle {
                name: dialer_name,
                timeout: Duration::from_secs(5),
            }),
            clock: Arc::new(TokioClock),
            cluster: app.server().cluster(),
            config: CampaignConfig {
                tick: Duration::from_millis(200),
                ..CampaignConfig::default()
            },
            seed: 1,
        },
    )
    .await
    .expect("campaign");
    // Busy twice (max_attempts 2, retry after ~60 s is too long to wait):
    // after the first round every contact is a retry.
    let mut page = serde_json::Value::Null;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        page = app
            .get(
                &format!("/api/v1/campaigns/{campaign}/contacts?limit=100"),
                &key,
            )
            .await
            .1;
        let all_retry = page["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|c| c["status"] == "retry"));
        if all_retry {
            break;
        }
    }
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 12);
    for c in items {
        assert_eq!(
            (
                c["status"].as_str(),
                c["attempts"].as_i64(),
                c["last_outcome"].as_str()
            ),
            (Some("retry"), Some(1), Some("busy")),
            "{c}"
        );
    }
    let (_, list) = app
        .get(
            &format!("/api/v1/calls?campaign_id={campaign}&limit=100"),
            &key,
        )
        .await;
    let rows = list["items"].as_array().expect("calls");
    assert_eq!(rows.len(), 12, "one call row per contact and attempt");
    assert!(
        rows.iter()
            .all(|r| r["status"] == "finished" && r["outcome"] == "busy")
    );
    let placed = line.placed.lock().unwrap_or_else(|e| e.into_inner()).len();
    assert_eq!(placed, 12, "each contact dialled once");
    actor.stop(None);
    let _ = handle.await;
    dialer.stop(None);
    app.stop().await;
}
