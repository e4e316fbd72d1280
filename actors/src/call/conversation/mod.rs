//! The conversation of a call, sans I/O: user turns from STT, agent turns
//! from the LLM through the sentence chunker and TTS into the paced
//! playout, barge-in, tools, reprompts, the do-not-call hold, and what
//! each turn records.
//!
//! [`Conversation::on`] takes what happened ([`Input`]) and the time
//! ([`Now`]) and answers what to do ([`Command`]): no actor, task, channel
//! or clock in here. The CallActor carries the commands out (casts to its
//! children, frames to the media socket, records to the store writer,
//! timers to its mailbox) and feeds TTS audio in while
//! [`Conversation::wants_audio`].

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::children::tts::TTS_AHEAD;
use super::config::{CallConfig, DNC_ACK_TIMEOUT};
use super::lifecycle::EndCause;
use super::msg::{ChildKind, TimerKind};
use crate::media::{Playout, PlayoutConfig, SegmentId, SentenceChunker};
use crate::ports::{
    CalleeRequest, ChatMessage, ChatRequest, LatencySplit, LiveText, LlmEvent, Role, SttEvent,
    ToolCall, ToolSpec, TurnRecord,
};

/// The tool that hands the call to a person, offered only when the
/// campaign has a `transfer` setting (and withdrawn after a failed
/// transfer): the LLM is told when to use it.
pub const TRANSFER_TOOL: &str = "transfer_call";

/// What the system prompt gains when the transfer tool is offered.
pub const TRANSFER_PROMPT: &str = "If the callee asks to speak to a person (a human, an agent, \
a manager) or your instructions say to hand the call over, call the transfer_call tool; \
the handover line is said for you.";

/// Tools offered to the LLM when no transfer is possible.
pub fn tools() -> Vec<ToolSpec> {
    tools_for(false)
}

/// Tools offered to the LLM; `transfer`: the campaign can hand the call
/// to a person ([`TRANSFER_TOOL`]).
pub fn tools_for(transfer: bool) -> Vec<ToolSpec> {
    let mut tools = base_tools();
    if transfer {
        tools.push(ToolSpec {
            name: TRANSFER_TOOL.into(),
            description:
                "Transfer the call to a person. Use it when the callee asks to speak to a \
                human (a person, an agent, a manager) or your instructions say so. Do not say \
                goodbye: the handover line is said for you."
                    .into(),
            parameters_json: r#"{"type":"object","properties":{}}"#.into(),
        });
    }
    tools
}

