//! Media attachment and the children's supervision: starting each child
//! over its provider chain, restarts with backoff, escalation.

use ractor::{Actor, ActorRef};

use super::children::llm::{LlmActor, LlmArgs};
use super::children::stt::{SttActor, SttArgs};
use super::children::tts::{TtsActor, TtsArgs};
use super::conversation::Input;
use super::leg::{answered, on_machine};
use super::lifecycle::{CallEvent, CallStatus, EndCause};
use super::msg::{CallMsg, ChildKind, MediaInbound, MediaSession};
use super::ports::CallPorts;
use super::router;
use super::state::CallState;
use crate::media::{Vad, VadConfig};
use crate::ports::{SttConfig, TtsRequest};
use crate::supervision::RestartDecision;

pub(super) async fn attach_media<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    session: MediaSession,
) {
    if state.media_out.is_some() || state.lifecycle.status() >= CallStatus::Ending {
        return; // A second socket for the same call is refused by dropping it.
    }
    state.media_out = Some(session.outbound);
    let vad = Vad::new(
        VadConfig {
            min_speech: state.cfg.barge_in_min_speech,
            hangover: state.cfg.vad_hangover,
            ..VadConfig::default()
        },
        state.cfg.sample_rate,
    );
    let audio = router::CallerAudio::new(state.slot.subscribe(), myself.clone(), vad);
    let MediaInbound::Inline(reply) = session.inbound;
    // A socket already gone drops it, which reports the media closed.
    let _ = reply.send(audio);
    for kind in [ChildKind::Stt, ChildKind::Llm, ChildKind::Tts] {
        start_child(myself, state, kind).await;
    }
    // The socket only connects once the callee answered, whatever order
    // the webhooks arrive in.
    answered(myself, state);
    if state.voicemail_pending || state.lifecycle.status() == CallStatus::Machine {
        state.voicemail_pending = false;
        on_machine(myself, state);
        return;
    }
    state.apply(CallEvent::ConversationStarted);
    let text = state.cfg.greeting.clone();
    state.drive(myself, Input::Say { text, then: None });
}

pub(super) async fn start_child<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    kind: ChildKind,
) {
    if state.finished || state.media_out.is_none() {
        return;
    }
    let timeout = state.cfg.port_timeout;
    let supervisor = myself.get_cell();
    let spawned = match kind {
        ChildKind::Stt => {
            if state.stt.actor.is_some() {
                return;
            }
            state.stt.generation += 1;
            let args = SttArgs {
                provider: state.ports.stt[state.stt.chain.current()].clone(),
                config: SttConfig {
                    language: state.cfg.language.clone(),
                    sample_rate: state.cfg.sample_rate,
                },
                parent: myself.clone(),
                generation: state.stt.generation,
                slot: state.slot.clone(),
                timeout,
            };
            Actor::spawn_linked(None, SttActor::<P::Stt>::new(), args, supervisor)
                .await
                .map(|(actor, _)| state.stt.actor = Some(actor))
        }
        ChildKind::Llm => {
            if state.llm.actor.is_some() {
                return;
            }
            state.llm.generation += 1;
            let args = LlmArgs {
                provider: state.ports.llm[state.llm.chain.current()].clone(),
                parent: myself.clone(),
                generation: state.llm.generation,
                timeout,
            };
            Actor::spawn_linked(None, LlmActor::<P::Llm>::new(), args, supervisor)
                .await
                .map(|(actor, _)| state.llm.actor = Some(actor))
        }
        ChildKind::Tts => {
            if state.tts.actor.is_some() {
                return;
            }
            state.tts.generation += 1;
            let args = TtsArgs {
                provider: state.ports.tts[state.tts.chain.current()].clone(),
                parent: myself.clone(),
                generation: state.tts.generation,
                timeout,
                audio: state.tts_tx.clone(),
                template: TtsRequest {
                    text: String::new(),
                    voice: state.cfg.voice.clone(),
                    language: state.cfg.language.clone(),
                    sample_rate: state.cfg.sample_rate,
                },
            };
            Actor::spawn_linked(None, TtsActor::<P::Tts>::new(), args, supervisor)
                .await
                .map(|(actor, _)| state.tts.actor = Some(actor))
        }
    };
    match spawned {
        Ok(()) => state.drive(myself, Input::ChildStarted(kind)),
        Err(e) => {
            tracing::warn!(call.id = %state.key.call, child = ?kind, error = %e, "call child did not start");
            Box::pin(child_failed(myself, state, kind)).await;
        }
    }
}

pub(super) async fn child_failed<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    kind: ChildKind,
) {
    let now = state.now();
    let child_tracker = match kind {
        ChildKind::Stt => {
            state.stt.chain.on_failure();
            &mut state.stt.tracker
        }
        ChildKind::Llm => {
            state.llm.chain.on_failure();
            &mut state.llm.tracker
        }
        ChildKind::Tts => {
            state.tts.chain.on_failure();
            &mut state.tts.tracker
        }
    };
    let child = match kind {
        ChildKind::Stt => "stt",
        ChildKind::Llm => "llm",
        ChildKind::Tts => "tts",
    };
    metrics::counter!(crate::metrics::CALL_CHILD_FAILURES, "child" => child).increment(1);
    match child_tracker.on_failure(now) {
        RestartDecision::Restart { after } => {
            metrics::counter!(crate::metrics::ACTOR_RESTARTS, "actor" => child).increment(1);
            myself.send_after(after, move || CallMsg::Restart(kind));
        }
        RestartDecision::Escalate => {
            tracing::warn!(call.id = %state.key.call, child = ?kind, "restart intensity exceeded; ending the call");
            escalate(myself, state, kind);
        }
    }
}

/// A child failed too often: apologise if we still can, then hang up.
fn escalate<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>, kind: ChildKind) {
    let cause = EndCause::ProviderError(format!("{kind:?} failed beyond its restart limit"));
    if kind != ChildKind::Tts && state.tts.actor.is_some() && state.media_out.is_some() {
        let input = Input::Leave {
            text: state.cfg.apology_text.clone(),
            then: cause,
            within: super::config::DEFAULT_APOLOGY_GRACE,
            cause: EndCause::ProviderError(format!("{kind:?} failed")),
        };
        state.drive(myself, input);
    } else {
        state.drive(myself, Input::Stop);
        state.drive(myself, Input::EndWhenFree(cause));
    }
}
