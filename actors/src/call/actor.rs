//! The CallActor: owns one call's state (lifecycle, conversation history,
//! playout) and supervises its STT, LLM and TTS children. It is never
//! restarted and always finalised: whatever happens, the call ends with a
//! recorded outcome and a report.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::agent::{AgentTurn, UserTurn};
use super::children::llm::{LlmActor, LlmArgs, LlmChildMsg};
use super::children::stt::{AudioSlot, SttActor, SttArgs, SttChildMsg};
use super::children::timed;
use super::children::tts::{TTS_AUDIO_CAPACITY, TtsActor, TtsArgs, TtsChildMsg, TtsChunk};
use super::config::CallConfig;
use super::lifecycle::{CallEvent, CallStatus, EndCause, Lifecycle, Step};
use super::msg::{
    CallArgs, CallMsg, CallPorts, CallReport, CallSnapshot, ChildKind, ChildSnapshot, Ports,
    ReportSink, TimerKind,
};
use super::router;
use super::store_writer::{self, StoreOp};
use crate::media::{Playout, PlayoutConfig, Vad, VadConfig};
use crate::ports::{
    CallKey, ChatMessage, Clock, MediaOut, PlaceCall, ProviderCallId, Role, SttConfig,
    TelephonyEvent, TelephonyPort, TtsRequest,
};
use crate::supervision::{ProviderChain, RestartDecision, RestartTracker};

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

/// One supervised child.
pub(crate) struct Child<M: ractor::Message> {
    /// Its ref while running.
    pub actor: Option<ActorRef<M>>,
    /// Bumped at every (re)start; events of older generations are stale.
    pub generation: u64,
    /// Failure history.
    pub tracker: RestartTracker,
    /// Providers, by index into the port vector.
    pub chain: ProviderChain<usize>,
}

impl<M: ractor::Message> Child<M> {
    fn new(cfg: &CallConfig, providers: usize) -> Self {
        Self {
            actor: None,
            generation: 0,
            tracker: RestartTracker::new(cfg.restart),
            chain: ProviderChain::new((0..providers).collect(), cfg.switch_after)
                .unwrap_or_else(|| ProviderChain::single(0)),
        }
    }

    pub(crate) fn cast(&self, msg: M) {
        if let Some(actor) = &self.actor {
            let _ = actor.cast(msg);
        }
    }

    fn snapshot(&self, kind: ChildKind) -> ChildSnapshot {
        ChildSnapshot {
            kind,
            provider: self.chain.position(),
            restarts: self.tracker.total_restarts(),
            running: self.actor.is_some(),
        }
    }
}

/// Aborts a task when dropped, so a call that stops (or crashes) never
/// leaves its audio router behind holding the media socket.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything one call owns.
pub struct CallState<P: CallPorts> {
    pub(crate) key: CallKey,
    pub(crate) cfg: CallConfig,
    pub(crate) ports: Ports<P>,
    report: ReportSink,
    pub(crate) lifecycle: Lifecycle,
    provider_call: Option<ProviderCallId>,
    /// The conversation as the LLM sees it (agent turns as heard).
    pub(crate) history: Vec<ChatMessage>,
    pub(crate) next_seq: i32,
    pub(crate) turns: u32,
    pub(crate) store: mpsc::UnboundedSender<StoreOp>,
    pub(crate) media_out: Option<mpsc::Sender<MediaOut>>,
    router: Option<AbortOnDrop>,
    slot: Arc<AudioSlot>,
    pub(crate) stt: Child<SttChildMsg>,
    pub(crate) llm: Child<LlmChildMsg>,
    pub(crate) tts: Child<TtsChildMsg>,
    tts_tx: mpsc::Sender<TtsChunk>,
    pub(crate) tts_rx: mpsc::Receiver<TtsChunk>,
    pub(crate) playout: Playout,
    pub(crate) next_segment: u64,
    pub(crate) next_turn: u64,
    pub(crate) agent: Option<AgentTurn>,
    pub(crate) user: UserTurn,
    pub(crate) caller_speaking: bool,
    pub(crate) reprompts: u32,
    timers: HashMap<TimerKind, u64>,
    next_token: u64,
    tick_at: Option<Instant>,
    pub(crate) callback_at: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) do_not_call: bool,
    /// The LLM ended the call as declined (not interested, wrong number):
    /// the verdict stands even if the callee hangs up first.
    pub(crate) declined: bool,
    /// Leave the voicemail message once media is up.
    voicemail_pending: bool,
    /// A hang-up decided in synchronous code, carried out at the end of
    /// the current message.
    pub(crate) pending_hangup: Option<EndCause>,
    /// Why the call ends once the apology or goodbye has had its time.
    pub(crate) escalation: Option<EndCause>,
    max_duration_set: bool,
    messages: u64,
    finished: bool,
}

