//! The call's telephony leg: placing it, learning its provider id,
//! progress events, timers, hanging up, and finishing the call.

use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::oneshot;

use super::children::timed;
use super::conversation::Input;
use super::lifecycle::{CallEvent, CallStatus, EndCause};
use super::msg::{CallMsg, CallReport, TimerKind};
use super::ports::CallPorts;
use super::state::CallState;
use super::store_writer::StoreOp;
use crate::ports::{
    CallStore, PlaceCall, PortError, ProviderCallId, TelephonyEvent, TelephonyPort,
};

/// What a call knows of its telephony leg.
#[derive(Default)]
pub(crate) struct LegState {
    /// The provider's id for the leg, once known.
    pub provider_id: Option<ProviderCallId>,
    /// Whether a provider leg may exist whose id we do not know: from the
    /// create-call request until its answer, and after an answer of
    /// unknown outcome until an event or the provider's call list tells.
    /// Meanwhile the call is never finished from our side.
    pub unknown: bool,
    /// A hang-up decided while `unknown`: carried out once the id is
    /// known.
    pub hangup_owed: bool,
    /// When the call was placed (what `find_call` searches from).
    pub placed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When a leg placed then is over for sure, whatever happened: ringing
    /// plus talk time limits (both sent to the provider) and a margin.
    pub gone_by: Option<std::time::Instant>,
    /// While a transfer request is out, the media socket closed or the
    /// provider said `completed` (a transfer closes our stream, maybe
    /// before its REST answer): the transfer's answer decides the outcome.
    pub ended_while_transferring: bool,
}

pub(super) fn dial<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>) {
    if !state.apply(CallEvent::Dial) {
        return;
    }
    let req = PlaceCall {
        call: state.key.call,
        to: state.cfg.to.clone(),
        from: state.cfg.from.clone(),
        ringing_timeout: state.cfg.ringing_timeout,
        max_duration: state.cfg.max_duration,
        machine_detection: state.cfg.machine_detection,
        media_token: state.cfg.media_token.clone(),
    };
    let telephony = state.ports.telephony.clone();
    let route = state.cfg.telephony.clone();
    let timeout = state.cfg.place_timeout;
    let me = myself.clone();
    state.leg.unknown = true;
    state.leg.placed_at = Some(state.utc());
    state.leg.gone_by = Some(
        state.now()
            + state.cfg.place_timeout
            + state.cfg.ringing_timeout
            + state.cfg.max_duration
            + LEG_MARGIN,
    );
    tokio::spawn(async move {
        // The client's own timeout fires first and says whether the
        // request went out; this one firing means nobody knows.
        let result = match tokio::time::timeout(timeout, telephony.place_call_on(&route, req)).await
        {
            Ok(result) => result,
            Err(_) => Err(PortError::Unknown(format!(
                "no answer to the create-call request in {timeout:?}"
            ))),
        };
        let _ = me.cast(CallMsg::Placed(result));
    });
    let ringing = state.cfg.ringing_timeout;
    state.set_timer(myself, TimerKind::Ringing, ringing);
}

/// Asks the provider to transfer the leg to `number` (a cold transfer),
/// in a task under the port timeout; the answer comes back as
/// [`CallMsg::Transferred`]. The leg is not hung up: it goes on to the
/// person.
pub(super) fn transfer<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    number: String,
) {
    let me = myself.clone();
    let Some(id) = state.leg.provider_id.clone() else {
        let _ = me.cast(CallMsg::Transferred(Err(PortError::Rejected(
            "the leg's provider id is not known".into(),
        ))));
        return;
    };
    tracing::info!(call.id = %state.key.call, "transferring the call to a person");
    let telephony = state.ports.telephony.clone();
    let store = state.ports.store.clone();
    let (key, at) = (state.key, state.utc());
    let timeout = state.cfg.port_timeout;
    let from = state.cfg.from.clone();
    tokio::spawn(async move {
        // Durable before the provider is asked: if this process dies
        // between the provider's acceptance and our record of it, the
        // reconciler knows the leg it finds is the person's, not an orphan
        // to hang up. No mark, no transfer (the agent carries on).
        let marked = timed(
            timeout,
            "recording the transfer",
            store.transfer_requested(key, at),
        )
        .await;
        let result = match marked {
            Ok(()) => {
                timed(
                    timeout,
                    "transferring",
                    telephony.transfer(id, &number, &from),
                )
                .await
            }
            // Never asked of the provider: a failure for sure, whatever
            // kept the mark from being stored.
            Err(e) => Err(PortError::Unavailable(format!(
                "the transfer could not be recorded: {e}"
            ))),
        };
        let _ = me.cast(CallMsg::Transferred(result));
    });
}

