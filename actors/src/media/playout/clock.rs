//! Playback time at the callee: which part of the sent audio had been
//! played at a given instant.
//!
//! Frames play back to back from the moment the first frame of a talk
//! spurt was sent; when a frame is sent after everything before it had
//! played (an underrun), playback had paused and resumes at the send time.
//! Each such resumption starts a span; spans are contiguous in the stream.

use std::time::{Duration, Instant};

pub(super) use crate::media::pcm::{duration_of, samples_in};

/// One stretch of uninterrupted playback.
#[derive(Clone, Copy, Debug)]
struct Span {
    /// When its first frame was sent (and so started playing).
    start: Instant,
    /// Stream position (samples since the turn began) of its first sample.
    pos: u64,
}

/// The playback record of the current turn.
#[derive(Clone, Debug)]
pub(super) struct Timeline {
    /// Samples per second.
    rate: u32,
    /// Every span of the turn, in order.
    spans: Vec<Span>,
    /// Samples sent in the turn (the stream position of the next frame).
    sent: u64,
}

impl Timeline {
    /// An empty record.
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            spans: Vec::new(),
            sent: 0,
        }
    }

    /// Forgets the turn (after barge-in the callee's lead is dropped too).
    pub fn reset(&mut self) {
        self.spans.clear();
        self.sent = 0;
    }

    /// Samples sent in the turn.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// When the callee finishes playing everything sent so far.
    pub fn play_end(&self) -> Option<Instant> {
        let span = self.spans.last()?;
        let d = duration_of(self.sent - span.pos, self.rate);
        Some(span.start.checked_add(d).unwrap_or(span.start))
    }

    /// Whether a frame of `frame` length may be sent at `now` while
    /// keeping the unplayed audio within `lead`. With playback idle a frame
    /// may always go.
    pub fn may_send(&self, now: Instant, frame: Duration, lead: Duration) -> bool {
        match self.play_end() {
            Some(end) if end > now => match (end.checked_add(frame), now.checked_add(lead)) {
                (Some(after), Some(limit)) => after <= limit,
                _ => false,
            },
            _ => true,
        }
    }

    /// The earliest instant not before `now` at which the unplayed audio
    /// has fallen to `slack` (`now` with playback idle). With `slack` at
    /// most `lead - frame`, [`Self::may_send`] holds then.
    pub fn due(&self, now: Instant, slack: Duration) -> Instant {
        let Some(end) = self.play_end() else {
            return now;
        };
        end.checked_sub(slack).unwrap_or(now).max(now)
    }

    /// Records a frame of `samples` sent at `now`; returns whether it
    /// starts a span (playback was idle).
    pub fn record(&mut self, now: Instant, samples: u64) -> bool {
        let idle = self.play_end().is_none_or(|end| end < now);
        if idle {
            self.spans.push(Span {
                start: now,
                pos: self.sent,
            });
        }
        self.sent = self.sent.saturating_add(samples);
        idle
    }

    /// When the sample at stream position `pos` (sent already) was due to
    /// play, as this record estimates it (`None` if it was not sent).
    pub fn due_at(&self, pos: u64) -> Option<Instant> {
        if pos > self.sent {
            return None;
        }
        let span = self.spans.iter().rev().find(|s| s.pos <= pos)?;
        span.start
            .checked_add(duration_of(pos - span.pos, self.rate))
            .or(Some(span.start))
    }

    /// Samples of the stream played by `at`.
    pub fn played(&self, at: Instant) -> u64 {
        let Some(k) = self.spans.iter().rposition(|s| s.start <= at) else {
            return 0;
        };
        let Some(&span) = self.spans.get(k) else {
            return 0;
        };
        let end = self.spans.get(k + 1).map_or(self.sent, |next| next.pos);
        let elapsed = samples_in(at.duration_since(span.start), self.rate);
        span.pos + elapsed.min(end - span.pos)
    }
}