fn base_tools() -> Vec<ToolSpec> {
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

/// Audio between two position marks: one per batch of frames at the
/// default pacing (five 20 ms frames every 100 ms), which bounds how far
/// the heard position can be off between echoes.
pub const MARK_EVERY: Duration = Duration::from_millis(100);

/// The name of the mark sent after stream position `pos` (samples) of
/// agent turn `turn`.
pub fn position_mark(turn: u64, pos: u64) -> String {
    format!("pos-{turn}-{pos}")
}

/// The turn and position a [`position_mark`] names; `None` for any other
/// mark (e.g. the end-of-turn `turn-N`).
pub fn parse_position_mark(name: &str) -> Option<(u64, u64)> {
    let (turn, pos) = name.strip_prefix("pos-")?.split_once('-')?;
    Some((turn.parse().ok()?, pos.parse().ok()?))
}

/// The time, as the core is told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic: playout pacing, latency, timers.
    pub at: Instant,
    /// Wall clock: what turn records say.
    pub utc: DateTime<Utc>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Say fixed text as an agent turn (greeting, voicemail message),
    /// barging in on ourselves first; `then` hangs up once it played.
    Say {
        /// The text.
        text: String,
        /// Hang up with this once it has played.
        then: Option<EndCause>,
    },
    /// End the call on a last line (goodbye at the time limit, apology,
    /// shutdown line): barge in on ourselves, say it, and hang up with
    /// `cause` once it played or `within` passed.
    Leave {
        /// The line.
        text: String,
        /// Why the call ends once it played.
        then: EndCause,
        /// Longest the line may take.
        within: Duration,
        /// Why the call ends if `within` passes first.
        cause: EndCause,
    },
    /// Hang up as soon as the conversation allows (a do-not-call is
    /// stored first).
    EndWhenFree(EndCause),
    /// Stop talking now (the call is hanging up or over).
    Stop,
    /// The callee has spoken for at least the barge-in minimum.
    CallerSpeech,
    /// The callee stopped speaking: the VAD's end of speech (the end of
    /// the last loud audio, before its hangover).
    CallerSilent {
        /// When the speech ended.
        speech_end: Instant,
    },
    /// From the live STT session.
    Stt(SttEvent),
    /// From the LLM, for agent turn `turn`.
    Llm {
        /// The agent turn the stream belongs to.
        turn: u64,
        /// The event.
        event: LlmEvent,
    },
    /// TTS audio of a segment (an empty chunk ends the segment). Fed
    /// while [`Conversation::wants_audio`]; does not poll the playout
    /// (a [`Input::Tick`] after a batch does).
    TtsAudio {
        /// The segment.
        segment: SegmentId,
        /// PCM; empty: the segment is synthesised.
        pcm: Vec<u8>,
    },
    /// Time to poll the playout (also: new TTS audio was fed).
    Tick,
    /// A child (re)started: pick up what it was doing.
    ChildStarted(ChildKind),
    /// The record writer stored what the callee asked for.
    RequestStored(CalleeRequest),
    /// The provider echoed a mark ([`Command::Mark`]): the callee had
    /// played the audio sent before it. A position mark of the turn
    /// being spoken tells the playout how far behind the send times the
    /// callee plays, so barge-in records what was really heard.
    MarkPlayed(String),
    /// The provider refused (or never answered) the transfer request of
    /// [`Command::Transfer`]: the agent apologises and the call goes on
    /// without the transfer tool.
    TransferFailed(String),
    /// A conversation timer fired ([`TimerKind::NoInput`],
    /// [`TimerKind::DoNotCallStored`], [`TimerKind::ApologyDone`]).
    Timer(TimerKind),
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Send one frame of agent audio down the media socket.
    Play(Vec<u8>),
    /// Drop the audio the provider still has queued.
    ClearMedia,
    /// Ask the provider to echo this mark once it played what came before.
    Mark(String),
    /// Ask the LLM for agent turn `turn`.
    Generate {
        /// The agent turn.
        turn: u64,
        /// The request (whole history, tools).
        request: ChatRequest,
    },
    /// Stop the LLM stream.
    CancelLlm,
    /// Synthesise a sentence.
    Speak {
        /// Its playout segment.
        segment: SegmentId,
        /// The sentence.
        text: String,
    },
    /// Stop TTS and drop the audio it already produced.
    CancelTts,
    /// Store a finished turn.
    Record(TurnRecord),
    /// Show the text of a turn being spoken to live watchers.
    LiveText(LiveText),
    /// Store what the callee asked for.
    Request(CalleeRequest),
    /// Arm a timer (an earlier one of the same kind is forgotten).
    SetTimer(TimerKind, Duration),
    /// Disarm a timer.
    CancelTimer(TimerKind),
    /// Poll again ([`Input::Tick`]) at this instant.
    TickAt(Instant),
    /// Hang up now with this cause (the last line had its time; a
    /// hang-up decided by the conversation is [`Conversation::take_hangup`]).
    HangUp(EndCause),
    /// The announce line has played: ask the provider to transfer the
    /// call to `number` (cold). Its answer comes back as
    /// [`Input::TransferFailed`], or the call ends `transferred`.
    Transfer {
        /// E.164.
        number: String,
    },
}

