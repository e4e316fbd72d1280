//! Operator commands stored through another node: the lease holder
//! follows the stored lifecycle state (read every tick, and handed back by
//! a refused claim or state write) even when the command's notice never
//! reaches it, and its own decisions never overwrite an operator's.

use std::sync::Arc;
use std::time::Duration;

use super::fakes::{
    FakeDialer, FakeStore, Harness, TestClock, advance, always_open, exact_retry, operator, settle,
    wednesday_14z,
};
use crate::campaign::{CampaignCommand, CampaignState};
use crate::campaign_actor::{CampaignArgs, CampaignConfig, CampaignControl};
use crate::cluster::LocalCluster;
use crate::schedule::retry::{CallOutcome, ContactStatus};

fn running(cap: u32, contacts: usize) -> FakeStore {
    let store = FakeStore::new(FakeStore::settings(always_open(), exact_retry(60, 3), cap));
    store.add_many(contacts);
    store
}

#[tokio::test(start_paused = true)]
async fn a_pause_through_another_node_stops_the_holder_within_a_tick_and_resume_there_restarts_it()
{
    let clock = TestClock::starting_at(wednesday_14z());
    let store = running(2, 6);
    // Each node has its own dialer; only a's places calls.
    let a_dialer = FakeDialer::manual(clock.clone());
    let b_dialer = FakeDialer::manual(clock.clone());
    let a_node = LocalCluster::new(
        "a",
        clock.clone(),
        Duration::from_secs(5),
        Duration::from_secs(30),
    );
    let b_node = a_node.peer("b");
    let args = |cluster: LocalCluster, dialer: &FakeDialer| CampaignArgs {
        campaign: store.campaign(),
        store: Arc::new(store.clone()),
        dialer: Arc::new(dialer.clone()),
        clock: clock.clone(),
        config: CampaignConfig::default(),
        seed: 1,
        cluster: Arc::new(cluster),
    };
    let a = Harness::spawn(
        store.clone(),
        a_dialer.clone(),
        args(a_node, &a_dialer),
        None,
    )
    .await;
    settle().await;
    let b = Harness::spawn(
        store.clone(),
        b_dialer.clone(),
        args(b_node, &b_dialer),
        None,
    )
    .await;
    // The calls' records are a's dialer's.
    store.lock().dialer = Some(a_dialer.clone());
    advance(2).await;
    assert_eq!(a_dialer.placed(), 2, "a holds the lease and dials");
    assert_eq!(b.snapshot().await.dialled, 0);

    // The operator pauses through node b: stored, and sent to b's actor
    // only (the notice to a is lost).
    assert_eq!(b.command(CampaignCommand::Pause), CampaignState::Paused);
    advance(1).await;
    settle().await;
    assert_eq!(
        a.snapshot().await.state,
        Some(CampaignState::Paused),
        "the holder read the stored pause within a tick"
    );
    assert_eq!(
        a_dialer.lock().withdrawn,
        vec![store.campaign()],
        "the holder withdrew its queued dials, as a local pause does"
    );
    assert_eq!(
        store.lock().refused_claims,
        0,
        "seen before its next claim: none was even tried"
    );
    // Its live calls finish and are recorded; nothing new is dialled.
    for c in a_dialer.live_contacts() {
        a_dialer.end(c, CallOutcome::Completed);
    }
    advance(30).await;
    assert_eq!(a_dialer.placed(), 2, "no dial after the pause was seen");
    assert_eq!(a.snapshot().await.completed, 2);
    assert!(store.lock().states.is_empty(), "the actors wrote no state");

    // Resumed through b as well: a dials again within a tick.
    assert_eq!(b.command(CampaignCommand::Resume), CampaignState::Running);
    advance(2).await;
    assert_eq!(a.snapshot().await.state, Some(CampaignState::Running));
    assert_eq!(a_dialer.placed(), 4, "the holder dials again");
    assert_eq!(b_dialer.placed(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_claim_refused_by_a_pause_stored_mid_round_ends_the_round_and_withdraws() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(2, 6), dialer, clock, CampaignConfig::default()).await;
    settle().await;
    assert_eq!(h.dialer.placed(), 2);
    // A slot frees; the operator pauses elsewhere just after the next
    // tick read the state (running) and while it reads due contacts.
    h.store.on_next("due_contacts", |s| {
        assert_eq!(operator(s, CampaignCommand::Pause), CampaignState::Paused)
    });
    let live = h.dialer.live_contacts();
    h.dialer.end(live[0], CallOutcome::Completed);
    advance(2).await;
    assert_eq!(
        h.store.lock().refused_claims,
        1,
        "the claim found the pause"
    );
    assert_eq!(h.dialer.placed(), 2, "nothing claimed, nothing dialled");
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Paused));
    assert_eq!(h.dialer.lock().withdrawn, vec![h.store.campaign()]);
    let s = h.store.lock();
    let in_progress: Vec<_> = s
        .contacts
        .iter()
        .filter(|c| c.status == ContactStatus::InProgress)
        .map(|c| c.id)
        .collect();
    assert_eq!(in_progress, vec![live[1]], "only the live call's contact");
}

