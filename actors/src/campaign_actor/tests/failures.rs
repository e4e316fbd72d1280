//! A failing store: tolerated for a while, then the actor fails for its
//! supervisor; a new incarnation resumes from the store and takes over
//! what the last one left in progress.

use ractor::Actor;
use tokio::sync::mpsc;

use super::fakes::{
    FakeDialer, FakeStore, Harness, Probe, TestClock, advance, always_open, assert_consistent,
    exact_retry, settle, wednesday_14z,
};
use crate::campaign::{CampaignCommand, CampaignState};
use crate::campaign_actor::{CampaignConfig, DEFAULT_MAX_STORE_FAILURES};
use crate::schedule::retry::{CallOutcome, ContactStatus};

fn running(cap: u32, contacts: usize) -> FakeStore {
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), cap));
    store.add_many(contacts);
    store
}

/// Ends every live call with `Completed` until the campaign stops.
async fn complete_everything(h: Harness) -> Harness {
    for _ in 0..100 {
        let live = h.dialer.live_contacts();
        if live.is_empty() && h.actor.get_status() == ractor::ActorStatus::Stopped {
            break;
        }
        for c in live {
            h.dialer.end(c, CallOutcome::Completed);
        }
        advance(1).await;
    }
    h.stopped_within(5).await
}

#[tokio::test(start_paused = true)]
async fn a_store_failing_a_few_times_is_retried_tick_by_tick() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = running(2, 5);
    store.lock().fail_next = 3;
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let snap = h.snapshot().await;
    assert_eq!(snap.state, None, "not loaded yet");
    assert_eq!((snap.store_errors, snap.consecutive_store_errors), (1, 1));
    assert_eq!(h.store.lock().injected_failures, 1, "one try per tick");
    advance(3).await;
    let snap = h.snapshot().await;
    assert_eq!(snap.state, Some(CampaignState::Running));
    assert_eq!((snap.store_errors, snap.consecutive_store_errors), (3, 0));
    assert_eq!(h.dialer.placed(), 2);

    // An outcome whose write fails is kept and written on a later tick,
    // once, with the step decided when the call ended.
    let c = h.dialer.live_contacts()[0];
    h.store.lock().fail_next = 2;
    let ended = wednesday_14z() + chrono::TimeDelta::milliseconds(3010);
    h.dialer.end(c, CallOutcome::NoAnswer);
    settle().await;
    let snap = h.snapshot().await;
    assert_eq!((snap.pending_writes, snap.live_calls), (1, 1));
    assert!(h.store.lock().outcomes.is_empty());
    advance(2).await;
    let snap = h.snapshot().await;
    assert_eq!((snap.pending_writes, snap.store_errors), (0, 5));
    let s = h.store.lock();
    assert_eq!(s.outcomes.len(), 1);
    assert_eq!(s.repeated_outcomes, 0);
    assert_eq!(s.contact(c).status, ContactStatus::Retry);
    let retry_at = s.outcomes[0].next.retry_at().expect("retry");
    let off = retry_at - ended - chrono::TimeDelta::seconds(60);
    assert!(off.abs() < chrono::TimeDelta::milliseconds(100), "{off}");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_hangs_times_out_and_counts_as_a_failure() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = running(2, 5);
    store.lock().hang_next = 2;
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    // Two loads time out after 5 s each; the next tick gets through.
    advance(13).await;
    let snap = h.snapshot().await;
    assert_eq!(snap.store_errors, 2);
    assert_eq!(snap.state, Some(CampaignState::Running));
    assert_eq!(h.dialer.placed(), 2);
}

