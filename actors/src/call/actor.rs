//! The CallActor: owns one call's state (lifecycle, leg, conversation
//! core, media handles) and supervises its STT, LLM and TTS children. It is never
//! restarted and always finalised: whatever happens, the call ends with a
//! recorded outcome and a report.

use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, watch};

use super::children::tts::TTS_AUDIO_CAPACITY;
use super::config::CallConfig;
use super::conversation::{Conversation, Input};
use super::leg::{
    LegState, adopt_leg, dial, ended_while_transferring, finish, hang_up, resolved, shutdown,
    telephony, timer, transferred,
};
use super::lifecycle::{EndCause, Lifecycle};
use super::msg::{CallMsg, ChildKind, ReportSink, TimerKind};
use super::ports::{CallPorts, Ports};
use super::state::{CallState, Child, Timers};
use super::store_writer;
use super::supervise::{attach_media, child_failed, start_child};
use crate::ports::{CallKey, PortError};

/// The actor (state lives in [`CallState`]).
pub struct CallActor<P>(PhantomData<fn() -> P>);

impl<P> CallActor<P> {
    /// The actor value to spawn.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<P> Default for CallActor<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// What a CallActor starts from.
pub struct CallArgs<P: CallPorts> {
    /// Who the call belongs to.
    pub key: CallKey,
    /// Its settings.
    pub config: CallConfig,
    /// Its ports.
    pub ports: Ports<P>,
    /// Told once, when the call is over.
    pub report: ReportSink,
}

/// One supervised child.
impl<P: CallPorts> Actor for CallActor<P> {
    type Msg = CallMsg;
    type State = CallState<P>;
    type Arguments = CallArgs<P>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let cfg = args.config;
        let started_at = crate::ports::Clock::now(args.ports.clock.as_ref());
        let (tts_tx, tts_rx) = mpsc::channel(TTS_AUDIO_CAPACITY);
        let (slot, _) = watch::channel(None);
        // The writer confirms each stored callee request by message (the
        // do-not-call acknowledgement waits on it; never on the store).
        let me = myself.clone();
        let store = store_writer::spawn(
            args.ports.store.clone(),
            args.key,
            cfg.port_timeout,
            move |request| {
                let _ = me.cast(CallMsg::RequestStored(request));
            },
        );
        // Live watchers name the call as people do from its first moment
        // (the number masked here: the whole one never leaves the actor).
        store.live(crate::ports::LiveNote::Call {
            campaign_name: cfg.campaign_name.clone(),
            number: crate::mask::mask_phone(&cfg.to),
        });
        Ok(CallState {
            key: args.key,
            stt: Child::new(&cfg, args.ports.stt.len()),
            llm: Child::new(&cfg, args.ports.llm.len()),
            tts: Child::new(&cfg, args.ports.tts.len()),
            conv: Conversation::new(cfg.clone()),
            cfg,
            ports: args.ports,
            report: args.report,
            lifecycle: Lifecycle::new(),
            leg: LegState::default(),
            store,
            media_out: None,
            slot: Arc::new(slot),
            tts_tx,
            tts_rx,
            timers: Timers::default(),
            voicemail_pending: false,
            hangup_next: None,
            max_duration_set: false,
            messages: 0,
            finished: false,
            started_at,
            answered_at: None,
            ended_at: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.messages += 1;
        if state.finished {
            if let CallMsg::Snapshot(reply) = message {
                let _ = reply.send(state.snapshot());
            }
            return Ok(());
        }
        match message {
            CallMsg::Dial => dial(&myself, state),
            CallMsg::Placed(Ok(id)) => adopt_leg(&myself, state, id),
            CallMsg::Placed(Err(PortError::Unknown(why))) => {
                // Not a failure: the leg may ring. Redialling now could
                // call the callee twice; learn the leg's id instead.
                tracing::warn!(call.id = %state.key.call, why, "create-call outcome unknown; resolving");
                let after = state.cfg.resolve_timeout;
                state.set_timer(&myself, TimerKind::ResolvePlacement, after);
            }
            CallMsg::Placed(Err(e)) => {
                state.leg.unknown = false;
                finish(&myself, state, EndCause::Failed(e.to_string())).await;
            }
            CallMsg::ProviderId(id) => adopt_leg(&myself, state, id),
            CallMsg::Resolved(result) => resolved(&myself, state, result).await,
            CallMsg::Transferred(result) => transferred(&myself, state, result).await,
            CallMsg::Telephony(event) => telephony(&myself, state, event).await,
            CallMsg::AttachMedia(session) => attach_media(&myself, state, session).await,
            CallMsg::Hangup(cause) => hang_up(&myself, state, cause).await,
            CallMsg::Shutdown => shutdown(&myself, state).await,
            CallMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            CallMsg::Stt { generation, event } => {
                if generation == state.stt.generation {
                    state.drive(&myself, Input::Stt(event));
                }
            }
            CallMsg::Llm {
                generation,
                turn,
                event,
            } => {
                if generation == state.llm.generation {
                    state.drive(&myself, Input::Llm { turn, event });
                }
            }
            // Audio waits in the TTS channel; `drive` feeds it to the
            // conversation while it wants audio.
            CallMsg::TtsReady => state.drive(&myself, Input::Tick),
            CallMsg::TtsDone { generation, .. } => {
                // The segment's end comes through the audio channel, after
                // its audio.
                if generation == state.tts.generation {
                    state.drive(&myself, Input::Tick);
                }
            }
            CallMsg::Restart(kind) => start_child(&myself, state, kind).await,
            CallMsg::RequestStored(request) => state.drive(&myself, Input::RequestStored(request)),
            CallMsg::CallerSpeech => state.drive(&myself, Input::CallerSpeech),
            CallMsg::CallerSilent { silent_for } => {
                // The VAD's end of speech: its hangover (as configured)
                // of quiet audio ago.
                let now = state.now();
                let speech_end = now.checked_sub(silent_for).unwrap_or(now);
                state.drive(&myself, Input::CallerSilent { speech_end });
            }
            CallMsg::Dtmf(digit) => {
                tracing::debug!(call.id = %state.key.call, %digit, "keypad digit");
            }
            CallMsg::MarkPlayed(mark) => {
                tracing::trace!(call.id = %state.key.call, mark, "the provider played up to a mark");
                state.drive(&myself, Input::MarkPlayed(mark));
            }
            CallMsg::MediaClosed => {
                state.media_out = None;
                if state.conv.transferring() {
                    // A transfer ends our stream: its answer decides.
                    ended_while_transferring(&myself, state).await;
                } else {
                    finish(&myself, state, EndCause::Completed).await;
                }
            }
            CallMsg::Tick => {
                state.timers.tick_at = None;
                state.drive(&myself, Input::Tick);
            }
            CallMsg::Timer(kind, token) => {
                if state.timer_is_live(kind, token) {
                    timer(&myself, state, kind).await;
                }
            }
        }
        if !state.finished
            && let Some(cause) = state.hangup_next.take()
        {
            hang_up(&myself, state, cause).await;
        }
        if !state.finished
            && let Some(cause) = state.conv.take_hangup()
        {
            hang_up(&myself, state, cause).await;
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Never ractor's default (which would stop this call with any
        // child): a failed child is restarted, or the call ends politely.
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        if state.finished {
            return Ok(());
        }
        let id = cell.get_id();
        let kind = if state.stt.actor.as_ref().is_some_and(|a| a.get_id() == id) {
            state.stt.actor = None;
            ChildKind::Stt
        } else if state.llm.actor.as_ref().is_some_and(|a| a.get_id() == id) {
            state.llm.actor = None;
            ChildKind::Llm
        } else if state.tts.actor.as_ref().is_some_and(|a| a.get_id() == id) {
            state.tts.actor = None;
            ChildKind::Tts
        } else {
            return Ok(());
        };
        tracing::warn!(call.id = %state.key.call, child = ?kind, error = %why, "call child failed");
        child_failed(&myself, state, kind).await;
        Ok(())
    }
}