impl<P: CallPorts> CallState<P> {
    pub(crate) fn now(&self) -> Instant {
        self.ports.clock.now()
    }

    pub(crate) fn utc(&self) -> chrono::DateTime<chrono::Utc> {
        self.ports.clock.utc()
    }

    pub(crate) fn record(&self, op: StoreOp) {
        let _ = self.store.send(op);
    }

    fn apply(&mut self, event: CallEvent) -> bool {
        match self.lifecycle.apply(event) {
            Step::Moved(status) => {
                let at = self.utc();
                self.record(StoreOp::Status(status.as_str(), at));
                tracing::debug!(call.id = %self.key.call, status = status.as_str(), "call status");
                true
            }
            Step::Ignored => false,
        }
    }

    /// Sets a timer; an earlier one of the same kind is forgotten.
    pub(crate) fn set_timer(
        &mut self,
        myself: &ActorRef<CallMsg>,
        kind: TimerKind,
        after: Duration,
    ) {
        self.next_token += 1;
        let token = self.next_token;
        self.timers.insert(kind, token);
        myself.send_after(after, move || CallMsg::Timer(kind, token));
    }

    pub(crate) fn cancel_timer(&mut self, kind: TimerKind) {
        self.timers.remove(&kind);
    }

    fn timer_is_live(&mut self, kind: TimerKind, token: u64) -> bool {
        if self.timers.get(&kind) == Some(&token) {
            self.timers.remove(&kind);
            true
        } else {
            false
        }
    }

    /// Makes sure a tick comes at `at` (or earlier).
    pub(crate) fn schedule_tick(&mut self, myself: &ActorRef<CallMsg>, at: Instant) {
        let now = self.now();
        if self.tick_at.is_some_and(|t| t <= at && t >= now) {
            return;
        }
        self.tick_at = Some(at);
        myself.send_after(at.saturating_duration_since(now), || CallMsg::Tick);
    }

    pub(crate) fn send_media(&self, item: MediaOut) -> bool {
        match &self.media_out {
            Some(tx) => tx.try_send(item).is_ok(),
            None => false,
        }
    }

    fn take_pending_hangup(&mut self) -> Option<EndCause> {
        if self.finished {
            return None;
        }
        self.pending_hangup.take()
    }

    fn snapshot(&self) -> CallSnapshot {
        CallSnapshot {
            key: self.key,
            status: self.lifecycle.status(),
            turns: self.turns,
            agent_speaking: self.agent.is_some(),
            children: vec![
                self.stt.snapshot(ChildKind::Stt),
                self.llm.snapshot(ChildKind::Llm),
                self.tts.snapshot(ChildKind::Tts),
            ],
            messages: self.messages,
        }
    }
}

