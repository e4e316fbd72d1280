//! Paces TTS audio to the telephony socket in fixed frames, never more than
//! a bounded lead ahead of real time, and tells on barge-in which words of
//! the agent's turn the callee actually heard.
//!
//! The CallActor begins a segment per sentence, pushes its TTS audio as it
//! arrives and ends it when TTS is done; it calls [`Playout::poll`] when a
//! timer set by [`Playout::next_due`] fires and after each push, and sends
//! the frames it gets. On barge-in, [`Playout::clear`] drops everything
//! unsent and returns the [`Heard`] text to record as the agent's turn;
//! at the end of a turn that played out, `clear` likewise closes the turn.
//! Nothing here reads the clock: every time-dependent call is told `now`.

mod clock;
mod heard;
mod segment;
mod types;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use types::{
    DEFAULT_CHARS_PER_SECOND, DEFAULT_FRAME_MS, DEFAULT_MAX_BUFFERED, DEFAULT_MAX_LEAD,
    DEFAULT_REFILL_LEAD, DEFAULT_SAMPLE_RATE, Frame, Heard, MAX_FRAME_MS, MAX_PLAYBACK_LAG,
    PlayoutConfig, PlayoutError, SegmentId,
};

use clock::{Timeline, duration_of, samples_in};
use segment::Segment;

/// The playout of one call: queued segments and the playback record of
/// the current turn.
#[derive(Clone, Debug)]
pub struct Playout {
    /// The configuration it was made with.
    cfg: PlayoutConfig,
    /// Samples in one frame (at least 1).
    frame_samples: u64,
    /// Bytes in one frame.
    frame_bytes: usize,
    /// Playing time of one frame.
    frame_len: Duration,
    /// Most unsent bytes held.
    max_buffered_bytes: usize,
    /// The turn's segments in the order begun (kept after sending, for
    /// [`Heard`]).
    segments: Vec<Segment>,
    /// Index of the first segment that may still have audio to send.
    cursor: usize,
    /// Unsent bytes over all segments.
    buffered_bytes: usize,
    /// What was sent when, and so what was played when (as if the callee
    /// played each frame the moment it was sent).
    timeline: Timeline,
    /// How much later than that the callee really plays, as the latest
    /// mark echo told ([`Self::mark_played`]); zero until one does.
    lag: Duration,
}

impl Playout {
    /// An empty playout. A frame has at least one sample and at most
    /// [`MAX_FRAME_MS`] whatever the configuration, and a sample rate of 0
    /// counts as 1.
    pub fn new(cfg: PlayoutConfig) -> Self {
        let rate = cfg.sample_rate.max(1);
        let cfg = PlayoutConfig {
            sample_rate: rate,
            frame_ms: cfg.frame_ms.min(MAX_FRAME_MS),
            ..cfg
        };
        let frame_samples = (u64::from(rate) * u64::from(cfg.frame_ms) / 1000).max(1);
        let max_samples = samples_in(cfg.max_buffered, rate);
        Self {
            frame_samples,
            frame_bytes: usize::try_from(frame_samples * 2).unwrap_or(usize::MAX),
            frame_len: duration_of(frame_samples, rate),
            max_buffered_bytes: usize::try_from(max_samples.saturating_mul(2))
                .unwrap_or(usize::MAX),
            segments: Vec::new(),
            cursor: 0,
            buffered_bytes: 0,
            timeline: Timeline::new(rate),
            lag: Duration::ZERO,
            cfg,
        }
    }

    /// The configuration in force (with a sample rate of 0 raised to 1 and
    /// the frame length capped).
    pub fn config(&self) -> &PlayoutConfig {
        &self.cfg
    }

    /// Bytes of one frame, which every [`Frame`] has.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Queues a segment (a sentence whose audio follows) after those
    /// already queued. An id already in the turn is ignored.
    pub fn begin_segment(&mut self, id: SegmentId, text: &str) {
        if self.find(id).is_none() {
            self.segments.push(Segment::new(id, text));
        }
    }

