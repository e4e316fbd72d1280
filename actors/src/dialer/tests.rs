//! DialerActor tests on paused time: caps and pacing under a burst of
//! 1,000 contacts, intents, and a crashing call.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorRef};
use tokio::time::Instant;

use super::*;
use crate::call::lifecycle::EndCause;
use crate::call::tests::fakes::{FakeLlm, FakeStore, FakeStt, FakeTts, config, lock};
use crate::call::{CallMsg, CallPorts, CallReport, Ports};
use crate::cluster::{ClusterFuture, CpsGrant, LeaseGrant, Slot, SlotCaps};
use crate::dialer::admission::Full;
use crate::ids::{CallId, CampaignId, ContactId, TenantId};
use crate::ports::*;

/// Who each call belongs to, as the intent store wrote it.
type Owners = Arc<Mutex<HashMap<CallId, (TenantId, CampaignId)>>>;

#[derive(Default)]
struct Counts {
    global: u32,
    by_tenant: HashMap<TenantId, u32>,
    by_campaign: HashMap<CampaignId, u32>,
    max_global: u32,
    max_tenant: HashMap<TenantId, u32>,
    max_campaign: HashMap<CampaignId, u32>,
    placed_at: Vec<Instant>,
    placed_to: Vec<String>,
    hung_up: Vec<ProviderCallId>,
}

/// A telephony world: every call rings for `talk`, then is busy.
struct World {
    owners: Owners,
    counts: Arc<Mutex<Counts>>,
    talk: Duration,
}

impl TelephonyPort for World {
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        let owner = lock(&self.owners).get(&req.call).copied();
        let Some((tenant, campaign)) = owner else {
            return Err(PortError::Rejected("no intent".into()));
        };
        {
            let mut c = lock(&self.counts);
            c.global += 1;
            let g = c.global;
            c.max_global = c.max_global.max(g);
            let t = *c
                .by_tenant
                .entry(tenant)
                .and_modify(|n| *n += 1)
                .or_insert(1);
            let mt = c.max_tenant.entry(tenant).or_insert(0);
            *mt = (*mt).max(t);
            let k = *c
                .by_campaign
                .entry(campaign)
                .and_modify(|n| *n += 1)
                .or_insert(1);
            let mk = c.max_campaign.entry(campaign).or_insert(0);
            *mk = (*mk).max(k);
            c.placed_at.push(Instant::now());
            c.placed_to.push(req.to.clone());
        }
        let counts = self.counts.clone();
        let talk = self.talk;
        let call = req.call;
        tokio::spawn(async move {
            tokio::time::sleep(talk).await;
            {
                let mut c = lock(&counts);
                c.global -= 1;
                *c.by_tenant.entry(tenant).or_insert(1) -= 1;
                *c.by_campaign.entry(campaign).or_insert(1) -= 1;
            }
            if let Some(actor) = ractor::registry::where_is(call_name(call)) {
                let _ = actor.send_message(CallMsg::Telephony(TelephonyEvent::Busy));
            }
        });
        Ok(ProviderCallId(format!("p-{call}")))
    }

    async fn hang_up(&self, id: ProviderCallId) -> PortResult<()> {
        lock(&self.counts).hung_up.push(id);
        Ok(())
    }
}

/// Intents, unique per (campaign, contact, attempt); a cancelled one is
/// gone (the attempt may be dialled again).
#[derive(Default)]
struct Intents {
    seen: Mutex<HashSet<(CampaignId, ContactId, u32)>>,
    owners: Owners,
    cancelled: Mutex<Vec<CallKey>>,
}

impl DialStore for Intents {
    async fn create_intent(&self, req: &DialRequest) -> Result<Intent, IntentError> {
        if !lock(&self.seen).insert((req.campaign, req.contact, req.attempt)) {
            return Err(IntentError::Duplicate);
        }
        let call = CallId::new();
        lock(&self.owners).insert(call, (req.tenant, req.campaign));
        Ok(Intent {
            call,
            media_token: format!("tok-{call}"),
        })
    }

    async fn provider_call(&self, key: CallKey) -> PortResult<Option<ProviderCallId>> {
        Ok(Some(ProviderCallId(format!("p-{}", key.call))))
    }

    async fn cancel_intent(&self, key: CallKey) -> PortResult<()> {
        lock(&self.seen).remove(&(key.campaign, key.contact, key.attempt));
        lock(&self.owners).remove(&key.call);
        lock(&self.cancelled).push(key);
        Ok(())
    }
}