impl<P: CallPorts> Actor for CallActor<P> {
    type Msg = CallMsg;
    type State = CallState<P>;
    type Arguments = CallArgs<P>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let cfg = args.config;
        let (tts_tx, tts_rx) = mpsc::channel(TTS_AUDIO_CAPACITY);
        let (slot, _) = watch::channel(None);
        let store = store_writer::spawn(args.ports.store.clone(), args.key, cfg.port_timeout);
        let history = vec![ChatMessage {
            role: Role::System,
            content: cfg.system_prompt.clone(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }];
        Ok(CallState {
            key: args.key,
            stt: Child::new(&cfg, args.ports.stt.len()),
            llm: Child::new(&cfg, args.ports.llm.len()),
            tts: Child::new(&cfg, args.ports.tts.len()),
            playout: Playout::new(PlayoutConfig::new(cfg.sample_rate)),
            cfg,
            ports: args.ports,
            report: args.report,
            lifecycle: Lifecycle::new(),
            provider_call: None,
            history,
            next_seq: 0,
            turns: 0,
            store,
            media_out: None,
            router: None,
            slot: Arc::new(slot),
            tts_tx,
            tts_rx,
            next_segment: 0,
            next_turn: 0,
            agent: None,
            user: UserTurn::default(),
            caller_speaking: false,
            reprompts: 0,
            timers: HashMap::new(),
            next_token: 0,
            tick_at: None,
            callback_at: None,
            do_not_call: false,
            declined: false,
            voicemail_pending: false,
            pending_hangup: None,
            escalation: None,
            max_duration_set: false,
            messages: 0,
            finished: false,
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
            CallMsg::Placed(Ok(id)) => {
                state.provider_call = Some(id.clone());
                state.record(StoreOp::ProviderId(id));
            }
            CallMsg::Placed(Err(e)) => {
                finish(&myself, state, EndCause::Failed(e.to_string())).await;
            }
            CallMsg::Telephony(event) => telephony(&myself, state, event).await,
            CallMsg::AttachMedia(session) => attach_media(&myself, state, session).await,
            CallMsg::Hangup(cause) => hang_up(&myself, state, cause).await,
            CallMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            CallMsg::Stt { generation, event } => {
                if generation == state.stt.generation {
                    state.on_stt(&myself, event);
                }
            }
            CallMsg::Llm {
                generation,
                turn,
                event,
            } => {
                if generation == state.llm.generation {
                    state.on_llm(&myself, turn, event);
                }
            }
            // Audio waits in the TTS channel; the pump takes it in.
            CallMsg::TtsReady => state.pump(&myself),
            CallMsg::TtsDone { generation, .. } => {
                // The segment's end comes through the audio channel, after
                // its audio.
                if generation == state.tts.generation {
                    state.pump(&myself);
                }
            }
            CallMsg::Restart(kind) => start_child(&myself, state, kind).await,
            CallMsg::CallerSpeech => state.on_caller_speech(&myself),
            CallMsg::CallerSilent => state.on_caller_silent(),
            CallMsg::Dtmf(_) => {}
            CallMsg::MediaClosed => {
                state.media_out = None;
                finish(&myself, state, EndCause::Completed).await;
            }
            CallMsg::Tick => {
                state.tick_at = None;
                state.pump(&myself);
            }
            CallMsg::Timer(kind, token) => {
                if state.timer_is_live(kind, token) {
                    timer(&myself, state, kind).await;
                }
            }
        }
        if let Some(cause) = state.take_pending_hangup() {
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

fn dial<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>) {
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
    let timeout = state.cfg.port_timeout;
    let me = myself.clone();
    tokio::spawn(async move {
        let result = timed(timeout, "placing the call", telephony.place_call(req)).await;
        let _ = me.cast(CallMsg::Placed(result));
    });
    let ringing = state.cfg.ringing_timeout;
    state.set_timer(myself, TimerKind::Ringing, ringing);
}

async fn telephony<P: CallPorts>(
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

fn answered<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>) {
    state.apply(CallEvent::Answered);
    state.cancel_timer(TimerKind::Ringing);
    if !state.max_duration_set {
        state.max_duration_set = true;
        let max = state.cfg.max_duration;
        state.set_timer(myself, TimerKind::MaxDuration, max);
    }
}

fn on_machine<P: CallPorts>(myself: &ActorRef<CallMsg>, state: &mut CallState<P>) {
    use super::config::MachineAction;
    match (
        state.cfg.machine_action,
        state.cfg.voicemail_message.clone(),
    ) {
        (MachineAction::LeaveMessage, Some(message)) => {
            if state.media_out.is_some() {
                state.barge_in(myself, false);
                state.speak_fixed(myself, &message, Some(EndCause::Machine));
            } else {
                state.voicemail_pending = true;
            }
        }
        _ => state.pending_hangup = Some(EndCause::Machine),
    }
}

async fn attach_media<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    session: crate::ports::MediaSession,
) {
    if state.media_out.is_some() || state.lifecycle.status() >= CallStatus::Ending {
        return; // A second socket for the same call is refused by dropping it.
    }
    state.media_out = Some(session.outbound);
    let vad = Vad::new(
        VadConfig {
            min_speech: state.cfg.barge_in_min_speech,
            ..VadConfig::default()
        },
        state.cfg.sample_rate,
    );
    let audio = router::CallerAudio::new(state.slot.subscribe(), myself.clone(), vad);
    match session.inbound {
        crate::ports::MediaInbound::Channel(inbound) => {
            state.router = Some(AbortOnDrop(router::spawn(inbound, audio)));
        }
        crate::ports::MediaInbound::Inline(reply) => {
            // A socket already gone drops it, which reports the media
            // closed, as a closed channel would.
            let _ = reply.send(audio);
        }
    }
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
    let greeting = state.cfg.greeting.clone();
    state.speak_fixed(myself, &greeting, None);
}

async fn start_child<P: CallPorts>(
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
        Ok(()) => state.child_started(myself, kind),
        Err(e) => {
            tracing::warn!(call.id = %state.key.call, child = ?kind, error = %e, "call child did not start");
            Box::pin(child_failed(myself, state, kind)).await;
        }
    }
}

async fn child_failed<P: CallPorts>(
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
    metrics::counter!("talky_call_child_failures_total", "child" => child).increment(1);
    match child_tracker.on_failure(now) {
        RestartDecision::Restart { after } => {
            metrics::counter!("talky_actor_restarts_total", "actor" => child).increment(1);
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
    state.barge_in(myself, false);
    if kind != ChildKind::Tts && state.tts.actor.is_some() && state.media_out.is_some() {
        let apology = state.cfg.apology_text.clone();
        state.speak_fixed(myself, &apology, Some(cause));
        state.set_timer(
            myself,
            TimerKind::ApologyDone,
            super::config::DEFAULT_APOLOGY_GRACE,
        );
        state.escalation = Some(EndCause::ProviderError(format!("{kind:?} failed")));
    } else {
        state.pending_hangup = Some(cause);
    }
}

async fn timer<P: CallPorts>(
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
            state.barge_in(myself, false);
            let goodbye = state.cfg.goodbye_text.clone();
            state.speak_fixed(myself, &goodbye, Some(EndCause::Timeout));
            state.set_timer(
                myself,
                TimerKind::ApologyDone,
                super::config::DEFAULT_APOLOGY_GRACE,
            );
            state.escalation = Some(EndCause::Timeout);
        }
        TimerKind::NoInput => state.on_no_input(myself),
        TimerKind::CompletedUnanswered => finish(myself, state, EndCause::Completed).await,
        TimerKind::ApologyDone => {
            let cause = state
                .escalation
                .take()
                .unwrap_or(EndCause::ProviderError("apology timed out".into()));
            hang_up(myself, state, cause).await;
        }
    }
}

/// Ends the call from our side: stop talking, tell the provider.
async fn hang_up<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    cause: EndCause,
) {
    if state.lifecycle.status() == CallStatus::Queued {
        finish(myself, state, cause).await;
        return;
    }
    state.barge_in(myself, false);
    if !state.apply(CallEvent::Hangup(cause.clone())) {
        return;
    }
    match state.provider_call.clone() {
        Some(id) => {
            let telephony = state.ports.telephony.clone();
            let timeout = state.cfg.port_timeout;
            tokio::spawn(async move {
                if let Err(e) = timed(timeout, "hanging up", telephony.hang_up(id)).await {
                    tracing::warn!(error = %e, "hang-up failed");
                }
            });
            // The provider's `completed` (or the socket closing) finishes
            // the call; if neither comes, this does.
            myself.send_after(state.cfg.port_timeout * 2, || CallMsg::MediaClosed);
        }
        None => finish(myself, state, cause).await,
    }
}

