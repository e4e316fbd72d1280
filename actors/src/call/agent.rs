//! The conversation loop of a call: user turns from STT, agent turns from
//! the LLM through the sentence chunker and TTS into the paced playout,
//! barge-in, tools, reprompts, and what each turn records.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ractor::ActorRef;

use super::actor::CallState;
use super::children::llm::LlmChildMsg;
use super::children::tts::{TTS_AHEAD, TtsChildMsg};
use super::lifecycle::EndCause;
use super::msg::{CallMsg, CallPorts, ChildKind, TimerKind};
use super::store_writer::StoreOp;
use crate::media::{SegmentId, SentenceChunker};
use crate::ports::{
    CalleeRequest, ChatMessage, ChatRequest, LatencySplit, LlmEvent, MediaOut, Role, SttEvent,
    ToolCall, ToolSpec, TurnRecord,
};

/// Tools offered to the LLM.
pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "end_call".into(),
            description: "End the call after your goodbye. Give the outcome.".into(),
            parameters_json: r#"{"type":"object","properties":{"outcome":{"type":"string","enum":["completed","not_interested","wrong_number"]}},"required":["outcome"]}"#.into(),
        },
        ToolSpec {
            name: "schedule_callback".into(),
            description: "The callee asked to be called back at a given time (RFC 3339).".into(),
            parameters_json: r#"{"type":"object","properties":{"at":{"type":"string","format":"date-time"}},"required":["at"]}"#.into(),
        },
        ToolSpec {
            name: "mark_do_not_call".into(),
            description: "The callee asked never to be called again. Apologise, say goodbye.".into(),
            parameters_json: r#"{"type":"object","properties":{}}"#.into(),
        },
    ]
}

/// The agent turn being spoken.
pub(crate) struct AgentTurn {
    /// Its id (LLM events of other turns are stale).
    pub id: u64,
    /// All text handed to TTS, in order.
    pub text: String,
    /// Its sentences: playout segment, text, TTS finished.
    pub segments: Vec<(SegmentId, String, bool)>,
    /// Splits LLM deltas into sentences.
    pub chunker: SentenceChunker,
    /// Driven by the LLM (a greeting or reprompt is fixed text).
    pub from_llm: bool,
    /// No more text will come.
    pub text_done: bool,
    /// What happens once it has played: listen, or hang up.
    pub then: Option<EndCause>,
    /// Tool calls made in this turn.
    pub tool_calls: Vec<ToolCall>,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// Latency marks.
    pub marks: Marks,
}

/// Instants of one reply, for the latency split.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Marks {
    /// The callee stopped speaking.
    pub speech_end: Option<Instant>,
    /// STT's final transcript arrived.
    pub stt_final: Option<Instant>,
    /// The LLM's first token arrived.
    pub first_token: Option<Instant>,
    /// The first TTS audio arrived.
    pub first_audio: Option<Instant>,
    /// The first frame was sent.
    pub first_frame: Option<Instant>,
}

fn ms(from: Option<Instant>, to: Option<Instant>) -> Option<i32> {
    match (from, to) {
        (Some(a), Some(b)) => Some(
            b.saturating_duration_since(a)
                .as_millis()
                .min(i32::MAX as u128) as i32,
        ),
        _ => None,
    }
}

impl Marks {
    fn split(&self) -> LatencySplit {
        LatencySplit {
            stt_ms: ms(self.speech_end, self.stt_final),
            llm_first_token_ms: ms(self.stt_final, self.first_token),
            tts_first_audio_ms: ms(self.first_token.or(self.stt_final), self.first_audio),
            first_frame_ms: ms(self.first_audio, self.first_frame),
            voice_to_voice_ms: ms(self.speech_end.or(self.stt_final), self.first_frame),
        }
    }
}