/// The cluster, whose CPS tokens can be made unavailable (Redis down).
pub(crate) struct FlakyCluster {
    inner: crate::cluster::LocalCluster,
    /// `take_cps` fails while set.
    pub(crate) cps_down: AtomicBool,
}

impl FlakyCluster {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        FlakyCluster {
            inner: crate::cluster::LocalCluster::single("test", clock),
            cps_down: AtomicBool::new(false),
        }
    }
}

impl crate::cluster::ClusterPort for FlakyCluster {
    fn node(&self) -> &str {
        self.inner.node()
    }
    fn slot_renew_every(&self) -> Duration {
        self.inner.slot_renew_every()
    }
    fn take_cps(&self, rate: f64, burst: u32) -> ClusterFuture<'_, CpsGrant> {
        if self.cps_down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(PortError::Unavailable("redis down".into())) });
        }
        self.inner.take_cps(rate, burst)
    }
    fn acquire_slot(&self, slot: Slot, caps: SlotCaps) -> ClusterFuture<'_, Result<(), Full>> {
        self.inner.acquire_slot(slot, caps)
    }
    fn renew_slots(&self, slots: Vec<Slot>) -> ClusterFuture<'_, ()> {
        self.inner.renew_slots(slots)
    }
    fn release_slot(&self, slot: Slot) -> ClusterFuture<'_, ()> {
        self.inner.release_slot(slot)
    }
    fn acquire_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, LeaseGrant> {
        self.inner.acquire_lease(campaign)
    }
    fn renew_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, bool> {
        self.inner.renew_lease(campaign)
    }
    fn release_lease(&self, campaign: CampaignId) -> ClusterFuture<'_, bool> {
        self.inner.release_lease(campaign)
    }
}

/// Tokio's clock (wall time follows it from the start); `utc()` panics
/// once when armed (to crash one call).
struct TrapClock {
    armed: AtomicBool,
    utc0: DateTime<Utc>,
    t0: Instant,
}

impl Default for TrapClock {
    fn default() -> Self {
        TrapClock {
            armed: AtomicBool::new(false),
            utc0: Utc::now(),
            t0: Instant::now(),
        }
    }
}

impl Clock for TrapClock {
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
    fn utc(&self) -> DateTime<Utc> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("trap clock sprung");
        }
        self.utc0 + chrono::TimeDelta::from_std(Instant::now() - self.t0).expect("elapsed")
    }
}

struct WorldPorts;

impl CallPorts for WorldPorts {
    type Telephony = World;
    type Stt = FakeStt;
    type Llm = FakeLlm;
    type Tts = FakeTts;
    type Store = FakeStore;
    type Clock = TrapClock;
}

struct Rig {
    dialer: ActorRef<DialerMsg>,
    handle: DialerHandle,
    counts: Arc<Mutex<Counts>>,
    reports: Arc<Mutex<Vec<CallReport>>>,
    not_placed: Arc<Mutex<Vec<(CallKey, NotPlacedWhy)>>>,
    intents: Arc<Intents>,
    cluster: Arc<FlakyCluster>,
    clock: Arc<TrapClock>,
}

async fn rig(config_: DialerConfig, talk: Duration) -> Rig {
    let intents = Arc::new(Intents::default());
    let cluster = Arc::new(FlakyCluster::new(Arc::new(TrapClock::default())));
    let counts = Arc::new(Mutex::new(Counts::default()));
    let clock = Arc::new(TrapClock::default());
    let sessions = Arc::new(Mutex::new(Vec::new()));
    let ports = Ports::<WorldPorts> {
        telephony: Arc::new(World {
            owners: intents.owners.clone(),
            counts: counts.clone(),
            talk,
        }),
        stt: vec![Arc::new(FakeStt::new("stt", sessions))],
        llm: vec![Arc::new(FakeLlm::new(
            "llm",
            Arc::new(Mutex::new(Vec::new())),
        ))],
        tts: vec![Arc::new(FakeTts::new(
            "tts",
            Arc::new(Mutex::new(Vec::new())),
        ))],
        store: Arc::new(FakeStore::default()),
        clock: clock.clone(),
    };
    let name = format!("dialer-{}", uuid::Uuid::new_v4());
    let (dialer, _) = Actor::spawn(
        Some(name.clone()),
        DialerActor::<WorldPorts, Intents>::new(),
        DialerArgs {
            config: config_,
            ports,
            store: intents.clone(),
            cluster: cluster.clone(),
        },
    )
    .await
    .expect("dialer starts");
    Rig {
        not_placed: Arc::new(Mutex::new(Vec::new())),
        intents,
        cluster,
        handle: DialerHandle {
            name,
            timeout: Duration::from_secs(5),
        },
        dialer,
        counts,
        reports: Arc::new(Mutex::new(Vec::new())),
        clock,
    }
}

