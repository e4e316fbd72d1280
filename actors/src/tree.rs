//! The actor tree assembled: names, the campaign's view of call outcomes,
//! and the supervisor view of everything that runs.
//!
//! ```text
//! RootSupervisor
//! ├── DialerActor ("dialer")
//! │   └── CallActor ("call-<id>")  ── SttActor, LlmActor, TtsActor
//! └── CampaignActor ("campaign-<id>")
//! ```

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, call_t};

use crate::campaign_actor::{CampaignControl, CampaignEvent, CampaignMsg, CampaignSnapshot};
use crate::dialer::{CampaignSink, DialReport, DialerMsg, DialerSnapshot};
use crate::ids::CampaignId;
use crate::root::{ChildInfo, RootMsg};

/// The dialer's registry name (a name starting with it is a dialer).
pub const DIALER: &str = "dialer";

/// A campaign actor's registry name.
pub fn campaign_name(campaign: CampaignId) -> String {
    format!("campaign-{campaign}")
}

/// Routes what the dialer reports about a campaign's dials (a call's end,
/// a dial dropped before it was placed) to its CampaignActor (found by
/// name, so a restarted actor gets the reports of calls placed before).
pub fn campaign_report_sink(campaign: CampaignId) -> CampaignSink {
    let name = campaign_name(campaign);
    Arc::new(move |report: DialReport| {
        let event = match report {
            DialReport::Ended(report) => CampaignEvent::CallEnded {
                contact: report.key.contact,
                attempt: report.key.attempt,
                outcome: report.outcome(),
            },
            DialReport::NotPlaced { key, .. } => CampaignEvent::NotPlaced {
                contact: key.contact,
                attempt: key.attempt,
            },
        };
        match ractor::registry::where_is(name.clone()) {
            Some(cell) => {
                let actor: ActorRef<CampaignMsg> = cell.into();
                let _ = actor.cast(CampaignMsg::Event(event));
            }
            None => {
                tracing::warn!(campaign.id = %campaign, "call report for a campaign that is not running")
            }
        }
    })
}

/// Everything the supervisor view shows.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TreeSnapshot {
    /// The root's children with their restart counts.
    pub children: Vec<ChildInfo>,
    /// The dialer with its live calls (and their children).
    pub dialer: Option<DialerSnapshot>,
    /// Each running campaign.
    pub campaigns: Vec<CampaignSnapshot>,
}

