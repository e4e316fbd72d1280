//! The values the playout takes and gives.

use std::time::Duration;

/// Sample rate of a call unless it says otherwise.
pub const DEFAULT_SAMPLE_RATE: u32 = 16_000;
/// Telephony sockets take 20 ms frames.
pub const DEFAULT_FRAME_MS: u32 = 20;
/// Longest frame the playout makes, whatever the configuration says: a
/// frame is one allocation, and telephony frames are tens of ms.
pub const MAX_FRAME_MS: u32 = 1000;
/// How far ahead of real time audio may be sent: enough to ride out
/// scheduling jitter, little enough that barge-in silences the agent fast.
pub const DEFAULT_MAX_LEAD: Duration = Duration::from_millis(200);
/// The lead at which the next batch of frames goes: each poll tops the
/// lead up to `max_lead`, so frames leave five at a time every 100 ms, one
/// timer and one socket write per batch instead of one per 20 ms frame.
pub const DEFAULT_REFILL_LEAD: Duration = Duration::from_millis(100);
/// Most playback lag a mark echo may set (see `Playout::mark_played`):
/// more than any sane jitter buffer, so an echo later than this is a slow
/// peer, not a measure of what the callee heard.
pub const MAX_PLAYBACK_LAG: Duration = Duration::from_secs(2);
/// How much unsent audio may be buffered before pushes are refused.
pub const DEFAULT_MAX_BUFFERED: Duration = Duration::from_secs(30);
/// Speaking rate assumed for a sentence whose audio is still arriving when
/// no earlier sentence of the turn tells the voice's real rate.
pub const DEFAULT_CHARS_PER_SECOND: f32 = 15.0;

/// How a call's audio is framed and paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlayoutConfig {
    /// Samples per second of the call's PCM (16-bit LE mono), e.g. 16000
    /// or 8000; frame sizes follow from it.
    pub sample_rate: u32,
    /// Length of one frame sent to the socket, in milliseconds (at most
    /// [`MAX_FRAME_MS`]).
    pub frame_ms: u32,
    /// Most audio that may be sent but not yet played at the callee; what
    /// is in this lead is lost on barge-in, so it bounds the talk-over.
    pub max_lead: Duration,
    /// The lead below which the next poll is due (capped at `max_lead`
    /// less one frame, which sends one frame per poll): the lower, the
    /// fewer wake-ups and socket writes, the more frames per batch.
    pub refill_lead: Duration,
    /// Most unsent audio held; a push beyond it fails with
    /// [`PlayoutError::Full`] so a runaway TTS cannot exhaust memory.
    pub max_buffered: Duration,
    /// Speaking rate used to estimate how much of a sentence was heard
    /// while its audio is still arriving, before the turn has a finished
    /// sentence to measure the voice by (0 or less: do not estimate).
    pub chars_per_second: f32,
}

impl PlayoutConfig {
    /// The defaults at another sample rate.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            frame_ms: DEFAULT_FRAME_MS,
            max_lead: DEFAULT_MAX_LEAD,
            refill_lead: DEFAULT_REFILL_LEAD,
            max_buffered: DEFAULT_MAX_BUFFERED,
            chars_per_second: DEFAULT_CHARS_PER_SECOND,
        }
    }
}

impl Default for PlayoutConfig {
    fn default() -> Self {
        Self::new(DEFAULT_SAMPLE_RATE)
    }
}

/// Names one segment (a sentence sent to TTS), so that audio and timing of
/// concurrent TTS requests land on the right text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub u64);

/// One frame for the telephony socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Exactly one frame of PCM. Frames run on across segment boundaries;
    /// only the last frame before a pause (every segment so far ended, no
    /// more audio) is padded with silence.
    pub bytes: Vec<u8>,
    /// The segment of the frame's first audio byte.
    pub segment: SegmentId,
    /// Whether playback was idle before this frame (the first frame of a
    /// talk spurt, or the first after an underrun): the RTP marker bit.
    pub spurt_start: bool,
}

/// What the callee heard of the agent's turn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heard {
    /// The heard prefix of the turn's text, in whole words, segments joined
    /// with single spaces: what the conversation history should record.
    pub text: String,
    /// Whether every segment was ended and all its audio played.
    pub complete: bool,
    /// How long the turn's audio played at the callee (silence padding of
    /// a frame included, underrun gaps not).
    pub played: Duration,
}

/// Why audio was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlayoutError {
    /// The push would take the unsent audio beyond `max_buffered`; nothing
    /// of it was taken.
    #[error("playout buffer full")]
    Full,
    /// No such segment: never begun, or dropped by `clear` (late audio of a
    /// barged-in turn, safe to drop).
    #[error("unknown segment {0:?}")]
    UnknownSegment(SegmentId),
    /// The segment was already ended; its place in the stream is fixed.
    #[error("segment {0:?} already ended")]
    SegmentEnded(SegmentId),
}
