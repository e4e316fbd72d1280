//! Fakes of the campaign's ports, a test clock on tokio's paused time, a
//! supervising probe and a harness to run a campaign actor.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::mpsc;

use super::super::{
    CampaignActor, CampaignArgs, CampaignConfig, CampaignControl, CampaignEvent, CampaignMsg,
    CampaignSettings, CampaignSnapshot, CampaignStore, Claim, ClaimedCall, ClaimedContact,
    DialRefused, DialRequest, DialSink, DueContact, GiveUpReason, Jitter, StateWrite,
};
use crate::campaign::{CampaignCommand, CampaignState};
use crate::ids::{CampaignId, ContactId, TenantId};
use crate::ports::{Clock, PortError, PortResult};
use crate::schedule::retry::{CallOutcome, ContactStatus, NextStep, RetryPolicy};
use crate::schedule::window::{CallingWindow, DaySet};

// ----- time ----------------------------------------------------------------

/// Wall-clock time that starts at a fixed instant and follows tokio's
/// (paused) clock.
pub struct TestClock {
    utc0: DateTime<Utc>,
    t0: tokio::time::Instant,
}

impl TestClock {
    /// A clock reading `utc0` now.
    pub fn starting_at(utc0: DateTime<Utc>) -> Arc<Self> {
        Arc::new(TestClock {
            utc0,
            t0: tokio::time::Instant::now(),
        })
    }
}

impl Clock for TestClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn utc(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.t0;
        self.utc0 + TimeDelta::from_std(elapsed).expect("elapsed fits")
    }
}

/// A Wednesday, 14:00 UTC: 10:00 in New York (EDT), 23:00 in Tokyo.
pub fn wednesday_14z() -> DateTime<Utc> {
    "2026-06-10T14:00:00Z".parse().expect("instant")
}

/// Open all day every day (but the day's last second).
pub fn always_open() -> CallingWindow {
    CallingWindow::new(
        NaiveTime::MIN,
        NaiveTime::from_hms_opt(23, 59, 59).expect("time"),
        DaySet::all(),
    )
    .expect("window")
}

/// 09:00-17:00 on weekdays.
pub fn office_hours() -> CallingWindow {
    CallingWindow::new(
        NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
        NaiveTime::from_hms_opt(17, 0, 0).expect("time"),
        DaySet::weekdays(),
    )
    .expect("window")
}

/// A retry policy without jitter, so retry instants are exact.
pub fn exact_retry(base_secs: u32, max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::new(base_secs, max_attempts)
    }
}

/// Lets the actor run for `secs` of virtual time.
pub async fn advance(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Lets the actor process what is queued without time passing much.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

// ----- store ---------------------------------------------------------------

/// One contact as the fake store holds it.
#[derive(Clone, Debug)]
pub struct FakeContact {
    pub id: ContactId,
    pub phone: String,
    pub zones: Vec<Tz>,
    pub status: ContactStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<CallOutcome>,
    pub given_up: Option<GiveUpReason>,
}

/// An outcome write that was applied.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedOutcome {
    pub contact: ContactId,
    pub outcome: CallOutcome,
    pub next: NextStep,
    pub attempts: u32,
}

/// The fake store's contents and what was done to it.
pub struct StoreInner {
    pub settings: CampaignSettings,
    pub contacts: Vec<FakeContact>,
    index: HashMap<ContactId, usize>,
    /// Fail this many coming calls.
    pub fail_next: u32,
    /// Fail every call.
    pub fail_always: bool,
    /// Never answer this many coming calls (they time out).
    pub hang_next: u32,
    /// Calls that failed or hung because of the above.
    pub injected_failures: u32,
    pub deferrals: Vec<(ContactId, DateTime<Utc>)>,
    pub releases: Vec<(ContactId, DateTime<Utc>)>,
    pub outcomes: Vec<RecordedOutcome>,
    /// Outcome writes that were repeats (no-ops).
    pub repeated_outcomes: u32,
    /// States the actor stored (the operator's, stored as the REST layer
    /// does by [`FakeStore::operator`], are not listed).
    pub states: Vec<CampaignState>,
    /// State writes refused: (asked for, stored).
    pub refused_states: Vec<(CampaignState, CampaignState)>,
    /// Claims refused because the stored campaign was not running.
    pub refused_claims: u32,
    /// Readings of the stored state alone.
    pub state_reads: u32,
    pub due_calls: u32,
    pub loads: u32,
    /// The dialer whose records tell what became of claimed contacts.
    pub dialer: Option<FakeDialer>,
    /// Run once, at the next call of the named method, before its work:
    /// something another process does at that exact moment.
    pub hooks: Vec<(&'static str, Hook)>,
}

/// A change made to the store by someone else (see [`StoreInner::hooks`]).
pub type Hook = Box<dyn FnOnce(&mut StoreInner) + Send>;

impl StoreInner {
    /// The contact with this id.
    pub fn contact(&self, id: ContactId) -> &FakeContact {
        &self.contacts[self.index[&id]]
    }

