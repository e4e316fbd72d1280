//! The persona on the line, whatever carries the call: the part of a
//! simulated call that both telephony emulators (Vonage's binary L16
//! frames, Twilio's base64 μ-law JSON) share, so a persona behaves the same
//! through either and a fix to its timing lands in both.
//!
//! A [`Conversation`] is driven by its transport: the transport queues the
//! agent's audio it receives ([`Conversation::received`]) and the agent's
//! markers ([`Conversation::mark`]), forwards a barge-in
//! ([`Conversation::clear`]), and every 20 ms calls [`Conversation::tick`],
//! which plays one queued frame (or silence) to the persona's ears, says
//! which markers have now been played, runs the persona's script and hands
//! back the persona's next 20 ms of voice and any keys pressed. What the
//! persona said and heard, with times, is taken off with
//! [`Conversation::take_logs`]; the load counters (underruns, barge-in
//! reaction) are kept on the way.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::codec::{Decoded, Decoder, Encoder};
use crate::persona::{Persona, Step};
use crate::vonage::stats::{Counters, inc};
use talky::audio::pcm::i16_to_bytes;
use talky_actors::media::{Vad, VadConfig, VadEvent};

/// A line the persona said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    /// The text.
    pub text: String,
    /// When it started playing.
    pub at: DateTime<Utc>,
}

/// An agent utterance the persona heard (decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    /// The decoded text.
    pub text: String,
    /// When speech started.
    pub started: DateTime<Utc>,
    /// When the utterance ended (or the call did).
    pub ended: DateTime<Utc>,
}

/// Most agent frames queued for playing (10 minutes of 20 ms frames): the
/// queue is bounded even against a sender that never stops, far above what
/// a real provider buffers (Vonage about 60 s) so a well-behaved client
/// never reaches it.
pub const MAX_QUEUED_FRAMES: usize = 30_000;

/// The persona's script: its progress, its voice and its ears.
struct Callee {
    steps: Vec<Step>,
    idx: usize,
    step_started: Instant,
    step_begun: bool,
    base_ends: u64,
    base_words: u64,
    out: VecDeque<i16>,
    encoder: Encoder,
    decoder: Decoder,
    cur_text: String,
    cur_start: Option<DateTime<Utc>>,
    utter_ends: u64,
    words_done: u64,
    last_agent_sound: Instant,
    lines_said: usize,
    dtmf: Vec<char>,
    /// A line began while the agent was speaking: its first frame starts
    /// the barge-in clock.
    barge_pending: bool,
}

/// What the script wants after a step.
enum Act {
    Continue,
    HangUp,
}

/// Words of `t` that are complete (followed by whitespace).
fn completed_words(t: &str) -> u64 {
    let words = t.split_whitespace().count() as u64;
    if words == 0 || t.ends_with(char::is_whitespace) {
        words
    } else {
        words - 1
    }
}

impl Callee {
    fn new(persona: &Persona, rate: u32) -> Self {
        let now = Instant::now();
        Self {
            steps: persona.steps.clone(),
            idx: 0,
            step_started: now,
            step_begun: false,
            base_ends: 0,
            base_words: 0,
            out: VecDeque::new(),
            encoder: Encoder::new(rate),
            decoder: Decoder::new(rate),
            cur_text: String::new(),
            cur_start: None,
            utter_ends: 0,
            words_done: 0,
            last_agent_sound: now,
            lines_said: 0,
            dtmf: Vec::new(),
            barge_pending: false,
        }
    }

    fn words(&self) -> u64 {
        self.words_done + completed_words(&self.cur_text)
    }

    /// Hears one played frame; finished utterances go to `heard`.
    fn hear(&mut self, pcm: &[i16], heard: &mut Vec<Heard>) {
        for ev in self.decoder.push(pcm) {
            match ev {
                Decoded::SpeechStart { .. } => {
                    self.cur_start.get_or_insert_with(Utc::now);
                }
                Decoded::Char { c, .. } => {
                    self.cur_start.get_or_insert_with(Utc::now);
                    self.cur_text.push(c);
                }
                Decoded::UtteranceEnd { .. } => self.end_utterance(heard),
            }
        }
        if self.decoder.in_speech() {
            self.last_agent_sound = Instant::now();
        }
    }

