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
use crate::call::tests::fakes::{FakeLlm, FakeStore, FakeStt, FakeTts, config, lock};
use crate::call::{CallMsg, CallPorts, CallReport, Ports};
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

/// Intents, unique per (campaign, contact, attempt).
#[derive(Default)]
struct Intents {
    seen: Mutex<HashSet<(CampaignId, ContactId, u32)>>,
    owners: Owners,
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
}

/// Tokio's clock; `utc()` panics once when armed (to crash one call).
#[derive(Default)]
struct TrapClock {
    armed: AtomicBool,
}

impl Clock for TrapClock {
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
    fn utc(&self) -> DateTime<Utc> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("trap clock sprung");
        }
        Utc::now()
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
    clock: Arc<TrapClock>,
}

async fn rig(config_: DialerConfig, talk: Duration) -> Rig {
    let intents = Arc::new(Intents::default());
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
            store: intents,
            cluster: Arc::new(crate::cluster::LocalCluster::single("test", clock.clone())),
        },
    )
    .await
    .expect("dialer starts");
    Rig {
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
        self.dialer
            .cast(DialerMsg::Configure {
                campaign,
                calls: Box::new(CampaignCalls {
                    tenant,
                    max_concurrent: cap,
                    template: config(),
                    on_report: Arc::new(move |r| lock(&reports).push(r)),
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
