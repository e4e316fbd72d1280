//! The conversation core on its own: inputs and the time in, commands out.
//! No actor, task, channel or clock: the test is the actor (it answers
//! `Speak` with audio and `TickAt` with a tick at that instant).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{Command, Conversation, Input, Now};
use crate::call::config::{CallConfig, DNC_ACK_TIMEOUT};
use crate::call::lifecycle::EndCause;
use crate::call::msg::{ChildKind, TimerKind};
use crate::media::SegmentId;
use crate::ports::{CalleeRequest, FinishReason, LlmEvent, Role, SttEvent, ToolCall, TurnRecord};

const GREETING: &str = "Hello, this is Ada from Acme.";

/// Bytes of 20 ms of 16 kHz PCM.
const FRAME: usize = 640;

fn config() -> CallConfig {
    CallConfig::new("+14155550123", "+14155550100", "You are Ada.", GREETING)
}

/// A conversation and the time it is told.
struct Core {
    c: Conversation,
    t0: Instant,
    utc0: DateTime<Utc>,
    elapsed: Duration,
    /// Every command so far, in order.
    log: Vec<Command>,
    /// Segments asked for and not yet answered with audio.
    to_speak: Vec<(SegmentId, String)>,
    /// The next tick asked for.
    tick_at: Option<Instant>,
    /// TTS output not yet fed (the actor's TTS channel).
    pending_audio: Vec<(SegmentId, Vec<u8>)>,
}

impl Core {
    fn new(cfg: CallConfig) -> Self {
        Self {
            c: Conversation::new(cfg),
            t0: Instant::now(),
            utc0: Utc::now(),
            elapsed: Duration::ZERO,
            log: Vec::new(),
            to_speak: Vec::new(),
            tick_at: None,
            pending_audio: Vec::new(),
        }
    }

    fn now(&self) -> Now {
        Now {
            at: self.t0 + self.elapsed,
            utc: self.utc0 + chrono::Duration::from_std(self.elapsed).expect("small"),
        }
    }

    fn at(&self) -> Instant {
        self.t0 + self.elapsed
    }

    fn on(&mut self, input: Input) -> Vec<Command> {
        let out = self.c.on(input, self.now());
        for command in &out {
            match command {
                Command::Speak { segment, text } => self.to_speak.push((*segment, text.clone())),
                Command::TickAt(at) => {
                    self.tick_at = Some(self.tick_at.map_or(*at, |t| t.min(*at)));
                }
                Command::CancelTts => {
                    self.to_speak.clear();
                    self.pending_audio.clear();
                }
                _ => {}
            }
        }
        self.log.extend(out.clone());
        out
    }

    /// TTS answers every sentence asked for: 10 ms of audio per
    /// character, then the empty chunk that ends it; fed while the core
    /// wants audio, as the actor does, then a tick.
    fn synthesise(&mut self) {
        let asked = std::mem::take(&mut self.to_speak);
        let mut chunks = Vec::new();
        for (segment, text) in asked {
            let frames = text.len().div_ceil(2).max(1);
            for _ in 0..frames {
                chunks.push((segment, vec![1u8; FRAME]));
            }
            chunks.push((segment, Vec::new()));
        }
        self.pending_audio.extend(chunks);
        self.feed();
    }

    fn feed(&mut self) {
        let mut fed = false;
        while self.c.wants_audio() && !self.pending_audio.is_empty() {
            let (segment, pcm) = self.pending_audio.remove(0);
            self.on(Input::TtsAudio { segment, pcm });
            fed = true;
        }
        if fed {
            self.on(Input::Tick);
        }
    }

    /// Lets `d` pass, ticking whenever a tick was asked for.
    fn run(&mut self, d: Duration) {
        let end = self.at() + d;
        while let Some(at) = self.tick_at.filter(|t| *t <= end) {
            self.tick_at = None;
            if at > self.at() {
                self.elapsed = at - self.t0;
            }
            self.on(Input::Tick);
            self.feed();
        }
        self.elapsed = end - self.t0;
    }