/// The agent turn being spoken.
struct AgentTurn {
    /// Its id (LLM events of other turns are stale).
    id: u64,
    /// All text handed to TTS, in order.
    text: String,
    /// Its sentences: playout segment, text, TTS finished.
    segments: Vec<(SegmentId, String, bool)>,
    /// Splits LLM deltas into sentences.
    chunker: SentenceChunker,
    /// Driven by the LLM (a greeting or reprompt is fixed text).
    from_llm: bool,
    /// No more text will come.
    text_done: bool,
    /// What happens once it has played: listen, or hang up.
    then: Option<EndCause>,
    /// Tool calls made in this turn.
    tool_calls: Vec<ToolCall>,
    /// The LLM asked to hand the call to a person: the announce line
    /// closes the turn, and once it has played the call is transferred.
    transfer: bool,
    /// When it began.
    started_at: DateTime<Utc>,
    /// Latency marks.
    marks: Marks,
    /// Stream position of the last position mark sent (samples).
    marked_at: u64,
}

impl AgentTurn {
    fn chunker_is_empty(&self) -> bool {
        // The chunker only holds text the LLM sent; a clone tells without
        // disturbing it.
        self.chunker.clone().flush().is_none()
    }
}

/// Instants of one reply, for the latency split.
#[derive(Clone, Copy, Debug, Default)]
struct Marks {
    /// The callee stopped speaking.
    speech_end: Option<Instant>,
    /// STT's final transcript arrived.
    stt_final: Option<Instant>,
    /// The LLM's first token arrived.
    first_token: Option<Instant>,
    /// The first TTS audio arrived.
    first_audio: Option<Instant>,
    /// The first frame was sent.
    first_frame: Option<Instant>,
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
struct UserTurn {
    /// Final transcript so far.
    text: String,
    /// When the callee began.
    started_at: Option<DateTime<Utc>>,
    /// When the callee stopped speaking (VAD).
    speech_end: Option<Instant>,
    /// When the last final transcript arrived.
    stt_final: Option<Instant>,
}

/// One call's conversation.
pub struct Conversation {
    cfg: CallConfig,
    /// The conversation as the LLM sees it (agent turns as heard).
    history: Vec<ChatMessage>,
    next_seq: i32,
    turns: u32,
    playout: Playout,
    next_segment: u64,
    next_turn: u64,
    agent: Option<AgentTurn>,
    user: UserTurn,
    caller_speaking: bool,
    reprompts: u32,
    callback_at: Option<DateTime<Utc>>,
    do_not_call: bool,
    /// A do-not-call is asked and not yet stored: new agent audio waits
    /// and the turn does not end.
    awaiting_dnc: bool,
    /// A TTS chunk held back while `awaiting_dnc`: at most one.
    held_chunk: Option<(SegmentId, Vec<u8>)>,
    /// The segment whose audio went into the playout last: its further
    /// audio is not held (it is already playing).
    playing_segment: Option<SegmentId>,
    /// The LLM ended the call as declined (not interested, wrong number):
    /// the verdict stands even if the callee hangs up first.
    declined: bool,
    /// A hang-up decided, given out once no do-not-call awaits its write.
    pending_hangup: Option<EndCause>,
    /// Why the call ends once the last line has had its time.
    leaving: Option<EndCause>,
    /// The transfer tool is offered (the campaign has a transfer and no
    /// transfer failed yet).
    transfer_offered: bool,
    /// A transfer was asked of the provider ([`Command::Transfer`]) and
    /// has not failed: no new turn begins.
    transferring: bool,
    /// Commands of the input being handled.
    out: Vec<Command>,
}

impl Conversation {
    /// A conversation under the call's settings (the system prompt opens
    /// the history).
    pub fn new(cfg: CallConfig) -> Self {
        let transfer_offered = cfg.transfer.is_some();
        let mut system = cfg.system_prompt.clone();
        if transfer_offered {
            system.push_str("\n\n");
            system.push_str(TRANSFER_PROMPT);
        }
        let history = vec![ChatMessage {
            role: Role::System,
            content: system,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }];
        Self {
            playout: Playout::new(PlayoutConfig::new(cfg.sample_rate)),
            cfg,
            history,
            next_seq: 0,
            turns: 0,
            next_segment: 0,
            next_turn: 0,
            agent: None,
            user: UserTurn::default(),
            caller_speaking: false,
            reprompts: 0,
            callback_at: None,
            do_not_call: false,
            awaiting_dnc: false,
            held_chunk: None,
            playing_segment: None,
            declined: false,
            pending_hangup: None,
            leaving: None,
            transfer_offered,
            transferring: false,
            out: Vec::new(),
        }
    }