#[tokio::test(start_paused = true)]
async fn completion_loses_to_a_pause_stored_meanwhile_and_the_actor_follows_it() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(1, 1), dialer, clock, CampaignConfig::default()).await;
    settle().await;
    // The operator pauses elsewhere just as the holder finds nothing left.
    h.store.on_next("remaining", |s| {
        assert_eq!(operator(s, CampaignCommand::Pause), CampaignState::Paused)
    });
    let c = h.dialer.live_contacts()[0];
    h.dialer.end(c, CallOutcome::Completed);
    advance(3).await;
    {
        let s = h.store.lock();
        assert_eq!(s.settings.state, CampaignState::Paused, "the pause stands");
        assert_eq!(
            s.refused_states,
            vec![(CampaignState::Completed, CampaignState::Paused)],
            "completed was refused over paused"
        );
        assert!(s.states.is_empty());
    }
    assert_eq!(
        h.snapshot().await.state,
        Some(CampaignState::Paused),
        "the loser follows the stored state"
    );
    // Resumed: nothing is left, so now it completes and stops.
    h.command(CampaignCommand::Resume);
    let h = h.stopped_within(3).await;
    assert_eq!(h.store.lock().states, vec![CampaignState::Completed]);
    assert_eq!(h.store.lock().settings.state, CampaignState::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_stop_stored_elsewhere_drains_the_holders_calls_then_cancels() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(3, 10), dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let live = h.dialer.live_contacts();
    assert_eq!(live.len(), 3);
    // Stored through another node; no notice reaches this one.
    assert_eq!(
        h.store.operator(CampaignCommand::Stop),
        CampaignState::Stopping
    );
    advance(1).await;
    settle().await;
    assert_eq!(h.snapshot().await.state, Some(CampaignState::Stopping));
    assert_eq!(h.dialer.lock().withdrawn, vec![h.store.campaign()]);
    for c in &live {
        h.dialer.end(*c, CallOutcome::Completed);
    }
    let h = h.stopped_within(3).await;
    assert_eq!(h.dialer.placed(), 3, "no dial after the stop was seen");
    assert_eq!(h.store.lock().states, vec![CampaignState::Cancelled]);
    assert_eq!(h.store.lock().outcomes.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_campaign_cancelled_in_the_store_while_calls_are_live_is_seen_through_then_ends() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(2, 5), dialer, clock, CampaignConfig::default()).await;
    settle().await;
    let live = h.dialer.live_contacts();
    assert_eq!(live.len(), 2);
    // A stop stored as `cancelled` at once (the REST layer counted no
    // live call: say the rows were not written yet).
    h.store.lock().settings.state = CampaignState::Cancelled;
    advance(1).await;
    settle().await;
    assert_eq!(
        h.snapshot().await.state,
        Some(CampaignState::Stopping),
        "its own calls are seen through first"
    );
    for c in &live {
        h.dialer.end(*c, CallOutcome::Completed);
    }
    let h = h.stopped_within(3).await;
    let s = h.store.lock();
    assert_eq!(s.outcomes.len(), 2, "every live call's outcome recorded");
    assert!(s.states.is_empty(), "nothing written over cancelled");
    assert_eq!(s.settings.state, CampaignState::Cancelled);
    assert_eq!(h.dialer.placed(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_late_pause_notice_does_not_undo_a_resume_stored_after_it() {
    let clock = TestClock::starting_at(wednesday_14z());
    let dialer = FakeDialer::manual(clock.clone());
    let h = Harness::start(running(1, 4), dialer, clock, CampaignConfig::default()).await;
    settle().await;
    assert_eq!(h.dialer.placed(), 1);
    // Paused and resumed elsewhere; only the pause's notice arrives, late.
    h.store.operator(CampaignCommand::Pause);
    h.store.operator(CampaignCommand::Resume);
    h.send(CampaignControl::Pause);
    settle().await;
    assert_eq!(
        h.snapshot().await.state,
        Some(CampaignState::Running),
        "the store, not the notice, says where the campaign is"
    );
    assert!(
        h.store.lock().states.is_empty(),
        "the stale pause was not written"
    );
    for c in h.dialer.live_contacts() {
        h.dialer.end(c, CallOutcome::Completed);
    }
    advance(2).await;
    assert_eq!(h.dialer.placed(), 2, "still dialling");
}
