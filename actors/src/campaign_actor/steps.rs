//! Every decision the campaign actor makes: ticks, dial results, call
//! outcomes, commands, re-checks, the drain. The actor glue
//! ([`super::actor`]) only routes messages here.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use ractor::ActorRef;
use tracing::{debug, info, warn};

use super::actor::CampaignArgs;
use super::config::MIN_TICK;
use super::jitter::Jitter;
use super::lease::LeaseKeeper;
use super::msg::{CampaignEvent, CampaignMsg, CampaignSnapshot};
use super::ports::{
    CampaignSettings, CampaignStore, Claim, ClaimedCall, DialRefused, DialRequest, DialSink,
    DueContact, GiveUpReason, StateWrite,
};
use super::state::{
    CampaignActorError, CampaignActorState, Flow, LiveCall, Origin, PendingOutcome, PendingRelease,
};
use crate::campaign::{CampaignCommand, CampaignState};
use crate::ids::ContactId;
use crate::ports::{PortError, PortResult};
use crate::schedule::retry::{CallOutcome, ContactStatus, NextStep, next_step};

impl<S: CampaignStore, D: DialSink> CampaignActorState<S, D> {
    /// A fresh state: nothing loaded, nothing live.
    pub(super) fn new(args: CampaignArgs<S, D>) -> Self {
        CampaignActorState {
            campaign: args.campaign,
            store: args.store,
            dialer: args.dialer,
            clock: args.clock,
            config: args.config,
            jitter: Jitter::new(args.seed),
            settings: None,
            reload: true,
            lifecycle: None,
            persisted: None,
            state_stale: false,
            withdraw_pending: false,
            draining: false,
            taken_over: false,
            live: HashMap::new(),
            settled_from_store: HashSet::new(),
            last_recheck: None,
            unrecorded: Vec::new(),
            releases: Vec::new(),
            store_suspended: false,
            consecutive_failures: 0,
            last_error: None,
            stats: CampaignSnapshot {
                campaign: args.campaign,
                ..CampaignSnapshot::default()
            },
            finished: None,
            tick_timer: None,
            lease: LeaseKeeper::new(args.cluster, args.campaign, args.config.port_timeout),
        }
    }

    /// Whether the campaign reached its end (the actor is stopping).
    pub(super) fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Why the campaign ended, once it has.
    pub(super) fn finished_reason(&self) -> Option<String> {
        self.finished.clone()
    }

    /// The counters and state now.
    pub(super) fn snapshot(&self) -> CampaignSnapshot {
        CampaignSnapshot {
            name: self.settings.as_ref().map(|s| s.name.clone()),
            state: self.lifecycle,
            live_calls: self.live_count(),
            consecutive_store_errors: self.consecutive_failures,
            pending_writes: u32::try_from(self.unrecorded.len() + self.releases.len())
                .unwrap_or(u32::MAX),
            ..self.stats.clone()
        }
    }

