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
    /// Whole samples (an even number of bytes) received but not yet sent,
    /// as the chunks they came in (no copying to grow one buffer, nothing
    /// kept once sent).
    pending: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already sent.
    front_sent: usize,
    /// Bytes in `pending` not yet sent.
    pending_len: usize,
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
            front_sent: 0,
            pending_len: 0,
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
        let mut chunk = Vec::with_capacity(rest.len() + 1);
        if let Some(lo) = self.carry
            && let Some((&hi, tail)) = rest.split_first()
        {
            chunk.extend_from_slice(&[lo, hi]);
            self.carry = None;
            rest = tail;
        }
        let (whole, odd) = rest.split_at(rest.len() & !1);
        chunk.extend_from_slice(whole);
        if let Some(&b) = odd.first() {
            self.carry = Some(b);
        }
        if !chunk.is_empty() {
            self.received += (chunk.len() / 2) as u64;
            self.pending_len += chunk.len();
            self.pending.push_back(chunk);
        }
    }

    /// Marks it ended; a dangling half sample is dropped.
    pub fn end(&mut self) {
        self.ended = true;
        self.carry = None;
    }

    /// Bytes waiting to be sent.
    pub fn pending_bytes(&self) -> usize {
        self.pending_len
    }

    /// Whether nothing of it is left to send, now or later.
    pub fn done(&self) -> bool {
        self.ended && self.pending_len == 0
    }

    /// Moves up to `max` bytes (rounded down to whole samples) into `out`,
    /// the frame being built, which starts at stream position `frame_pos`;
    /// returns the bytes moved.
    pub fn take_into(&mut self, out: &mut Vec<u8>, max: usize, frame_pos: u64) -> usize {
        let n = self.pending_len.min(max) & !1;
        if n == 0 {
            return 0;
        }
        if self.start.is_none() {
            self.start = Some(frame_pos + (out.len() / 2) as u64);
        }
        let mut left = n;
        while left > 0 {
            let Some(front) = self.pending.front() else {
                break;
            };
            let from = &front[self.front_sent..];
            let k = left.min(from.len());
            out.extend_from_slice(&from[..k]);
            left -= k;
            if k == from.len() {
                self.pending.pop_front();
                self.front_sent = 0;
            } else {
                self.front_sent += k;
            }
        }
        let moved = n - left;
        self.pending_len -= moved;
        self.sent += (moved / 2) as u64;
        moved
    }
}
