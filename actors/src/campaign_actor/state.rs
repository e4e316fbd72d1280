//! The campaign actor's state and every decision it makes. The actor glue
//! ([`super::actor`]) only routes messages here.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use ractor::ActorRef;
use ractor::MessagingErr;
use ractor::concurrency::JoinHandle;
use tracing::{debug, info, warn};

use super::actor::{CampaignActorError, CampaignArgs, CampaignConfig, MIN_TICK};
use super::jitter::Jitter;
use super::lease::LeaseKeeper;
use super::messages::{CampaignEvent, CampaignMsg, CampaignSnapshot};
use super::ports::{
    CampaignSettings, CampaignStore, ClaimedCall, DialRefused, DialRequest, DialSink, DueContact,
    GiveUpReason,
};
use crate::campaign::{CampaignCommand, CampaignState};
use crate::ids::{CampaignId, ContactId};
use crate::ports::{Clock, PortError, PortResult};
use crate::schedule::retry::{CallOutcome, ContactStatus, NextStep, next_step};

/// An outcome that has not reached the store yet.
#[derive(Clone, Debug)]
struct PendingOutcome {
    /// The contact called.
    contact: ContactId,
    /// Its attempt number.
    attempt: u32,
    /// How the call ended.
    outcome: CallOutcome,
    /// When the outcome arrived: retry delays count from here, however
    /// late the write succeeds.
    ended_at: DateTime<Utc>,
    /// The step decided on the first try, kept so that a re-sent write
    /// is the same write (the jitter is drawn once).
    next: Option<NextStep>,
}

/// A claim to give back that has not reached the store yet.
#[derive(Clone, Copy, Debug)]
struct PendingRelease {
    /// The contact claimed.
    contact: ContactId,
    /// The attempt that was not placed.
    attempt: u32,
    /// When it is due again.
    until: DateTime<Utc>,
}

/// Whether to go on with the contacts of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Next contact.
    Continue,
    /// Stop dialling for this tick (dialer full or failing, store failing).
    Stop,
}