    fn contact_mut(&mut self, id: ContactId) -> &mut FakeContact {
        let i = self.index[&id];
        &mut self.contacts[i]
    }

    /// Runs the hook waiting for `method`, if any.
    fn hook(&mut self, method: &str) {
        if let Some(i) = self.hooks.iter().position(|(m, _)| *m == method) {
            let (_, hook) = self.hooks.remove(i);
            hook(self);
        }
    }
}

/// A [`CampaignStore`] over shared memory.
#[derive(Clone)]
pub struct FakeStore(pub Arc<Mutex<StoreInner>>);

/// What a store call does before its work.
enum Gate {
    Go,
    Fail,
    Hang,
}

impl FakeStore {
    /// A store holding `settings` and no contact.
    pub fn new(settings: CampaignSettings) -> Self {
        FakeStore(Arc::new(Mutex::new(StoreInner {
            settings,
            contacts: Vec::new(),
            index: HashMap::new(),
            fail_next: 0,
            fail_always: false,
            hang_next: 0,
            injected_failures: 0,
            deferrals: Vec::new(),
            releases: Vec::new(),
            outcomes: Vec::new(),
            repeated_outcomes: 0,
            states: Vec::new(),
            refused_states: Vec::new(),
            refused_claims: 0,
            state_reads: 0,
            due_calls: 0,
            loads: 0,
            dialer: None,
            hooks: Vec::new(),
        })))
    }

    /// Settings of a running campaign.
    pub fn settings(
        window: CallingWindow,
        retry: RetryPolicy,
        max_concurrent_calls: u32,
    ) -> CampaignSettings {
        CampaignSettings {
            tenant: TenantId::new(),
            campaign: CampaignId::new(),
            name: "spring reminders".into(),
            state: CampaignState::Running,
            window,
            retry,
            max_concurrent_calls,
        }
    }

    /// Adds a pending contact in `zones`; returns its id.
    pub fn add(&self, zones: Vec<Tz>) -> ContactId {
        let mut g = self.lock();
        let id = ContactId::new();
        let n = g.contacts.len();
        g.index.insert(id, n);
        g.contacts.push(FakeContact {
            id,
            phone: format!("+1555{n:07}"),
            zones,
            status: ContactStatus::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_outcome: None,
            given_up: None,
        });
        id
    }

    /// Adds `n` pending contacts in UTC.
    pub fn add_many(&self, n: usize) -> Vec<ContactId> {
        (0..n).map(|_| self.add(vec![chrono_tz::UTC])).collect()
    }

    /// The shared contents.
    pub fn lock(&self) -> MutexGuard<'_, StoreInner> {
        self.0.lock().expect("store lock")
    }

    /// The campaign id.
    pub fn campaign(&self) -> CampaignId {
        self.lock().settings.campaign
    }

    /// An operator's command stored as the REST layer stores it (on any
    /// node): moved as [`CampaignState::apply`] says, a stop straight to
    /// `cancelled` when the dialer has no call live. Nothing is sent to
    /// any actor. Returns the stored state; panics on an illegal command
    /// (the API's 409).
    pub fn operator(&self, command: CampaignCommand) -> CampaignState {
        operator(&mut self.lock(), command)
    }

    /// Runs `hook` at the next call of `method` (`due_contacts`,
    /// `remaining`), before its work.
    pub fn on_next(
        &self,
        method: &'static str,
        hook: impl FnOnce(&mut StoreInner) + Send + 'static,
    ) {
        self.lock().hooks.push((method, Box::new(hook)));
    }