    /// Adds TTS audio (16-bit LE PCM) to a segment. An odd trailing byte is
    /// kept for the next push. Fails without taking anything if the segment
    /// is unknown (e.g. cleared by barge-in) or ended, or if the unsent
    /// audio would exceed `max_buffered`.
    pub fn push_audio(&mut self, id: SegmentId, pcm: &[u8]) -> Result<(), PlayoutError> {
        let max = self.max_buffered_bytes;
        let buffered = self.buffered_bytes;
        let seg = self.find_mut(id).ok_or(PlayoutError::UnknownSegment(id))?;
        if seg.ended {
            return Err(PlayoutError::SegmentEnded(id));
        }
        let adding = seg.whole_bytes_of(pcm.len());
        if buffered.saturating_add(adding) > max {
            return Err(PlayoutError::Full);
        }
        seg.push(pcm);
        self.buffered_bytes += adding;
        Ok(())
    }

    /// Adds TTS timing for a segment: `(char_index, offset_ms)` pairs, each
    /// saying that the character at that index (in chars of the text given
    /// to `begin_segment`) starts that many ms into the segment's audio.
    /// Once a segment has any, [`Heard`] uses them instead of proportion.
    /// May come in several parts, before or after the audio.
    pub fn push_alignment(
        &mut self,
        id: SegmentId,
        table: &[(usize, u32)],
    ) -> Result<(), PlayoutError> {
        let seg = self.find_mut(id).ok_or(PlayoutError::UnknownSegment(id))?;
        seg.alignment.extend_from_slice(table);
        Ok(())
    }

    /// Gives up on a segment whose synthesis failed part-way: no more
    /// audio comes, and none of its words count as heard (what did play
    /// was a fragment; the sentence is said again as a new segment).
    /// Unknown ids are ignored.
    pub fn abandon_segment(&mut self, id: SegmentId) {
        if let Some(seg) = self.find_mut(id) {
            seg.text.clear();
            seg.alignment.clear();
        }
        self.end_segment(id);
    }

    /// Marks a segment's audio complete (TTS finished, or failed: a segment
    /// never ended holds back the ones after it). Unknown ids are ignored.
    pub fn end_segment(&mut self, id: SegmentId) {
        if let Some(seg) = self.find_mut(id) {
            seg.end();
        }
        self.advance();
    }

    /// The frames due at `now`, in order: as many as keep the audio sent
    /// but not yet played within `max_lead` (the first frame after idle
    /// playback always goes at once). Empty when none is due or no audio
    /// is ready (an underrun: playback pauses until audio comes).
    pub fn poll(&mut self, now: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        while self.frame_ready()
            && self
                .timeline
                .may_send(now, self.frame_len, self.cfg.max_lead)
        {
            match self.take_frame(now) {
                Some(frame) => out.push(frame),
                None => break,
            }
        }
        out
    }

