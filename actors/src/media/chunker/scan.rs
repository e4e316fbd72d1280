//! Finding the next place where buffered text may be cut into a chunk.

/// The chunker's thresholds, in characters of normalised text.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Minimum length of a first chunk that ends at a clause break.
    pub first_min: usize,
    /// Maximum length of any chunk (at least 1).
    pub max: usize,
}

/// A decided cut: the chunk is `buf[..end]`, the buffer resumes at
/// `buf[resume..]` (`resume > 0`, `end <= resume`, both char boundaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cut {
    /// Byte index where the chunk's text ends.
    pub end: usize,
    /// Byte index where the rest of the buffer starts.
    pub resume: usize,
}

/// Words that end in a `.` without ending the sentence (lowercase, without
/// their final dot). Single letters and dotted initialisms ("u.s", "e.g",
/// "a.m") are recognised by shape and need no entry.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "approx", "dept", "fig", "cf",
    "ca", "ph.d", "rev", "gen", "col", "capt", "lt", "sgt", "gov", "sen", "rep", "hon",
];

/// Characters that open a quote or bracket before a word.
const OPENERS: &[char] = &['"', '\'', '“', '‘', '(', '[', '«', '「', '『', '（'];

/// Sentence terminators that need whitespace after them.
fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// CJK sentence terminators: CJK text puts no space after them.
fn is_cjk_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

/// Closing quotes and brackets that stay with the sentence they close.
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '”' | '’' | ')' | ']' | '»' | '」' | '』' | '）'
    )
}

/// Clause breaks where an early first chunk may end.
fn is_soft_break(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '—' | '–')
}

/// The run of terminators and closers being scanned.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    /// Byte index of the run's first character.
    start: usize,
    /// Number of terminators in it.
    terminators: usize,
    /// Whether it holds a CJK terminator.
    cjk: bool,
    /// Whether its first character is a `.` (the abbreviation check looks
    /// at the word just before it).
    starts_with_dot: bool,
    /// Whether the run's terminators are exactly one `.`.
    single_dot: bool,
}

/// Finds the first cut in `buf` that no later text can change, or `None`
/// if more text is needed to decide. `first` says whether no chunk was
/// emitted yet in this stream.
pub(super) fn find_cut(buf: &str, first: bool, limits: Limits) -> Option<Cut> {
    // Length of the normalised text so far, and whether whitespace was seen
    // after the last word (it becomes one space if another word follows).
    let mut norm = 0usize;
    let mut gap = false;
    // Start of the last whitespace run that follows some text.
    let mut last_ws: Option<usize> = None;
    let mut run: Option<Run> = None;

    let mut chars = buf.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let after = i + c.len_utf8();
        if c == '\n' {
            return Some(Cut {
                end: i,
                resume: after,
            });
        }
        if c.is_whitespace() {
            if norm > 0 && !gap {
                gap = true;
                last_ws = Some(i);
            }
            run = None;
            continue;
        }
        let add = if gap { 2 } else { 1 };
        if norm + add > limits.max {
            return Some(match last_ws {
                Some(w) => Cut { end: w, resume: w },
                None => Cut { end: i, resume: i },
            });
        }
        norm += add;
        gap = false;

        let next = chars.peek().map(|&(_, n)| n);
        if is_terminator(c) || is_cjk_terminator(c) || is_closer(c) {
            let r = run.get_or_insert(Run {
                start: i,
                starts_with_dot: c == '.',
                single_dot: true,
                ..Run::default()
            });
            if is_terminator(c) || is_cjk_terminator(c) {
                r.terminators += 1;
                r.cjk |= is_cjk_terminator(c);
                if c != '.' || r.terminators > 1 {
                    r.single_dot = false;
                }
            }
            let r = *r;
            let Some(n) = next else {
                return None; // the next delta decides
            };
            if is_terminator(n) || is_cjk_terminator(n) || is_closer(n) || r.terminators == 0 {
                continue;
            }
            let ends = if r.cjk {
                true
            } else {
                n.is_whitespace()
                    && !(r.single_dot && r.starts_with_dot && abbreviation(buf, r.start))
            };
            if ends {
                return Some(Cut {
                    end: after,
                    resume: after,
                });
            }
            run = None;
            continue;
        }
        run = None;
        if first && is_soft_break(c) && norm >= limits.first_min {
            match next {
                None => return None,
                Some(n) if n.is_whitespace() => {
                    return Some(Cut {
                        end: after,
                        resume: after,
                    });
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// Whether the word that ends at byte `dot` (where a `.` stands) is an
/// abbreviation or initialism, so that the dot does not end a sentence.
fn abbreviation(buf: &str, dot: usize) -> bool {
    let before = buf.get(..dot).unwrap_or_default();
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = before
        .get(start..)
        .unwrap_or_default()
        .trim_start_matches(OPENERS)
        .to_lowercase();
    if word.is_empty() {
        return false;
    }
    ABBREVIATIONS.contains(&word.as_str()) || initialism(&word)
}

/// "j", "u.s", "e.g", "a.m": single letters joined by dots.
fn initialism(word: &str) -> bool {
    word.split('.').all(|part| {
        let mut cs = part.chars();
        matches!((cs.next(), cs.next()), (Some(c), None) if c.is_alphabetic())
    })
}
