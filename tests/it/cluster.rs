//! The Redis engine for real (127.0.0.1:6379, each test under its own key
//! prefix): every script including expiry, concurrent acquires against a
//! cap, two nodes competing for a campaign lease, two DialerActors sharing
//! a global cap, a duplicate webhook stored once and routed once, and (two
//! `talky serve` processes, as in `lifetime`) a pause, resume or stop
//! served by the node that does not hold a campaign's lease reaching the
//! one that does.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use talky::redis::{Keys, RedisCluster, cps, dedup, lease, slots};
use talky::store::PgCallStore;
use talky_actors::call::{CallConfig, CallMsg, CallPorts, Ports};
use talky_actors::cluster::{ClusterPort, LeaseGrant, Slot, SlotCaps, SlotId};
use talky_actors::dialer::admission::Full;
use talky_actors::dialer::{
    CampaignCalls, DialRefused, DialRequest, DialSink, DialStore, DialerActor, DialerArgs,
    DialerConfig, DialerHandle, DialerMsg, Intent, IntentError, call_name,
};
use talky_actors::ids::{CallId, CampaignId, ContactId, TenantId};
use talky_actors::ports::*;

use crate::lifetime::{Node, World};
use crate::store::Unused;
use crate::support::{TestApp, eventually, redis_url, throughout};

fn keys() -> Keys {
    let config = talky::config::RedisConfig::default();
    Keys {
        pool: talky::redis::pool(&redis_url(), &config).expect("pool"),
        prefix: format!("talky-test:{}:", uuid::Uuid::new_v4()),
        timeout: Duration::from_secs(2),
    }
}

fn node(keys: &Keys, name: &str, lease_ttl: Duration, slot_ttl: Duration) -> RedisCluster {
    RedisCluster {
        keys: keys.clone(),
        node: name.into(),
        account: "acct".into(),
        lease_ttl,
        slot_ttl,
    }
}