    fn gate(&self) -> Gate {
        let mut g = self.lock();
        if g.fail_always || g.fail_next > 0 {
            g.fail_next = g.fail_next.saturating_sub(1);
            g.injected_failures += 1;
            return Gate::Fail;
        }
        if g.hang_next > 0 {
            g.hang_next -= 1;
            g.injected_failures += 1;
            return Gate::Hang;
        }
        Gate::Go
    }

    /// Runs `work` unless a failure is injected.
    fn call<T: Send>(
        &self,
        work: impl FnOnce(&mut StoreInner) -> T + Send,
    ) -> impl Future<Output = PortResult<T>> + Send {
        let this = self.clone();
        // Lazy, like a real store: nothing happens until it is awaited.
        async move {
            match this.gate() {
                Gate::Fail => Err(PortError::Unavailable("injected".into())),
                Gate::Hang => std::future::pending().await,
                Gate::Go => Ok(work(&mut this.lock())),
            }
        }
    }
}

/// See [`FakeStore::operator`].
pub fn operator(s: &mut StoreInner, command: CampaignCommand) -> CampaignState {
    let live = s.dialer.as_ref().is_some_and(|d| !d.lock().live.is_empty());
    let next = s
        .settings
        .state
        .apply(command, live)
        .expect("a legal command");
    s.settings.state = next;
    next
}

fn is_due(c: &FakeContact, now: DateTime<Utc>, max_attempts: u32) -> bool {
    let callback = matches!(c.last_outcome, Some(CallOutcome::CallbackRequested(_)));
    matches!(c.status, ContactStatus::Pending | ContactStatus::Retry)
        && c.next_attempt_at.is_none_or(|t| t <= now)
        && (c.attempts < max_attempts || callback)
}

impl CampaignStore for FakeStore {
    fn load(
        &self,
        _campaign: CampaignId,
    ) -> impl Future<Output = PortResult<CampaignSettings>> + Send {
        self.call(|s| {
            s.loads += 1;
            s.settings.clone()
        })
    }

    fn state(
        &self,
        _campaign: CampaignId,
    ) -> impl Future<Output = PortResult<CampaignState>> + Send {
        self.call(|s| {
            s.state_reads += 1;
            s.settings.state
        })
    }

    fn claimed(
        &self,
        _campaign: CampaignId,
    ) -> impl Future<Output = PortResult<Vec<ClaimedContact>>> + Send {
        self.call(|s| {
            let dialer = s.dialer.as_ref().map(|d| d.lock());
            s.contacts
                .iter()
                .filter(|c| c.status == ContactStatus::InProgress)
                .map(|c| {
                    let attempt = c.attempts + 1;
                    let key = (c.id, attempt);
                    let call = match &dialer {
                        Some(d) if d.ended.contains_key(&key) => ClaimedCall::Ended(d.ended[&key]),
                        Some(d) if d.placed.contains(&key) => ClaimedCall::Live,
                        _ => ClaimedCall::NotPlaced,
                    };
                    ClaimedContact {
                        contact: c.id,
                        attempt,
                        call,
                    }
                })
                .collect()
        })
    }

