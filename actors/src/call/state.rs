//! What one call owns: its children, timers, media handles, and the
//! conversation's state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::ActorRef;
use tokio::sync::mpsc;

use super::children::llm::LlmChildMsg;
use super::children::stt::{AudioSlot, SttChildMsg};
use super::children::tts::{TtsChildMsg, TtsChunk};
use super::config::CallConfig;
use super::conversation::{Command, Conversation, Input, Now};
use super::leg::LegState;
use super::lifecycle::{CallEvent, EndCause, Lifecycle, Step};
use super::msg::{CallMsg, CallSnapshot, ChildKind, ChildSnapshot, ReportSink, TimerKind};
use super::ports::{CallPorts, Ports};
use super::store_writer::{StoreOp, StoreWriter};
use crate::ports::{
    CallKey, Clock, LatencySplit, LiveNote, LlmPort, MediaOut, Role, SttPort, TtsPort,
};
use crate::supervision::{ProviderChain, RestartTracker};

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
    pub(crate) fn new(cfg: &CallConfig, providers: usize) -> Self {
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

    /// The child as the supervisor view shows it; `name` names the
    /// provider at a position of the chain.
    pub(crate) fn snapshot<'a>(
        &self,
        kind: ChildKind,
        name: impl FnOnce(usize) -> Option<&'a str>,
    ) -> ChildSnapshot {
        let position = self.chain.position();
        ChildSnapshot {
            kind,
            provider: name(position).unwrap_or("unknown").to_string(),
            position,
            restarts: self.tracker.total_restarts(),
            running: self.actor.is_some(),
        }
    }
}

/// The call's timers: each kind armed at most once (a stale expiry carries
/// an older token and is ignored), and the next conversation tick.
#[derive(Default)]
pub(crate) struct Timers {
    pub armed: HashMap<TimerKind, u64>,
    pub next_token: u64,
    /// When the next `Tick` is due, if one is scheduled.
    pub tick_at: Option<Instant>,
}

/// Everything one call owns.
pub struct CallState<P: CallPorts> {
    pub(crate) key: CallKey,
    pub(crate) cfg: CallConfig,
    pub(crate) ports: Ports<P>,
    pub(crate) report: ReportSink,
    pub(crate) lifecycle: Lifecycle,
    /// The telephony leg as far as this call knows it.
    pub(crate) leg: LegState,
    /// The conversation (sans I/O): this actor carries out its commands.
    pub(crate) conv: Conversation,
    pub(crate) store: StoreWriter,
    pub(crate) media_out: Option<mpsc::Sender<MediaOut>>,
    pub(crate) slot: Arc<AudioSlot>,
    pub(crate) stt: Child<SttChildMsg>,
    pub(crate) llm: Child<LlmChildMsg>,
    pub(crate) tts: Child<TtsChildMsg>,
    pub(crate) tts_tx: mpsc::Sender<TtsChunk>,
    pub(crate) tts_rx: mpsc::Receiver<TtsChunk>,
    pub(crate) timers: Timers,
    /// Leave the voicemail message once media is up.
    pub(crate) voicemail_pending: bool,
    /// A hang-up the conversation commanded (its last line had its time),
    /// carried out at the end of the current message.
    pub(crate) hangup_next: Option<EndCause>,
    pub(crate) max_duration_set: bool,
    pub(crate) messages: u64,
    pub(crate) finished: bool,
    /// When the actor started (the call's age counts from here).
    pub(crate) started_at: Instant,
    /// When the callee first picked up (the call's duration counts from here).
    pub(crate) answered_at: Option<Instant>,
    /// When the call was finished (its duration stops here).
    pub(crate) ended_at: Option<Instant>,
}

impl<P: CallPorts> CallState<P> {
    pub(crate) fn now(&self) -> Instant {
        self.ports.clock.now()
    }

    pub(crate) fn utc(&self) -> chrono::DateTime<chrono::Utc> {
        self.ports.clock.utc()
    }

    /// Queues a record write (the writer retries it until it lands; a
    /// full queue drops it, logged and counted).
    pub(crate) fn record(&self, op: StoreOp) {
        self.store.send(op);
    }