    fn end_utterance(&mut self, heard: &mut Vec<Heard>) {
        let text = std::mem::take(&mut self.cur_text);
        let started = self.cur_start.take();
        self.words_done += text.split_whitespace().count() as u64;
        if text.is_empty() && started.is_none() {
            return;
        }
        self.utter_ends += 1;
        heard.push(Heard {
            text,
            started: started.unwrap_or_else(Utc::now),
            ended: Utc::now(),
        });
    }

    /// Runs the script as far as it can go now.
    fn advance(&mut self, said: &mut Vec<Said>) -> Act {
        while let Some(step) = self.steps.get(self.idx).cloned() {
            let now = Instant::now();
            if !self.step_begun {
                self.step_begun = true;
                self.step_started = now;
                self.base_ends = self.utter_ends;
                self.base_words = self.words();
                if let Step::Say { text } = &step {
                    self.barge_pending = self.cur_start.is_some() || self.decoder.in_speech();
                    let pcm = self.encoder.encode(text);
                    self.out.extend(pcm);
                    self.lines_said += 1;
                    said.push(Said {
                        text: text.clone(),
                        at: Utc::now(),
                    });
                }
            }
            let elapsed = now - self.step_started;
            let timed_out =
                |t: Option<u64>| t.is_some_and(|ms| elapsed >= Duration::from_millis(ms));
            let done = match &step {
                Step::WaitForAgentUtteranceEnd { timeout_ms } => {
                    self.utter_ends > self.base_ends || timed_out(*timeout_ms)
                }
                Step::WaitForAgentWords { n, timeout_ms } => {
                    self.words() >= self.base_words + *n as u64 || timed_out(*timeout_ms)
                }
                Step::WaitForSilence { ms } => {
                    let since = self.last_agent_sound.max(self.step_started);
                    !self.decoder.in_speech() && now - since >= Duration::from_millis(*ms)
                }
                Step::Say { .. } => self.out.is_empty(),
                Step::Pause { ms } => elapsed >= Duration::from_millis(*ms),
                Step::Press { digits } => {
                    self.dtmf.extend(
                        digits
                            .chars()
                            .filter(|c| c.is_ascii_digit() || *c == '*' || *c == '#'),
                    );
                    true
                }
                Step::HangUp => return Act::HangUp,
            };
            if !done {
                return Act::Continue;
            }
            self.idx += 1;
            self.step_begun = false;
        }
        Act::Continue
    }
}

/// Gaps and barge-in timing of one call's media, fed per tick.
#[derive(Default)]
struct Meter {
    /// Empty ticks since the last agent frame inside the utterance.
    gap: u64,
    /// A `clear` cut the current utterance: its trailing silence is no gap.
    cleared: bool,
    /// When the callee's barging line sent its first frame.
    barge_started: Option<Instant>,
    /// talky's VAD (same code, same barge-in minimum) over the barging
    /// line's frames: when it fires, talky can know the speech started.
    barge_vad: Option<Vad>,
    /// When the frame went out with which that VAD fired.
    barge_event: Option<Instant>,
}

impl Meter {
    fn barge_begins(&mut self, rate: u32) {
        self.barge_started = Some(Instant::now());
        self.barge_event = None;
        self.barge_vad = Some(Vad::new(
            VadConfig {
                min_speech: talky_actors::call::config::DEFAULT_BARGE_IN_MIN_SPEECH,
                ..VadConfig::default()
            },
            rate,
        ));
    }

    fn barge_forgotten(&mut self) {
        self.barge_started = None;
        self.barge_event = None;
        self.barge_vad = None;
    }