/// The state of one campaign actor. See the module docs of [`super`].
pub struct CampaignActorState<S, D> {
    /// The campaign.
    campaign: CampaignId,
    /// Its contacts and state.
    store: Arc<S>,
    /// Where calls go.
    dialer: Arc<D>,
    /// Wall-clock time.
    clock: Arc<dyn Clock>,
    /// Pacing and tolerance.
    config: CampaignConfig,
    /// Retry jitter.
    jitter: Jitter,
    /// The settings, once loaded.
    settings: Option<CampaignSettings>,
    /// The settings must be read again.
    reload: bool,
    /// Where the campaign is; `None` until first loaded.
    lifecycle: Option<CampaignState>,
    /// The state the store is known to hold.
    persisted: Option<CampaignState>,
    /// Commands received before the first load, applied after it.
    early_commands: Vec<CampaignCommand>,
    /// What an earlier incarnation left `in_progress` has been taken over.
    taken_over: bool,
    /// Live calls this incarnation knows of: contact -> attempt.
    live: HashMap<ContactId, u32>,
    /// Outcomes to write, oldest first.
    unrecorded: Vec<PendingOutcome>,
    /// Claims to give back.
    releases: Vec<PendingRelease>,
    /// A store call failed this tick: leave the store alone until the next.
    store_suspended: bool,
    /// Store failures since the last success.
    consecutive_failures: u32,
    /// The last store failure.
    last_error: Option<PortError>,
    /// Counters (the derived fields are filled in by [`Self::snapshot`]).
    stats: CampaignSnapshot,
    /// Why the actor is done, once it is.
    finished: Option<String>,
    /// The pending tick, so there is never more than one.
    tick_timer: Option<JoinHandle<Result<(), MessagingErr<CampaignMsg>>>>,
    /// The campaign's lease: nothing is dialled or taken over without it.
    pub(super) lease: LeaseKeeper,
}

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
            early_commands: Vec::new(),
            taken_over: false,
            live: HashMap::new(),
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
            state: self.lifecycle,
            live_calls: self.live_count(),
            consecutive_store_errors: self.consecutive_failures,
            pending_writes: u32::try_from(self.unrecorded.len() + self.releases.len())
                .unwrap_or(u32::MAX),
            ..self.stats.clone()
        }
    }

    /// The error to fail with once the store failed too often in a row.
    pub(super) fn store_failure(&self) -> Option<CampaignActorError> {
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

    /// An operator command: the lifecycle moves as
    /// [`CampaignState::apply`] says (a stop drains first when calls are
    /// live or writes are pending); an illegal command is ignored.
    pub(super) fn command(&mut self, command: CampaignCommand) {
        let Some(state) = self.lifecycle else {
            self.early_commands.push(command);
            return;
        };
        match state.apply(command, !self.drained()) {
            Ok(next) => {
                info!(campaign = %self.campaign, %command, from = %state, to = %next, "campaign command");
                self.lifecycle = Some(next);
            }
            Err(e) => warn!(campaign = %self.campaign, error = %e, "campaign command ignored"),
        }
    }

    /// The settings changed: read them again (now, or on the next tick if
    /// the store is failing).
    pub(super) fn request_reload(&mut self) {
        self.reload = true;
    }

    /// A call event from the dialer. The outcome is queued and written by
    /// [`Self::settle`]; a call this incarnation did not place (placed
    /// before a restart) is recorded all the same.
    pub(super) fn event(&mut self, event: CampaignEvent) {
        let CampaignEvent::CallEnded {
            contact,
            attempt,
            outcome,
        } = event;
        if self.live.get(&contact) == Some(&attempt) {
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

    /// The lease was just taken: another node may have run the campaign,
    /// so everything is read again and what is `in_progress` taken over
    /// (this node's unwritten outcomes and releases are kept).
    pub(super) fn fresh_incarnation(&mut self) {
        self.reload = true;
        self.lifecycle = None;
        self.persisted = None;
        self.taken_over = false;
        self.live.clear();
    }

    /// A tick: the store gets another chance, pending writes are retried,
    /// and a running campaign dials what is due (or completes).
    pub(super) async fn tick(&mut self) {
        self.store_suspended = false;
        self.settle().await;
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

    /// After every message: load if needed, write what is pending, move a
    /// drained stop to `cancelled`, store the lifecycle state, and finish
    /// once a terminal state is stored.
    pub(super) async fn settle(&mut self) {
        if self.finished.is_some() {
            return;
        }
        if self.reload || self.settings.is_none() {
            self.load().await;
        }
        if !self.lease.held() {
            // Another node runs the campaign: only this node's own
            // outcomes and releases are written.
            self.flush_outcomes().await;
            self.flush_releases().await;
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
            info!(campaign = %self.campaign, "drained: campaign cancelled");
            self.lifecycle = Some(CampaignState::Cancelled);
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
            for command in std::mem::take(&mut self.early_commands) {
                self.command(command);
            }
        }
        self.settings = Some(settings);
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
                    self.live.insert(c.contact, c.attempt);
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

    /// Stores the lifecycle state if the store does not hold it yet.
    async fn persist_state(&mut self) {
        let Some(state) = self.lifecycle else {
            return;
        };
        if self.persisted == Some(state) {
            return;
        }
        let store = Arc::clone(&self.store);
        if self
            .store_call("set_state", store.set_state(self.campaign, state))
            .await
            .is_some()
        {
            self.persisted = Some(state);
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
            Some(false) => return Flow::Continue,
            Some(true) => {}
        }
        let attempt = contact.attempts.saturating_add(1);
        let request = DialRequest {
            tenant: settings.tenant,
            campaign: self.campaign,
            contact: contact.id,
            phone: contact.phone,
            attempt,
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
                self.live.insert(contact.id, attempt);
                self.stats.dialled += 1;
                Flow::Continue
            }
            Err(DialRefused::Duplicate) => {
                // Placed before (a dial whose answer was lost): its outcome
                // will arrive like any other, so it counts as live.
                self.live.insert(contact.id, attempt);
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