    pub(crate) fn apply(&mut self, event: CallEvent) -> bool {
        match self.lifecycle.apply(event) {
            Step::Moved(status) => {
                if self.lifecycle.was_answered() && self.answered_at.is_none() {
                    self.answered_at = Some(self.now());
                }
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
        self.timers.next_token += 1;
        let token = self.timers.next_token;
        self.timers.armed.insert(kind, token);
        myself.send_after(after, move || CallMsg::Timer(kind, token));
    }

    pub(crate) fn cancel_timer(&mut self, kind: TimerKind) {
        self.timers.armed.remove(&kind);
    }

    /// Whether a timer of `kind` is set and has not fired.
    pub(crate) fn timer_armed(&self, kind: TimerKind) -> bool {
        self.timers.armed.contains_key(&kind)
    }

    pub(crate) fn timer_is_live(&mut self, kind: TimerKind, token: u64) -> bool {
        if self.timers.armed.get(&kind) == Some(&token) {
            self.timers.armed.remove(&kind);
            true
        } else {
            false
        }
    }

    /// Makes sure a tick comes at `at` (or earlier).
    pub(crate) fn schedule_tick(&mut self, myself: &ActorRef<CallMsg>, at: Instant) {
        let now = self.now();
        if self.timers.tick_at.is_some_and(|t| t <= at && t >= now) {
            return;
        }
        self.timers.tick_at = Some(at);
        myself.send_after(at.saturating_duration_since(now), || CallMsg::Tick);
    }

    pub(crate) fn send_media(&self, item: MediaOut) -> bool {
        match &self.media_out {
            Some(tx) => tx.try_send(item).is_ok(),
            None => false,
        }
    }

    /// Hands `input` to the conversation at the current time and carries
    /// out its commands; then feeds it the TTS audio it wants.
    pub(crate) fn drive(&mut self, myself: &ActorRef<CallMsg>, input: Input) {
        let commands = self.conv.on(input, self.time());
        self.execute(myself, commands);
        let mut fed = false;
        while self.conv.wants_audio() {
            let Ok((segment, pcm)) = self.tts_rx.try_recv() else {
                break;
            };
            let commands = self.conv.on(Input::TtsAudio { segment, pcm }, self.time());
            self.execute(myself, commands);
            fed = true;
        }
        if fed {
            let commands = self.conv.on(Input::Tick, self.time());
            self.execute(myself, commands);
        }
    }

    fn time(&self) -> Now {
        Now {
            at: self.now(),
            utc: self.utc(),
        }
    }

    fn execute(&mut self, myself: &ActorRef<CallMsg>, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::Play(frame) => {
                    self.send_media(MediaOut::Audio(frame));
                }
                Command::ClearMedia => {
                    self.send_media(MediaOut::Clear);
                }
                Command::Mark(mark) => {
                    self.send_media(MediaOut::Mark(mark));
                }
                Command::Generate { turn, request } => {
                    self.llm.cast(LlmChildMsg::Generate { turn, request });
                }
                Command::CancelLlm => self.llm.cast(LlmChildMsg::Cancel),
                Command::Speak { segment, text } => {
                    self.tts.cast(TtsChildMsg::Speak { segment, text });
                }
                Command::CancelTts => {
                    self.tts.cast(TtsChildMsg::Cancel);
                    while self.tts_rx.try_recv().is_ok() {}
                }
                Command::Record(turn) => {
                    if turn.speaker == Role::Assistant {
                        record_latency(&turn.latency);
                        if turn.interrupted {
                            tracing::debug!(call.id = %self.key.call, "agent turn cut short");
                            metrics::counter!(crate::metrics::BARGE_INS).increment(1);
                        }
                    }
                    self.record(StoreOp::Turn(Box::new(turn)));
                }
                Command::Request(request) => self.record(StoreOp::Request(request)),
                Command::LiveText(text) => self.store.live(LiveNote::Text(text)),
                Command::SetTimer(kind, after) => self.set_timer(myself, kind, after),
                Command::CancelTimer(kind) => self.cancel_timer(kind),
                Command::TickAt(at) => self.schedule_tick(myself, at),
                Command::HangUp(cause) => {
                    self.hangup_next.get_or_insert(cause);
                }
                Command::Transfer { number } => super::leg::transfer(myself, self, number),
            }
        }
    }

    pub(crate) fn snapshot(&self) -> CallSnapshot {
        let now = self.ended_at.unwrap_or_else(|| self.now());
        let ports = &self.ports;
        CallSnapshot {
            key: self.key,
            campaign_name: self.cfg.campaign_name.clone(),
            number: crate::mask::mask_phone(&self.cfg.to),
            status: self.lifecycle.status(),
            age_secs: self
                .now()
                .saturating_duration_since(self.started_at)
                .as_secs(),
            duration_secs: self
                .answered_at
                .map(|at| now.saturating_duration_since(at).as_secs()),
            turns: self.conv.turns(),
            agent_speaking: self.conv.agent_speaking(),
            children: vec![
                self.stt.snapshot(ChildKind::Stt, |i| {
                    ports.stt.get(i).map(|p| p.provider_name())
                }),
                self.llm.snapshot(ChildKind::Llm, |i| {
                    ports.llm.get(i).map(|p| p.provider_name())
                }),
                self.tts.snapshot(ChildKind::Tts, |i| {
                    ports.tts.get(i).map(|p| p.provider_name())
                }),
            ],
            messages: self.messages,
            telephony: self.cfg.telephony.clone(),
            leg: self.leg.provider_id.clone(),
            provider: None,
        }
    }
}

/// Turn latency histograms, one per stage, in seconds (the split is in
/// milliseconds: the API's fields).
fn record_latency(split: &LatencySplit) {
    for (stage, ms) in [
        ("stt", split.stt_ms),
        ("llm_first_token", split.llm_first_token_ms),
        ("tts_first_audio", split.tts_first_audio_ms),
        ("first_frame", split.first_frame_ms),
        ("voice_to_voice", split.voice_to_voice_ms),
    ] {
        if let Some(ms) = ms {
            metrics::histogram!(crate::metrics::TURN_LATENCY, "stage" => stage)
                .record(f64::from(ms) / 1000.0);
        }
    }
}