    /// Takes what happened at `now`; answers what to do, in order.
    pub fn on(&mut self, input: Input, now: Now) -> Vec<Command> {
        match input {
            Input::Say { text, then } => {
                // The new line replaces the one playing and what was to
                // follow it (a machine's beep restarts the voicemail
                // message: the cut first one must not end the call).
                if let Some(turn) = self.agent.as_mut() {
                    turn.then = None;
                }
                self.barge_in(now);
                self.speak_fixed(&text, then, now);
            }
            Input::Leave {
                text,
                then,
                within,
                cause,
            } => {
                self.barge_in(now);
                self.speak_fixed(&text, Some(then), now);
                self.out
                    .push(Command::SetTimer(TimerKind::ApologyDone, within));
                self.leaving = Some(cause);
            }
            Input::EndWhenFree(cause) => self.pending_hangup = Some(cause),
            Input::Stop => self.barge_in(now),
            Input::CallerSpeech => self.on_caller_speech(now),
            Input::CallerSilent { speech_end } => {
                self.caller_speaking = false;
                self.user.speech_end = Some(speech_end);
            }
            Input::Stt(event) => self.on_stt(event, now),
            Input::Llm { turn, event } => self.on_llm(turn, event, now),
            Input::TtsAudio { segment, pcm } => self.take_audio(segment, pcm, now),
            Input::Tick => self.pump(now),
            Input::MarkPlayed(name) => {
                if let Some((turn, pos)) = parse_position_mark(&name)
                    && self.agent.as_ref().is_some_and(|t| t.id == turn)
                {
                    self.playout.mark_played(pos, now.at);
                }
            }
            Input::ChildStarted(kind) => self.child_started(kind, now),
            Input::RequestStored(request) => {
                if request == CalleeRequest::DoNotCall && self.awaiting_dnc {
                    self.awaiting_dnc = false;
                    self.out
                        .push(Command::CancelTimer(TimerKind::DoNotCallStored));
                    self.pump(now);
                }
            }
            Input::TransferFailed(why) => self.on_transfer_failed(&why, now),
            Input::Timer(TimerKind::NoInput) => self.on_no_input(now),
            Input::Timer(TimerKind::DoNotCallStored) => self.on_dnc_ack_timeout(),
            Input::Timer(TimerKind::ApologyDone) => {
                let cause = self
                    .leaving
                    .take()
                    .unwrap_or(EndCause::ProviderError("apology timed out".into()));
                self.out.push(Command::HangUp(cause));
            }
            Input::Timer(_) => {}
        }
        std::mem::take(&mut self.out)
    }

    /// A hang-up the conversation decided (a turn that ends the call has
    /// played, the callee stayed silent, [`Input::EndWhenFree`]), once it
    /// may be carried out: it waits for a do-not-call to be stored
    /// (bounded by [`DNC_ACK_TIMEOUT`]). The actor asks after each
    /// message.
    pub fn take_hangup(&mut self) -> Option<EndCause> {
        if self.awaiting_dnc {
            return None;
        }
        self.pending_hangup.take()
    }

