//! From played audio to heard words.
//!
//! A segment's text is heard in proportion to how much of its audio was
//! played (voices speak at a near constant character rate), unless TTS gave
//! an alignment table, which then says exactly when each character starts.
//! Either way the result is cut back to whole words: a word counts as heard
//! only once all of it was played.

use super::clock::duration_of;
use super::segment::Segment;

/// What the estimate for a segment whose audio is still arriving needs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rate {
    /// Samples per second of the audio.
    pub sample_rate: u32,
    /// Characters per second of the voice (measured on the turn's finished
    /// segments, else configured); 0 or less: no estimate.
    pub chars_per_second: f64,
}

/// The voice's speaking rate as measured on the finished segments of the
/// turn, if there are any with audio.
pub(super) fn measured_rate(segments: &[Segment], sample_rate: u32) -> Option<f64> {
    let (chars, samples) = segments
        .iter()
        .filter(|s| s.ended && s.received > 0)
        .fold((0usize, 0u64), |(c, n), s| {
            (c + s.text.trim().chars().count(), n + s.received)
        });
    let secs = duration_of(samples, sample_rate).as_secs_f64();
    (samples > 0 && chars > 0 && secs > 0.0).then(|| chars as f64 / secs)
}

/// The heard words of `seg`, of which `played` samples were played.
pub(super) fn heard_text(seg: &Segment, played: u64, rate: Rate) -> &str {
    let text = seg.text.trim();
    if played == 0 {
        return "";
    }
    if seg.ended && played >= seg.received {
        return text;
    }
    let len = text.chars().count();
    let chars = if seg.alignment.is_empty() {
        proportional(seg, len, played, rate)
    } else {
        aligned(seg, played, rate.sample_rate)
    };
    whole_words(text, chars)
}

/// Characters played, in proportion to the audio played. While the audio
/// is still arriving its total length is estimated from the speaking rate,
/// but never taken as shorter than what arrived.
fn proportional(seg: &Segment, len: usize, played: u64, rate: Rate) -> usize {
    let mut total = seg.received as f64;
    if !seg.ended && rate.chars_per_second > 0.0 {
        let estimate = len as f64 / rate.chars_per_second * f64::from(rate.sample_rate);
        total = total.max(estimate);
    }
    if total <= 0.0 {
        return 0;
    }
    let chars = (len as f64 * played as f64 / total).floor();
    if chars.is_finite() && chars > 0.0 {
        (chars as usize).min(len)
    } else {
        0
    }
}

/// Characters played by the alignment table: every character before the
/// last one that had started. The table's indices count characters of the
/// segment's text as given; they are shifted to the trimmed text.
fn aligned(seg: &Segment, played: u64, sample_rate: u32) -> usize {
    let played_ms = duration_of(played, sample_rate).as_millis();
    let shift = seg.text.chars().count() - seg.text.trim_start().chars().count();
    seg.alignment
        .iter()
        .filter(|&&(_, at)| u128::from(at) <= played_ms)
        .map(|&(i, _)| i.saturating_sub(shift))
        .max()
        .unwrap_or(0)
}

/// The longest prefix of `text` made of words wholly within its first
/// `chars` characters, trimmed.
pub(super) fn whole_words(text: &str, chars: usize) -> &str {
    let Some((cut, next)) = text.char_indices().nth(chars) else {
        return text.trim();
    };
    let prefix = text.get(..cut).unwrap_or_default();
    let kept = if next.is_whitespace() {
        prefix
    } else {
        match prefix
            .char_indices()
            .rev()
            .find(|&(_, c)| c.is_whitespace())
        {
            Some((w, _)) => prefix.get(..w).unwrap_or_default(),
            None => "",
        }
    };
    kept.trim()
}