#[tokio::test(start_paused = true)]
async fn store_failures_in_a_row_fail_the_actor_and_the_next_incarnation_takes_over() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = running(3, 8);
    let dialer = FakeDialer::manual(clock.clone());
    let (tx, mut exits) = mpsc::unbounded_channel();
    let (probe, _) = Actor::spawn(None, Probe, tx).await.expect("probe");
    let h = Harness::start_supervised(store, dialer, clock, probe.get_cell()).await;
    settle().await;
    let live = h.dialer.live_contacts();
    assert_eq!(live.len(), 3);
    h.dialer.end(live[0], CallOutcome::Completed);
    settle().await;
    assert_eq!(h.store.lock().outcomes.len(), 1);

    // The store goes down. The outcome that arrives now cannot be written;
    // each tick tries once more, and the fifth failure in a row fails the
    // actor.
    h.store.lock().fail_always = true;
    h.dialer.end(live[1], CallOutcome::Completed);
    advance(DEFAULT_MAX_STORE_FAILURES as u64 - 3).await;
    let snap = h.snapshot().await;
    assert_eq!(
        snap.consecutive_store_errors,
        DEFAULT_MAX_STORE_FAILURES - 2
    );
    assert_eq!(snap.pending_writes, 1);
    assert!(exits.try_recv().is_err(), "still tolerating");
    advance(3).await;
    let exit = exits.try_recv().expect("the supervisor was told");
    assert!(exit.starts_with("failed:"), "{exit}");
    assert!(exit.contains("5 times in a row"), "{exit}");
    let h = h.stopped_within(1).await;

    // Left behind: live[1] ended but unrecorded, live[2] still live.
    {
        let s = h.store.lock();
        assert_eq!(s.contact(live[1]).status, ContactStatus::InProgress);
        assert_eq!(s.contact(live[2]).status, ContactStatus::InProgress);
    }
    // The store is back; the supervisor starts a new incarnation.
    h.store.lock().fail_always = false;
    let h = Harness::spawn(
        h.store.clone(),
        h.dialer.clone(),
        h.args.clone(),
        Some(probe.get_cell()),
    )
    .await;
    settle().await;
    let snap = h.snapshot().await;
    assert_eq!(snap.state, Some(CampaignState::Running));
    assert_eq!(snap.taken_over, 2);
    assert_eq!(snap.live_calls, 3, "the call it took over and two new ones");
    assert_eq!(snap.dialled, 2);
    assert_eq!(
        h.store.lock().contact(live[1]).status,
        ContactStatus::Completed,
        "the outcome the last incarnation lost was recorded"
    );
    assert!(h.dialer.live_contacts().contains(&live[2]));

    let h = complete_everything(h).await;
    assert_eq!(h.store.lock().states, vec![CampaignState::Completed]);
    assert_eq!(h.dialer.placed(), 8);
    assert_consistent(&h.store, &h.dialer);
    let exit = exits.recv().await.expect("exit");
    assert_eq!(exit, "terminated: campaign completed");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_stopping_campaign_waits_for_the_calls_it_took_over() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = running(3, 4);
    store.lock().settings.state = CampaignState::Stopping;
    let live = store.lock().contacts[0].id;
    let never_dialled = store.lock().contacts[1].id;
    store.lock().contacts[0].status = ContactStatus::InProgress;
    store.lock().contacts[1].status = ContactStatus::InProgress;
    let dialer = FakeDialer::manual(clock.clone());
    dialer.lock().placed.insert((live, 1));
    dialer.lock().live.insert((live, 1));
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    advance(5).await;
    let snap = h.snapshot().await;
    assert_eq!(snap.state, Some(CampaignState::Stopping));
    assert_eq!((snap.taken_over, snap.live_calls), (2, 1));
    assert_eq!(h.dialer.placed(), 1, "no dial while stopping");
    assert_eq!(
        h.store.lock().contact(never_dialled).status,
        ContactStatus::Pending,
        "the claim that never became a call was released"
    );
    h.dialer.end(live, CallOutcome::Completed);
    let h = h.stopped_within(2).await;
    assert_eq!(h.store.lock().states, vec![CampaignState::Cancelled]);
    assert_eq!(
        h.store.lock().contact(live).status,
        ContactStatus::Completed
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_actor_resumes_from_the_store() {
    let clock = TestClock::starting_at(wednesday_14z());
    let store = running(2, 6);
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(store, dialer, clock, CampaignConfig::default()).await;
    settle().await;
    for c in h.dialer.live_contacts() {
        h.dialer.end(c, CallOutcome::Completed);
    }
    settle().await;
    h.command(CampaignCommand::Pause);
    settle().await;
    h.actor.stop(None);
    let h = h.stopped_within(1).await;

    // A new incarnation resumes paused: it dials nothing.
    let h = Harness::spawn(h.store.clone(), h.dialer.clone(), h.args.clone(), None).await;
    advance(5).await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Paused));
    assert_eq!(h.dialer.placed(), 2);
    // Resumed, it dials only contacts not yet done.
    h.command(CampaignCommand::Resume);
    let h = complete_everything(h).await;
    assert_eq!(h.dialer.placed(), 6);
    assert_eq!(h.store.lock().states, vec![CampaignState::Completed]);
    assert_consistent(&h.store, &h.dialer);
}