/// The call is over: record everything, stop the children, report, stop.
pub(crate) async fn finish<P: CallPorts>(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState<P>,
    cause: EndCause,
) {
    if state.finished {
        return;
    }
    state.barge_in(myself, false);
    let provider_cause = match cause {
        EndCause::Completed => None,
        other => Some(other),
    };
    state.lifecycle.apply(CallEvent::Ended(provider_cause));
    state.finished = true;
    let cause = match state.lifecycle.cause().cloned() {
        None | Some(EndCause::Completed) if state.declined => EndCause::Rejected,
        cause => cause.unwrap_or(EndCause::Completed),
    };
    state.router = None;
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
    tracing::info!(call.id = %state.key.call, outcome = cause.outcome(), turns = state.turns, "call finished");
    metrics::counter!("talky_calls_total", "outcome" => cause.outcome()).increment(1);
    (state.report)(CallReport {
        key: state.key,
        cause,
        callback_at: state.callback_at,
        do_not_call: state.do_not_call,
        turns: state.turns,
    });
    myself.stop(Some("finished".into()));
}

fn end_reason(cause: &EndCause) -> String {
    match cause {
        EndCause::Failed(why) | EndCause::ProviderError(why) => why.clone(),
        other => other.outcome().replace('_', " "),
    }
}