    /// Whether TTS audio is to be fed now: the playout holds less than
    /// [`TTS_AHEAD`] unsent and no chunk is held back. Past that the audio
    /// waits in the bounded TTS channel and the provider's socket
    /// (back-pressure), so a long reply costs a second of memory, not its
    /// whole length.
    pub fn wants_audio(&self) -> bool {
        self.held_chunk.is_none() && self.playout.buffered() < TTS_AHEAD
    }

    /// Turns recorded so far.
    pub fn turns(&self) -> u32 {
        self.turns
    }

    /// Whether the agent is speaking (an agent turn is open).
    pub fn agent_speaking(&self) -> bool {
        self.agent.is_some()
    }

    /// The call is ending on a last line ([`Input::Leave`]).
    pub fn leaving(&self) -> bool {
        self.leaving.is_some()
    }

    /// A do-not-call was asked and is not stored yet.
    pub fn awaiting_do_not_call(&self) -> bool {
        self.awaiting_dnc
    }

    /// A transfer was asked of the provider and has not failed.
    pub fn transferring(&self) -> bool {
        self.transferring
    }

    /// The LLM ended the call as declined.
    pub fn declined(&self) -> bool {
        self.declined
    }

    /// The callee asked to be called back then.
    pub fn callback_at(&self) -> Option<DateTime<Utc>> {
        self.callback_at
    }

    /// The callee asked never to be called again.
    pub fn do_not_call(&self) -> bool {
        self.do_not_call
    }

