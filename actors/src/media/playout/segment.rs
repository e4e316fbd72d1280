//! One sentence of the turn: its text, its audio as it arrives, and how
//! much of it went out.

use std::collections::VecDeque;

use super::SegmentId;

/// A sentence queued for playout.
#[derive(Clone, Debug)]
pub(super) struct Segment {
    /// Who it is.
    pub id: SegmentId,
    /// What it says.
    pub text: String,
    /// Whole samples (an even number of bytes) received but not yet sent.
    pending: VecDeque<u8>,
    /// The first byte of a sample whose second byte has not arrived.
    carry: Option<u8>,
    /// Samples received in all.
    pub received: u64,
    /// Samples sent in frames.
    pub sent: u64,
    /// Whether TTS finished it (no more audio will come).
    pub ended: bool,
    /// Stream position of its first sample, once that was sent.
    pub start: Option<u64>,
    /// TTS alignment: (char index into `text`, ms from the segment's audio
    /// start at which that character starts), as given.
    pub alignment: Vec<(usize, u32)>,
}

impl Segment {
    /// A segment with no audio yet.
    pub fn new(id: SegmentId, text: &str) -> Self {
        Self {
            id,
            text: text.to_owned(),
            pending: VecDeque::new(),
            carry: None,
            received: 0,
            sent: 0,
            ended: false,
            start: None,
            alignment: Vec::new(),
        }
    }

    /// Bytes of whole samples a push of `len` bytes would add.
    pub fn whole_bytes_of(&self, len: usize) -> usize {
        (len + usize::from(self.carry.is_some())) & !1
    }

    /// Appends audio; an odd byte left over waits for the next push.
    pub fn push(&mut self, pcm: &[u8]) {
        let mut rest = pcm;
        if let Some(lo) = self.carry
            && let Some((&hi, tail)) = rest.split_first()
        {
            self.pending.extend([lo, hi]);
            self.carry = None;
            self.received += 1;
            rest = tail;
        }
        let (whole, odd) = rest.split_at(rest.len() & !1);
        self.pending.extend(whole);
        self.received += (whole.len() / 2) as u64;
        if let Some(&b) = odd.first() {
            self.carry = Some(b);
        }
    }

    /// Marks it ended; a dangling half sample is dropped.
    pub fn end(&mut self) {
        self.ended = true;
        self.carry = None;
    }

    /// Bytes waiting to be sent.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing of it is left to send, now or later.
    pub fn done(&self) -> bool {
        self.ended && self.pending.is_empty()
    }

    /// Moves up to `max` bytes (rounded down to whole samples) into `out`,
    /// the frame being built, which starts at stream position `frame_pos`;
    /// returns the bytes moved.
    pub fn take_into(&mut self, out: &mut Vec<u8>, max: usize, frame_pos: u64) -> usize {
        let n = self.pending.len().min(max) & !1;
        if n == 0 {
            return 0;
        }
        if self.start.is_none() {
            self.start = Some(frame_pos + (out.len() / 2) as u64);
        }
        let (front, back) = self.pending.as_slices();
        let from_front = n.min(front.len());
        out.extend_from_slice(&front[..from_front]);
        out.extend_from_slice(&back[..n - from_front]);
        self.pending.drain(..n);
        if self.pending.is_empty() {
            // A sentence's audio can be 100 KiB: give it back once sent
            // rather than holding it until the turn ends.
            self.pending = VecDeque::new();
        }
        self.sent += (n / 2) as u64;
        n
    }
}
