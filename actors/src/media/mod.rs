//! Media logic of a call, kept pure so it can be tested without a clock or a
//! socket: the CallActor feeds it text, audio and the current time, and acts
//! on what it returns.
//!
//! - [`chunker`]: LLM text deltas to sentence-sized chunks for TTS.
//! - [`playout`]: TTS audio to paced 20 ms frames with a bounded lead, and
//!   on barge-in the words the callee actually heard.
//! - [`vad`]: a small energy voice activity detector for 20 ms frames.

pub mod chunker;
mod pcm;
pub mod playout;
pub mod vad;

pub use chunker::SentenceChunker;
pub use playout::{Frame, Heard, Playout, PlayoutConfig, PlayoutError, SegmentId};
pub use vad::{Vad, VadConfig, VadEvent};