    fn new_turn(&mut self, from_llm: bool, then: Option<EndCause>, marks: Marks, now: Now) {
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
            transfer: false,
            started_at: now.utc,
            marks,
            marked_at: 0,
        });
        self.out.push(Command::CancelTimer(TimerKind::NoInput));
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
        let live = LiveText {
            speaker: Role::Assistant,
            text: turn.text.clone(),
            started_at: turn.started_at,
        };
        self.out.push(Command::Speak { segment, text });
        self.out.push(Command::LiveText(live));
    }

    /// Says fixed text (greeting, reprompt, goodbye, voicemail) as a turn.
    fn speak_fixed(&mut self, text: &str, then: Option<EndCause>, now: Now) {
        self.new_turn(false, then, Marks::default(), now);
        let mut chunker = SentenceChunker::new();
        let mut chunks = chunker.push(text);
        chunks.extend(chunker.flush());
        for chunk in chunks {
            self.add_segment(chunk);
        }
        self.pump(now);
    }

    fn request_completion(&mut self) {
        let Some(turn) = &self.agent else {
            return;
        };
        self.out.push(Command::Generate {
            turn: turn.id,
            request: ChatRequest {
                model: self.cfg.llm_model.clone(),
                messages: self.history.clone(),
                tools: tools_for(self.transfer_offered),
            },
        });
    }

    fn child_started(&mut self, kind: ChildKind, now: Now) {
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
                    self.pump(now);
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
                self.pump(now);
            }
        }
    }

    fn on_stt(&mut self, event: SttEvent, now: Now) {
        match event {
            SttEvent::SpeechStarted => {
                self.user.started_at.get_or_insert(now.utc);
            }
            SttEvent::Interim(text) => {
                let text = text.trim();
                if !text.is_empty() {
                    let started_at = *self.user.started_at.get_or_insert(now.utc);
                    let text = match self.user.text.as_str() {
                        "" => text.to_owned(),
                        before => format!("{before} {text}"),
                    };
                    self.out.push(Command::LiveText(LiveText {
                        speaker: Role::User,
                        text,
                        started_at,
                    }));
                }
            }
            SttEvent::Final { text, speech_final } => {
                let text = text.trim();
                if !text.is_empty() {
                    if !self.user.text.is_empty() {
                        self.user.text.push(' ');
                    }
                    self.user.text.push_str(text);
                    self.user.stt_final = Some(now.at);
                    let started_at = *self.user.started_at.get_or_insert(now.utc);
                    if !speech_final {
                        self.out.push(Command::LiveText(LiveText {
                            speaker: Role::User,
                            text: self.user.text.clone(),
                            started_at,
                        }));
                    }
                }
                if speech_final {
                    self.end_user_turn(now);
                }
            }
            SttEvent::UtteranceEnd => self.end_user_turn(now),
            SttEvent::Error(_) => {}
        }
    }

    fn end_user_turn(&mut self, now: Now) {
        if self.user.text.is_empty() {
            return;
        }
        if self.agent.is_some() {
            let words = self.user.text.split_whitespace().count();
            if words <= self.cfg.backchannel_max_words && !self.caller_speaking {
                // "mm-hm" while the agent talks: not a turn, not a cut.
                self.user = UserTurn::default();
                return;
            }
            // Neither a closing line (goodbye, voicemail message: the call
            // ends once it played, so a cut would end it mid-sentence) nor
            // the handover line (the transfer is under way) is cut; the
            // words are kept as the caller's turn. A machine's greeting
            // transcribed after the verdict must not eat the message.
            if !self
                .agent
                .as_ref()
                .is_some_and(|t| t.transfer || t.then.is_some())
            {
                self.barge_in(now);
            }
        }
        let user = std::mem::take(&mut self.user);
        self.record_turn(TurnRecord {
            seq: 0,
            speaker: Role::User,
            text: user.text.clone(),
            heard_text: None,
            interrupted: false,
            started_at: user.started_at.unwrap_or(now.utc),
            ended_at: now.utc,
            latency: LatencySplit::default(),
        });
        self.history.push(ChatMessage {
            role: Role::User,
            content: user.text,
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
        self.reprompts = 0;
        if self.pending_hangup.is_some()
            || self.leaving.is_some()
            || self.transferring
            || self.agent.is_some()
        {
            return;
        }
        self.new_turn(
            true,
            None,
            Marks {
                speech_end: user.speech_end.or(user.stt_final),
                stt_final: user.stt_final,
                ..Marks::default()
            },
            now,
        );
        self.request_completion();
    }

    fn on_caller_speech(&mut self, now: Now) {
        self.caller_speaking = true;
        self.out.push(Command::CancelTimer(TimerKind::NoInput));
        self.user.started_at.get_or_insert(now.utc);
        if self
            .agent
            .as_ref()
            .is_some_and(|t| t.then.is_none() && !t.transfer)
        {
            self.barge_in(now);
        }
    }

    /// Stops the agent now: clears the playout and the provider's queue,
    /// cancels LLM and TTS, and records the turn as heard.
    fn barge_in(&mut self, now: Now) {
        let Some(turn) = self.agent.take() else {
            return;
        };
        let heard = self.playout.clear(now.at);
        self.out.push(Command::ClearMedia);
        self.out.push(Command::CancelLlm);
        self.out.push(Command::CancelTts);
        self.held_chunk = None;
        let complete = heard.complete;
        self.finish_agent_turn(turn, heard.text, !complete, now);
    }

    fn finish_agent_turn(&mut self, turn: AgentTurn, heard: String, interrupted: bool, now: Now) {
        self.record_turn(TurnRecord {
            seq: 0,
            speaker: Role::Assistant,
            text: turn.text.clone(),
            heard_text: Some(heard.clone()),
            interrupted,
            started_at: turn.started_at,
            ended_at: now.utc,
            latency: turn.marks.split(),
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
        if turn.transfer {
            self.begin_transfer();
        } else if let Some(cause) = turn.then
            && (!interrupted || self.leaving.is_none())
        {
            self.pending_hangup.get_or_insert(cause);
        }
    }

    /// The handover line has played (or was stopped): ask the provider to
    /// transfer, unless the call is already ending.
    fn begin_transfer(&mut self) {
        if self.transferring || self.pending_hangup.is_some() || self.leaving.is_some() {
            return;
        }
        let Some(transfer) = &self.cfg.transfer else {
            return;
        };
        self.transferring = true;
        self.out.push(Command::CancelTimer(TimerKind::NoInput));
        self.out.push(Command::Transfer {
            number: transfer.number.clone(),
        });
    }

    /// The transfer request failed: the tool is withdrawn (the LLM is told
    /// why), the agent apologises and listens again. The call goes on
    /// rather than ending: the callee is still on the line with a working
    /// agent, and can be offered a callback.
    fn on_transfer_failed(&mut self, why: &str, now: Now) {
        if !self.transferring {
            return;
        }
        self.transferring = false;
        self.transfer_offered = false;
        tracing::debug!(why, "transfer failed; the agent goes on");
        self.history.push(ChatMessage {
            role: Role::System,
            content: "The transfer to a person failed and is not possible on this call. Do not \
                      offer it again; help the callee yourself or offer a callback."
                .into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
        let text = self.cfg.transfer_failed_text.clone();
        self.barge_in(now);
        self.speak_fixed(&text, None, now);
    }

    fn record_turn(&mut self, mut turn: TurnRecord) {
        turn.seq = self.next_seq;
        self.next_seq += 1;
        self.turns += 1;
        self.out.push(Command::Record(turn));
    }

    fn on_llm(&mut self, turn_id: u64, event: LlmEvent, now: Now) {
        let Some(turn) = self
            .agent
            .as_mut()
            .filter(|t| t.id == turn_id && !t.text_done)
        else {
            return;
        };
        match event {
            LlmEvent::Text(delta) => {
                turn.marks.first_token.get_or_insert(now.at);
                for chunk in turn.chunker.push(&delta) {
                    self.add_segment(chunk);
                }
            }
            LlmEvent::ToolCall(call) => {
                turn.marks.first_token.get_or_insert(now.at);
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
                let announce = turn
                    .transfer
                    .then(|| self.cfg.transfer.as_ref().map(|t| t.announce.clone()))
                    .flatten();
                if let Some(rest) = rest {
                    self.add_segment(rest);
                } else if said_nothing && ends && announce.is_none() {
                    let goodbye = self.cfg.goodbye_text.clone();
                    self.add_segment(goodbye);
                }
                if let Some(announce) = announce {
                    self.add_segment(announce);
                }
            }
            LlmEvent::Error(_) => {}
        }
        self.pump(now);
    }

    fn on_tool(&mut self, call: &ToolCall) {
        let args: serde_json::Value =
            serde_json::from_str(&call.arguments).unwrap_or(serde_json::Value::Null);
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
                turn.then = Some(EndCause::Completed);
                if !self.do_not_call {
                    self.do_not_call = true;
                    self.awaiting_dnc = true;
                    self.out.push(Command::Request(CalleeRequest::DoNotCall));
                    self.out.push(Command::SetTimer(
                        TimerKind::DoNotCallStored,
                        DNC_ACK_TIMEOUT,
                    ));
                }
            }
            "schedule_callback" => {
                self.callback_at = args
                    .get("at")
                    .and_then(|v| v.as_str())
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc));
                if let Some(at) = self.callback_at {
                    self.out.push(Command::Request(CalleeRequest::Callback(at)));
                }
            }
            TRANSFER_TOOL if self.transfer_offered && turn.then.is_none() => turn.transfer = true,
            other => tracing::debug!(tool = other, "unknown or withdrawn tool call ignored"),
        }
    }

    /// Moves a TTS chunk into the playout. While a do-not-call awaits its
    /// write, a segment that has not started playing is not moved in: its
    /// first chunk is held (the rest waits in the channel: see
    /// [`Self::wants_audio`]), so the callee hears nothing promised
    /// before it is stored.
    fn take_audio(&mut self, segment: SegmentId, pcm: Vec<u8>, now: Now) {
        if self.awaiting_dnc && self.playing_segment != Some(segment) {
            self.held_chunk = Some((segment, pcm));
            return;
        }
        if pcm.is_empty() {
            self.segment_synthesised(segment);
        } else if self.playout.push_audio(segment, &pcm).is_ok() {
            self.playing_segment = Some(segment);
            if let Some(turn) = self.agent.as_mut() {
                turn.marks.first_audio.get_or_insert(now.at);
            }
        }
    }

    /// The do-not-call was not stored within [`DNC_ACK_TIMEOUT`]: the call
    /// ends without the held acknowledgement; the writer keeps retrying.
    fn on_dnc_ack_timeout(&mut self) {
        if !self.awaiting_dnc {
            return;
        }
        self.awaiting_dnc = false;
        let cause = self
            .agent
            .as_ref()
            .and_then(|t| t.then.clone())
            .unwrap_or(EndCause::Completed);
        self.pending_hangup.get_or_insert(cause);
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
    /// and asks for the next tick.
    fn pump(&mut self, now: Now) {
        // A held chunk goes in once nothing holds it any more.
        if !self.awaiting_dnc
            && let Some((segment, pcm)) = self.held_chunk.take()
        {
            self.take_audio(segment, pcm, now);
        }
        let at = now.at;
        let frames = self.playout.poll(at);
        if !frames.is_empty()
            && let Some(turn) = self.agent.as_mut()
        {
            turn.marks.first_frame.get_or_insert(at);
        }
        let sent_any = !frames.is_empty();
        for frame in frames {
            self.out.push(Command::Play(frame.bytes));
        }
        if sent_any {
            self.mark_position();
        }
        let played_out = !self.awaiting_dnc
            && self
                .agent
                .as_ref()
                .is_some_and(|t| t.text_done && t.segments.iter().all(|(_, _, done)| *done))
            && self.playout.is_idle()
            && self.playout.playing_until().is_none_or(|t| at >= t);
        if played_out {
            if let Some(turn) = self.agent.take() {
                self.out.push(Command::Mark(format!("turn-{}", turn.id)));
                let heard = self.playout.clear(at);
                self.finish_agent_turn(turn, heard.text, false, now);
                if self.pending_hangup.is_none() && self.leaving.is_none() && !self.transferring {
                    self.out.push(Command::SetTimer(
                        TimerKind::NoInput,
                        self.cfg.no_input_timeout,
                    ));
                }
            }
            return;
        }
        let next = match (self.playout.next_due(at), self.playout.playing_until()) {
            (Some(due), _) => Some(due),
            (None, Some(until)) if self.playout.is_idle() && self.agent.is_some() => Some(until),
            _ => None,
        };
        if let Some(next) = next {
            self.out.push(Command::TickAt(
                next.max(at + Duration::from_millis(1)).min(next.max(at)),
            ));
        }
    }

    /// After a batch of frames, a mark naming the turn and the stream
    /// position, at most one per [`MARK_EVERY`] of audio: its echo tells
    /// when the callee really played up to there ([`Input::MarkPlayed`]).
    fn mark_position(&mut self) {
        let Some(turn) = self.agent.as_mut() else {
            return;
        };
        let every = u64::from(self.cfg.sample_rate) * MARK_EVERY.as_millis() as u64 / 1000;
        let pos = self.playout.position();
        if pos >= turn.marked_at.saturating_add(every.max(1)) {
            turn.marked_at = pos;
            self.out.push(Command::Mark(position_mark(turn.id, pos)));
        }
    }

    fn on_no_input(&mut self, now: Now) {
        if self.agent.is_some() || self.caller_speaking || self.transferring {
            return;
        }
        self.reprompts += 1;
        if self.reprompts > self.cfg.max_reprompts {
            let goodbye = self.cfg.goodbye_text.clone();
            self.speak_fixed(&goodbye, Some(EndCause::NoInput), now);
        } else {
            let reprompt = self.cfg.reprompt_text.clone();
            self.speak_fixed(&reprompt, None, now);
        }
    }
}