    /// When [`Self::poll`] will next yield a frame (`now` if at once), or
    /// `None` if that waits on audio or on a segment's end, in which case
    /// poll again after the next push or end.
    /// Polls come in batches: a poll tops the lead up to `max_lead`, and
    /// the next is due when it has fallen to `refill_lead`.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let slack = self
            .cfg
            .refill_lead
            .min(self.cfg.max_lead.saturating_sub(self.frame_len));
        self.frame_ready().then(|| self.timeline.due(now, slack))
    }

    /// Barge-in, or the end of a turn: drops every segment and all unsent
    /// audio, forgets the turn's playback (the far end is expected to drop
    /// its lead too) and returns what had been heard by `now`.
    pub fn clear(&mut self, now: Instant) -> Heard {
        let heard = self.heard(now);
        self.segments.clear();
        self.cursor = 0;
        self.buffered_bytes = 0;
        self.timeline.reset();
        heard
    }

    /// Whether there is nothing to send now or later: every segment ended
    /// and all audio sent (it may still be playing, see
    /// [`Self::playing_until`]).
    pub fn is_idle(&self) -> bool {
        self.cursor >= self.segments.len()
    }

    /// When the callee will have played everything sent in this turn
    /// (`None` before the turn's first frame): once `is_idle` and this has
    /// passed, `clear` reports the turn complete.
    pub fn playing_until(&self) -> Option<Instant> {
        let end = self.timeline.play_end()?;
        Some(end.checked_add(self.lag).unwrap_or(end))
    }

    /// The stream position of the turn: samples sent so far. A mark sent
    /// now and echoed later says that the callee played up to here
    /// ([`Self::mark_played`]).
    pub fn position(&self) -> u64 {
        self.timeline.sent()
    }

    /// The provider echoed, at `at`, a mark sent at stream position `pos`
    /// of this turn: the callee had played everything before it. How much
    /// later that is than the send times suggest (network, the provider's
    /// jitter buffer) becomes the playback lag, which [`Self::heard`] and
    /// [`Self::playing_until`] then apply, so the heard text is what the
    /// callee heard rather than what we sent in time. The lag is a
    /// property of the path: it is kept across turns, updated by every
    /// echo, and capped at [`MAX_PLAYBACK_LAG`] (a peer that echoes late
    /// cannot make everything unheard). A position not sent in this turn
    /// (a stale echo) is ignored.
    pub fn mark_played(&mut self, pos: u64, at: Instant) {
        if let Some(due) = self.timeline.due_at(pos) {
            self.lag = at.saturating_duration_since(due).min(MAX_PLAYBACK_LAG);
        }
    }

    /// The playback lag the last mark echo measured.
    pub fn lag(&self) -> Duration {
        self.lag
    }

    /// Audio received but not yet sent, for TTS back-pressure.
    pub fn buffered(&self) -> Duration {
        duration_of((self.buffered_bytes / 2) as u64, self.cfg.sample_rate)
    }

    /// What the callee had heard of the turn by `now`, without clearing.
    pub fn heard(&self, now: Instant) -> Heard {
        let played = self
            .timeline
            .played(now.checked_sub(self.lag).unwrap_or(now));
        let rate = heard::Rate {
            sample_rate: self.cfg.sample_rate,
            chars_per_second: heard::measured_rate(&self.segments, self.cfg.sample_rate)
                .unwrap_or(f64::from(self.cfg.chars_per_second)),
        };
        let mut text = String::new();
        for seg in &self.segments {
            let Some(start) = seg.start else { continue };
            let seg_played = played.saturating_sub(start).min(seg.sent);
            let words = heard::heard_text(seg, seg_played, rate);
            if !words.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(words);
            }
        }
        Heard {
            text,
            complete: self.is_idle() && played >= self.timeline.sent(),
            played: duration_of(played, self.cfg.sample_rate),
        }
    }

    /// The segment with this id.
    fn find(&self, id: SegmentId) -> Option<&Segment> {
        self.segments.iter().rev().find(|s| s.id == id)
    }

    /// The segment with this id, to change.
    fn find_mut(&mut self, id: SegmentId) -> Option<&mut Segment> {
        self.segments.iter_mut().rev().find(|s| s.id == id)
    }

    /// Moves the cursor past segments with nothing left to send.
    fn advance(&mut self) {
        while self.segments.get(self.cursor).is_some_and(Segment::done) {
            self.cursor += 1;
        }
    }

    /// Whether a frame can be built now: a full frame of audio in stream
    /// order, or a last partial one when no segment is still open (it is
    /// then padded with silence).
    fn frame_ready(&self) -> bool {
        let mut available = 0usize;
        for seg in self.segments.iter().skip(self.cursor) {
            available += seg.pending_bytes();
            if available >= self.frame_bytes {
                return true;
            }
            if !seg.ended {
                return false;
            }
        }
        available > 0
    }

    /// Builds and records the next frame; `None` if there is no audio.
    fn take_frame(&mut self, now: Instant) -> Option<Frame> {
        let mut bytes = Vec::with_capacity(self.frame_bytes);
        let mut first = None;
        let frame_pos = self.timeline.sent();
        for seg in self.segments.iter_mut().skip(self.cursor) {
            let room = self.frame_bytes - bytes.len();
            if seg.take_into(&mut bytes, room, frame_pos) > 0 {
                first.get_or_insert(seg.id);
            }
            if bytes.len() >= self.frame_bytes || !seg.ended {
                break;
            }
        }
        let segment = first?;
        self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes.len());
        bytes.resize(self.frame_bytes, 0);
        let spurt_start = self.timeline.record(now, self.frame_samples);
        self.advance();
        Some(Frame {
            bytes,
            segment,
            spurt_start,
        })
    }
}
