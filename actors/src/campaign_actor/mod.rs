//! The CampaignActor: one per running campaign. It decides which contacts
//! to dial and when, asks the dialer to dial them, and records what came
//! of each call. It talks to the world through two ports ([`ports`]):
//! the [`CampaignStore`] (contacts and state) and the [`DialSink`] (the
//! DialerActor).
//!
//! # The loop
//!
//! The actor ticks every [`CampaignConfig::tick`] (never more than one
//! tick pending; the first at once). The first tick loads the settings and the
//! lifecycle state, which is where a restarted actor resumes. On each tick
//! of a `running` campaign it reads up to twice its free call slots of due
//! contacts (a few batches at most) and, for each:
//!
//! * **window open** (in every candidate zone of the contact): `claim` it,
//!   then `dial` attempt `attempts + 1`;
//! * **window shut**: `defer` it to the exact instant the window next
//!   opens ([`CallingWindow::next_open`]);
//! * **window never opens**: zone unknown (the most restrictive reading:
//!   never open), or candidate zones with no common opening in
//!   [`SEARCH_DAYS`] days. Such a contact can never be called lawfully, and
//!   keeping it would stop the campaign from ever completing, so it is given
//!   up on: `give_up` ends it as `failed` with the reason
//!   ([`GiveUpReason`]), without a call.
//!
//! It stops dialling for the tick as soon as `max_concurrent_calls` of its
//! own calls are live, or the dialer refuses.
//!
//! # Never lost, never dialled twice
//!
//! * A contact is claimed (`in_progress`) before it is dialled, so it is
//!   handed out once.
//! * A claim that does not become a call (dialer at capacity, unavailable,
//!   or no answer within the timeout) is given back with `release`, due
//!   again after [`CampaignConfig::refusal_backoff`]. If that write fails
//!   it is queued and retried every tick, before any new dial.
//! * The dialer keeps one dial intent per (campaign, contact, attempt)
//!   and answers [`DialRefused::Duplicate`] to a second one: the attempt is
//!   not dialled again. This happens when a dial was placed but its answer
//!   was lost (timed out): the contact was released, claimed again, and
//!   dialled with the same attempt number. The call is live, its outcome
//!   will come, so the actor counts it as live.
//! * Outcomes whose write fails are queued, retried oldest first every
//!   tick; `record_outcome` is keyed by attempt, so a re-sent write is a
//!   no-op. A campaign is not cancelled or completed while writes are
//!   pending. If the actor dies with writes pending, the next incarnation
//!   finds those contacts with `claimed` (see Restarts).
//!
//! # Outcomes
//!
//! [`CampaignEvent::CallEnded`] frees the call's slot and records
//! [`next_step`]`(retry, outcome, attempt, ended_at, jitter)`: done
//! (completed, failed, dnc) or retried at an instant (busy soon, no answer
//! later, machine later still, a requested callback at its time). The
//! jitter comes from a seeded generator ([`CampaignArgs::seed`]). An
//! outcome of a call this incarnation did not place (placed before a
//! restart) is recorded all the same.
//!
//! # Lifecycle
//!
//! The stored state is the truth: the REST layer stores an operator's
//! command (under a row lock) before any actor hears of it, and the
//! command then reaches the campaign's actor on every node (the node that
//! served it directly, the others through a notice). An actor applies a
//! command at once, as [`CampaignState::apply`] says (one that does not
//! apply is ignored), and the lease holder then reads the stored state
//! ([`CampaignStore::state`]) and follows it: notices may come late, out
//! of order or not at all, the store does not. The holder also reads it
//! on every tick, so a pause, stop or resume stored through any node is
//! followed within a tick even without its notice, and every claim is
//! made only while the stored campaign is `running` (a claim refused
//! for that hands back the stored state, followed at once). Leaving
//! `running` withdraws the dialer's queued dials.
//!
//! The actor stores only what it alone observes: `completed` (nothing
//! left, while `running`) and `cancelled` (a stop drained). Those writes
//! are conditional ([`CampaignStore::set_state`]): `completed` lands only
//! over `running`, never over a pause or stop stored meanwhile; a write
//! that loses hands back the stored state, which the actor follows.
//!
//! * **Pause**: no new dials; live calls finish and their outcomes are
//!   recorded. **Resume**: dialling again from the next tick.
//! * **Stop**: no new dials; `stopping` until no call is live and nothing
//!   is waiting to be written, then `cancelled`, and the actor stops.
//! * **Completion**: while `running`, with no call live and nothing to
//!   write, when the store has no contact left in a non-final status the
//!   campaign is `completed` and the actor stops.
//! * A campaign loaded as `draft`, `completed` or `cancelled` has nothing
//!   to run: the actor stops at once.
//!
//! # Restarts
//!
//! A new incarnation (after a failure, or on another node) loads the state
//! and, before dialling or deciding that a stop has drained, takes over
//! what the last one left `in_progress` ([`CampaignStore::claimed`]):
//! calls still live count against its cap and are waited for, outcomes
//! that were never recorded are recorded, and claims that never became a
//! call are released. The dialer reports outcomes to the campaign's
//! current actor; one for a call this incarnation did not place is
//! recorded like any other.
//!
//! # Re-checks, withdrawals and drains
//!
//! Each live call is tagged placed (by this incarnation) or taken over.
//! Once one has been live [`CampaignConfig::recheck_every`], and at most
//! that often, `claimed` is read again and the live calls settled from
//! it: ended ones recorded (an event arriving later is not counted
//! again), never-placed ones released, ones no longer in progress
//! dropped. A lost event never holds a slot or a stop's drain for ever.
//!
//! On pause and stop the dialer is asked to withdraw the campaign's
//! queued dials ([`DialSink::withdraw`]); each comes back as
//! [`CampaignEvent::NotPlaced`] and its claim is released, attempt
//! unchanged. [`CampaignControl::Drain`] (the node is stopping) withdraws
//! too, gives the lease up at once, sees this incarnation's own calls and
//! writes through, and stops, leaving the stored state as it is.
//!
//! # Failures
//!
//! Every store and dialer call has a timeout ([`CampaignConfig::port_timeout`]).
//! A failed store call is counted and the store is left alone until the
//! next tick, which tries again; after [`CampaignConfig::max_store_failures`]
//! failures in a row the actor fails ([`CampaignActorError::StoreFailing`])
//! and its supervisor restarts it within its intensity limits. A dialer
//! failure never fails the actor: the contact is released and tried again.
//! Store calls are awaited inside the handler (the campaign is not on the
//! audio path); messages arriving meanwhile wait in the mailbox.
//!
//! [`CallingWindow::next_open`]: crate::schedule::window::CallingWindow::next_open
//! [`SEARCH_DAYS`]: crate::schedule::window::SEARCH_DAYS
//! [`next_step`]: crate::schedule::retry::next_step
//! [`CampaignState::apply`]: crate::campaign::CampaignState::apply

mod actor;
mod config;
mod jitter;
mod lease;
mod msg;
pub mod ports;
mod state;
mod steps;

#[cfg(test)]
pub(crate) mod tests;

pub use actor::{CampaignActor, CampaignArgs};
pub use config::{
    CampaignConfig, DEFAULT_BATCHES_PER_TICK, DEFAULT_MAX_STORE_FAILURES, DEFAULT_PORT_TIMEOUT,
    DEFAULT_RECHECK_EVERY, DEFAULT_REFUSAL_BACKOFF, DEFAULT_TICK, MIN_TICK,
};
pub use jitter::Jitter;
pub use msg::{CampaignControl, CampaignEvent, CampaignMsg, CampaignSnapshot};
pub use ports::{
    CampaignSettings, CampaignStore, Claim, ClaimedCall, ClaimedContact, DialRefused, DialRequest,
    DialSink, DueContact, GiveUpReason, StateWrite,
};
pub use state::{CampaignActorError, CampaignActorState};
