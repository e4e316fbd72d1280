//! Crash recovery ([`talky::reconcile::Reconciler::pass`]) against real
//! PostgreSQL, real Redis heartbeats and the Vonage emulator: each branch
//! of what is done with the calls of a dead node, and the heartbeats that
//! say who is dead ([`talky::redis::nodes`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use talky::config::Secret;
use talky::db;
use talky::providers::vonage::{VonageClient, VonageConfig};
use talky::reconcile::{Nodes, PassReport, Reconciler, RedisNodes};
use talky::redis::{Keys, nodes};
use talky_actors::ids::{CallId, CampaignId, ContactId, TenantId};
use talky_actors::ports::{PlaceCall, TelephonyPort};
use talky_sim::vonage::{
    HangUpSide, Outcome, Persona, Personas, VonageSim, VonageSimConfig, VonageSimHandle,
};

use crate::support::{TestApp, eventually, redis_url};

const APP_ID: &str = talky_sim::process::DEFAULT_APPLICATION_ID;

fn testdata(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/providers/vonage/testdata")
        .join(file)
}

/// Numbers of the seeded calls, one contact each.
const LIVE_LEG: &str = "+442079460971";
const ENDED_LEG: &str = "+442079460972";
const QUEUED: &str = "+442079460973";
const DIALING: &str = "+442079460974";
const OTHER_NODE: &str = "+442079460975";
const LOST_ID: &str = "+442079460976";

fn persona(name: &str, phone: &str, outcome: Outcome) -> Persona {
    Persona {
        name: name.into(),
        numbers: vec![phone.trim_start_matches('+').into()],
        default: false,
        ring_ms: 10,
        outcome,
        steps: vec![],
    }
}

/// A callee who never picks up rings for the whole ringing timer (60 s
/// here): a live leg without media. A busy one ends at once.
async fn emulator() -> VonageSimHandle {
    VonageSim::start(VonageSimConfig {
        application_id: APP_ID.into(),
        public_key_pem: std::fs::read_to_string(testdata("test_public.pem")).expect("public key"),
        personas: Personas::from_list(vec![
            persona("rings", LIVE_LEG, Outcome::NoAnswer),
            persona("busy", ENDED_LEG, Outcome::Busy),
            persona("rings_too", OTHER_NODE, Outcome::NoAnswer),
            persona("rings_lost", LOST_ID, Outcome::NoAnswer),
        ]),
        // The leg's last status is its failure, as the call resource says.
        completed_after_failure: false,
        started_to_ringing: Duration::from_millis(10),
        ..VonageSimConfig::default()
    })
    .await
    .expect("vonage emulator")
}

fn client(sim: &VonageSimHandle) -> VonageClient {
    VonageClient::new(VonageConfig {
        api_base_url: sim.base_url(),
        application_id: APP_ID.into(),
        private_key: Secret::new(
            std::fs::read_to_string(testdata("test_private.pem")).expect("private key"),
        ),
        // Nobody listens there: the legs' webhooks go nowhere, so only the
        // reconciler touches the rows.
        public_url: "http://127.0.0.1:9".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..VonageConfig::default()
    })
    .expect("client")
}