    /// A frame of the callee's about to go out.
    fn callee_frame(&mut self, pcm: &[i16]) {
        if self.barge_event.is_none()
            && let Some(vad) = &mut self.barge_vad
            && let Some(VadEvent::SpeechStart) = vad.push_frame(&i16_to_bytes(pcm))
        {
            self.barge_event = Some(Instant::now());
        }
    }
}

/// What one 20 ms tick produced, for the transport to send in this order:
/// the marker echoes, the persona's frame, the keys.
pub(crate) struct Tick<M> {
    /// Markers whose audio has now been played out, in queue order.
    pub marks: Vec<M>,
    /// The persona's next 20 ms (silence-padded to a whole frame).
    pub frame: Vec<i16>,
    /// Keys pressed this tick (`0-9*#`).
    pub dtmf: Vec<char>,
    /// The persona hung up.
    pub hang_up: bool,
}

/// One persona on one answered call: the agent's queued audio, played in
/// real time to the persona's ears, the markers placed in that queue, and
/// the persona's script and voice. `M` is the transport's marker (Vonage's
/// notify payload, Twilio's mark name).
pub(crate) struct Conversation<'a, M> {
    callee: Callee,
    counters: &'a Counters,
    meter: Meter,
    rate: u32,
    /// Samples per 20 ms frame.
    frame: usize,
    silence: Vec<i16>,
    /// Agent frames received, not yet played (at most
    /// [`MAX_QUEUED_FRAMES`]).
    inbox: VecDeque<Vec<i16>>,
    /// Frames received in total (each marker sits at a count).
    received: u64,
    /// Frames played (or discarded by a clear) in total.
    played: u64,
    /// Markers and the count of frames that must be played before each.
    markers: VecDeque<(u64, M)>,
    heard: Vec<Heard>,
    said: Vec<Said>,
}

impl<'a, M> Conversation<'a, M> {
    /// `persona` on a leg at `rate` Hz (8000 for Twilio's μ-law, the
    /// socket's rate for Vonage), counting into `counters`.
    pub(crate) fn new(persona: &Persona, rate: u32, counters: &'a Counters) -> Self {
        let frame = (rate / 50) as usize;
        Self {
            callee: Callee::new(persona, rate),
            counters,
            meter: Meter::default(),
            rate,
            frame,
            silence: vec![0; frame],
            inbox: VecDeque::new(),
            received: 0,
            played: 0,
            markers: VecDeque::new(),
            heard: Vec::new(),
            said: Vec::new(),
        }
    }

    /// Samples in one 20 ms frame.
    pub(crate) fn frame_len(&self) -> usize {
        self.frame
    }

    /// Queues one frame of the agent's audio for playing. False when the
    /// queue is full ([`MAX_QUEUED_FRAMES`]): the frame is dropped.
    pub(crate) fn received(&mut self, pcm: Vec<i16>) -> bool {
        if self.inbox.len() >= MAX_QUEUED_FRAMES {
            return false;
        }
        self.received += 1;
        self.inbox.push_back(pcm);
        true
    }

    /// Frames queued, not yet played.
    pub(crate) fn queued(&self) -> usize {
        self.inbox.len()
    }

    /// Places a marker after the audio queued so far. Pending markers are
    /// bounded like the audio ([`MAX_QUEUED_FRAMES`]): past that, the
    /// oldest is given back at once (the transport echoes it early rather
    /// than holding markers without limit).
    pub(crate) fn mark(&mut self, m: M) -> Option<M> {
        self.markers.push_back((self.received, m));
        if self.markers.len() > MAX_QUEUED_FRAMES {
            return self.markers.pop_front().map(|(_, m)| m);
        }
        None
    }