#[tokio::test]
async fn the_cps_bucket_grants_the_burst_then_paces() {
    let k = keys();
    for _ in 0..3 {
        assert_eq!(cps::take(&k, "a", 10.0, 3).await.expect("take"), None);
    }
    let wait = cps::take(&k, "a", 10.0, 3)
        .await
        .expect("take")
        .expect("the burst is spent");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(100),
        "{wait:?}"
    );
    // Another account has its own bucket.
    assert_eq!(cps::take(&k, "b", 10.0, 3).await.expect("take"), None);
    tokio::time::sleep(wait + Duration::from_millis(5)).await;
    assert_eq!(cps::take(&k, "a", 10.0, 3).await.expect("take"), None);
    // Over a second of hammering: about burst + rate tokens, never more.
    let k = keys();
    let start = tokio::time::Instant::now();
    let mut granted = 0;
    while start.elapsed() < Duration::from_secs(1) {
        if cps::take(&k, "a", 20.0, 5).await.expect("take").is_none() {
            granted += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!((20..=26).contains(&granted), "{granted} tokens in a second");
}

fn slot(tenant: TenantId, campaign: CampaignId) -> Slot {
    Slot {
        id: SlotId::new(),
        tenant,
        campaign,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquires_never_exceed_a_cap() {
    let k = keys();
    let a = Arc::new(node(
        &k,
        "a",
        Duration::from_secs(5),
        Duration::from_secs(5),
    ));
    let b = Arc::new(node(
        &k,
        "b",
        Duration::from_secs(5),
        Duration::from_secs(5),
    ));
    let (t, c) = (TenantId::new(), CampaignId::new());
    let caps = SlotCaps {
        global: 7,
        tenant: 100,
        campaign: 100,
    };
    let mut tasks = Vec::new();
    for i in 0..60 {
        let n = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            n.acquire_slot(slot(t, c), caps).await.expect("redis")
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => ok += 1,
            Err(full) => assert_eq!(full, Full::Global),
        }
    }
    assert_eq!(ok, 7);
    assert_eq!(slots::live(&k, None).await.expect("live"), 7);
    // Tenant and campaign caps, each named.
    let k = keys();
    let n = node(&k, "a", Duration::from_secs(5), Duration::from_secs(5));
    let caps = SlotCaps {
        global: 10,
        tenant: 3,
        campaign: 2,
    };
    let (c2, c3) = (CampaignId::new(), CampaignId::new());
    let first = slot(t, c2);
    assert_eq!(n.acquire_slot(first, caps).await, Ok(Ok(())));
    assert_eq!(n.acquire_slot(slot(t, c2), caps).await, Ok(Ok(())));
    assert_eq!(
        n.acquire_slot(slot(t, c2), caps).await,
        Ok(Err(Full::Campaign))
    );
    assert_eq!(n.acquire_slot(slot(t, c3), caps).await, Ok(Ok(())));
    assert_eq!(
        n.acquire_slot(slot(t, c3), caps).await,
        Ok(Err(Full::Tenant))
    );
    n.release_slot(first).await.expect("release");
    assert_eq!(n.acquire_slot(slot(t, c3), caps).await, Ok(Ok(())));
}

#[tokio::test]
async fn slots_of_a_dead_node_expire_and_renewed_ones_live_on() {
    let k = keys();
    let ttl = Duration::from_millis(400);
    let live = node(&k, "live", Duration::from_secs(5), ttl);
    let dead = node(&k, "dead", Duration::from_secs(5), ttl);
    let (t, c) = (TenantId::new(), CampaignId::new());
    let caps = SlotCaps {
        global: 2,
        tenant: 2,
        campaign: 2,
    };
    let kept = slot(t, c);
    assert_eq!(live.acquire_slot(kept, caps).await, Ok(Ok(())));
    assert_eq!(dead.acquire_slot(slot(t, c), caps).await, Ok(Ok(())));
    assert_eq!(
        live.acquire_slot(slot(t, c), caps).await,
        Ok(Err(Full::Global))
    );
    // The live node renews every 150 ms; the dead one never does: its slot
    // lapses after the ttl, the renewed one still counts.
    let ((), took) = eventually(
        "the dead node's slot lapses",
        Duration::from_secs(5),
        || async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            live.renew_slots(vec![kept]).await.expect("renew");
            (slots::live(&k, None).await.expect("live") == 1).then_some(())
        },
    )
    .await;
    assert!(
        took >= ttl - Duration::from_millis(50),
        "lapsed after {took:?}, ttl {ttl:?}"
    );
    // Renewed past several ttls, the live node's slot still counts.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        live.renew_slots(vec![kept]).await.expect("renew");
    }
    assert_eq!(slots::live(&k, None).await.expect("live"), 1);
    assert_eq!(
        slots::live(&k, Some(("campaign", &c.to_string())))
            .await
            .expect("live"),
        1
    );
    assert_eq!(live.acquire_slot(slot(t, c), caps).await, Ok(Ok(())));
    assert_eq!(
        live.acquire_slot(slot(t, c), caps).await,
        Ok(Err(Full::Global))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_nodes_holds_a_lease_and_the_other_takes_over() {
    let k = keys();
    let ttl = Duration::from_millis(500);
    let nodes: Vec<Arc<RedisCluster>> = (0..2)
        .map(|i| Arc::new(node(&k, &format!("node-{i}"), ttl, ttl)))
        .collect();
    let campaign = CampaignId::new();
    let mut tasks = Vec::new();
    for n in &nodes {
        let n = n.clone();
        tasks.push(tokio::spawn(async move { n.acquire_lease(campaign).await }));
    }
    let mut grants = Vec::new();
    for t in tasks {
        grants.push(t.await.expect("task").expect("redis"));
    }
    let holder = grants
        .iter()
        .position(|g| *g == LeaseGrant::Acquired)
        .expect("one holds it");
    let other = 1 - holder;
    assert_eq!(grants[other], LeaseGrant::HeldElsewhere, "{grants:?}");
    let (h, o) = (&nodes[holder], &nodes[other]);
    // The holder renews past the ttl; the other cannot renew, take or
    // release it.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.renew_lease(campaign).await, Ok(true));
        assert_eq!(
            o.acquire_lease(campaign).await,
            Ok(LeaseGrant::HeldElsewhere)
        );
    }
    assert_eq!(o.renew_lease(campaign).await, Ok(false));
    assert_eq!(o.release_lease(campaign).await, Ok(false));
    assert_eq!(h.acquire_lease(campaign).await, Ok(LeaseGrant::Renewed));
    // The holder stops renewing: the lease lapses, the other takes it (and
    // not before the ttl ran out).
    let (grant, took) = eventually(
        "the other node takes the lapsed lease",
        Duration::from_secs(5),
        || async {
            match o.acquire_lease(campaign).await {
                Ok(LeaseGrant::HeldElsewhere) => None,
                other => Some(other),
            }
        },
    )
    .await;
    assert_eq!(grant, Ok(LeaseGrant::Acquired));
    assert!(
        took >= ttl - Duration::from_millis(50),
        "taken after {took:?}, ttl {ttl:?}"
    );
    assert_eq!(
        h.renew_lease(campaign).await,
        Ok(false),
        "the old holder lost it"
    );
    assert_eq!(h.release_lease(campaign).await, Ok(false));
    assert_eq!(o.release_lease(campaign).await, Ok(true));
    assert_eq!(
        lease::acquire(&k, &format!("campaign:{campaign}"), "node-x", ttl)
            .await
            .expect("redis"),
        lease::Acquired::New,
        "a released lease is free at once"
    );
}

#[tokio::test]
async fn dedup_lets_the_first_delivery_through_until_the_key_expires() {
    let k = keys();
    let key = dedup::event_key(&["vonage", "call", "ringing", "t"]);
    assert_ne!(key, dedup::event_key(&["vonage", "call", "ringin", "gt"]));
    assert!(
        dedup::first(&k, &key, Duration::from_secs(1))
            .await
            .expect("redis"),
        "first delivery"
    );
    assert!(
        !dedup::first(&k, &key, Duration::from_secs(1))
            .await
            .expect("redis"),
        "a repeat"
    );
    // Once the key expired (after its 1 s), a delivery is a first again.
    let ((), took) = eventually("the de-dup key expires", Duration::from_secs(5), || async {
        dedup::first(&k, &key, Duration::from_secs(1))
            .await
            .expect("redis")
            .then_some(())
    })
    .await;
    assert!(took >= Duration::from_millis(900), "expired after {took:?}");
}

// ----- two dialers sharing a cap over Redis --------------------------------

/// A line that counts calls up at once (cluster-wide), rings 300 ms, then
/// is busy.
#[derive(Default)]
struct CountingLine {
    live: AtomicU32,
    max: AtomicU32,
    placed: Mutex<Vec<String>>,
}

struct Line(Arc<CountingLine>);

impl TelephonyPort for Line {
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        let now = self.0.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max.fetch_max(now, Ordering::SeqCst);
        self.0
            .placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.to.clone());
        let line = self.0.clone();
        let call = req.call;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            line.live.fetch_sub(1, Ordering::SeqCst);
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

/// Intents in memory.
#[derive(Default)]
struct Intents(Mutex<HashSet<(CampaignId, ContactId, u32)>>);

impl DialStore for Intents {
    async fn create_intent(&self, req: &DialRequest) -> Result<Intent, IntentError> {
        let fresh = self.0.lock().unwrap_or_else(|e| e.into_inner()).insert((
            req.campaign,
            req.contact,
            req.attempt,
        ));
        if !fresh {
            return Err(IntentError::Duplicate);
        }
        let call = CallId::new();
        Ok(Intent {
            call,
            media_token: format!("tok-{call}"),
        })
    }
}

struct CountingPorts;

impl CallPorts for CountingPorts {
    type Telephony = Line;
    type Stt = Unused;
    type Llm = Unused;
    type Tts = Unused;
    type Store = PgCallStore;
    type Clock = TokioClock;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dialers_sharing_a_global_cap_over_redis_never_exceed_it() {
    let app = TestApp::start().await;
    let k = keys();
    let line = Arc::new(CountingLine::default());
    let tenant = TenantId::new();
    let mut handles = Vec::new();
    let mut dialers = Vec::new();
    for i in 0..2 {
        let name = format!("dialer-{}", uuid::Uuid::new_v4());
        let ports = Ports::<CountingPorts> {
            telephony: Arc::new(Line(line.clone())),
            stt: vec![Arc::new(Unused)],
            llm: vec![Arc::new(Unused)],
            tts: vec![Arc::new(Unused)],
            store: Arc::new(PgCallStore {
                pool: app.pool(),
                timeout: Duration::from_secs(5),
                live: Default::default(),
            }),
            clock: Arc::new(TokioClock),
        };
        let (dialer, _) = Actor::spawn(
            Some(name.clone()),
            DialerActor::<CountingPorts, Intents>::new(),
            DialerArgs {
                // Each node alone would allow 4: 8 together without Redis.
                config: DialerConfig {
                    global_cap: 4,
                    calls_per_second: 200.0,
                    cps_burst: 20,
                    ..DialerConfig::default()
                },
                ports,
                store: Arc::new(Intents::default()),
                cluster: Arc::new(node(
                    &k,
                    &format!("node-{i}"),
                    Duration::from_secs(5),
                    Duration::from_secs(5),
                )),
            },
        )
        .await
        .expect("dialer");
        let campaign = CampaignId::new();
        let mut template = CallConfig::new("", "+14155550100", "p", "g");
        template.port_timeout = Duration::from_secs(2);
        dialer
            .cast(DialerMsg::Configure {
                campaign,
                calls: Box::new(CampaignCalls {
                    tenant,
                    max_concurrent: 10,
                    template,
                    on_report: Arc::new(|_| {}),
                }),
            })
            .expect("configure");
        handles.push((
            DialerHandle {
                name,
                timeout: Duration::from_secs(5),
            },
            campaign,
        ));
        dialers.push(dialer);
    }
    let mut drivers = Vec::new();
    for (i, (handle, campaign)) in handles.into_iter().enumerate() {
        drivers.push(tokio::spawn(async move {
            for n in 0..12 {
                let req = DialRequest {
                    place_by: None,
                    tenant,
                    campaign,
                    contact: ContactId::new(),
                    phone: format!("+1415555{:04}", i * 100 + n),
                    attempt: 1,
                };
                loop {
                    match handle.dial(req.clone()).await {
                        Ok(()) => break,
                        Err(DialRefused::AtCapacity) => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        Err(other) => panic!("refused: {other}"),
                    }
                }
            }
        }));
    }
    for d in drivers {
        tokio::time::timeout(Duration::from_secs(30), d)
            .await
            .expect("all dialled in time")
            .expect("driver");
    }
    // Every call placed and ended, every slot given back.
    eventually(
        "every call placed and every slot given back",
        Duration::from_secs(10),
        || async {
            let placed = line.placed.lock().unwrap_or_else(|e| e.into_inner()).len();
            let live = slots::live(&k, None).await.expect("live");
            (placed == 24 && live == 0).then_some(())
        },
    )
    .await;
    let max = line.max.load(Ordering::SeqCst);
    assert!(max <= 4, "{max} calls up at once over a cluster cap of 4");
    assert!(max >= 3, "the cap was used: {max}");
    assert_eq!(
        slots::live(&k, None).await.expect("live"),
        0,
        "every slot given back"
    );
    for d in dialers {
        d.stop(None);
    }
    app.stop().await;
}

// ----- the webhook: stored once, routed once --------------------------------

/// Stands in for a call's actor: counts the telephony events routed to it.
struct Counter;

impl Actor for Counter {
    type Msg = CallMsg;
    type State = Arc<AtomicU32>;
    type Arguments = Arc<AtomicU32>;

    async fn pre_start(
        &self,
        _myself: ActorRef<CallMsg>,
        count: Arc<AtomicU32>,
    ) -> Result<Arc<AtomicU32>, ActorProcessingErr> {
        Ok(count)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CallMsg>,
        msg: CallMsg,
        count: &mut Arc<AtomicU32>,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(msg, CallMsg::Telephony(_)) {
            count.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_webhook_is_stored_once_and_routed_once() {
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
    let call = crate::calls::live_call(&app, &tenant, &campaign).await;
    let routed = Arc::new(AtomicU32::new(0));
    let (actor, _) = Actor::spawn(Some(call_name(call)), Counter, routed.clone())
        .await
        .expect("stand-in call actor");
    let body = serde_json::json!({
        "uuid": uuid::Uuid::new_v4().to_string(),
        "conversation_uuid": "CON-1",
        "status": "ringing",
        "direction": "outbound",
        "timestamp": "2020-01-01T12:00:01.000Z",
        "from": "447700900000",
        "to": "14155550123"
    });
    let url = app.url(&app.events_path(&call.to_string()));
    let mut posts = Vec::new();
    for _ in 0..4 {
        let (client, url, body) = (app.client.clone(), url.clone(), body.clone());
        posts.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for p in posts {
        assert_eq!(p.await.expect("task").expect("send"), 204);
    }
    // Every post was answered, so every routing decision was taken: one
    // event reaches the call, and no second one follows.
    eventually(
        "the event reaches the call",
        Duration::from_secs(5),
        || async { (routed.load(Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(routed.load(Ordering::SeqCst), 1, "routed once");
    let (_, detail) = app.get(&format!("/api/v1/calls/{call}"), &key).await;
    let events = detail["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "stored once: {events:?}");
    actor.stop(None);
    app.stop().await;
}

// ----- lifecycle commands served by a node without the lease ----------------

/// The node holding the campaign's lease, and the other one.
async fn holder_and_other<'a>(
    world: &World,
    campaign: &str,
    nodes: [&'a Node; 2],
) -> (&'a Node, &'a Node) {
    let (holder, _) = eventually(
        "a node holds the campaign's lease",
        Duration::from_secs(20),
        || world.lease_holder(campaign),
    )
    .await;
    match nodes.iter().position(|n| n.id == holder) {
        Some(0) => (nodes[0], nodes[1]),
        Some(_) => (nodes[1], nodes[0]),
        None => panic!("the lease is held by {holder}, neither node"),
    }
}

/// Sends a lifecycle command to `node`: the state it answers with, and
/// when the answer came.
async fn command(
    world: &World,
    node: &Node,
    campaign: &str,
    command: &str,
) -> (String, chrono::DateTime<chrono::Utc>) {
    let c = world
        .api(
            node,
            reqwest::Method::POST,
            &format!("/api/v1/campaigns/{campaign}/{command}"),
            Some(serde_json::json!({})),
        )
        .await;
    let state = c["state"].as_str().unwrap_or_default().to_string();
    (state, chrono::Utc::now())
}

/// The emulator's legs created after `t` (every dial talky placed then).
async fn dialled_after(world: &World, t: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    world
        .legs()
        .await
        .iter()
        .filter(|l| l.created_at > t)
        .map(|l| format!("{} at {}", l.to, l.created_at))
        .collect()
}

/// Every call of the campaign finished and no contact left in progress
/// (polled gently: two API requests a go, under the key's rate limit).
async fn settled(world: &World, node: &Node, campaign: &str) -> Option<()> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = world.calls(node, campaign).await;
    let contacts = world.contacts(node, campaign).await;
    (calls.iter().all(|c| c["status"] == "finished")
        && contacts.iter().all(|c| c["status"] != "in_progress"))
    .then_some(())
}

/// A dial already on its way when the command was answered may still
/// reach the provider within this long; nothing may come after.
const IN_FLIGHT: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_through_a_node_without_the_lease_stops_the_holder_and_a_resume_there_restarts_it()
{
    let world = World::new(&[]).await;
    let a = world.serve("a").await;
    let b = world.serve("b").await;
    let campaign = world.campaign(&a).await;
    world.wait_conversations(&a, &campaign, 1).await;
    let (holder, other) = holder_and_other(&world, &campaign, [&a, &b]).await;

    let (state, paused_at) = command(&world, other, &campaign, "pause").await;
    assert_eq!(state, "paused");
    // The holder hears of it at once (the notice), or within a tick (it
    // reads the stored state).
    let ((), took) = eventually(
        "the lease holder's actor is paused",
        Duration::from_secs(10),
        || async {
            (world.actor_state(holder, &campaign).await.as_deref() == Some("paused")).then_some(())
        },
    )
    .await;
    assert!(
        took <= Duration::from_secs(1),
        "the holder paused {took:?} after the answer"
    );
    // The calls placed before the pause end by themselves...
    eventually(
        "the calls live at the pause end and are recorded",
        Duration::from_secs(120),
        || settled(&world, holder, &campaign),
    )
    .await;
    // ...and nothing is dialled after it, even with slots free and
    // contacts due: a holder still running would dial within a tick
    // (200 ms), so 15 of its ticks pass here.
    let cutoff = paused_at + IN_FLIGHT;
    throughout(
        "nothing dialled after the pause",
        Duration::from_secs(3),
        || async {
            let late = dialled_after(&world, cutoff).await;
            if late.is_empty() {
                Ok(())
            } else {
                Err(format!("dialled after the pause: {late:?}"))
            }
        },
    )
    .await;
    let waiting = world
        .contacts(holder, &campaign)
        .await
        .iter()
        .filter(|c| c["status"] == "pending" || c["status"] == "retry")
        .count();
    assert!(waiting > 0, "the pause left contacts to dial");

    // Resumed through the same node: the lease holder dials again, and
    // the campaign runs to completion.
    let (state, resumed_at) = command(&world, other, &campaign, "resume").await;
    assert_eq!(state, "running");
    eventually(
        "a dial after the resume",
        Duration::from_secs(20),
        || async { (!dialled_after(&world, resumed_at).await.is_empty()).then_some(()) },
    )
    .await;
    world
        .wait_completed(&a, &campaign, Duration::from_secs(150))
        .await;
    world.check_invariants(&a, &campaign).await;
    world.finish(vec![a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_through_a_node_without_the_lease_cancels_the_campaign_once_its_calls_end() {
    let world = World::new(&[]).await;
    let a = world.serve("a").await;
    let b = world.serve("b").await;
    let campaign = world.campaign(&a).await;
    world.wait_conversations(&a, &campaign, 1).await;
    let (holder, other) = holder_and_other(&world, &campaign, [&a, &b]).await;

    let (state, stopped_at) = command(&world, other, &campaign, "stop").await;
    assert_eq!(state, "stopping", "calls were live");
    // The holder drains its calls and stores `cancelled` (not `completed`,
    // not a `running` it never left).
    world
        .wait_campaign_state(other, &campaign, "cancelled", Duration::from_secs(120))
        .await;
    let late = dialled_after(&world, stopped_at + IN_FLIGHT).await;
    assert!(late.is_empty(), "dialled after the stop: {late:?}");
    settled(&world, holder, &campaign)
        .await
        .expect("every call finished, no contact left in progress");
    let never_dialled = world
        .contacts(holder, &campaign)
        .await
        .iter()
        .filter(|c| c["status"] == "pending" && c["attempts"] == 0)
        .count();
    assert!(never_dialled > 0, "the stop left contacts undialled");
    world.finish(vec![a, b]).await;
}