    fn due_contacts(
        &self,
        _campaign: CampaignId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = PortResult<Vec<DueContact>>> + Send {
        self.call(move |s| {
            s.hook("due_contacts");
            s.due_calls += 1;
            let max = s.settings.retry.max_attempts;
            let mut due: Vec<(Option<DateTime<Utc>>, usize)> = s
                .contacts
                .iter()
                .enumerate()
                .filter(|(_, c)| is_due(c, now, max))
                .map(|(i, c)| (c.next_attempt_at, i))
                .collect();
            due.sort();
            due.into_iter()
                .take(limit as usize)
                .map(|(_, i)| {
                    let c = &s.contacts[i];
                    DueContact {
                        id: c.id,
                        phone: c.phone.clone(),
                        zones: c.zones.clone(),
                        attempts: c.attempts,
                    }
                })
                .collect()
        })
    }

    fn claim(
        &self,
        _campaign: CampaignId,
        contact: ContactId,
    ) -> impl Future<Output = PortResult<Claim>> + Send {
        self.call(move |s| {
            if s.settings.state != CampaignState::Running {
                s.refused_claims += 1;
                return Claim::NotRunning(s.settings.state);
            }
            let c = s.contact_mut(contact);
            if matches!(c.status, ContactStatus::Pending | ContactStatus::Retry) {
                c.status = ContactStatus::InProgress;
                Claim::Claimed
            } else {
                Claim::NotDue
            }
        })
    }

    fn release(
        &self,
        _campaign: CampaignId,
        contact: ContactId,
        until: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send {
        self.call(move |s| {
            s.releases.push((contact, until));
            let c = s.contact_mut(contact);
            if c.status == ContactStatus::InProgress {
                c.status = if c.attempts == 0 {
                    ContactStatus::Pending
                } else {
                    ContactStatus::Retry
                };
                c.next_attempt_at = Some(until);
            }
        })
    }

    fn defer(
        &self,
        _campaign: CampaignId,
        contact: ContactId,
        until: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send {
        self.call(move |s| {
            s.deferrals.push((contact, until));
            let c = s.contact_mut(contact);
            assert!(
                matches!(c.status, ContactStatus::Pending | ContactStatus::Retry),
                "deferred a contact that is {}",
                c.status
            );
            c.next_attempt_at = Some(until);
        })
    }

    fn give_up(
        &self,
        _campaign: CampaignId,
        contact: ContactId,
        reason: GiveUpReason,
    ) -> impl Future<Output = PortResult<()>> + Send {
        self.call(move |s| {
            let c = s.contact_mut(contact);
            if matches!(c.status, ContactStatus::Pending | ContactStatus::Retry) {
                c.status = ContactStatus::Failed;
                c.given_up = Some(reason);
            }
        })
    }

    fn record_outcome(
        &self,
        _campaign: CampaignId,
        contact: ContactId,
        outcome: CallOutcome,
        next: NextStep,
        attempts: u32,
    ) -> impl Future<Output = PortResult<()>> + Send {
        self.call(move |s| {
            let c = s.contact_mut(contact);
            if attempts <= c.attempts {
                s.repeated_outcomes += 1;
                return;
            }
            c.attempts = attempts;
            c.status = next.status();
            c.next_attempt_at = next.retry_at();
            c.last_outcome = Some(outcome);
            s.outcomes.push(RecordedOutcome {
                contact,
                outcome,
                next,
                attempts,
            });
        })
    }

    fn set_state(
        &self,
        _campaign: CampaignId,
        state: CampaignState,
    ) -> impl Future<Output = PortResult<StateWrite>> + Send {
        self.call(move |s| {
            let stored = s.settings.state;
            if state.may_replace(stored) {
                s.settings.state = state;
                s.states.push(state);
                StateWrite::Written
            } else {
                s.refused_states.push((state, stored));
                StateWrite::Refused(stored)
            }
        })
    }

    fn remaining(&self, _campaign: CampaignId) -> impl Future<Output = PortResult<u64>> + Send {
        self.call(|s| {
            s.hook("remaining");
            s.contacts.iter().filter(|c| !c.status.is_final()).count() as u64
        })
    }
}

// ----- dialer --------------------------------------------------------------

/// How the fake dialer decides how each accepted call ends.
pub type OutcomeFn = Box<dyn Fn(ContactId, u32, &mut Jitter, DateTime<Utc>) -> CallOutcome + Send>;

/// A dial request and what the dialer answered.
#[derive(Clone, Debug)]
pub struct DialRecord {
    pub request: DialRequest,
    pub at: DateTime<Utc>,
    pub answer: Result<(), DialRefused>,
    /// Accepted, but the answer never reached the campaign.
    pub answer_lost: bool,
}

/// The fake dialer's settings and what it saw.
pub struct DialerInner {
    /// Where outcomes go.
    pub campaign: Option<ActorRef<CampaignMsg>>,
    /// Calls end by themselves after a delay in this range (seconds);
    /// `None`: they stay live until the test ends them.
    pub auto_delay: Option<(u64, u64)>,
    /// How auto calls end.
    pub outcome: OutcomeFn,
    /// The dialer's own cap on live calls (answers `AtCapacity`).
    pub cap: Option<u32>,
    /// Share of dials refused with `AtCapacity` at random.
    pub refuse_rate: f64,
    /// Share of dials refused with `Unavailable` at random.
    pub unavailable_rate: f64,
    /// Share of accepted dials whose answer is lost (never returns).
    pub lose_rate: f64,
    /// Refuse a second dial of the same (contact, attempt) with
    /// `Duplicate`, as the real dialer's intent row does. When off, a
    /// second dial is placed and counted in `double_dials`.
    pub intent_guard: bool,
    pub rng: Jitter,
    /// Every request and its answer.
    pub log: Vec<DialRecord>,
    /// Calls placed, by key.
    pub placed: HashSet<(ContactId, u32)>,
    /// Calls placed a second time (must stay 0).
    pub double_dials: u32,
    /// Live calls (placed, not ended), by key.
    pub live: HashSet<(ContactId, u32)>,
    /// Most live at once.
    pub max_live: u32,
    /// How each ended call ended (the dialer's call records).
    pub ended: HashMap<(ContactId, u32), CallOutcome>,
    /// Outcomes of calls that ended while no campaign actor was alive.
    pub undelivered: Vec<CampaignEvent>,
    /// Campaigns whose queued dials were withdrawn, in order.
    pub withdrawn: Vec<CampaignId>,
    pub clock: Arc<TestClock>,
}

/// A [`DialSink`] over shared memory.
#[derive(Clone)]
pub struct FakeDialer(pub Arc<Mutex<DialerInner>>);

impl FakeDialer {
    /// A dialer whose calls stay live until [`Self::end`].
    pub fn manual(clock: Arc<TestClock>) -> Self {
        FakeDialer(Arc::new(Mutex::new(DialerInner {
            campaign: None,
            auto_delay: None,
            outcome: Box::new(|_, _, _, _| CallOutcome::Completed),
            cap: None,
            refuse_rate: 0.0,
            unavailable_rate: 0.0,
            lose_rate: 0.0,
            intent_guard: false,
            rng: Jitter::new(99),
            log: Vec::new(),
            placed: HashSet::new(),
            double_dials: 0,
            live: HashSet::new(),
            max_live: 0,
            ended: HashMap::new(),
            undelivered: Vec::new(),
            withdrawn: Vec::new(),
            clock,
        })))
    }

    /// A dialer whose calls end after a seeded random delay in
    /// `delay_secs`, as `outcome` decides.
    pub fn auto(
        clock: Arc<TestClock>,
        seed: u64,
        delay_secs: (u64, u64),
        outcome: OutcomeFn,
    ) -> Self {
        let d = Self::manual(clock);
        {
            let mut g = d.lock();
            g.auto_delay = Some(delay_secs);
            g.outcome = outcome;
            g.rng = Jitter::new(seed);
        }
        d
    }

    /// The shared contents.
    pub fn lock(&self) -> MutexGuard<'_, DialerInner> {
        self.0.lock().expect("dialer lock")
    }

    /// Ends a live call now with `outcome`, as the real dialer reports it.
    pub fn end(&self, contact: ContactId, outcome: CallOutcome) {
        let (attempt, actor) = {
            let mut g = self.lock();
            let key = *g
                .live
                .iter()
                .find(|(c, _)| *c == contact)
                .expect("no live call to end");
            g.live.remove(&key);
            g.ended.insert(key, outcome);
            (key.1, g.campaign.clone().expect("campaign actor set"))
        };
        let msg = CampaignEvent::CallEnded {
            contact,
            attempt,
            outcome,
        };
        if actor.send_message(msg.clone().into()).is_err() {
            self.lock().undelivered.push(msg);
        }
    }

    /// Contacts with a live call.
    pub fn live_contacts(&self) -> Vec<ContactId> {
        let mut v: Vec<ContactId> = self.lock().live.iter().map(|(c, _)| *c).collect();
        v.sort();
        v
    }

    /// Calls placed so far.
    pub fn placed(&self) -> usize {
        self.lock().placed.len()
    }
}

impl DialSink for FakeDialer {
    fn withdraw(
        &self,
        campaign: CampaignId,
    ) -> impl Future<Output = Result<(), DialRefused>> + Send {
        self.lock().withdrawn.push(campaign);
        async { Ok(()) }
    }

    fn dial(&self, req: DialRequest) -> impl Future<Output = Result<(), DialRefused>> + Send {
        let this = self.clone();
        async move {
            let (answer, lost, auto) = {
                let mut g = this.lock();
                let key = (req.contact, req.attempt);
                let at = g.clock.utc();
                let roll = g.rng.unit();
                let answer = if g.intent_guard && g.placed.contains(&key) {
                    Err(DialRefused::Duplicate)
                } else if g.cap.is_some_and(|cap| g.live.len() as u32 >= cap)
                    || roll < g.refuse_rate
                {
                    Err(DialRefused::AtCapacity)
                } else if roll < g.refuse_rate + g.unavailable_rate {
                    Err(DialRefused::Unavailable("injected".into()))
                } else {
                    Ok(())
                };
                let mut lost = false;
                let mut auto = None;
                if answer.is_ok() {
                    if !g.placed.insert(key) {
                        g.double_dials += 1;
                    }
                    g.live.insert(key);
                    g.max_live = g.max_live.max(g.live.len() as u32);
                    lost = g.rng.unit() < g.lose_rate;
                    if let Some((lo, hi)) = g.auto_delay {
                        let delay = g.rng.below(lo, hi);
                        let ends_at = at + TimeDelta::seconds(delay as i64);
                        let outcome = {
                            let DialerInner { outcome, rng, .. } = &mut *g;
                            outcome(req.contact, req.attempt, rng, ends_at)
                        };
                        auto = Some((delay, outcome));
                    }
                }
                g.log.push(DialRecord {
                    request: req.clone(),
                    at,
                    answer: answer.clone(),
                    answer_lost: lost,
                });
                (answer, lost, auto)
            };
            if let Some((delay, outcome)) = auto {
                let dialer = this.clone();
                let (contact, attempt) = (req.contact, req.attempt);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(delay)).await;
                    let actor = {
                        let mut g = dialer.lock();
                        g.live.remove(&(contact, attempt));
                        g.ended.insert((contact, attempt), outcome);
                        g.campaign.clone().expect("campaign actor set")
                    };
                    // The campaign may be gone (failed, stopped): the test
                    // then hands the outcome to the next incarnation.
                    let msg = CampaignEvent::CallEnded {
                        contact,
                        attempt,
                        outcome,
                    };
                    if actor.send_message(msg.clone().into()).is_err() {
                        dialer.lock().undelivered.push(msg);
                    }
                });
            }
            if lost {
                std::future::pending::<()>().await;
            }
            answer
        }
    }
}