/// The provider answered the transfer request. Accepted: the call is
/// over for us (`transferred`: children and media end, the turns so far
/// are stored) while the provider's leg goes on to the person; never hung
/// up. Refused: the agent apologises and goes on; if our stream or the
/// leg already ended meanwhile, the call is over as completed. No answer
/// (the request went out, its outcome is unknown): the provider may be
/// carrying it out, and Vonage and Twilio end our media stream as they
/// do; so our stream ended (now or within [`TimerKind::TransferSettle`])
/// means transferred, else the transfer failed. Either way the leg is
/// never hung up on the strength of a lost answer.
pub(super) async fn transferred<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    result: Result<(), PortError>,
) {
    if !state.conv.transferring() {
        return;
    }
    let stream_ended = state.leg.ended_while_transferring || state.media_out.is_none();
    let result = match result {
        Err(PortError::Timeout(why) | PortError::Unknown(why)) => {
            if stream_ended {
                tracing::info!(call.id = %state.key.call, why, "the transfer's answer was lost; our stream ended: transferred");
                Ok(())
            } else {
                // Armed, it says the transfer is unsettled: our stream
                // ending settles it as transferred, its firing as failed.
                tracing::warn!(call.id = %state.key.call, why, "the transfer's answer was lost; waiting for our stream to end");
                let settle = state.cfg.port_timeout;
                state.set_timer(myself, TimerKind::TransferSettle, settle);
                return;
            }
        }
        other => other,
    };
    state.cancel_timer(TimerKind::TransferSettle);
    match result {
        Ok(()) => {
            metrics::counter!(crate::metrics::TRANSFERS, "result" => "accepted").increment(1);
            state.apply(CallEvent::Hangup(EndCause::Transferred));
            finish(myself, state, EndCause::Transferred).await;
        }
        Err(e) => {
            metrics::counter!(crate::metrics::TRANSFERS, "result" => "failed").increment(1);
            tracing::warn!(call.id = %state.key.call, error = %e, "transfer failed");
            if stream_ended {
                finish(myself, state, EndCause::Completed).await;
            } else {
                state.drive(myself, Input::TransferFailed(e.to_string()));
            }
        }
    }
}

/// Our media stream ended or the provider said `completed` while a
/// transfer is out: the transfer's answer decides, or has already been
/// lost, and then this settles it as transferred.
pub(super) async fn ended_while_transferring<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
) {
    state.leg.ended_while_transferring = true;
    if state.timer_armed(TimerKind::TransferSettle) {
        transferred(myself, state, Err(PortError::Unknown("answer lost".into()))).await;
    }
}

/// Margin past a leg's own limits after which it is surely gone.
const LEG_MARGIN: Duration = Duration::from_secs(60);

/// The provider's id of our leg is known (create-call answer, a webhook
/// event, the provider's call list). The first one wins; a hang-up decided
/// while it was unknown is carried out now.
pub(super) fn adopt_leg<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    id: ProviderCallId,
) {
    if state.leg.provider_id.is_some() {
        return;
    }
    state.leg.unknown = false;
    state.cancel_timer(TimerKind::ResolvePlacement);
    state.leg.provider_id = Some(id.clone());
    state.record(StoreOp::ProviderId(id.clone()));
    if state.leg.hangup_owed {
        state.leg.hangup_owed = false;
        hang_up_leg(myself, state, id);
    }
}

/// No event told the id of a leg placed with an unknown outcome: ask the
/// provider's call list, in a task, under the port timeout.
fn resolve_placement<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>) {
    if state.leg.provider_id.is_some() || !state.leg.unknown {
        return;
    }
    let telephony = state.ports.telephony.clone();
    let timeout = state.cfg.port_timeout;
    let (call, to) = (state.key.call, state.cfg.to.clone());
    let since = state.leg.placed_at.unwrap_or_else(|| state.utc());
    let me = myself.clone();
    tokio::spawn(async move {
        let result = timed(
            timeout,
            "finding the call",
            telephony.find_call(call, &to, since),
        )
        .await;
        let _ = me.cast(CallMsg::Resolved(result));
    });
}