    /// The error to fail with once the store failed too often in a row.
    /// Never while draining: a restart would take the lease again on a
    /// node that is stopping; the drain's deadline bounds the wait.
    pub(super) fn store_failure(&self) -> Option<CampaignActorError> {
        if self.draining {
            return None;
        }
        (self.consecutive_failures >= self.config.max_store_failures.max(1)).then(|| {
            CampaignActorError::StoreFailing {
                failures: self.consecutive_failures,
                last: self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| PortError::Unavailable("unknown".into())),
            }
        })
    }

    /// Schedules the next tick, replacing any pending one.
    pub(super) fn schedule_tick(&mut self, myself: &ActorRef<CampaignMsg>) {
        self.cancel_tick();
        let after = self.config.tick.max(MIN_TICK);
        self.tick_timer = Some(myself.send_after(after, || CampaignMsg::Tick));
    }

    /// Drops the pending tick, if any.
    pub(super) fn cancel_tick(&mut self) {
        if let Some(timer) = self.tick_timer.take() {
            timer.abort();
        }
    }

    /// An operator command, which the REST layer stored before sending
    /// (on this node or another). It is applied at once, as
    /// [`CampaignState::apply`] says (a stop drains first when calls are
    /// live or writes are pending), so a pause or stop holds back the
    /// next dial without waiting for the store; and the stored state is
    /// read again before the next claim, because the store, not the order
    /// in which notices arrive, says where the campaign is (a later
    /// command may be stored already). A command that does not apply (a
    /// repeat, or one made moot by a later one) changes nothing here.
    /// Before the first load there is nothing to apply it to: the load
    /// reads the stored state, this command included.
    pub(super) fn command(&mut self, command: CampaignCommand) {
        self.state_stale = true;
        let Some(state) = self.lifecycle else {
            return;
        };
        match state.apply(command, !self.drained()) {
            Ok(next) => {
                info!(campaign = %self.campaign, %command, from = %state, to = %next, "campaign command");
                self.enter(next);
            }
            Err(e) => {
                debug!(campaign = %self.campaign, error = %e, "campaign command does not apply")
            }
        }
    }

    /// Moves the lifecycle to `next`. Outside `running` the dials the
    /// dialer still queues must not ring: they are withdrawn.
    fn enter(&mut self, next: CampaignState) {
        if next != CampaignState::Running {
            self.withdraw_pending = true;
        }
        self.lifecycle = Some(next);
    }

    /// Follows the state the store holds (read, or returned by a claim or
    /// a state write that lost): the store is where every node's operator
    /// commands land. A campaign ended in the store (stopped with no call
    /// live by the REST layer's count, or ended by another holder) while
    /// this incarnation still has calls live or writes pending is seen
    /// through as `stopping` first: no dial, its outcomes recorded, then
    /// it ends in the stored state.
    fn adopt(&mut self, stored: CampaignState) {
        self.persisted = Some(stored);
        let Some(current) = self.lifecycle else {
            self.lifecycle = Some(stored);
            return;
        };
        let next = if stored.is_terminal() && !self.drained() {
            CampaignState::Stopping
        } else {
            stored
        };
        if next != current {
            info!(campaign = %self.campaign, from = %current, to = %next, stored = %stored, "campaign state taken from the store");
            self.enter(next);
        }
    }

    /// Reads the stored state if a tick or a command asked for it, and
    /// follows it. Only the lease holder reads: another node's actor does
    /// not dial, and loads afresh when it takes the lease.
    async fn refresh_state(&mut self) {
        if !self.state_stale || self.lifecycle.is_none() {
            return;
        }
        let store = Arc::clone(&self.store);
        if let Some(stored) = self.store_call("state", store.state(self.campaign)).await {
            self.state_stale = false;
            self.adopt(stored);
        }
    }

    /// The settings changed: read them again (now, or on the next tick if
    /// the store is failing).
    pub(super) fn request_reload(&mut self) {
        self.reload = true;
    }

    /// A call event from the dialer. An outcome is queued and written by
    /// [`Self::settle`]; a call this incarnation did not place (placed
    /// before a restart) is recorded all the same, unless a re-check of
    /// the store settled it already. A dial that was never placed gives
    /// its claim back.
    pub(super) fn event(&mut self, event: CampaignEvent) {
        match event {
            CampaignEvent::CallEnded {
                contact,
                attempt,
                outcome,
            } => self.call_ended(contact, attempt, outcome),
            CampaignEvent::NotPlaced { contact, attempt } => self.not_placed(contact, attempt),
        }
    }

    fn call_ended(&mut self, contact: ContactId, attempt: u32, outcome: CallOutcome) {
        if self.settled_from_store.remove(&(contact, attempt)) {
            debug!(campaign = %self.campaign, %contact, attempt, "outcome already settled from the store");
            return;
        }
        if self.live.get(&contact).map(|c| c.attempt) == Some(attempt) {
            self.live.remove(&contact);
        } else {
            debug!(campaign = %self.campaign, %contact, attempt, "outcome of a call not placed by this incarnation");
        }
        // The outcome supersedes a release of the same attempt not yet
        // written (a dial that timed out yet was placed).
        self.releases
            .retain(|r| !(r.contact == contact && r.attempt == attempt));
        self.unrecorded.push(PendingOutcome {
            contact,
            attempt,
            outcome,
            ended_at: self.clock.utc(),
            next: None,
        });
    }

    /// The dialer dropped a dial it had accepted before placing it
    /// (withdrawn, window closed, campaign gone, node draining): no
    /// attempt was made, so the claim is given back, due at once. Only a
    /// call this incarnation counts as live is released: any other claim
    /// is not known to be this dial's (the re-check settles it).
    fn not_placed(&mut self, contact: ContactId, attempt: u32) {
        if self.settled_from_store.remove(&(contact, attempt)) {
            return;
        }
        if self.live.get(&contact).map(|c| c.attempt) != Some(attempt) {
            debug!(campaign = %self.campaign, %contact, attempt, "not-placed dial of a call not live here");
            return;
        }
        self.live.remove(&contact);
        self.stats.not_placed += 1;
        self.releases.push(PendingRelease {
            contact,
            attempt,
            until: self.clock.utc(),
        });
    }

    /// The lease was just taken: another node may have run the campaign,
    /// so everything is read again and what is `in_progress` taken over
    /// (this node's unwritten outcomes and releases are kept).
    pub(super) fn fresh_incarnation(&mut self) {
        self.reload = true;
        self.lifecycle = None;
        self.persisted = None;
        self.taken_over = false;
        self.live.clear();
        self.settled_from_store.clear();
        self.last_recheck = None;
    }

    /// A tick: the store gets another chance, pending writes are retried,
    /// the stored lifecycle state is read again (the safety net under the
    /// command notices: a pause, stop or resume stored through any node is
    /// followed within a tick even if its notice never came), and a
    /// running campaign dials what is due (or completes).
    pub(super) async fn tick(&mut self) {
        self.store_suspended = false;
        self.state_stale = true;
        self.settle().await;
        if self.finished.is_none() && self.lease.held() && self.recheck_due() {
            self.recheck().await;
            self.settle().await;
        }
        if self.finished.is_some()
            || self.lifecycle != Some(CampaignState::Running)
            || !self.taken_over
            || self.store_suspended
        {
            return;
        }
        let now = self.clock.utc();
        self.dial_round(now).await;
        if self.lifecycle == Some(CampaignState::Running) && self.drained() && !self.store_suspended
        {
            let store = Arc::clone(&self.store);
            if let Some(0) = self
                .store_call("remaining", store.remaining(self.campaign))
                .await
            {
                info!(campaign = %self.campaign, "no contact left: campaign completed");
                self.lifecycle = Some(CampaignState::Completed);
            }
        }
    }

    /// After every message: load if needed, follow the stored state if it
    /// is due a reading, write what is pending, move a drained stop to
    /// `cancelled`, store what the actor decided, and finish once a
    /// terminal state is stored.
    pub(super) async fn settle(&mut self) {
        if self.finished.is_some() {
            return;
        }
        if self.reload || self.settings.is_none() {
            self.load().await;
        }
        if self.lease.held() {
            self.refresh_state().await;
        }
        self.withdraw_queued().await;
        if !self.lease.held() {
            // Another node runs the campaign: only this node's own
            // outcomes and releases are written.
            self.flush_outcomes().await;
            self.flush_releases().await;
            if self.draining && self.own_work_done() {
                info!(campaign = %self.campaign, "drained: own calls and writes done");
                self.finished = Some("drained: node stopping".to_owned());
            }
            return;
        }
        let Some(state) = self.lifecycle else {
            return;
        };
        if !self.taken_over && !state.is_terminal() && state != CampaignState::Draft {
            self.take_over().await;
        }
        self.flush_outcomes().await;
        self.flush_releases().await;
        if self.lifecycle == Some(CampaignState::Stopping) && self.drained() {
            // Ended in the store already (see `adopt`): end as stored.
            let end = self
                .persisted
                .filter(|s| s.is_terminal())
                .unwrap_or(CampaignState::Cancelled);
            info!(campaign = %self.campaign, state = %end, "drained: campaign ended");
            self.lifecycle = Some(end);
        }
        self.persist_state().await;
        match self.lifecycle {
            Some(state) if state.is_terminal() && self.persisted == Some(state) => {
                self.finished = Some(format!("campaign {state}"));
            }
            Some(CampaignState::Draft) => {
                self.finished = Some("campaign is a draft: nothing to run".to_owned());
            }
            _ => {}
        }
    }

    /// Reads the settings; the first time, the lifecycle state too (the
    /// point a restarted actor resumes from).
    async fn load(&mut self) {
        let store = Arc::clone(&self.store);
        let Some(settings) = self.store_call("load", store.load(self.campaign)).await else {
            return;
        };
        self.reload = false;
        if self.lifecycle.is_none() {
            info!(campaign = %self.campaign, state = %settings.state, "campaign loaded");
            self.lifecycle = Some(settings.state);
            self.persisted = Some(settings.state);
            self.state_stale = false;
        }
        self.settings = Some(settings);
    }

    /// Whether the actor is draining.
    pub(super) fn is_draining(&self) -> bool {
        self.draining
    }

    /// The node is stopping: dial nothing more, withdraw the dials the
    /// dialer still queues, and give the lease up at once so another node
    /// takes the campaign over now (never taking it again here). Calls
    /// taken over are left to that node (it re-checks them in the store);
    /// this incarnation's own calls are waited for, their outcomes and
    /// every pending write recorded, then the actor stops. The stored
    /// lifecycle state is not touched: the campaign stays as it is
    /// (`running`), for the next holder to resume.
    pub(super) async fn drain(&mut self) {
        if self.draining {
            return;
        }
        info!(campaign = %self.campaign, live = self.live.len(), "draining: the node is stopping");
        self.draining = true;
        self.withdraw_pending = true;
        self.live.retain(|_, c| c.origin == Origin::Placed);
        self.lease.release().await;
    }

    /// A tick while draining: the store gets another chance at the
    /// pending writes; the lease is not asked for.
    pub(super) async fn tick_draining(&mut self) {
        self.store_suspended = false;
        self.settle().await;
    }

    /// No own call live, nothing to write, the dialer told to withdraw.
    fn own_work_done(&self) -> bool {
        !self.live.values().any(|c| c.origin == Origin::Placed)
            && self.unrecorded.is_empty()
            && self.releases.is_empty()
    }

    /// Asks the dialer to drop the campaign's queued dials, if a command
    /// asked for it; asked again after every message until the dialer
    /// took it. The dropped dials come back as
    /// [`CampaignEvent::NotPlaced`].
    async fn withdraw_queued(&mut self) {
        if !self.withdraw_pending {
            return;
        }
        let dialer = Arc::clone(&self.dialer);
        match tokio::time::timeout(self.config.port_timeout, dialer.withdraw(self.campaign)).await {
            Ok(Ok(())) => self.withdraw_pending = false,
            Ok(Err(e)) => {
                warn!(campaign = %self.campaign, error = %e, "withdrawing queued dials failed")
            }
            Err(_) => warn!(campaign = %self.campaign, "withdrawing queued dials timed out"),
        }
    }

    /// Takes over the contacts an earlier incarnation left `in_progress`.
    /// Until this succeeds nothing is dialled and no stop counts as
    /// drained.
    async fn take_over(&mut self) {
        let store = Arc::clone(&self.store);
        let Some(claimed) = self
            .store_call("claimed", store.claimed(self.campaign))
            .await
        else {
            return;
        };
        let now = self.clock.utc();
        let since = self.clock.now();
        for c in claimed {
            let outcome_known = self
                .unrecorded
                .iter()
                .any(|p| p.contact == c.contact && p.attempt == c.attempt);
            if outcome_known {
                // Its outcome reached this incarnation before the take-over.
                continue;
            }
            self.stats.taken_over += 1;
            match c.call {
                ClaimedCall::Live => {
                    self.live.insert(
                        c.contact,
                        LiveCall {
                            attempt: c.attempt,
                            origin: Origin::TakenOver,
                            since,
                        },
                    );
                }
                ClaimedCall::Ended(outcome) => self.unrecorded.push(PendingOutcome {
                    contact: c.contact,
                    attempt: c.attempt,
                    outcome,
                    ended_at: now,
                    next: None,
                }),
                ClaimedCall::NotPlaced => self.releases.push(PendingRelease {
                    contact: c.contact,
                    attempt: c.attempt,
                    until: now,
                }),
            }
        }
        if self.stats.taken_over > 0 {
            info!(campaign = %self.campaign, contacts = self.stats.taken_over, "took over contacts left in progress");
        }
        self.taken_over = true;
    }

    /// A call this incarnation placed is live.
    fn add_placed(&mut self, contact: ContactId, attempt: u32) {
        self.settled_from_store.remove(&(contact, attempt));
        let since = self.clock.now();
        self.live.insert(
            contact,
            LiveCall {
                attempt,
                origin: Origin::Placed,
                since,
            },
        );
    }

    /// Whether the live calls should be checked against the store now: one
    /// has been live for [`CampaignConfig::recheck_every`] and the last
    /// check is at least that old. Events get lost (an actor restarted,
    /// an event went to another incarnation or node) and call rows are
    /// finished by others (the reconciler of dead nodes); without this a
    /// lost end would hold a call slot and a stop's drain for ever.
    fn recheck_due(&self) -> bool {
        let every = self.config.recheck_every;
        let now = self.clock.now();
        let aged = |t: Instant| now.saturating_duration_since(t) >= every;
        self.taken_over
            && self.live.values().any(|c| aged(c.since))
            && self.last_recheck.is_none_or(aged)
    }

    /// Re-reads `claimed` and settles the live calls from it: one the
    /// store shows ended has its outcome recorded; one never placed is
    /// released; one whose contact is no longer in progress with that
    /// attempt (settled elsewhere) is no longer counted. Live ones stay.
    async fn recheck(&mut self) {
        self.last_recheck = Some(self.clock.now());
        let store = Arc::clone(&self.store);
        let Some(claimed) = self
            .store_call("claimed", store.claimed(self.campaign))
            .await
        else {
            return;
        };
        let now = self.clock.utc();
        let by_contact: HashMap<ContactId, (u32, ClaimedCall)> = claimed
            .into_iter()
            .map(|c| (c.contact, (c.attempt, c.call)))
            .collect();
        let live: Vec<(ContactId, LiveCall)> = self.live.iter().map(|(k, v)| (*k, *v)).collect();
        for (contact, call) in live {
            let attempt = call.attempt;
            match by_contact.get(&contact) {
                Some((a, ClaimedCall::Live)) if *a == attempt => {}
                Some((a, ClaimedCall::Ended(outcome))) if *a == attempt => {
                    info!(campaign = %self.campaign, %contact, attempt, origin = ?call.origin, "call found ended in the store");
                    self.live.remove(&contact);
                    self.settled_from_store.insert((contact, attempt));
                    self.stats.rechecked += 1;
                    self.unrecorded.push(PendingOutcome {
                        contact,
                        attempt,
                        outcome: *outcome,
                        ended_at: now,
                        next: None,
                    });
                }
                Some((a, ClaimedCall::NotPlaced)) if *a == attempt => {
                    info!(campaign = %self.campaign, %contact, attempt, origin = ?call.origin, "call found never placed in the store");
                    self.live.remove(&contact);
                    self.settled_from_store.insert((contact, attempt));
                    self.stats.rechecked += 1;
                    self.releases.push(PendingRelease {
                        contact,
                        attempt,
                        until: now,
                    });
                }
                _ => {
                    info!(campaign = %self.campaign, %contact, attempt, "live call no longer in progress in the store");
                    self.live.remove(&contact);
                    self.stats.rechecked += 1;
                }
            }
        }
    }

    /// Writes queued outcomes, oldest first, until the store fails.
    async fn flush_outcomes(&mut self) {
        let Some(retry) = self.settings.as_ref().map(|s| s.retry) else {
            return;
        };
        let store = Arc::clone(&self.store);
        for mut pending in std::mem::take(&mut self.unrecorded) {
            if self.store_suspended {
                self.unrecorded.push(pending);
                continue;
            }
            let jitter = &mut self.jitter;
            let next = *pending.next.get_or_insert_with(|| {
                next_step(
                    &retry,
                    &pending.outcome,
                    pending.attempt,
                    pending.ended_at,
                    jitter.unit(),
                )
            });
            let write = store.record_outcome(
                self.campaign,
                pending.contact,
                pending.outcome,
                next,
                pending.attempt,
            );
            match self.store_call("record_outcome", write).await {
                Some(()) => self.count_outcome(next),
                None => self.unrecorded.push(pending),
            }
        }
    }

    /// Gives back queued claims until the store fails.
    async fn flush_releases(&mut self) {
        let store = Arc::clone(&self.store);
        for pending in std::mem::take(&mut self.releases) {
            if self.store_suspended {
                self.releases.push(pending);
                continue;
            }
            let write = store.release(self.campaign, pending.contact, pending.until);
            if self.store_call("release", write).await.is_none() {
                self.releases.push(pending);
            }
        }
    }

    /// Stores a state the actor reached on its own: `completed`, or
    /// `cancelled` once a stop drained. Operators' commands are stored by
    /// the REST layer, never again here: a command heard late must not
    /// overwrite a later one. The write is conditional
    /// ([`CampaignStore::set_state`]); when it loses (an operator paused
    /// or stopped the campaign meanwhile, through any node) the actor
    /// follows the stored state instead.
    async fn persist_state(&mut self) {
        let Some(state) = self.lifecycle else {
            return;
        };
        if !state.is_terminal() || self.persisted == Some(state) {
            return;
        }
        let store = Arc::clone(&self.store);
        match self
            .store_call("set_state", store.set_state(self.campaign, state))
            .await
        {
            Some(StateWrite::Written) => self.persisted = Some(state),
            Some(StateWrite::Refused(stored)) => {
                warn!(campaign = %self.campaign, wanted = %state, %stored, "campaign state not stored: the store moved on");
                self.adopt(stored);
            }
            None => {}
        }
    }

    /// Reads due contacts and dials those inside their window, until the
    /// campaign's cap is reached, the dialer refuses, or the store fails.
    async fn dial_round(&mut self, now: DateTime<Utc>) {
        let Some(settings) = self.settings.clone() else {
            return;
        };
        let cap = settings.max_concurrent_calls;
        let store = Arc::clone(&self.store);
        for _ in 0..self.config.batches_per_tick.max(1) {
            let free = cap.saturating_sub(self.live_count());
            if free == 0 {
                return;
            }
            let limit = free.saturating_mul(2);
            let batch = store.due_contacts(self.campaign, now, limit);
            let Some(due) = self.store_call("due_contacts", batch).await else {
                return;
            };
            let maybe_more = u32::try_from(due.len()).unwrap_or(u32::MAX) >= limit;
            for contact in due {
                if self.live_count() >= cap {
                    return;
                }
                if self.place(&settings, contact, now).await == Flow::Stop {
                    return;
                }
            }
            if !maybe_more {
                return;
            }
        }
    }

    /// One due contact: defer it to its window, give up on it, or claim
    /// and dial it.
    async fn place(
        &mut self,
        settings: &CampaignSettings,
        contact: DueContact,
        now: DateTime<Utc>,
    ) -> Flow {
        let store = Arc::clone(&self.store);
        if !settings.window.is_open(&contact.zones, now) {
            return match settings.window.next_open(&contact.zones, now) {
                Some(at) => {
                    let write = store.defer(self.campaign, contact.id, at);
                    match self.store_call("defer", write).await {
                        Some(()) => {
                            self.stats.deferred += 1;
                            Flow::Continue
                        }
                        None => Flow::Stop,
                    }
                }
                None => {
                    let reason = if contact.zones.is_empty() {
                        GiveUpReason::UnknownZone
                    } else {
                        GiveUpReason::WindowNeverOpens
                    };
                    let write = store.give_up(self.campaign, contact.id, reason);
                    match self.store_call("give_up", write).await {
                        Some(()) => {
                            info!(campaign = %self.campaign, contact = %contact.id, reason = reason.as_str(), "contact given up on");
                            self.stats.given_up += 1;
                            self.stats.failed += 1;
                            Flow::Continue
                        }
                        None => Flow::Stop,
                    }
                }
            };
        }
        match self
            .store_call("claim", store.claim(self.campaign, contact.id))
            .await
        {
            None => return Flow::Stop,
            Some(Claim::NotDue) => return Flow::Continue,
            Some(Claim::NotRunning(stored)) => {
                info!(campaign = %self.campaign, %stored, "claim refused: the stored campaign is not running");
                self.adopt(stored);
                return Flow::Stop;
            }
            Some(Claim::Claimed) => {}
        }
        let attempt = contact.attempts.saturating_add(1);
        let request = DialRequest {
            tenant: settings.tenant,
            campaign: self.campaign,
            contact: contact.id,
            phone: contact.phone,
            attempt,
            // The dialer may queue it; it must not ring after the window
            // it was asked in has closed.
            place_by: settings.window.closes_at(&contact.zones, now),
        };
        let dialer = Arc::clone(&self.dialer);
        let timeout = self.config.port_timeout;
        let result = match tokio::time::timeout(timeout, dialer.dial(request)).await {
            Ok(result) => result,
            Err(_) => Err(DialRefused::Unavailable(format!(
                "no answer from the dialer within {timeout:?}"
            ))),
        };
        match result {
            Ok(()) => {
                self.add_placed(contact.id, attempt);
                self.stats.dialled += 1;
                Flow::Continue
            }
            Err(DialRefused::Duplicate) => {
                // Placed before (a dial whose answer was lost): its outcome
                // will arrive like any other, so it counts as live.
                self.add_placed(contact.id, attempt);
                self.stats.duplicates += 1;
                Flow::Continue
            }
            Err(DialRefused::AtCapacity) => {
                self.stats.refused += 1;
                self.release_later(contact.id, attempt).await;
                Flow::Stop
            }
            Err(DialRefused::Unavailable(why)) => {
                warn!(campaign = %self.campaign, contact = %contact.id, attempt, error = %why, "dial failed");
                self.stats.dial_errors += 1;
                self.release_later(contact.id, attempt).await;
                Flow::Stop
            }
        }
    }

    /// Gives a claim back, due again after the refusal backoff; queued if
    /// the store fails, so the contact is never left `in_progress`.
    async fn release_later(&mut self, contact: ContactId, attempt: u32) {
        let backoff = TimeDelta::from_std(self.config.refusal_backoff).unwrap_or(TimeDelta::MAX);
        let now = self.clock.utc();
        let until = now
            .checked_add_signed(backoff)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let store = Arc::clone(&self.store);
        let write = store.release(self.campaign, contact, until);
        if self.store_call("release", write).await.is_none() {
            self.releases.push(PendingRelease {
                contact,
                attempt,
                until,
            });
        }
    }

    /// One store call with the timeout; a failure is counted and leaves the
    /// store alone until the next tick. `None` when it failed or was not
    /// made.
    async fn store_call<T>(
        &mut self,
        what: &'static str,
        call: impl Future<Output = PortResult<T>>,
    ) -> Option<T> {
        if self.store_suspended {
            return None;
        }
        let result = match tokio::time::timeout(self.config.port_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(PortError::Timeout(format!("campaign store {what}"))),
        };
        match result {
            Ok(value) => {
                self.consecutive_failures = 0;
                Some(value)
            }
            Err(e) => {
                self.stats.store_errors += 1;
                self.consecutive_failures += 1;
                self.store_suspended = true;
                warn!(campaign = %self.campaign, call = what, error = %e, failures = self.consecutive_failures, "campaign store failed");
                self.last_error = Some(e);
                None
            }
        }
    }

    /// Counts a recorded outcome by where it left the contact.
    fn count_outcome(&mut self, next: NextStep) {
        self.stats.outcomes += 1;
        match next {
            NextStep::RetryAt(_) => self.stats.retries += 1,
            NextStep::Done { status } => match status {
                ContactStatus::Completed => self.stats.completed += 1,
                ContactStatus::Failed => self.stats.failed += 1,
                ContactStatus::Dnc => self.stats.dnc += 1,
                ContactStatus::Pending | ContactStatus::InProgress | ContactStatus::Retry => {}
            },
        }
    }

    /// No live call and nothing waiting to be written (and what an earlier
    /// incarnation left has been taken over).
    fn drained(&self) -> bool {
        self.taken_over
            && self.live.is_empty()
            && self.unrecorded.is_empty()
            && self.releases.is_empty()
    }

    /// Live calls as a count.
    fn live_count(&self) -> u32 {
        u32::try_from(self.live.len()).unwrap_or(u32::MAX)
    }
}
