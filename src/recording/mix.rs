//! Time alignment of the two sides into one stereo timeline (left callee,
//! right agent), in bounded memory, one pass over the spool.
//!
//! Each side keeps a cursor (the end of its audio so far, in samples). A
//! side's first chunk starts at its arrival; later ones at the cursor, so back-to-back audio stays seamless however
//! the frames were batched on the way (network jitter, the agent sending up
//! to 200 ms ahead into Vonage's play-out buffer), unless it arrived more
//! than the side's tolerance after the cursor: then it starts at its
//! arrival and the gap is silence. Every chunk thus starts at or after its
//! arrival minus the tolerance, never overlapping the side's earlier audio.
//!
//! Since arrivals never decrease, a sample before
//! `min over sides of max(cursor, latest arrival - tolerance)` can no
//! longer change: the mixer hands out complete 20 ms stereo frames up to
//! there, and holds at most [`MAX_WINDOW_SAMPLES`] (chunks that would reach
//! further are dropped and counted).

use std::collections::VecDeque;

use super::spool::Direction;

/// Samples per channel of one 20 ms frame at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;
/// A callee chunk later than this after the cursor leaves a gap (ms).
/// Vonage streams the callee continuously, so only a real pause should.
pub const CALLEE_TOLERANCE_MS: u64 = 500;
/// An agent chunk later than this after the cursor leaves a gap (ms); the
/// agent's timeline is at most this much early.
pub const AGENT_TOLERANCE_MS: u64 = 200;
/// Most samples (per channel) held before they are final: 60 s at 16 kHz.
pub const MAX_WINDOW_SAMPLES: u64 = 60 * 16_000;

/// The aligner.
pub struct Mixer {
    rate: u64,
    /// Absolute sample index of `left[0]` / `right[0]`.
    base: u64,
    left: VecDeque<i16>,
    right: VecDeque<i16>,
    /// End of each side's audio so far; `None` before its first chunk.
    cursor: [Option<u64>; 2],
    tolerance: [u64; 2],
    latest: u64,
    /// Chunks dropped because they reached too far ahead.
    pub dropped: u64,
}

impl Mixer {
    /// A mixer for audio at `rate` Hz.
    pub fn new(rate: u32) -> Self {
        let rate = u64::from(rate.max(1));
        Self {
            rate,
            base: 0,
            left: VecDeque::new(),
            right: VecDeque::new(),
            cursor: [None, None],
            tolerance: [
                CALLEE_TOLERANCE_MS * rate / 1000,
                AGENT_TOLERANCE_MS * rate / 1000,
            ],
            latest: 0,
            dropped: 0,
        }
    }

    fn end(&self) -> u64 {
        self.base + self.left.len() as u64
    }

    /// Places a chunk of one side that arrived `at_us` after the start.
    /// Call [`Mixer::pop_ready`] after each chunk to take what is final.
    pub fn push(&mut self, direction: Direction, at_us: u64, pcm: &[i16]) {
        let arrival = at_us.saturating_mul(self.rate) / 1_000_000;
        self.latest = self.latest.max(arrival);
        let side = direction as usize;
        let start = match self.cursor[side] {
            Some(cursor) if arrival <= cursor.saturating_add(self.tolerance[side]) => cursor,
            _ => arrival,
        };
        let end = start + pcm.len() as u64;
        if end.saturating_sub(self.base) > MAX_WINDOW_SAMPLES {
            self.dropped += 1;
            return;
        }
        self.cursor[side] = Some(end);
        while self.end() < end {
            self.left.push_back(0);
            self.right.push_back(0);
        }
        let channel = match direction {
            Direction::Callee => &mut self.left,
            Direction::Agent => &mut self.right,
        };
        for (i, &s) in pcm.iter().enumerate() {
            let at = start + i as u64;
            if at >= self.base {
                channel[(at - self.base) as usize] = s;
            }
        }
    }

    /// The next complete 20 ms frame (interleaved stereo) that can no
    /// longer change, if any.
    pub fn pop_ready(&mut self) -> Option<Vec<i16>> {
        let safe = (0..2)
            .map(|side| match self.cursor[side] {
                // A side's first chunk starts at its arrival.
                None => self.latest,
                Some(c) => c.max(self.latest.saturating_sub(self.tolerance[side])),
            })
            .min()
            .unwrap_or(0);
        if self.base + FRAME_SAMPLES as u64 > safe {
            return None;
        }
        Some(self.take_frame())
    }