/// The provider's call list answered. A leg found is adopted (and hung up
/// if the call is already ending); none found means the create-call did
/// not take: the call failed. A failed look-up is asked again later, until
/// any leg placed then would be over by its own limits.
pub(super) async fn resolved<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    result: Result<Option<ProviderCallId>, PortError>,
) {
    if state.leg.provider_id.is_some() || !state.leg.unknown {
        return;
    }
    match result {
        Ok(Some(id)) => adopt_leg(myself, state, id),
        Ok(None) => {
            state.leg.unknown = false;
            let why = "not placed: the provider has no leg for this call";
            finish(myself, state, EndCause::Failed(why.into())).await;
        }
        Err(e) => {
            tracing::warn!(call.id = %state.key.call, error = %e, "finding the call failed");
            if state.leg.gone_by.is_some_and(|t| state.now() >= t) {
                state.leg.unknown = false;
                let why = format!("not placed: placement never resolved ({e})");
                finish(myself, state, EndCause::Failed(why)).await;
            } else {
                let after = state.cfg.resolve_timeout;
                state.set_timer(myself, TimerKind::ResolvePlacement, after);
            }
        }
    }
}

/// Tells the provider to hang up our leg (in a task); the provider's
/// `completed` (or the socket closing) finishes the call, and if neither
/// comes, a fallback timer does.
fn hang_up_leg<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    id: ProviderCallId,
) {
    let telephony = state.ports.telephony.clone();
    let timeout = state.cfg.port_timeout;
    tokio::spawn(async move {
        if let Err(e) = timed(timeout, "hanging up", telephony.hang_up(id)).await {
            tracing::warn!(error = %e, "hang-up failed");
        }
    });
    myself.send_after(state.cfg.port_timeout * 2, || CallMsg::MediaClosed);
}

pub(super) async fn telephony<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    event: TelephonyEvent,
) {
    match event {
        TelephonyEvent::Ringing => {
            state.apply(CallEvent::Ringing);
        }
        TelephonyEvent::Answered => answered(myself, state),
        TelephonyEvent::Human => {}
        TelephonyEvent::Machine => {
            // The provider's detection is authoritative while the call is
            // live, even when the verdict comes after media is up and the
            // machine's own greeting was taken for the callee speaking
            // (asynchronous detection takes seconds).
            if state.apply(CallEvent::MachineDetected) || state.lifecycle.machine_after_answer() {
                on_machine(myself, state);
            }
        }
        TelephonyEvent::Busy => finish(myself, state, EndCause::Busy).await,
        TelephonyEvent::NoAnswer => finish(myself, state, EndCause::NoAnswer).await,
        TelephonyEvent::Rejected => finish(myself, state, EndCause::Rejected).await,
        TelephonyEvent::Failed(why) => finish(myself, state, EndCause::Failed(why)).await,
        TelephonyEvent::Cancelled => finish(myself, state, EndCause::Cancelled).await,
        TelephonyEvent::Completed if state.conv.transferring() => {
            ended_while_transferring(myself, state).await;
        }
        TelephonyEvent::Completed => {
            // Webhooks can arrive out of order: a `completed` before any
            // answer usually trails a busy / timeout / rejected that is
            // still on its way. Give it a moment before calling the call
            // failed.
            let unanswered = state.lifecycle.status() < CallStatus::Answered
                && state.lifecycle.cause().is_none();
            if unanswered {
                state.set_timer(myself, TimerKind::CompletedUnanswered, COMPLETED_GRACE);
            } else {
                finish(myself, state, EndCause::Completed).await
            }
        }
    }
}

/// How long a `completed` before any answer waits for the status that
/// says why (webhooks are not ordered).
pub const COMPLETED_GRACE: Duration = Duration::from_secs(2);

pub(super) fn answered<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>) {
    state.apply(CallEvent::Answered);
    state.cancel_timer(TimerKind::Ringing);
    if !state.max_duration_set {
        state.max_duration_set = true;
        let max = state.cfg.max_duration;
        state.set_timer(myself, TimerKind::MaxDuration, max);
    }
}

pub(super) fn on_machine<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>) {
    use super::config::MachineAction;
    match (
        state.cfg.machine_action,
        state.cfg.voicemail_message.clone(),
    ) {
        (MachineAction::LeaveMessage, Some(message)) => {
            if state.media_out.is_some() {
                let then = Some(EndCause::Machine);
                state.drive(
                    myself,
                    Input::Say {
                        text: message,
                        then,
                    },
                );
            } else {
                state.voicemail_pending = true;
            }
        }
        _ => state.drive(myself, Input::EndWhenFree(EndCause::Machine)),
    }
}