    fn records(&self) -> Vec<&TurnRecord> {
        self.log
            .iter()
            .filter_map(|c| match c {
                Command::Record(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn frames(&self) -> usize {
        self.log
            .iter()
            .filter(|c| matches!(c, Command::Play(_)))
            .count()
    }

    fn greeted(cfg: CallConfig) -> Self {
        let mut core = Self::new(cfg);
        core.on(Input::Say {
            text: GREETING.into(),
            then: None,
        });
        core.synthesise();
        core.run(Duration::from_secs(5));
        core
    }

    fn say(&mut self, text: &str) {
        let turn = self.last_generate().expect("a reply was asked for");
        self.on(Input::Llm {
            turn,
            event: LlmEvent::Text(text.into()),
        });
        self.on(Input::Llm {
            turn,
            event: LlmEvent::Finish(FinishReason::Stop),
        });
        self.synthesise();
    }

    fn last_generate(&self) -> Option<u64> {
        self.log.iter().rev().find_map(|c| match c {
            Command::Generate { turn, .. } => Some(*turn),
            _ => None,
        })
    }

    fn final_(&mut self, text: &str) {
        self.on(Input::Stt(SttEvent::Final {
            text: text.into(),
            speech_final: true,
        }));
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_greeting_is_spoken_paced_then_the_core_listens() {
    let mut core = Core::new(config());
    let out = core.on(Input::Say {
        text: GREETING.into(),
        then: None,
    });
    // Its sentences to TTS, nothing played before audio comes.
    let spoken: Vec<&str> = out
        .iter()
        .filter_map(|c| match c {
            Command::Speak { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(spoken.join(" "), GREETING, "{out:?}");
    assert_eq!(core.frames(), 0);
    core.synthesise();
    // At once: the lead (200 ms = 10 frames), no more.
    assert_eq!(core.frames(), 10);
    core.run(ms(100));
    assert!((14..=16).contains(&core.frames()), "{}", core.frames());
    core.run(Duration::from_secs(5));
    let records = core.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].speaker, Role::Assistant);
    assert_eq!(records[0].heard_text.as_deref(), Some(GREETING));
    assert!(!records[0].interrupted);
    // Played out: a mark to the provider, then the no-input timer.
    let tail: Vec<&Command> = core.log.iter().rev().take(3).collect();
    assert!(
        matches!(tail[0], Command::SetTimer(TimerKind::NoInput, d) if *d == config().no_input_timeout),
        "{tail:?}"
    );
    assert!(
        core.log
            .iter()
            .any(|c| matches!(c, Command::Mark(m) if m == "turn-1"))
    );
    assert!(!core.c.agent_speaking());
}

#[test]
fn a_final_transcript_is_a_user_turn_and_asks_the_llm_with_the_history() {
    let mut core = Core::greeted(config());
    core.on(Input::CallerSpeech);
    core.run(ms(800));
    core.on(Input::CallerSilent {
        speech_end: core.at() - ms(300),
    });
    core.final_("I am interested");
    let request = core
        .log
        .iter()
        .rev()
        .find_map(|c| match c {
            Command::Generate { request, .. } => Some(request.clone()),
            _ => None,
        })
        .expect("the LLM is asked");
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::Assistant, Role::User]);
    assert_eq!(request.messages[1].content, GREETING);
    assert_eq!(request.messages[2].content, "I am interested");
    assert_eq!(request.tools.len(), 3);
    let records = core.records();
    assert_eq!(records[1].speaker, Role::User);
    assert_eq!(records[1].seq, 1);
}

#[test]
fn the_vads_end_of_speech_is_what_the_latency_counts_from() {
    let mut core = Core::greeted(config());
    core.on(Input::CallerSpeech);
    core.run(ms(600));
    // The VAD saw its (configured) hangover of 900 ms: the speech ended
    // then, not 300 ms (the default hangover) before this input.
    let speech_end = core.at();
    core.run(ms(900));
    core.on(Input::CallerSilent { speech_end });
    core.run(ms(200));
    core.final_("Tell me more");
    core.run(ms(150));
    core.say("Sure.");
    core.run(Duration::from_secs(3));
    let reply = *core.records().last().expect("the reply");
    assert_eq!(reply.speaker, Role::Assistant);
    assert_eq!(reply.latency.stt_ms, Some(1100), "{:?}", reply.latency);
    assert_eq!(reply.latency.llm_first_token_ms, Some(150));
    assert_eq!(reply.latency.voice_to_voice_ms, Some(1250));
}

#[test]
fn the_caller_speaking_cuts_the_agent_and_only_what_was_heard_counts() {
    let mut core = Core::greeted(config());
    core.final_("What is it about");
    core.say("It is about your energy contract. We can save you money.");
    core.run(ms(500));
    let before = core.log.len();
    core.on(Input::CallerSpeech);
    let cut = &core.log[before..];
    assert!(cut.contains(&Command::ClearMedia), "{cut:?}");
    assert!(cut.contains(&Command::CancelLlm));
    assert!(cut.contains(&Command::CancelTts));
    let reply = *core.records().last().expect("the reply");
    assert!(reply.interrupted);
    let heard = reply.heard_text.as_deref().unwrap_or_default();
    assert!(
        !heard.is_empty() && reply.text.starts_with(heard) && heard.len() < reply.text.len(),
        "heard {heard:?} of {:?}",
        reply.text
    );
    assert!(!core.c.agent_speaking());
}

#[test]
fn a_short_backchannel_while_the_agent_talks_is_not_a_turn() {
    let mut core = Core::greeted(config());
    core.final_("Go on");
    core.say("It is about your energy contract. We can save you money.");
    core.run(ms(500));
    let records = core.records().len();
    let before = core.log.len();
    // STT heard "mm-hm" but the VAD never saw the barge-in minimum.
    core.final_("mm-hm");
    assert_eq!(core.records().len(), records);
    assert!(!core.log[before..].contains(&Command::ClearMedia));
    assert!(core.c.agent_speaking());
}

#[test]
fn silence_gets_reprompts_then_a_goodbye_then_the_hang_up() {
    let mut cfg = config();
    cfg.max_reprompts = 1;
    let mut core = Core::greeted(cfg.clone());
    core.on(Input::Timer(TimerKind::NoInput));
    core.synthesise();
    core.run(Duration::from_secs(5));
    let said: Vec<String> = core.records().iter().map(|t| t.text.clone()).collect();
    assert_eq!(said, [GREETING.to_string(), cfg.reprompt_text.clone()]);
    assert_eq!(core.c.take_hangup(), None);
    core.on(Input::Timer(TimerKind::NoInput));
    core.synthesise();
    core.run(Duration::from_secs(5));
    assert_eq!(
        core.records().last().expect("goodbye").text,
        cfg.goodbye_text
    );
    assert_eq!(core.c.take_hangup(), Some(EndCause::NoInput));
    // A goodbye that ends the call arms no no-input timer after it.
    assert!(!matches!(
        core.log.last(),
        Some(Command::SetTimer(TimerKind::NoInput, _))
    ));
}

#[test]
fn a_do_not_call_is_heard_only_once_stored_and_the_hang_up_waits_for_it() {
    let mut core = Core::greeted(config());
    core.final_("Never call me again");
    let turn = core.last_generate().expect("asked");
    let out = core.on(Input::Llm {
        turn,
        event: LlmEvent::ToolCall(ToolCall {
            id: "t1".into(),
            name: "mark_do_not_call".into(),
            arguments: "{}".into(),
        }),
    });
    assert!(out.contains(&Command::Request(CalleeRequest::DoNotCall)));
    assert!(out.contains(&Command::SetTimer(
        TimerKind::DoNotCallStored,
        DNC_ACK_TIMEOUT
    )));
    core.say("Understood, you will not be called again. Goodbye.");
    let frames = core.frames();
    core.run(Duration::from_secs(2));
    assert_eq!(core.frames(), frames, "nothing played before it is stored");
    assert!(!core.c.wants_audio(), "the first chunk is held");
    assert!(core.c.awaiting_do_not_call());
    assert_eq!(core.c.take_hangup(), None);
    let out = core.on(Input::RequestStored(CalleeRequest::DoNotCall));
    assert!(!core.c.awaiting_do_not_call());
    assert!(out.contains(&Command::CancelTimer(TimerKind::DoNotCallStored)));
    core.feed();
    core.run(Duration::from_secs(6));
    assert!(core.frames() > frames);
    assert!(core.c.do_not_call());
    assert_eq!(core.c.take_hangup(), Some(EndCause::Completed));
}

#[test]
fn a_last_line_hangs_up_when_it_played_or_when_its_time_is_up() {
    let mut core = Core::greeted(config());
    let out = core.on(Input::Leave {
        text: "We are out of time. Goodbye.".into(),
        then: EndCause::Timeout,
        within: Duration::from_secs(4),
        cause: EndCause::Timeout,
    });
    assert!(out.contains(&Command::SetTimer(
        TimerKind::ApologyDone,
        Duration::from_secs(4)
    )));
    assert!(core.c.leaving());
    // The line never plays (TTS is gone): the timer ends the call.
    let out = core.on(Input::Timer(TimerKind::ApologyDone));
    assert_eq!(out, [Command::HangUp(EndCause::Timeout)]);
}

#[test]
fn a_restarted_llm_is_asked_again_only_if_nothing_was_said() {
    let mut core = Core::greeted(config());
    core.final_("Hi");
    let asked = |core: &Core| {
        core.log
            .iter()
            .filter(|c| matches!(c, Command::Generate { .. }))
            .count()
    };
    assert_eq!(asked(&core), 1);
    core.on(Input::ChildStarted(ChildKind::Llm));
    assert_eq!(asked(&core), 2, "nothing said: asked again");
    let turn = core.last_generate().expect("asked");
    core.on(Input::Llm {
        turn,
        event: LlmEvent::Text("Hello there. And".into()),
    });
    core.on(Input::ChildStarted(ChildKind::Llm));
    assert_eq!(asked(&core), 2, "words were said: not asked again");
    core.synthesise();
    core.run(Duration::from_secs(5));
    let reply = *core.records().last().expect("reply");
    assert_eq!(reply.text, "Hello there. And");
}

/// A position mark sent: (name, turn, position).
type SentMark = (String, u64, u64);

/// Picks the mark to echo from those sent.
type PickMark<'a> = &'a dyn Fn(&[SentMark]) -> String;

/// The position marks sent so far, in order.
fn position_marks(log: &[Command]) -> Vec<SentMark> {
    log.iter()
        .filter_map(|c| match c {
            Command::Mark(name) => {
                super::parse_position_mark(name).map(|(t, p)| (name.clone(), t, p))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn position_marks_follow_the_frames_about_every_100_ms() {
    let mut core = Core::greeted(config());
    core.final_("What is it about");
    core.say("It is about your energy contract. We can save you money.");
    core.run(ms(1000));
    let marks = position_marks(&core.log);
    let reply: Vec<_> = marks.iter().filter(|(_, t, _)| *t == 2).collect();
    // 580 ms of audio: a mark after each full 100 ms batch.
    assert_eq!(reply.len(), 4, "{marks:?}");
    for pair in reply.windows(2) {
        assert!(
            pair[1].2 >= pair[0].2 + 1600,
            "at most one per 100 ms: {pair:?}"
        );
    }
    // Each mark follows the frames it counts.
    let last = reply.last().expect("a mark");
    let at = core
        .log
        .iter()
        .position(|c| *c == Command::Mark(last.0.clone()));
    let frames_before = core.log[..at.expect("logged")]
        .iter()
        .rev()
        .take_while(|c| !matches!(c, Command::Mark(m) if m.starts_with("turn-")))
        .filter(|c| matches!(c, Command::Play(_)))
        .count() as u64;
    assert_eq!(last.2, frames_before * 320, "samples sent in the turn");
}

#[test]
fn a_late_echo_makes_barge_in_record_only_what_the_callee_had_played() {
    let run = |echo: Option<PickMark>| {
        let mut core = Core::greeted(config());
        core.final_("What is it about");
        core.say("It is about your energy contract. We can save you money.");
        core.run(ms(450));
        if let Some(pick) = echo {
            let name = pick(&position_marks(&core.log));
            core.on(Input::MarkPlayed(name));
        }
        core.on(Input::CallerSpeech);
        let reply = *core.records().last().expect("the reply");
        assert!(reply.interrupted);
        (
            reply.text.clone(),
            reply.heard_text.clone().unwrap_or_default(),
        )
    };
    let (text, by_send_times) = run(None);
    // The callee echoes, only now, the reply's first position mark (sent
    // at its start, due 200 ms in): it plays about 250 ms behind.
    let first_of_reply = |m: &[SentMark]| {
        m.iter()
            .find(|(_, t, _)| *t == 2)
            .expect("a mark")
            .0
            .clone()
    };
    let (_, lagging) = run(Some(&first_of_reply));
    assert!(
        text.starts_with(&by_send_times) && by_send_times.starts_with(&lagging),
        "{lagging:?} < {by_send_times:?} < {text:?}"
    );
    assert!(
        lagging.len() < by_send_times.len(),
        "{lagging:?} vs {by_send_times:?}"
    );
    // An echo of another turn's mark (the greeting's) changes nothing.
    let greeting_mark = |m: &[SentMark]| {
        m.iter()
            .find(|(_, t, _)| *t == 1)
            .expect("a mark")
            .0
            .clone()
    };
    assert_eq!(run(Some(&greeting_mark)).1, by_send_times);
    // Nor does a mark that is not a position mark.
    assert_eq!(super::parse_position_mark("turn-2"), None);
    assert_eq!(super::parse_position_mark("pos-2-x"), None);
    assert_eq!(
        super::parse_position_mark(&super::position_mark(7, 3200)),
        Some((7, 3200))
    );
}

const ANNOUNCE: &str = "Connecting you to a colleague now, please hold.";

fn transfer_config() -> CallConfig {
    let mut cfg = config();
    cfg.transfer = Some(crate::call::config::TransferConfig {
        number: "+14155550199".into(),
        announce: ANNOUNCE.into(),
    });
    cfg
}

fn tool_names(core: &Core) -> Vec<String> {
    let request = core
        .log
        .iter()
        .rev()
        .find_map(|c| match c {
            Command::Generate { request, .. } => Some(request.clone()),
            _ => None,
        })
        .expect("the LLM is asked");
    request.tools.iter().map(|t| t.name.clone()).collect()
}

/// The callee asks for a person and the LLM calls the transfer tool after
/// a few words of its own.
fn ask_for_a_person(core: &mut Core) {
    core.final_("Can I talk to a real person please");
    let turn = core.last_generate().expect("asked");
    core.on(Input::Llm {
        turn,
        event: LlmEvent::Text("Of course.".into()),
    });
    core.on(Input::Llm {
        turn,
        event: LlmEvent::ToolCall(ToolCall {
            id: "t1".into(),
            name: super::TRANSFER_TOOL.into(),
            arguments: "{}".into(),
        }),
    });
    core.on(Input::Llm {
        turn,
        event: LlmEvent::Finish(FinishReason::ToolCalls),
    });
}

fn transfers(log: &[Command]) -> Vec<&str> {
    log.iter()
        .filter_map(|c| match c {
            Command::Transfer { number } => Some(number.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_transfer_tool_is_offered_only_with_a_transfer_setting() {
    let mut core = Core::greeted(config());
    core.final_("Can I talk to a real person please");
    assert!(!tool_names(&core).iter().any(|n| n == super::TRANSFER_TOOL));
    let system = |core: &Core| match core.log.iter().rev().find_map(|c| match c {
        Command::Generate { request, .. } => Some(request.messages[0].content.clone()),
        _ => None,
    }) {
        Some(s) => s,
        None => panic!("no request"),
    };
    assert!(!system(&core).contains("transfer_call"));
    // Called anyway (a confused model): ignored, no transfer, no announce.
    let turn = core.last_generate().expect("asked");
    core.on(Input::Llm {
        turn,
        event: LlmEvent::ToolCall(ToolCall {
            id: "t1".into(),
            name: super::TRANSFER_TOOL.into(),
            arguments: "{}".into(),
        }),
    });
    core.say("I can help you myself.");
    core.run(Duration::from_secs(10));
    assert!(transfers(&core.log).is_empty());
    assert!(!core.c.transferring());

    let mut core = Core::greeted(transfer_config());
    core.final_("Can I talk to a real person please");
    assert!(tool_names(&core).iter().any(|n| n == super::TRANSFER_TOOL));
    assert!(system(&core).contains("transfer_call"));
}

#[test]
fn the_announce_line_plays_then_the_transfer_is_asked() {
    let mut core = Core::greeted(transfer_config());
    ask_for_a_person(&mut core);
    let spoken: Vec<String> = core.to_speak.iter().map(|(_, text)| text.clone()).collect();
    assert_eq!(
        spoken.last().map(String::as_str),
        Some(ANNOUNCE),
        "{spoken:?}"
    );
    assert!(transfers(&core.log).is_empty(), "not before it played");
    core.synthesise();
    // The callee talking over the announce does not cut it.
    core.run(ms(300));
    core.on(Input::CallerSpeech);
    assert!(core.c.agent_speaking());
    core.run(Duration::from_secs(10));
    assert_eq!(transfers(&core.log), ["+14155550199"]);
    assert!(core.c.transferring());
    let last_agent = core
        .records()
        .into_iter()
        .rev()
        .find(|r| r.speaker == Role::Assistant)
        .cloned()
        .expect("an agent turn");
    assert!(last_agent.text.ends_with(ANNOUNCE), "{last_agent:?}");
    assert_eq!(
        last_agent.heard_text.as_deref(),
        Some(last_agent.text.as_str())
    );
    assert!(!last_agent.interrupted);
    // No reprompt, no new turn, no hang-up while the transfer is out.
    let count = core.log.len();
    core.on(Input::Timer(TimerKind::NoInput));
    core.final_("Hello? Are you still there");
    assert!(
        !core.log[count..]
            .iter()
            .any(|c| matches!(c, Command::Generate { .. } | Command::Speak { .. })),
        "{:?}",
        &core.log[count..]
    );
    assert_eq!(core.c.take_hangup(), None);
}

#[test]
fn a_failed_transfer_is_apologised_for_and_the_call_goes_on_without_the_tool() {
    let mut cfg = transfer_config();
    cfg.transfer_failed_text = "Sorry, nobody can take the call right now.".into();
    let mut core = Core::greeted(cfg);
    ask_for_a_person(&mut core);
    core.synthesise();
    core.run(Duration::from_secs(10));
    assert_eq!(transfers(&core.log).len(), 1);
    core.on(Input::TransferFailed("rejected: 404".into()));
    assert!(!core.c.transferring());
    assert_eq!(
        core.to_speak.last().map(|(_, t)| t.as_str()),
        Some("Sorry, nobody can take the call right now.")
    );
    core.synthesise();
    core.run(Duration::from_secs(10));
    assert_eq!(core.c.take_hangup(), None, "the call goes on");
    assert!(
        matches!(
            core.log.last(),
            Some(Command::SetTimer(TimerKind::NoInput, _))
        ),
        "listening again: {:?}",
        core.log.last()
    );
    core.final_("Fine, tell me more then");
    assert!(
        !tool_names(&core).iter().any(|n| n == super::TRANSFER_TOOL),
        "the tool is withdrawn"
    );
    // A stale answer does nothing.
    let count = core.log.len();
    core.on(Input::TransferFailed("late".into()));
    assert_eq!(core.log.len(), count);
    assert_eq!(transfers(&core.log).len(), 1);
}

#[test]
fn a_late_final_does_not_cut_a_closing_line() {
    // A machine's greeting transcribed after the verdict (STT runs late
    // under load): the voicemail message plays whole, then the call ends.
    let mut core = Core::greeted(config());
    let message = "Hi, this is Ada from Acme. Please call us back.";
    core.on(Input::Say {
        text: message.into(),
        then: Some(EndCause::Machine),
    });
    core.synthesise();
    core.run(ms(200));
    core.final_("Please leave a message after the tone.");
    assert_eq!(core.c.take_hangup(), None, "the message was cut");
    assert!(core.last_generate().is_none(), "no reply to a machine");
    core.run(Duration::from_secs(5));
    let records = core.records();
    let last = records.last().expect("turns");
    assert_eq!(last.speaker, Role::Assistant);
    assert_eq!(last.heard_text.as_deref(), Some(message));
    assert!(!last.interrupted);
    assert_eq!(core.c.take_hangup(), Some(EndCause::Machine));
}

#[test]
fn the_text_being_spoken_goes_to_live_watchers() {
    let live = |core: &Core| -> Vec<(Role, String)> {
        core.log
            .iter()
            .filter_map(|c| match c {
                Command::LiveText(t) => Some((t.speaker, t.text.clone())),
                _ => None,
            })
            .collect()
    };
    let mut core = Core::greeted(config());
    assert_eq!(live(&core), [(Role::Assistant, GREETING.to_owned())]);
    core.log.clear();
    // The callee: finals so far plus the latest interim, as they come.
    core.on(Input::Stt(SttEvent::Interim("I would".into())));
    core.on(Input::Stt(SttEvent::Final {
        text: "I would like".into(),
        speech_final: false,
    }));
    core.on(Input::Stt(SttEvent::Interim("to know".into())));
    core.final_("to know more.");
    assert_eq!(
        live(&core),
        [
            (Role::User, "I would".to_owned()),
            (Role::User, "I would like".to_owned()),
            (Role::User, "I would like to know".to_owned()),
        ]
    );
    // The agent: its reply sentence by sentence as it goes to speech.
    let turn = core.last_generate().expect("a reply was asked for");
    core.log.clear();
    core.on(Input::Llm {
        turn,
        event: LlmEvent::Text("Sure. We open at".into()),
    });
    core.on(Input::Llm {
        turn,
        event: LlmEvent::Text(" nine.".into()),
    });
    core.on(Input::Llm {
        turn,
        event: LlmEvent::Finish(FinishReason::Stop),
    });
    assert_eq!(
        live(&core),
        [
            (Role::Assistant, "Sure.".to_owned()),
            (Role::Assistant, "Sure. We open at nine.".to_owned()),
        ]
    );
}

#[test]
fn a_repeated_machine_verdict_restarts_the_message_whole() {
    // The verdict, then the beep (another `machine` event): the message
    // starts again after the tone, and the call ends once that one played.
    let mut core = Core::greeted(config());
    let message = "Hi, this is Ada from Acme. Please call us back.";
    for _ in 0..2 {
        core.on(Input::Say {
            text: message.into(),
            then: Some(EndCause::Machine),
        });
        core.synthesise();
        core.run(ms(300));
        assert_eq!(core.c.take_hangup(), None, "the message was cut");
    }
    core.run(Duration::from_secs(5));
    let records = core.records();
    let last = records.last().expect("turns");
    assert_eq!(last.heard_text.as_deref(), Some(message));
    assert!(!last.interrupted);
    assert!(records[records.len() - 2].interrupted, "the first was cut");
    assert_eq!(core.c.take_hangup(), Some(EndCause::Machine));
}