impl Rig {
    fn configure(&self, tenant: TenantId, campaign: CampaignId, cap: u32) {
        let reports = self.reports.clone();
        let not_placed = self.not_placed.clone();
        self.dialer
            .cast(DialerMsg::Configure {
                campaign,
                calls: Box::new(CampaignCalls {
                    tenant,
                    max_concurrent: cap,
                    template: config(),
                    on_report: Arc::new(move |r| match r {
                        DialReport::Ended(r) => lock(&reports).push(r),
                        DialReport::NotPlaced { key, why } => lock(&not_placed).push((key, why)),
                    }),
                }),
            })
            .expect("configure");
    }
}

fn request(tenant: TenantId, campaign: CampaignId, contact: ContactId, n: usize) -> DialRequest {
    DialRequest {
        tenant,
        campaign,
        contact,
        phone: format!("+1415555{n:04}"),
        attempt: 1,
        place_by: None,
    }
}

#[tokio::test(start_paused = true)]
async fn caps_and_pacing_hold_under_a_burst_of_a_thousand() {
    let cfg = DialerConfig {
        global_cap: 30,
        tenant_cap: 25,
        calls_per_second: 20.0,
        cps_burst: 5,
        rpc_timeout: Duration::from_secs(5),
    };
    let rig = rig(cfg, Duration::from_secs(2)).await;
    let (t1, t2) = (TenantId::new(), TenantId::new());
    let campaigns = [
        (t1, CampaignId::new(), 10u32),
        (t1, CampaignId::new(), 20),
        (t2, CampaignId::new(), 10),
    ];
    for (t, c, cap) in campaigns {
        rig.configure(t, c, cap);
    }
    // Three campaigns push 1,000 due contacts as fast as the dialer takes them.
    let mut drivers = Vec::new();
    for (i, (tenant, campaign, _)) in campaigns.into_iter().enumerate() {
        let handle = rig.handle.clone();
        let share = if i == 2 { 334 } else { 333 };
        drivers.push(tokio::spawn(async move {
            let mut refused = 0u32;
            for n in 0..share {
                let req = request(tenant, campaign, ContactId::new(), i * 1000 + n);
                loop {
                    match handle.dial(req.clone()).await {
                        Ok(()) => break,
                        Err(DialRefused::AtCapacity) => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for d in drivers {
        refused += d.await.expect("driver");
    }
    assert!(refused > 0, "the caps were reached");
    tokio::time::sleep(Duration::from_secs(5)).await;

    {
        let c = lock(&rig.counts);
        assert_eq!(c.placed_to.len(), 1000, "every contact placed");
        assert_eq!(
            c.placed_to.iter().collect::<HashSet<_>>().len(),
            1000,
            "each once"
        );
        assert!(c.max_global <= 30, "global {}", c.max_global);
        assert!(
            c.max_tenant.get(&t1).is_some_and(|m| *m <= 25),
            "tenant {:?}",
            c.max_tenant
        );
        for (_, campaign, cap) in campaigns {
            let max = c.max_campaign.get(&campaign).copied().unwrap_or(0);
            assert!(max <= cap && max > 0, "campaign max {max} cap {cap}");
        }
        // Pacing: never more than burst + rate x 1 s in any one-second window.
        let times = &c.placed_at;
        for (i, start) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|t| **t < *start + Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 25,
                "{in_window} calls in the second from call {i}"
            );
        }
    }
    {
        let reports = lock(&rig.reports);
        assert_eq!(reports.len(), 1000);
        assert!(reports.iter().all(|r| r.cause.outcome() == "busy"));
    }
    let snapshot = ractor::call_t!(rig.dialer, DialerMsg::Snapshot, 1000).expect("snapshot");
    assert_eq!(
        (snapshot.live, snapshot.queued, snapshot.dialled),
        (0, 0, 1000)
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_is_dialled_once_and_unknown_campaigns_are_refused() {
    let rig = rig(DialerConfig::default(), Duration::from_secs(1)).await;
    let (tenant, campaign) = (TenantId::new(), CampaignId::new());
    let contact = ContactId::new();
    let req = request(tenant, campaign, contact, 1);
    assert!(matches!(
        rig.handle.dial(req.clone()).await,
        Err(DialRefused::Unavailable(_))
    ));
    rig.configure(tenant, campaign, 5);
    assert_eq!(rig.handle.dial(req.clone()).await, Ok(()));
    assert_eq!(
        rig.handle.dial(req.clone()).await,
        Err(DialRefused::Duplicate)
    );
    let next = DialRequest { attempt: 2, ..req };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rig.handle.dial(next).await,
        Ok(()),
        "the next attempt is a new intent"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lock(&rig.counts).placed_to.len(), 2);
    assert_eq!(lock(&rig.reports).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_crashing_call_leaves_its_siblings_and_the_dialer_alone() {
    let rig = rig(DialerConfig::default(), Duration::from_secs(1)).await;
    let (tenant, campaign) = (TenantId::new(), CampaignId::new());
    rig.configure(tenant, campaign, 10);
    rig.clock.armed.store(true, Ordering::SeqCst);
    for n in 0..5 {
        rig.handle
            .dial(request(tenant, campaign, ContactId::new(), n))
            .await
            .expect("accepted");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reports = lock(&rig.reports).clone();
    assert_eq!(reports.len(), 5, "every call reported once: {reports:?}");
    let crashed: Vec<&CallReport> = reports
        .iter()
        .filter(|r| matches!(&r.cause, crate::call::lifecycle::EndCause::Failed(w) if w.contains("crashed")))
        .collect();
    assert_eq!(crashed.len(), 1, "{reports:?}");
    assert_eq!(
        reports
            .iter()
            .filter(|r| r.cause.outcome() == "busy")
            .count(),
        4
    );
    let snapshot =
        ractor::call_t!(rig.dialer, DialerMsg::Snapshot, 1000).expect("the dialer is alive");
    assert_eq!((snapshot.live, snapshot.crashed), (0, 1));
    // Its provider leg was hung up by the dialer.
    assert_eq!(
        lock(&rig.counts).hung_up,
        [ProviderCallId(format!("p-{}", crashed[0].key.call))]
    );
    // Still dialling afterwards.
    rig.handle
        .dial(request(tenant, campaign, ContactId::new(), 99))
        .await
        .expect("accepted after the crash");
}

async fn snapshot(rig: &Rig) -> DialerSnapshot {
    ractor::call_t!(rig.dialer, DialerMsg::Snapshot, 1000).expect("snapshot")
}

fn not_placed_contacts(rig: &Rig) -> Vec<(ContactId, NotPlacedWhy)> {
    let mut v: Vec<_> = lock(&rig.not_placed)
        .iter()
        .map(|(k, why)| (k.contact, *why))
        .collect();
    v.sort();
    v
}

#[tokio::test(start_paused = true)]
async fn a_queued_dial_whose_window_closes_is_not_placed_and_goes_back() {
    let rig = rig(DialerConfig::default(), Duration::from_secs(1)).await;
    let (tenant, campaign) = (TenantId::new(), CampaignId::new());
    rig.configure(tenant, campaign, 10);
    rig.cluster.cps_down.store(true, Ordering::SeqCst);
    let closes = ContactId::new();
    let open = ContactId::new();
    let by = rig.clock.utc() + chrono::TimeDelta::seconds(2);
    let req = DialRequest {
        place_by: Some(by),
        ..request(tenant, campaign, closes, 1)
    };
    rig.handle.dial(req).await.expect("accepted");
    let req = DialRequest {
        place_by: Some(by + chrono::TimeDelta::hours(1)),
        ..request(tenant, campaign, open, 2)
    };
    rig.handle.dial(req).await.expect("accepted");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(snapshot(&rig).await.queued, 2, "both wait for a CPS token");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        not_placed_contacts(&rig),
        [(closes, NotPlacedWhy::WindowClosed)]
    );
    rig.cluster.cps_down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        lock(&rig.counts).placed_to,
        ["+14155550002"],
        "only the open one rang"
    );
    let cancelled: Vec<ContactId> = lock(&rig.intents.cancelled)
        .iter()
        .map(|k| k.contact)
        .collect();
    assert_eq!(cancelled, [closes], "its intent was cancelled");
    let s = snapshot(&rig).await;
    assert_eq!((s.live, s.queued, s.dialled, s.not_placed), (0, 0, 1, 1));
    // The same attempt may be asked for again (its intent is gone).
    rig.handle
        .dial(request(tenant, campaign, closes, 1))
        .await
        .expect("the attempt is dialled after all");
}

#[tokio::test(start_paused = true)]
async fn withdraw_drops_only_that_campaigns_queued_dials() {
    let rig = rig(DialerConfig::default(), Duration::from_secs(1)).await;
    let tenant = TenantId::new();
    let (paused, other) = (CampaignId::new(), CampaignId::new());
    rig.configure(tenant, paused, 10);
    rig.configure(tenant, other, 10);
    rig.cluster.cps_down.store(true, Ordering::SeqCst);
    let mine = [ContactId::new(), ContactId::new()];
    for (n, c) in mine.iter().enumerate() {
        rig.handle
            .dial(request(tenant, paused, *c, n))
            .await
            .expect("accepted");
    }
    rig.handle
        .dial(request(tenant, other, ContactId::new(), 9))
        .await
        .expect("accepted");
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.handle.withdraw(paused).await.expect("withdrawn");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut expected = vec![
        (mine[0], NotPlacedWhy::Withdrawn),
        (mine[1], NotPlacedWhy::Withdrawn),
    ];
    expected.sort();
    assert_eq!(not_placed_contacts(&rig), expected);
    assert_eq!(lock(&rig.intents.cancelled).len(), 2);
    assert_eq!(snapshot(&rig).await.queued, 1);
    rig.cluster.cps_down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(lock(&rig.counts).placed_to, ["+14155550009"]);
    assert_eq!(lock(&rig.reports).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn drain_refuses_new_dials_and_drops_queued_ones_while_live_calls_go_on() {
    let rig = rig(DialerConfig::default(), Duration::from_secs(10)).await;
    let (tenant, campaign) = (TenantId::new(), CampaignId::new());
    rig.configure(tenant, campaign, 10);
    rig.handle
        .dial(request(tenant, campaign, ContactId::new(), 1))
        .await
        .expect("accepted");
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.cluster.cps_down.store(true, Ordering::SeqCst);
    for n in 2..4 {
        rig.handle
            .dial(request(tenant, campaign, ContactId::new(), n))
            .await
            .expect("accepted");
    }
    let s = snapshot(&rig).await;
    assert_eq!((s.live, s.queued, s.draining), (1, 2, false));

    rig.dialer.cast(DialerMsg::Drain).expect("drain");
    assert_eq!(
        rig.handle
            .dial(request(tenant, campaign, ContactId::new(), 5))
            .await,
        Err(DialRefused::Unavailable("draining".into()))
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = snapshot(&rig).await;
    assert_eq!(
        (s.live, s.queued, s.draining, s.not_placed),
        (1, 0, true, 2)
    );
    assert!(
        lock(&rig.not_placed)
            .iter()
            .all(|(_, why)| *why == NotPlacedWhy::Draining)
    );
    assert_eq!(lock(&rig.intents.cancelled).len(), 2);
    rig.cluster.cps_down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(lock(&rig.counts).placed_to.len(), 1, "nothing queued rang");
    let reports = lock(&rig.reports).clone();
    assert_eq!(reports.len(), 1, "the live call went on to its end");
    assert_eq!(reports[0].cause.outcome(), "busy");
    let s = snapshot(&rig).await;
    assert_eq!((s.live, s.queued), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_calls_ends_every_live_call() {
    let rig = rig(DialerConfig::default(), Duration::from_secs(600)).await;
    let (tenant, campaign) = (TenantId::new(), CampaignId::new());
    rig.configure(tenant, campaign, 10);
    for n in 0..3 {
        rig.handle
            .dial(request(tenant, campaign, ContactId::new(), n))
            .await
            .expect("accepted");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(snapshot(&rig).await.live, 3);
    rig.dialer.cast(DialerMsg::Drain).expect("drain");
    rig.dialer.cast(DialerMsg::ShutdownCalls).expect("shutdown");
    // Hung up; each call finishes when the provider confirms, or after
    // its own timeout (this fake provider never confirms).
    tokio::time::sleep(Duration::from_secs(60)).await;
    let reports = lock(&rig.reports).clone();
    assert_eq!(reports.len(), 3, "{reports:?}");
    // Cut short by the node's stop: redialled later.
    assert!(
        reports.iter().all(|r| r.cause == EndCause::Interrupted),
        "{reports:?}"
    );
    let s = snapshot(&rig).await;
    assert_eq!((s.live, s.queued), (0, 0));
}