// ----- harness -------------------------------------------------------------

/// A running campaign actor with its fakes.
pub struct Harness {
    pub store: FakeStore,
    pub dialer: FakeDialer,
    pub actor: ActorRef<CampaignMsg>,
    pub handle: JoinHandle<()>,
    pub args: CampaignArgs<FakeStore, FakeDialer>,
}

/// Configuration with a given tick and the other defaults.
pub fn config_with_tick(tick_secs: u64) -> CampaignConfig {
    CampaignConfig {
        tick: Duration::from_secs(tick_secs),
        ..CampaignConfig::default()
    }
}

impl Harness {
    /// Spawns a campaign actor over the fakes (unsupervised).
    pub async fn start(
        store: FakeStore,
        dialer: FakeDialer,
        clock: Arc<TestClock>,
        config: CampaignConfig,
    ) -> Harness {
        Self::start_seeded(store, dialer, clock, config, 42).await
    }

    /// The same, linked to `supervisor`.
    pub async fn start_supervised(
        store: FakeStore,
        dialer: FakeDialer,
        clock: Arc<TestClock>,
        supervisor: ractor::ActorCell,
    ) -> Harness {
        let args = CampaignArgs {
            campaign: store.campaign(),
            store: Arc::new(store.clone()),
            dialer: Arc::new(dialer.clone()),
            cluster: Arc::new(crate::cluster::LocalCluster::single("test", clock.clone())),
            clock,
            config: CampaignConfig::default(),
            seed: 42,
        };
        Self::spawn(store, dialer, args, Some(supervisor)).await
    }