/// The node stops: a call with a callee on the line is told why (the
/// shutdown line, like the apology: barge in on ourselves, speak, hang up
/// once it played or [`SHUTDOWN_GRACE`] passed); one not yet answered, or
/// without media to speak on, is hung up at once. A call already ending
/// (goodbye or apology playing, hang-up sent) goes on ending as it was.
/// A machine keeps its `Machine` verdict (the first cause wins).
///
/// [`SHUTDOWN_GRACE`]: super::config::SHUTDOWN_GRACE
pub(super) async fn shutdown<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>) {
    let status = state.lifecycle.status();
    if status >= CallStatus::Ending || state.conv.leaving() {
        return;
    }
    let speaks =
        status >= CallStatus::Answered && state.media_out.is_some() && state.tts.actor.is_some();
    if !speaks {
        hang_up(myself, state, EndCause::Interrupted).await;
        return;
    }
    let input = Input::Leave {
        text: state.cfg.shutdown_text.clone(),
        then: EndCause::Interrupted,
        within: super::config::SHUTDOWN_GRACE,
        cause: EndCause::Interrupted,
    };
    state.drive(myself, input);
}

pub(super) async fn timer<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    kind: TimerKind,
) {
    match kind {
        TimerKind::Ringing => {
            if state.lifecycle.status() < CallStatus::Answered {
                hang_up(myself, state, EndCause::NoAnswer).await;
            }
        }
        TimerKind::MaxDuration => {
            let input = Input::Leave {
                text: state.cfg.goodbye_text.clone(),
                then: EndCause::Timeout,
                within: super::config::DEFAULT_APOLOGY_GRACE,
                cause: EndCause::Timeout,
            };
            state.drive(myself, input);
        }
        TimerKind::NoInput | TimerKind::DoNotCallStored | TimerKind::ApologyDone => {
            if kind == TimerKind::DoNotCallStored && state.conv.awaiting_do_not_call() {
                tracing::warn!(call.id = %state.key.call, "do-not-call not stored in time; ending the call");
            }
            state.drive(myself, Input::Timer(kind));
        }
        TimerKind::ResolvePlacement => resolve_placement(myself, state),
        TimerKind::TransferSettle => {
            let why = "no answer to the transfer request and our stream still up";
            transferred(myself, state, Err(PortError::Rejected(why.into()))).await;
        }
        TimerKind::CompletedUnanswered => finish(myself, state, EndCause::Completed).await,
    }
}

/// Ends the call from our side: stop talking, tell the provider.
pub(super) async fn hang_up<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    cause: EndCause,
) {
    if state.lifecycle.status() == CallStatus::Queued {
        finish(myself, state, cause).await;
        return;
    }
    state.drive(myself, Input::Stop);
    if !state.apply(CallEvent::Hangup(cause.clone())) {
        return;
    }
    match state.leg.provider_id.clone() {
        Some(id) => hang_up_leg(myself, state, id),
        // A leg may be up and we cannot name it yet: hang it up once its
        // id is known (never call the call over while it may ring).
        None if state.leg.unknown => state.leg.hangup_owed = true,
        None => finish(myself, state, cause).await,
    }
}

/// The call is over: record everything, stop the children, report, stop.
pub(super) async fn finish<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    cause: EndCause,
) {
    if state.finished {
        return;
    }
    state.drive(myself, Input::Stop);
    let provider_cause = match cause {
        EndCause::Completed => None,
        other => Some(other),
    };
    state.lifecycle.apply(CallEvent::Ended(provider_cause));
    state.finished = true;
    state.ended_at = Some(state.now());
    let cause = match state.lifecycle.cause().cloned() {
        None | Some(EndCause::Completed) if state.conv.declined() => EndCause::Rejected,
        cause => cause.unwrap_or(EndCause::Completed),
    };
    myself.stop_children(Some("call finished".into()));
    state.media_out = None;
    let at = state.utc();
    state.record(StoreOp::Status(CallStatus::Finished.as_str(), at));
    let (done, wait) = oneshot::channel();
    state.record(StoreOp::Finish {
        outcome: cause.outcome().to_string(),
        reason: end_reason(&cause),
        at,
        done,
    });
    let _ = tokio::time::timeout(state.cfg.port_timeout * 2, wait).await;
    tracing::info!(call.id = %state.key.call, outcome = cause.outcome(), turns = state.conv.turns(), "call finished");
    metrics::counter!(crate::metrics::CALLS, "outcome" => cause.outcome()).increment(1);
    (state.report)(CallReport {
        key: state.key,
        cause,
        callback_at: state.conv.callback_at(),
        do_not_call: state.conv.do_not_call(),
        turns: state.conv.turns(),
    });
    myself.stop(Some("finished".into()));
}

fn end_reason(cause: &EndCause) -> String {
    match cause {
        EndCause::Failed(why) | EndCause::ProviderError(why) => why.clone(),
        other => other.outcome().replace('_', " "),
    }
}
