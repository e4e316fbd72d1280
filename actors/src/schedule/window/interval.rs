//! Half-open spans of instants, and the set operations the window needs:
//! the union of one zone's openings and the intersection across zones.

use chrono::{DateTime, Utc};

/// The instants `start <= t < end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Interval {
    /// First instant inside.
    pub start: DateTime<Utc>,
    /// First instant after (outside).
    pub end: DateTime<Utc>,
}

impl Interval {
    /// Whether `t` lies inside.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// Sorts `spans` and joins those that overlap or touch, so the result is
/// sorted, disjoint and separated by real gaps.
pub(super) fn normalise(mut spans: Vec<Interval>) -> Vec<Interval> {
    spans.retain(|s| s.start < s.end);
    spans.sort_by_key(|s| s.start);
    let mut out: Vec<Interval> = Vec::with_capacity(spans.len());
    for span in spans {
        match out.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => out.push(span),
        }
    }
    out
}

/// The instants in both `a` and `b` (each sorted and disjoint).
pub(super) fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        let start = x.start.max(y.start);
        let end = x.end.min(y.end);
        if start < end {
            out.push(Interval { start, end });
        }
        if x.end <= y.end {
            i += 1;
        } else {
            j += 1;
        }
    }
    normalise(out)
}