    /// The same, with this jitter seed.
    pub async fn start_seeded(
        store: FakeStore,
        dialer: FakeDialer,
        clock: Arc<TestClock>,
        config: CampaignConfig,
        seed: u64,
    ) -> Harness {
        let args = CampaignArgs {
            campaign: store.campaign(),
            store: Arc::new(store.clone()),
            dialer: Arc::new(dialer.clone()),
            cluster: Arc::new(crate::cluster::LocalCluster::single("test", clock.clone())),
            clock,
            config,
            seed,
        };
        Self::spawn(store, dialer, args, None).await
    }

    /// Spawns with these args, linked to `supervisor` if given.
    pub async fn spawn(
        store: FakeStore,
        dialer: FakeDialer,
        args: CampaignArgs<FakeStore, FakeDialer>,
        supervisor: Option<ractor::ActorCell>,
    ) -> Harness {
        store.lock().dialer = Some(dialer.clone());
        let actor = CampaignActor::<FakeStore, FakeDialer>::new();
        let (actor, handle) = match supervisor {
            Some(sup) => Actor::spawn_linked(None, actor, args.clone(), sup).await,
            None => Actor::spawn(None, actor, args.clone()).await,
        }
        .expect("spawn campaign actor");
        dialer.lock().campaign = Some(actor.clone());
        Harness {
            store,
            dialer,
            actor,
            handle,
            args,
        }
    }