/// The callee's turn being heard.
#[derive(Default)]
pub(crate) struct UserTurn {
    /// Final transcript so far.
    pub text: String,
    /// When the callee began.
    pub started_at: Option<DateTime<Utc>>,
    /// When the callee stopped speaking (VAD).
    pub speech_end: Option<Instant>,
    /// When the last final transcript arrived.
    pub stt_final: Option<Instant>,
}

impl<P: CallPorts> CallState<P> {
    fn new_turn(&mut self, from_llm: bool, then: Option<EndCause>, marks: Marks) {
        self.next_turn += 1;
        self.agent = Some(AgentTurn {
            id: self.next_turn,
            text: String::new(),
            segments: Vec::new(),
            chunker: SentenceChunker::new(),
            from_llm,
            text_done: !from_llm,
            then,
            tool_calls: Vec::new(),
            started_at: self.utc(),
            marks,
        });
        self.cancel_timer(TimerKind::NoInput);
    }

    /// Queues a sentence of the current agent turn for TTS and playout.
    fn add_segment(&mut self, text: String) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        self.next_segment += 1;
        let segment = SegmentId(self.next_segment);
        self.playout.begin_segment(segment, &text);
        if !turn.text.is_empty() {
            turn.text.push(' ');
        }
        turn.text.push_str(&text);
        turn.segments.push((segment, text.clone(), false));
        self.tts.cast(TtsChildMsg::Speak { segment, text });
    }

    /// Says fixed text (greeting, reprompt, goodbye, voicemail) as a turn.
    pub(crate) fn speak_fixed(
        &mut self,
        myself: &ActorRef<CallMsg>,
        text: &str,
        then: Option<EndCause>,
    ) {
        self.new_turn(false, then, Marks::default());
        let mut chunker = SentenceChunker::new();
        let mut chunks = chunker.push(text);
        chunks.extend(chunker.flush());
        for chunk in chunks {
            self.add_segment(chunk);
        }
        self.pump(myself);
    }

    fn start_llm_turn(&mut self, marks: Marks) {
        self.new_turn(true, None, marks);
        self.request_completion();
    }

    fn request_completion(&self) {
        let Some(turn) = &self.agent else {
            return;
        };
        self.llm.cast(LlmChildMsg::Generate {
            turn: turn.id,
            request: ChatRequest {
                model: self.cfg.llm_model.clone(),
                messages: self.history.clone(),
                tools: tools(),
            },
        });
    }

    /// A child (re)started: pick up what it was doing.
    pub(crate) fn child_started(&mut self, myself: &ActorRef<CallMsg>, kind: ChildKind) {
        match kind {
            ChildKind::Stt => {}
            ChildKind::Llm => {
                let Some(turn) = self.agent.as_mut() else {
                    return;
                };
                if !turn.from_llm || turn.text_done {
                    return;
                }
                if turn.segments.is_empty() && turn.chunker_is_empty() {
                    // Nothing was said yet: ask again.
                    self.request_completion();
                } else {
                    // Words were already spoken: end the reply with them.
                    let rest = turn.chunker.flush();
                    turn.text_done = true;
                    if let Some(rest) = rest {
                        self.add_segment(rest);
                    }
                    self.pump(myself);
                }
            }
            ChildKind::Tts => {
                // Sentences not fully synthesised are said again, whole.
                let Some(turn) = self.agent.as_mut() else {
                    return;
                };
                let unfinished: Vec<(SegmentId, String)> = turn
                    .segments
                    .iter_mut()
                    .filter(|(_, _, done)| !*done)
                    .map(|(id, text, done)| {
                        *done = true;
                        (*id, text.clone())
                    })
                    .collect();
                for (id, _) in &unfinished {
                    self.playout.abandon_segment(*id);
                }
                if let Some(turn) = self.agent.as_mut() {
                    turn.segments
                        .retain(|(id, _, _)| !unfinished.iter().any(|(u, _)| u == id));
                    turn.text.clear();
                    for (_, text, _) in &turn.segments {
                        if !turn.text.is_empty() {
                            turn.text.push(' ');
                        }
                        turn.text.push_str(text);
                    }
                }
                for (_, text) in unfinished {
                    self.add_segment(text);
                }
                self.pump(myself);
            }
        }
    }

    pub(crate) fn on_stt(&mut self, myself: &ActorRef<CallMsg>, event: SttEvent) {
        match event {
            SttEvent::SpeechStarted => {
                let now = self.utc();
                self.user.started_at.get_or_insert(now);
            }
            SttEvent::Interim(_) => {}
            SttEvent::Final { text, speech_final } => {
                let text = text.trim();
                if !text.is_empty() {
                    if !self.user.text.is_empty() {
                        self.user.text.push(' ');
                    }
                    self.user.text.push_str(text);
                    self.user.stt_final = Some(self.now());
                    let now = self.utc();
                    self.user.started_at.get_or_insert(now);
                }
                if speech_final {
                    self.end_user_turn(myself);
                }
            }
            SttEvent::UtteranceEnd => self.end_user_turn(myself),
            SttEvent::Error(_) => {}
        }
    }

    fn end_user_turn(&mut self, myself: &ActorRef<CallMsg>) {
        if self.user.text.is_empty() {
            return;
        }
        if self.agent.is_some() {
            let words = self.user.text.split_whitespace().count();
            if words <= self.cfg.backchannel_max_words && !self.caller_speaking {
                // "mm-hm" while the agent talks: not a turn, not a cut.
                self.user = Default::default();
                return;
            }
            self.barge_in(myself, true);
        }
        let user = std::mem::take(&mut self.user);
        let now = self.utc();
        self.record_turn(TurnRecord {
            seq: 0,
            speaker: Role::User,
            text: user.text.clone(),
            heard_text: None,
            interrupted: false,
            started_at: user.started_at.unwrap_or(now),
            ended_at: now,
            latency: LatencySplit::default(),
        });
        self.history.push(ChatMessage {
            role: Role::User,
            content: user.text,
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
        self.reprompts = 0;
        if self.pending_hangup.is_some() || self.escalation.is_some() {
            return;
        }
        self.start_llm_turn(Marks {
            speech_end: user.speech_end.or(user.stt_final),
            stt_final: user.stt_final,
            ..Marks::default()
        });
    }

    pub(crate) fn on_caller_speech(&mut self, myself: &ActorRef<CallMsg>) {
        self.caller_speaking = true;
        self.cancel_timer(TimerKind::NoInput);
        let now = self.utc();
        self.user.started_at.get_or_insert(now);
        if self.agent.as_ref().is_some_and(|t| t.then.is_none()) {
            self.barge_in(myself, true);
        }
    }

    pub(crate) fn on_caller_silent(&mut self) {
        self.caller_speaking = false;
        let hangover = crate::media::vad::DEFAULT_HANGOVER;
        self.user.speech_end = Some(
            self.now()
                .checked_sub(hangover)
                .unwrap_or_else(|| self.now()),
        );
    }

    /// Stops the agent now: clears the playout and the provider's queue,
    /// cancels LLM and TTS, and records the turn as heard.
    pub(crate) fn barge_in(&mut self, _myself: &ActorRef<CallMsg>, by_caller: bool) {
        let Some(turn) = self.agent.take() else {
            return;
        };
        let now = self.now();
        let heard = self.playout.clear(now);
        if self.media_out.is_some() {
            self.send_media(MediaOut::Clear);
        }
        self.llm.cast(LlmChildMsg::Cancel);
        self.tts.cast(TtsChildMsg::Cancel);
        while self.tts_rx.try_recv().is_ok() {}
        if by_caller {
            tracing::debug!(call.id = %self.key.call, "barge-in");
        }
        let complete = heard.complete;
        self.finish_agent_turn(turn, heard.text, !complete);
    }

    fn finish_agent_turn(&mut self, turn: AgentTurn, heard: String, interrupted: bool) {
        let now = self.utc();
        let split = turn.marks.split();
        record_latency(&split);
        if interrupted {
            metrics::counter!("talky_barge_ins_total").increment(1);
        }
        self.record_turn(TurnRecord {
            seq: 0,
            speaker: Role::Assistant,
            text: turn.text.clone(),
            heard_text: Some(heard.clone()),
            interrupted,
            started_at: turn.started_at,
            ended_at: now,
            latency: split,
        });
        if !heard.is_empty() || !turn.tool_calls.is_empty() {
            self.history.push(ChatMessage {
                role: Role::Assistant,
                content: heard,
                tool_calls: turn.tool_calls.clone(),
                tool_call_id: None,
            });
            for call in &turn.tool_calls {
                self.history.push(ChatMessage {
                    role: Role::Tool,
                    content: "ok".into(),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call.id.clone()),
                });
            }
        }
        if let Some(cause) = turn.then
            && (!interrupted || self.escalation.is_none())
        {
            self.pending_hangup.get_or_insert(cause);
        }
    }

    fn record_turn(&mut self, mut turn: TurnRecord) {
        turn.seq = self.next_seq;
        self.next_seq += 1;
        self.turns += 1;
        self.record(StoreOp::Turn(Box::new(turn)));
    }

    pub(crate) fn on_llm(&mut self, myself: &ActorRef<CallMsg>, turn_id: u64, event: LlmEvent) {
        let now = self.now();
        let Some(turn) = self
            .agent
            .as_mut()
            .filter(|t| t.id == turn_id && !t.text_done)
        else {
            return;
        };
        match event {
            LlmEvent::Text(delta) => {
                turn.marks.first_token.get_or_insert(now);
                for chunk in turn.chunker.push(&delta) {
                    self.add_segment(chunk);
                }
            }
            LlmEvent::ToolCall(call) => {
                turn.marks.first_token.get_or_insert(now);
                self.on_tool(&call);
                if let Some(turn) = self.agent.as_mut() {
                    turn.tool_calls.push(call);
                }
            }
            LlmEvent::Finish(_) => {
                turn.text_done = true;
                let rest = turn.chunker.flush();
                let said_nothing = turn.segments.is_empty() && rest.is_none();
                let ends = turn.then.is_some();
                if let Some(rest) = rest {
                    self.add_segment(rest);
                } else if said_nothing && ends {
                    let goodbye = self.cfg.goodbye_text.clone();
                    self.add_segment(goodbye);
                }
            }
            LlmEvent::Error(_) => {}
        }
        self.pump(myself);
    }

    fn on_tool(&mut self, call: &ToolCall) {
        let args: serde_json::Value =
            serde_json::from_str(&call.arguments).unwrap_or(serde_json::Value::Null);
        if self.agent.is_none() {
            return;
        }
        // `end_call`'s verdict: a callee who said no (or is not the person
        // called) declined; it stands even if the callee hangs up first.
        let declined = call.name == "end_call"
            && matches!(
                args.get("outcome").and_then(|v| v.as_str()),
                Some("not_interested" | "wrong_number")
            );
        self.declined |= declined;
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        match call.name.as_str() {
            "end_call" => {
                turn.then = Some(if declined {
                    EndCause::Rejected
                } else {
                    EndCause::Completed
                });
            }
            "mark_do_not_call" => {
                self.do_not_call = true;
                turn.then = Some(EndCause::Completed);
                self.record(StoreOp::Request(CalleeRequest::DoNotCall));
            }
            "schedule_callback" => {
                self.callback_at = args
                    .get("at")
                    .and_then(|v| v.as_str())
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc));
                if let Some(at) = self.callback_at {
                    self.record(StoreOp::Request(CalleeRequest::Callback(at)));
                }
            }
            other => tracing::debug!(tool = other, "unknown tool call ignored"),
        }
    }

    /// Moves TTS audio into the playout while it holds less than
    /// [`TTS_AHEAD`] unsent: past that the audio waits in the bounded
    /// channel and the provider's socket (back-pressure), so a long reply
    /// costs a second of memory, not its whole length. An empty chunk ends
    /// its segment: it comes after all of the segment's audio.
    fn drain_tts(&mut self) {
        let now = self.now();
        while self.playout.buffered() < TTS_AHEAD {
            let Ok((segment, pcm)) = self.tts_rx.try_recv() else {
                return;
            };
            if pcm.is_empty() {
                self.segment_synthesised(segment);
            } else if self.playout.push_audio(segment, &pcm).is_ok()
                && let Some(turn) = self.agent.as_mut()
            {
                turn.marks.first_audio.get_or_insert(now);
            }
        }
    }

    fn segment_synthesised(&mut self, segment: SegmentId) {
        self.playout.end_segment(segment);
        if let Some(turn) = self.agent.as_mut() {
            for (id, _, done) in &mut turn.segments {
                if *id == segment {
                    *done = true;
                }
            }
        }
    }

    /// Sends the frames that are due, closes a turn that has played out,
    /// and sets the next tick.
    pub(crate) fn pump(&mut self, myself: &ActorRef<CallMsg>) {
        self.drain_tts();
        let now = self.now();
        let frames = self.playout.poll(now);
        if !frames.is_empty()
            && let Some(turn) = self.agent.as_mut()
        {
            turn.marks.first_frame.get_or_insert(now);
        }
        for frame in frames {
            self.send_media(MediaOut::Audio(frame.bytes));
        }
        let played_out = self
            .agent
            .as_ref()
            .is_some_and(|t| t.text_done && t.segments.iter().all(|(_, _, done)| *done))
            && self.playout.is_idle()
            && self.playout.playing_until().is_none_or(|t| now >= t);
        if played_out {
            if let Some(turn) = self.agent.take() {
                let heard = self.playout.clear(now);
                self.finish_agent_turn(turn, heard.text, false);
                if self.pending_hangup.is_none() && self.escalation.is_none() {
                    let wait = self.cfg.no_input_timeout;
                    self.set_timer(myself, TimerKind::NoInput, wait);
                }
            }
            return;
        }
        let next = match (self.playout.next_due(now), self.playout.playing_until()) {
            (Some(due), _) => Some(due),
            (None, Some(until)) if self.playout.is_idle() && self.agent.is_some() => Some(until),
            _ => None,
        };
        if let Some(at) = next {
            self.schedule_tick(
                myself,
                at.max(now + Duration::from_millis(1)).min(at.max(now)),
            );
        }
    }

    pub(crate) fn on_no_input(&mut self, myself: &ActorRef<CallMsg>) {
        if self.agent.is_some() || self.caller_speaking {
            return;
        }
        self.reprompts += 1;
        if self.reprompts > self.cfg.max_reprompts {
            let goodbye = self.cfg.goodbye_text.clone();
            self.speak_fixed(myself, &goodbye, Some(EndCause::NoInput));
        } else {
            let reprompt = self.cfg.reprompt_text.clone();
            self.speak_fixed(myself, &reprompt, None);
        }
    }
}

/// Turn latency histograms, one per stage, in milliseconds.
fn record_latency(split: &LatencySplit) {
    for (stage, ms) in [
        ("stt", split.stt_ms),
        ("llm_first_token", split.llm_first_token_ms),
        ("tts_first_audio", split.tts_first_audio_ms),
        ("first_frame", split.first_frame_ms),
        ("voice_to_voice", split.voice_to_voice_ms),
    ] {
        if let Some(ms) = ms {
            metrics::histogram!("talky_turn_latency_ms", "stage" => stage).record(f64::from(ms));
        }
    }
}

impl AgentTurn {
    fn chunker_is_empty(&mut self) -> bool {
        // The chunker only holds text the LLM sent; a clone tells without
        // disturbing it.
        self.chunker.clone().flush().is_none()
    }
}