/// Asks every actor of the tree for its snapshot, each under `timeout`;
/// an actor that does not answer in time is left out, never waited on.
pub async fn snapshot(root: &ActorRef<RootMsg>, timeout: Duration) -> TreeSnapshot {
    let ms = timeout.as_millis().min(u64::MAX as u128) as u64;
    let children = call_t!(root, RootMsg::Children, ms).unwrap_or_default();
    let mut tree = TreeSnapshot {
        children: children.clone(),
        ..TreeSnapshot::default()
    };
    for child in children.iter().filter(|c| c.running) {
        let Some(cell) = ractor::registry::where_is(child.name.clone()) else {
            continue;
        };
        if child.name.starts_with(DIALER) {
            let dialer: ActorRef<DialerMsg> = cell.into();
            if let Ok(CallResult::Success(s)) =
                dialer.call(DialerMsg::Snapshot, Some(timeout)).await
            {
                tree.dialer = Some(s);
            }
        } else if child.name.starts_with("campaign-") {
            let campaign: ActorRef<CampaignMsg> = cell.into();
            if let Ok(CallResult::Success(s)) = campaign
                .call(
                    |r| CampaignMsg::Control(CampaignControl::Snapshot(r)),
                    Some(timeout),
                )
                .await
            {
                tree.campaigns.push(s);
            }
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use ractor::{Actor, ActorCell, SpawnErr};

    use super::*;
    use crate::call::tests::fakes::{
        FakeLlm, FakeStore as FakeCallStore, FakeStt, FakeTts, config, lock,
    };
    use crate::call::{CallConfig, CallMsg, CallPorts, Ports};
    use crate::campaign::CampaignCommand;
    use crate::campaign_actor::tests::fakes::{
        FakeDialer, FakeStore, TestClock, always_open, exact_retry, wednesday_14z,
    };
    use crate::campaign_actor::{CampaignActor, CampaignArgs, CampaignConfig};
    use std::sync::atomic::Ordering;

    use crate::dialer::tests::FlakyCluster;
    use crate::dialer::{
        CampaignCalls, DialRequest, DialStore, DialerActor, DialerArgs, DialerConfig, DialerHandle,
        Intent, IntentError, call_name,
    };
    use crate::ids::{CallId, CampaignId, ContactId};
    use crate::ports::*;
    use crate::root::{ChildFactory, RootArgs, RootSupervisor};
    use crate::schedule::retry::ContactStatus;
    use crate::supervision::RestartPolicy;

    /// Every call rings for a second, then the line is busy.
    #[derive(Default)]
    struct BusyWorld {
        placed: Mutex<Vec<String>>,
    }

    impl TelephonyPort for BusyWorld {
        async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
            lock(&self.placed).push(req.to.clone());
            let call = req.call;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
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

    /// Dial intents; they also go into the campaign store's view of the
    /// call records (as PostgreSQL's `calls` rows would), so a restarted
    /// campaign actor can learn what became of its claimed contacts.
    struct Intents {
        seen: Mutex<HashSet<(CampaignId, ContactId, u32)>>,
        records: FakeDialer,
        cancelled: Mutex<Vec<CallKey>>,
    }

    impl DialStore for Intents {
        async fn create_intent(&self, req: &DialRequest) -> Result<Intent, IntentError> {
            if !lock(&self.seen).insert((req.campaign, req.contact, req.attempt)) {
                return Err(IntentError::Duplicate);
            }
            self.records
                .lock()
                .placed
                .insert((req.contact, req.attempt));
            Ok(Intent {
                call: CallId::new(),
                media_token: "t".into(),
            })
        }

        async fn cancel_intent(&self, key: CallKey) -> PortResult<()> {
            lock(&self.seen).remove(&(key.campaign, key.contact, key.attempt));
            self.records
                .lock()
                .placed
                .remove(&(key.contact, key.attempt));
            lock(&self.cancelled).push(key);
            Ok(())
        }
    }

    struct TreePorts;

    impl CallPorts for TreePorts {
        type Telephony = BusyWorld;
        type Stt = FakeStt;
        type Llm = FakeLlm;
        type Tts = FakeTts;
        type Store = FakeCallStore;
        type Clock = TestClock;
    }

    #[tokio::test(start_paused = true)]
    async fn the_whole_tree_runs_a_campaign_and_survives_a_campaign_crash() {
        let (root, _) = Actor::spawn(
            None,
            RootSupervisor::<TokioClock>::new(),
            RootArgs {
                policy: RestartPolicy::default(),
                clock: Arc::new(TokioClock),
            },
        )
        .await
        .expect("root");

        // The dialer, on the campaign's clock (one wall clock in production:
        // the dialer checks the deadlines the campaign computes).
        let clock = TestClock::starting_at(wednesday_14z());
        let world = Arc::new(BusyWorld::default());
        let dialer_name = format!("{DIALER}-{}", uuid::Uuid::new_v4());
        let ports = Ports::<TreePorts> {
            telephony: world.clone(),
            stt: vec![Arc::new(FakeStt::new(
                "stt",
                Arc::new(Mutex::new(Vec::new())),
            ))],
            llm: vec![Arc::new(FakeLlm::new(
                "llm",
                Arc::new(Mutex::new(Vec::new())),
            ))],
            tts: vec![Arc::new(FakeTts::new(
                "tts",
                Arc::new(Mutex::new(Vec::new())),
            ))],
            store: Arc::new(FakeCallStore::default()),
            clock: clock.clone(),
        };
        let records = FakeDialer::manual(clock.clone());
        let intents = Arc::new(Intents {
            seen: Mutex::new(HashSet::new()),
            records: records.clone(),
            cancelled: Mutex::new(Vec::new()),
        });
        let name = dialer_name.clone();
        let dialer_factory: ChildFactory = Arc::new(move |sup: ActorCell| {
            let args = DialerArgs {
                config: DialerConfig::default(),
                ports: ports.clone(),
                store: intents.clone(),
                cluster: Arc::new(crate::cluster::LocalCluster::single(
                    "test",
                    Arc::new(TokioClock),
                )),
            };
            let name = name.clone();
            Box::pin(async move {
                Actor::spawn_linked(
                    Some(name),
                    DialerActor::<TreePorts, Intents>::new(),
                    args,
                    sup,
                )
                .await
                .map(|(a, _)| a.get_cell())
            })
        });
        call_t!(
            root,
            |reply| RootMsg::Start {
                name: dialer_name.clone(),
                factory: dialer_factory,
                reply
            },
            1000
        )
        .expect("rpc")
        .expect("dialer started");

        // The campaign: 20 contacts, 5 at a time, one attempt each.
        let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 1), 5));
        store.add_many(20);
        store.lock().dialer = Some(records.clone());
        let campaign = store.campaign();
        let tenant = store.lock().settings.tenant;
        let dialer: ActorRef<DialerMsg> = ractor::registry::where_is(dialer_name.clone())
            .expect("dialer registered")
            .into();
        dialer
            .cast(DialerMsg::Configure {
                campaign,
                calls: Box::new(CampaignCalls {
                    tenant,
                    max_concurrent: 5,
                    template: CallConfig {
                        campaign_name: "spring reminders".into(),
                        ..config()
                    },
                    on_report: {
                        let sink = campaign_report_sink(campaign);
                        let records = records.clone();
                        Arc::new(move |report: DialReport| {
                            if let DialReport::Ended(report) = &report {
                                records.lock().ended.insert(
                                    (report.key.contact, report.key.attempt),
                                    report.outcome(),
                                );
                            }
                            sink(report)
                        })
                    },
                }),
            })
            .expect("configure");
        let args = CampaignArgs {
            campaign,
            store: Arc::new(store.clone()),
            dialer: Arc::new(DialerHandle {
                name: dialer_name.clone(),
                timeout: Duration::from_secs(5),
            }),
            cluster: Arc::new(crate::cluster::LocalCluster::single("test", clock.clone())),
            clock,
            config: CampaignConfig::default(),
            seed: 7,
        };
        let campaign_factory: ChildFactory = Arc::new(move |sup: ActorCell| {
            let args = args.clone();
            Box::pin(async move {
                let spawned: Result<_, SpawnErr> = Actor::spawn_linked(
                    Some(campaign_name(args.campaign)),
                    CampaignActor::<FakeStore, DialerHandle>::new(),
                    args,
                    sup,
                )
                .await;
                spawned.map(|(a, _)| a.get_cell())
            })
        });
        call_t!(
            root,
            |reply| RootMsg::Start {
                name: campaign_name(campaign),
                factory: campaign_factory,
                reply
            },
            1000
        )
        .expect("rpc")
        .expect("campaign started");

        tokio::time::sleep(Duration::from_millis(500)).await;
        let tree = snapshot(&root, Duration::from_secs(1)).await;
        let d = tree.dialer.expect("dialer in the view");
        assert!(d.live > 0 && d.live <= 5, "{d:?}");
        assert_eq!(d.calls.len() as u32, d.live, "every live call answered");
        for call in &d.calls {
            assert_eq!(call.campaign_name, "spring reminders");
            assert!(
                call.number.starts_with("+") && call.number.contains('•'),
                "{call:?}"
            );
            let providers: Vec<&str> = call.children.iter().map(|c| c.provider.as_str()).collect();
            assert_eq!(providers, ["stt", "llm", "tts"], "named, not numbered");
        }
        assert_eq!(tree.campaigns.len(), 1);
        assert!(tree.campaigns[0].dialled > 0);
        assert_eq!(tree.campaigns[0].name.as_deref(), Some("spring reminders"));

        // The store fails long enough for the campaign actor to fail; the
        // root restarts it and it carries on from the store.
        store.lock().fail_next = 6;
        tokio::time::sleep(Duration::from_secs(60)).await;

        let children = call_t!(root, RootMsg::Children, 1000).expect("children");
        let restarted = children.iter().find(|c| c.name == campaign_name(campaign));
        let finished = restarted.is_none();
        assert!(
            finished || restarted.is_some_and(|c| c.restarts >= 1),
            "{children:?}"
        );
        let inner = store.lock();
        assert!(
            inner.injected_failures >= 5,
            "the store failed: {}",
            inner.injected_failures
        );
        assert!(
            inner.loads >= 2,
            "a second actor loaded the campaign: {}",
            inner.loads
        );
        assert!(
            inner
                .states
                .contains(&crate::campaign::CampaignState::Completed),
            "{:?}",
            inner.states
        );
        assert!(
            inner
                .contacts
                .iter()
                .all(|c| c.status == ContactStatus::Failed),
            "busy, one attempt: failed"
        );
        assert!(inner.contacts.iter().all(|c| c.attempts == 1));
        drop(inner);
        let placed = lock(&world.placed).clone();
        assert_eq!(placed.len(), 20, "each contact dialled once");
        assert_eq!(placed.iter().collect::<HashSet<_>>().len(), 20);
    }

    fn tree_ports(world: Arc<BusyWorld>, clock: Arc<TestClock>) -> Ports<TreePorts> {
        Ports::<TreePorts> {
            telephony: world,
            stt: vec![Arc::new(FakeStt::new(
                "stt",
                Arc::new(Mutex::new(Vec::new())),
            ))],
            llm: vec![Arc::new(FakeLlm::new(
                "llm",
                Arc::new(Mutex::new(Vec::new())),
            ))],
            tts: vec![Arc::new(FakeTts::new(
                "tts",
                Arc::new(Mutex::new(Vec::new())),
            ))],
            store: Arc::new(FakeCallStore::default()),
            clock,
        }
    }

    /// A dialer (whose cluster's CPS tokens can be cut) and a campaign
    /// actor over the fake store, wired as the runtime wires them.
    struct Pair {
        world: Arc<BusyWorld>,
        intents: Arc<Intents>,
        cluster: Arc<FlakyCluster>,
        dialer: ActorRef<DialerMsg>,
        campaign: ActorRef<CampaignMsg>,
        store: FakeStore,
    }

    async fn pair(contacts: usize) -> Pair {
        let clock = TestClock::starting_at(wednesday_14z());
        let world = Arc::new(BusyWorld::default());
        let records = FakeDialer::manual(clock.clone());
        let intents = Arc::new(Intents {
            seen: Mutex::new(HashSet::new()),
            records: records.clone(),
            cancelled: Mutex::new(Vec::new()),
        });
        let cluster = Arc::new(FlakyCluster::new(clock.clone()));
        let dialer_name = format!("{DIALER}-{}", uuid::Uuid::new_v4());
        let (dialer, _) = Actor::spawn(
            Some(dialer_name.clone()),
            DialerActor::<TreePorts, Intents>::new(),
            DialerArgs {
                config: DialerConfig::default(),
                ports: tree_ports(world.clone(), clock.clone()),
                store: intents.clone(),
                cluster: cluster.clone(),
            },
        )
        .await
        .expect("dialer");
        let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 1), 5));
        store.add_many(contacts);
        store.lock().dialer = Some(records);
        let campaign = store.campaign();
        let tenant = store.lock().settings.tenant;
        dialer
            .cast(DialerMsg::Configure {
                campaign,
                calls: Box::new(CampaignCalls {
                    tenant,
                    max_concurrent: 5,
                    template: config(),
                    on_report: campaign_report_sink(campaign),
                }),
            })
            .expect("configure");
        let (actor, _) = Actor::spawn(
            Some(campaign_name(campaign)),
            CampaignActor::<FakeStore, DialerHandle>::new(),
            CampaignArgs {
                campaign,
                store: Arc::new(store.clone()),
                dialer: Arc::new(DialerHandle {
                    name: dialer_name,
                    timeout: Duration::from_secs(5),
                }),
                cluster: Arc::new(crate::cluster::LocalCluster::single("test", clock.clone())),
                clock,
                config: CampaignConfig::default(),
                seed: 7,
            },
        )
        .await
        .expect("campaign");
        Pair {
            world,
            intents,
            cluster,
            dialer,
            campaign: actor,
            store,
        }
    }

    async fn campaign_snapshot(p: &Pair) -> CampaignSnapshot {
        call_t!(
            p.campaign,
            |r| CampaignMsg::Control(CampaignControl::Snapshot(r)),
            1000
        )
        .expect("campaign snapshot")
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_campaigns_queued_dials_are_not_placed_and_its_contacts_go_back() {
        let p = pair(3).await;
        // Redis is down: the dialer accepts the dials, but they wait.
        p.cluster.cps_down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let snap = campaign_snapshot(&p).await;
        assert_eq!((snap.dialled, snap.live_calls), (3, 3));
        let d = call_t!(p.dialer, DialerMsg::Snapshot, 1000).expect("dialer");
        assert_eq!((d.live, d.queued), (0, 3));

        // Stored first, then sent, as the REST layer does.
        p.store.operator(CampaignCommand::Pause);
        p.campaign
            .cast(CampaignMsg::Control(CampaignControl::Pause))
            .expect("pause");
        tokio::time::sleep(Duration::from_secs(1)).await;
        p.cluster.cps_down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;

        assert!(lock(&p.world.placed).is_empty(), "nothing of it rang");
        assert_eq!(lock(&p.intents.cancelled).len(), 3, "intents cancelled");
        {
            let s = p.store.lock();
            for c in &s.contacts {
                assert_eq!(
                    (c.status, c.attempts),
                    (ContactStatus::Pending, 0),
                    "released, no attempt used"
                );
            }
        }
        let snap = campaign_snapshot(&p).await;
        assert_eq!((snap.live_calls, snap.not_placed), (0, 3));
        let d = call_t!(p.dialer, DialerMsg::Snapshot, 1000).expect("dialer");
        assert_eq!((d.live, d.queued, d.not_placed), (0, 0, 3));

        // Resumed, the same attempts are dialled.
        p.store.operator(CampaignCommand::Resume);
        p.campaign
            .cast(CampaignMsg::Control(CampaignControl::Resume))
            .expect("resume");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(lock(&p.world.placed).len(), 3);
    }
}