    /// The actor's snapshot.
    pub async fn snapshot(&self) -> CampaignSnapshot {
        ractor::call_t!(
            self.actor,
            |reply| CampaignMsg::Control(CampaignControl::Snapshot(reply)),
            1000
        )
        .expect("snapshot")
    }

    /// An operator's command as the REST layer carries it out on this
    /// node: stored first ([`FakeStore::operator`]), then sent to the
    /// actor. Returns the stored state.
    pub fn command(&self, command: CampaignCommand) -> CampaignState {
        let stored = self.store.operator(command);
        let control = match command {
            CampaignCommand::Pause => CampaignControl::Pause,
            CampaignCommand::Resume => CampaignControl::Resume,
            CampaignCommand::Stop => CampaignControl::Stop,
            CampaignCommand::Start => {
                panic!("a started campaign's actor is spawned, not sent start")
            }
        };
        self.send(control);
        stored
    }

    /// Sends a command.
    pub fn send(&self, control: CampaignControl) {
        self.actor
            .send_message(CampaignMsg::Control(control))
            .expect("campaign alive");
    }

    /// Waits (virtual time) for the actor to stop; panics after `secs`.
    pub async fn stopped_within(self, secs: u64) -> Harness {
        let Harness {
            store,
            dialer,
            actor,
            mut handle,
            args,
        } = self;
        tokio::time::timeout(Duration::from_secs(secs), &mut handle)
            .await
            .expect("campaign actor did not stop in time")
            .expect("join");
        Harness {
            store,
            dialer,
            actor,
            handle,
            args,
        }
    }
}

// ----- supervision probe ---------------------------------------------------

/// A supervisor that reports its children's exits on a channel.
pub struct Probe;

impl Actor for Probe {
    type Msg = ();
    type State = mpsc::UnboundedSender<String>;
    type Arguments = mpsc::UnboundedSender<String>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(_, err) => {
                let _ = tx.send(format!("failed: {err}"));
            }
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                let _ = tx.send(format!("terminated: {}", reason.unwrap_or_default()));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Checks, over a finished run, that no contact was lost and no attempt
/// was placed twice: every contact is final, its recorded outcomes carry
/// attempts 1, 2, ... in order, and every placed call has an outcome.
pub fn assert_consistent(store: &FakeStore, dialer: &FakeDialer) {
    let s = store.lock();
    let d = dialer.lock();
    assert_eq!(d.double_dials, 0, "an attempt was placed twice");
    for c in &s.contacts {
        assert!(c.status.is_final(), "contact left {}: {c:?}", c.status);
        let attempts: Vec<u32> = s
            .outcomes
            .iter()
            .filter(|o| o.contact == c.id)
            .map(|o| o.attempts)
            .collect();
        let expected: Vec<u32> = (1..=attempts.len() as u32).collect();
        assert_eq!(attempts, expected, "outcomes of {}", c.id);
        assert_eq!(c.attempts, attempts.len() as u32);
    }
    let placed: HashSet<(ContactId, u32)> = d.placed.clone();
    let recorded: HashSet<(ContactId, u32)> =
        s.outcomes.iter().map(|o| (o.contact, o.attempts)).collect();
    assert_eq!(
        placed, recorded,
        "every placed call has exactly its outcome"
    );
}
