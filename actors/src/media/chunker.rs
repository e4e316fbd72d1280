//! Turns a stream of LLM text deltas into sentence-sized chunks for TTS.
//!
//! TTS wants whole sentences (prosody is per sentence) but the caller wants
//! the first audio as soon as possible, so chunks end at sentence ends, the
//! first chunk of a turn may end early at a clause break, and no chunk grows
//! past a size limit. Whether a `.` ends a sentence often depends on the next
//! character, which may arrive in the next delta, so the chunker holds back
//! text until that decision is certain: the chunks do not depend on where
//! the deltas were split.

mod scan;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use scan::Limits;

/// The first chunk of a turn may end at a `,` `;` `:` or dash once it has at
/// least this many characters, so that the first audio starts early.
pub const DEFAULT_FIRST_CHUNK_MIN_CHARS: usize = 24;

/// No chunk is longer than this many characters: a longer run is split at
/// its last whitespace, so a run-on LLM answer cannot stall TTS.
pub const DEFAULT_MAX_CHUNK_CHARS: usize = 240;

/// Splits streamed LLM text into trimmed, whitespace-normalised chunks.
///
/// Joining every chunk of a stream with single spaces gives back the input
/// with its whitespace normalised; nothing is lost or duplicated. (Two
/// exceptions, both by design: a single word longer than the size limit is
/// cut inside the word, and CJK sentences, which have no space between
/// them, are joined with one.)
#[derive(Clone, Debug)]
pub struct SentenceChunker {
    /// Text received but not yet emitted.
    buf: String,
    /// Whether a chunk was emitted in this stream (the early-first-chunk
    /// rule applies only before that).
    emitted: bool,
    /// The thresholds in force.
    limits: Limits,
}

impl Default for SentenceChunker {
    fn default() -> Self {
        Self::new()
    }
}

impl SentenceChunker {
    /// A chunker with [`DEFAULT_FIRST_CHUNK_MIN_CHARS`] and
    /// [`DEFAULT_MAX_CHUNK_CHARS`].
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_FIRST_CHUNK_MIN_CHARS, DEFAULT_MAX_CHUNK_CHARS)
    }

    /// A chunker with other thresholds (a `max_chunk_chars` of 0 counts as
    /// 1), for voices or TTS vendors with other needs.
    pub fn with_limits(first_chunk_min_chars: usize, max_chunk_chars: usize) -> Self {
        Self {
            buf: String::new(),
            emitted: false,
            limits: Limits {
                first_min: first_chunk_min_chars,
                max: max_chunk_chars.max(1),
            },
        }
    }

    /// Takes the next delta and returns the chunks it completed, in order.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buf.push_str(delta);
        let mut out = Vec::new();
        while let Some(cut) = scan::find_cut(&self.buf, !self.emitted, self.limits) {
            if cut.resume == 0 {
                break; // cannot happen; guards against a loop without progress
            }
            let chunk = normalise(self.buf.get(..cut.end).unwrap_or_default());
            self.buf.drain(..cut.resume);
            if !chunk.is_empty() {
                self.emitted = true;
                out.push(chunk);
            }
        }
        // Leading whitespace decides nothing; dropping it keeps the buffer
        // bounded when a stream sends whitespace only.
        let lead = self.buf.len() - self.buf.trim_start().len();
        self.buf.drain(..lead);
        out
    }

    /// Ends the stream: returns what is left as the last chunk (`None` if
    /// only whitespace is left) and makes the chunker ready for a new turn.
    pub fn flush(&mut self) -> Option<String> {
        let rest = normalise(&self.buf);
        self.buf.clear();
        self.emitted = false;
        (!rest.is_empty()).then_some(rest)
    }
}

/// Trims `s` and collapses every run of whitespace inside it to one space.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