    /// Barge-in: drops every queued frame (the persona hears no more of
    /// them) and hands back the pending markers, in order, now that their
    /// audio will never play. Counts the clear and the barge-in reaction.
    pub(crate) fn clear(&mut self) -> Vec<M> {
        self.inbox.clear();
        self.played = self.received;
        inc(&self.counters.clears, 1);
        self.meter.gap = 0;
        self.meter.cleared = true;
        if let Some(t) = self.meter.barge_started.take() {
            let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
            self.counters.barge(ms(t), self.meter.barge_event.map(ms));
        }
        self.meter.barge_forgotten();
        self.markers.drain(..).map(|(_, m)| m).collect()
    }

    /// One 20 ms tick: plays a queued frame (silence when none is) to the
    /// persona, releases the markers now played, takes the persona's next
    /// frame and runs its script.
    pub(crate) fn tick(&mut self) -> Tick<M> {
        let callee = &mut self.callee;
        let meter = &mut self.meter;
        let counters = self.counters;
        let ends_before = callee.utter_ends;
        match self.inbox.pop_front() {
            Some(f) => {
                self.played += 1;
                inc(&counters.agent_frames, 1);
                if meter.gap > 0 && callee.cur_start.is_some() && !meter.cleared {
                    inc(&counters.underrun_gaps, 1);
                    inc(&counters.underrun_frames, meter.gap);
                }
                meter.gap = 0;
                callee.hear(&f, &mut self.heard);
            }
            None => {
                if callee.cur_start.is_some() && !meter.cleared {
                    meter.gap += 1;
                }
                callee.hear(&self.silence, &mut self.heard);
            }
        }
        if callee.utter_ends > ends_before {
            // The utterance is over: its trailing silence was no gap, and
            // a barge-in that got no clear is not timed.
            meter.gap = 0;
            meter.cleared = false;
            meter.barge_forgotten();
        }
        let mut marks = Vec::new();
        while self
            .markers
            .front()
            .is_some_and(|(at, _)| *at <= self.played)
        {
            if let Some((_, m)) = self.markers.pop_front() {
                marks.push(m);
            }
        }
        // Speak: one frame of the persona's voice or silence.
        let n = callee.out.len().min(self.frame);
        if callee.barge_pending && n > 0 {
            callee.barge_pending = false;
            inc(&counters.barge_attempts, 1);
            meter.barge_begins(self.rate);
        }
        let mut frame: Vec<i16> = callee.out.drain(..n).collect();
        frame.resize(self.frame, 0);
        meter.callee_frame(&frame);
        let act = callee.advance(&mut self.said);
        Tick {
            marks,
            frame,
            dtmf: std::mem::take(&mut callee.dtmf),
            hang_up: matches!(act, Act::HangUp),
        }
    }

    /// Lines the persona has begun so far.
    pub(crate) fn lines_said(&self) -> usize {
        self.callee.lines_said
    }

    /// Whether the persona is still speaking (voice left to send).
    pub(crate) fn speaking(&self) -> bool {
        !self.callee.out.is_empty()
    }

    /// Skips the script up to and including its first `say` without
    /// playing it: for a machine whose greeting the provider listened to
    /// before the stream opened (Twilio's synchronous `DetectMessageEnd`).
    pub(crate) fn skip_greeting(&mut self) {
        if let Some(i) = self
            .callee
            .steps
            .iter()
            .position(|s| matches!(s, Step::Say { .. }))
        {
            self.callee.idx = i + 1;
            self.callee.step_begun = false;
            self.callee.lines_said += 1;
        }
    }

    /// What the persona said and heard since the last call.
    pub(crate) fn take_logs(&mut self) -> (Vec<Heard>, Vec<Said>) {
        (
            std::mem::take(&mut self.heard),
            std::mem::take(&mut self.said),
        )
    }

    /// The call is over: the utterance being heard ends here (a cut one
    /// keeps what was decoded).
    pub(crate) fn finish(&mut self) {
        let callee = &mut self.callee;
        for ev in callee.decoder.flush() {
            if let Decoded::Char { c, .. } = ev {
                callee.cur_text.push(c);
            }
        }
        if !callee.cur_text.is_empty() {
            callee.end_utterance(&mut self.heard);
        }
    }
}