    /// After the last chunk: the remaining frames, the last padded with
    /// silence; and the total length of real audio (samples per channel).
    pub fn finish(mut self) -> (Vec<Vec<i16>>, u64) {
        let total = self.end();
        let mut frames = Vec::new();
        while self.base < total {
            frames.push(self.take_frame());
        }
        (frames, total)
    }

    fn take_frame(&mut self) -> Vec<i16> {
        let mut frame = Vec::with_capacity(FRAME_SAMPLES * 2);
        for _ in 0..FRAME_SAMPLES {
            frame.push(self.left.pop_front().unwrap_or(0));
            frame.push(self.right.pop_front().unwrap_or(0));
        }
        self.base += FRAME_SAMPLES as u64;
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(m: &mut Mixer, out: &mut Vec<i16>) {
        while let Some(f) = m.pop_ready() {
            out.extend(f);
        }
    }

    fn channel(stereo: &[i16], side: usize) -> Vec<i16> {
        stereo.iter().skip(side).step_by(2).copied().collect()
    }

    #[test]
    fn jittery_callee_frames_stay_seamless_and_agent_bursts_queue() {
        let mut m = Mixer::new(16_000);
        let mut out = Vec::new();
        // Callee: 10 frames numbered 1..=10, arriving with jitter (some
        // late, then in a burst).
        let arrivals = [0u64, 20, 40, 95, 96, 97, 120, 140, 160, 180];
        for (i, ms) in arrivals.iter().enumerate() {
            m.push(Direction::Callee, ms * 1000, &[(i + 1) as i16; 320]);
            // The agent sends 5 frames at once at 50 ms (ahead of time).
            if *ms == 40 {
                for k in 0..5 {
                    m.push(Direction::Agent, 50_000, &[100 + k; 320]);
                }
            }
            drain(&mut m, &mut out);
        }
        let (rest, total) = m.finish();
        for f in rest {
            out.extend(f);
        }
        assert_eq!(total, 10 * 320, "callee sets the length");
        let left = channel(&out, 0);
        let right = channel(&out, 1);
        for i in 0..10 {
            assert!(
                left[i * 320..(i + 1) * 320]
                    .iter()
                    .all(|&s| s == (i + 1) as i16),
                "frame {i} in place"
            );
        }
        // Agent: starts at its arrival (50 ms = 800 samples), contiguous.
        assert!(right[..800].iter().all(|&s| s == 0));
        for k in 0..5 {
            let at = 800 + k * 320;
            assert!(right[at..at + 320].iter().all(|&s| s == 100 + k as i16));
        }
        assert!(right[800 + 5 * 320..].iter().all(|&s| s == 0));
    }

    #[test]
    fn a_pause_longer_than_the_tolerance_is_silence() {
        let mut m = Mixer::new(16_000);
        let mut out = Vec::new();
        m.push(Direction::Agent, 0, &[5; 320]);
        drain(&mut m, &mut out);
        // 1 s later: a new utterance starts at its arrival.
        m.push(Direction::Agent, 1_000_000, &[6; 320]);
        drain(&mut m, &mut out);
        let (rest, total) = m.finish();
        for f in rest {
            out.extend(f);
        }
        assert_eq!(total, 16_000 + 320);
        let right = channel(&out, 1);
        assert!(right[..320].iter().all(|&s| s == 5));
        assert!(right[320..16_000].iter().all(|&s| s == 0));
        assert!(right[16_000..16_320].iter().all(|&s| s == 6));
        assert!(channel(&out, 0).iter().all(|&s| s == 0), "callee silent");
    }

    #[test]
    fn memory_is_bounded_while_one_side_is_silent() {
        let mut m = Mixer::new(16_000);
        let mut popped = 0usize;
        // Ten minutes of callee frames, no agent at all.
        for i in 0..30_000u64 {
            m.push(Direction::Callee, i * 20_000, &[1; 320]);
            while m.pop_ready().is_some() {
                popped += 1;
            }
            assert!(m.left.len() <= 16_000, "window {} at {i}", m.left.len());
        }
        let (rest, total) = m.finish();
        assert_eq!(popped + rest.len(), 30_000);
        assert_eq!(total, 30_000 * 320);
        // A chunk an hour ahead is dropped, not allocated.
        let mut m = Mixer::new(16_000);
        m.push(Direction::Agent, 0, &[1; 320]);
        m.push(
            Direction::Agent,
            0,
            &vec![1; 2 * MAX_WINDOW_SAMPLES as usize],
        );
        assert_eq!(m.dropped, 1);
    }
}