/// A tenant, a campaign and one contact per number; their ids.
async fn contacts(app: &TestApp) -> (TenantId, CampaignId, Vec<(String, ContactId)>) {
    let (tenant, key) = app.tenant("acme").await;
    let campaign = app.campaign(&key, "c").await;
    let csv = [
        "phone", LIVE_LEG, ENDED_LEG, QUEUED, DIALING, OTHER_NODE, LOST_ID,
    ]
    .join("\n");
    let (status, body) = app
        .upload(
            &format!("/api/v1/campaigns/{campaign}/contacts"),
            &key,
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tenant: TenantId = tenant.parse().expect("tenant id");
    let campaign: CampaignId = campaign.parse().expect("campaign id");
    let mut conn = app.db.conn().await;
    let list = db::contacts::list(
        &mut conn,
        tenant,
        campaign,
        None,
        db::Page {
            limit: 10,
            after: None,
        },
    )
    .await
    .expect("contacts");
    let by_phone = list
        .iter()
        .map(|c| (c.phone.clone(), ContactId(c.id)))
        .collect();
    (tenant, campaign, by_phone)
}

/// Writes a call row of `node` in `status` as its dialer would have left
/// it (no provider id yet); its id.
async fn seed(
    conn: &mut diesel_async::AsyncPgConnection,
    (tenant, campaign, contacts): &(TenantId, CampaignId, Vec<(String, ContactId)>),
    phone: &str,
    node: &str,
    status: &str,
) -> CallId {
    let contact = contacts
        .iter()
        .find(|(p, _)| p == phone)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no contact {phone}"));
    let row = db::calls::create_intent(
        conn,
        db::calls::NewIntent {
            tenant: *tenant,
            campaign: *campaign,
            contact,
            attempt: 1,
            phone,
            media_token_hash: None,
            node: Some(node),
        },
    )
    .await
    .expect("intent");
    let id = CallId(row.id);
    if status != "queued" {
        assert!(
            db::calls::mark_dialing(conn, *tenant, id, node, Utc::now())
                .await
                .expect("dialing")
        );
    }
    if status != "queued" && status != "dialing" {
        db::calls::set_status(conn, *tenant, id, status, Utc::now())
            .await
            .expect("status");
    }
    id
}

/// Places a leg at the emulator for call `id`, as the dialer does.
async fn place(client: &VonageClient, id: CallId, to: &str) -> String {
    client
        .place_call(PlaceCall {
            call: id,
            to: to.into(),
            from: "+14155550100".into(),
            ringing_timeout: Duration::from_secs(60),
            max_duration: Duration::from_secs(600),
            machine_detection: false,
            media_token: "unused".into(),
        })
        .await
        .expect("create call")
        .0
}

async fn row(app: &TestApp, id: CallId) -> Option<db::calls::Call> {
    let mut conn = app.db.conn().await;
    db::calls::get_unscoped(&mut conn, id)
        .await
        .expect("read call")
}

async fn wait_status(sim: &VonageSimHandle, leg: &str, status: &str) {
    eventually(
        &format!("leg {leg} {status}"),
        Duration::from_secs(10),
        || async { sim.call(leg).filter(|r| r.status == status).map(|_| ()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_of_a_dead_node_are_settled_with_the_provider_and_a_live_nodes_are_left_alone() {
    let app = TestApp::start().await;
    let sim = emulator().await;
    let vonage = Arc::new(client(&sim));
    let keys = app.server().redis_keys();
    let world = contacts(&app).await;
    let dead = format!("dead-{}", uuid::Uuid::new_v4());
    let alive = format!("alive-{}", uuid::Uuid::new_v4());
    // The live node's heartbeat; the dead one has none.
    nodes::beat(&keys, &alive, Duration::from_secs(60))
        .await
        .expect("beat");

    let mut conn = app.db.conn().await;
    let live_leg = seed(&mut conn, &world, LIVE_LEG, &dead, "ringing").await;
    let ended_leg = seed(&mut conn, &world, ENDED_LEG, &dead, "dialing").await;
    let queued = seed(&mut conn, &world, QUEUED, &dead, "queued").await;
    let dialing = seed(&mut conn, &world, DIALING, &dead, "dialing").await;
    let other_node = seed(&mut conn, &world, OTHER_NODE, &alive, "ringing").await;
    // Placed, but the create-call's answer (the leg's id) was lost with
    // the process: only the provider's call list knows its leg.
    let lost_id = seed(&mut conn, &world, LOST_ID, &dead, "dialing").await;
    let leg_live = place(&vonage, live_leg, LIVE_LEG).await;
    let leg_ended = place(&vonage, ended_leg, ENDED_LEG).await;
    let leg_other = place(&vonage, other_node, OTHER_NODE).await;
    let leg_lost = place(&vonage, lost_id, LOST_ID).await;
    for (id, leg) in [
        (live_leg, &leg_live),
        (ended_leg, &leg_ended),
        (other_node, &leg_other),
    ] {
        db::calls::set_provider_id(&mut conn, world.0, id, leg)
            .await
            .expect("provider id");
    }
    for leg in [&leg_live, &leg_other, &leg_lost] {
        wait_status(&sim, leg, "ringing").await;
    }
    assert!(
        sim.wait_ended(&leg_ended, Duration::from_secs(10))
            .await
            .is_some_and(|r| r.status == "busy"),
        "the busy leg ends busy"
    );

    let reconciler = Reconciler {
        pool: app.live_pool(),
        telephony: vonage.clone(),
        nodes: Arc::new(RedisNodes { keys: keys.clone() }),
        me: format!("me-{}", uuid::Uuid::new_v4()),
        timeout: Duration::from_secs(5),
    };
    let report = reconciler.pass(false).await.expect("pass");
    assert_eq!(
        report,
        PassReport {
            looked_at: 6,
            finished: 4,
            hung_up: 2,
            released: 1,
            pending: 0,
        }
    );

    // A live leg: hung up at the provider, the call `interrupted`.
    let r = row(&app, live_leg).await.expect("row");
    assert_eq!(
        (r.status.as_str(), r.outcome.as_deref()),
        ("finished", Some("interrupted")),
        "{r:?}"
    );
    assert!(r.hangup_reason.is_some_and(|h| h.contains("hung up")));
    let leg = sim
        .wait_ended(&leg_live, Duration::from_secs(10))
        .await
        .expect("the live leg ends");
    assert_eq!(leg.hang_up, Some(HangUpSide::Rest), "hung up over REST");

    // An ended leg: the provider's final status.
    let r = row(&app, ended_leg).await.expect("row");
    assert_eq!(
        (r.status.as_str(), r.outcome.as_deref()),
        ("finished", Some("busy")),
        "{r:?}"
    );

    // Never placed: the intent is released (its attempt given back).
    assert!(
        row(&app, queued).await.is_none(),
        "the queued intent is gone"
    );

    // Being placed, but the provider has no leg: failed.
    let r = row(&app, dialing).await.expect("row");
    assert_eq!(
        (r.status.as_str(), r.outcome.as_deref()),
        ("finished", Some("failed")),
        "{r:?}"
    );

    // Its id found in the call list: learnt, and the leg hung up.
    let r = row(&app, lost_id).await.expect("row");
    assert_eq!(r.provider_call_id.as_deref(), Some(leg_lost.as_str()));
    assert_eq!(r.outcome.as_deref(), Some("interrupted"), "{r:?}");
    assert!(
        sim.wait_ended(&leg_lost, Duration::from_secs(10))
            .await
            .is_some_and(|l| l.hang_up == Some(HangUpSide::Rest))
    );

    // The live node's call: untouched, its leg still up.
    let r = row(&app, other_node).await.expect("row");
    assert_eq!(
        (r.status.as_str(), r.outcome.as_deref()),
        ("ringing", None),
        "{r:?}"
    );
    let leg = sim.call(&leg_other).expect("leg");
    assert!(!leg.ended && leg.hang_up.is_none(), "{leg:?}");

    // A second pass finds nothing more to do.
    let again = reconciler.pass(false).await.expect("pass");
    assert_eq!(
        again,
        PassReport {
            looked_at: 1,
            ..PassReport::default()
        }
    );

    // Once that node's heartbeat is gone, its call is an orphan too: the
    // heartbeat was what kept it.
    nodes::forget(&keys, &alive).await.expect("forget");
    let last = reconciler.pass(false).await.expect("pass");
    assert_eq!((last.finished, last.hung_up), (1, 1), "{last:?}");
    let r = row(&app, other_node).await.expect("row");
    assert_eq!(r.outcome.as_deref(), Some("interrupted"), "{r:?}");
    assert!(
        sim.wait_ended(&leg_other, Duration::from_secs(10))
            .await
            .is_some_and(|l| l.hang_up == Some(HangUpSide::Rest))
    );
    sim.stop().await;
    app.stop().await;
}

/// Keys of a prefix of this test's own.
fn fresh_keys() -> Keys {
    let config = talky::config::Config::default();
    Keys {
        pool: talky::redis::pool(&redis_url(), &config.redis).expect("redis pool"),
        prefix: format!("talky-test:{}:", uuid::Uuid::new_v4()),
        timeout: Duration::from_secs(2),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_is_present_while_renewed_and_gone_after_its_ttl() {
    let keys = fresh_keys();
    let nodes_view = RedisNodes { keys: keys.clone() };
    let node = format!("node-{}", uuid::Uuid::new_v4());
    assert_eq!(nodes_view.alive(&node).await, Ok(false), "no beat yet");
    let ttl = Duration::from_millis(1500);
    nodes::beat(&keys, &node, ttl).await.expect("beat");
    // Renewed every 300 ms for longer than the TTL: alive throughout
    // (checked before each renewal, so it is the renewal that keeps it).
    let started = tokio::time::Instant::now();
    while started.elapsed() < ttl + Duration::from_millis(600) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(nodes_view.alive(&node).await, Ok(true), "renewed");
        nodes::beat(&keys, &node, ttl).await.expect("renew");
    }
    // No more renewal: gone once the TTL ran out (not before a while).
    let (_, after) = eventually("the heartbeat lapses", Duration::from_secs(10), || async {
        (nodes_view.alive(&node).await == Ok(false)).then_some(())
    })
    .await;
    assert!(
        after >= Duration::from_millis(1000),
        "it lasted its TTL, not less: {after:?}"
    );
    // A drained node removes its own at once.
    nodes::beat(&keys, &node, Duration::from_secs(60))
        .await
        .expect("beat");
    assert!(nodes::alive(&keys, &node).await.expect("alive"));
    nodes::forget(&keys, &node).await.expect("forget");
    assert!(!nodes::alive(&keys, &node).await.expect("alive"));
}
