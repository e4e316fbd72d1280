//! The symbol alphabet: 105 characters, each a pair of 2 of 15 tones.

/// Number of tones; C(15, 2) = 105 symbols.
pub(crate) const TONES: usize = 15;
/// Lowest tone in Hz; tones are `BASE_HZ + k * STEP_HZ`, k in 0..15, so
/// 400..=3200 Hz, inside the 300-3400 Hz telephone band.
pub(crate) const BASE_HZ: u32 = 400;
/// Tone spacing in Hz; also the bin width of the decoder's 5 ms blocks, so
/// every tone sits exactly on a bin and steady tones are orthogonal.
pub(crate) const STEP_HZ: u32 = 200;
pub(crate) const SYMBOLS: usize = TONES * (TONES - 1) / 2;

/// Non-ASCII characters the code carries, after the 95 printable ASCII
/// characters (space to `~`).
const EXTRA: [char; 10] = ['é', 'è', 'à', 'ü', 'ö', 'ä', 'ñ', 'ç', 'ø', '€'];

/// The character of symbol `i`.
pub(crate) fn char_of(i: usize) -> char {
    if i < 95 {
        char::from(b' ' + i as u8)
    } else {
        EXTRA[i - 95]
    }
}

/// The symbol of a character, if the alphabet has it.
pub(crate) fn symbol_of(c: char) -> Option<usize> {
    match c {
        ' '..='~' => Some(c as usize - ' ' as usize),
        _ => EXTRA.iter().position(|&e| e == c).map(|p| 95 + p),
    }
}

/// The two tone indices (low, high) of symbol `i`.
pub(crate) fn tones_of(i: usize) -> (usize, usize) {
    PAIRS[i]
}

/// The symbol played by tones `a` and `b` (any order), if any.
pub(crate) fn symbol_of_tones(a: usize, b: usize) -> Option<usize> {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == hi || hi >= TONES {
        return None;
    }
    let s = PAIR_TO_SYMBOL[lo * TONES + hi];
    (s != u8::MAX).then_some(s as usize)
}

const PAIRS: [(usize, usize); SYMBOLS] = {
    let mut out = [(0, 0); SYMBOLS];
    let mut n = 0;
    let mut a = 0;
    while a < TONES {
        let mut b = a + 1;
        while b < TONES {
            out[n] = (a, b);
            n += 1;
            b += 1;
        }
        a += 1;
    }
    out
};

const PAIR_TO_SYMBOL: [u8; TONES * TONES] = {
    let mut out = [u8::MAX; TONES * TONES];
    let mut i = 0;
    while i < SYMBOLS {
        let (a, b) = PAIRS[i];
        out[a * TONES + b] = i as u8;
        i += 1;
    }
    out
};

/// Maps one input character to what the code carries: itself if in the
/// alphabet; any whitespace to a space; typographic quotes and dashes to
/// their ASCII forms; `…` to `...`; anything else to nothing.
pub(crate) fn map_char(c: char, out: &mut String) {
    if symbol_of(c).is_some() {
        out.push(c);
        return;
    }
    match c {
        c if c.is_whitespace() => out.push(' '),
        '‘' | '’' | '‚' | '′' => out.push('\''),
        '“' | '”' | '„' | '″' | '«' | '»' => out.push('"'),
        '–' | '—' | '−' | '‐' | '‑' => out.push('-'),
        '…' => out.push_str("..."),
        _ => {}
    }
}

/// What the decoder will produce for `text`: see [`map_char`].
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        map_char(c, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_is_a_bijection() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..SYMBOLS {
            let c = char_of(i);
            assert_eq!(symbol_of(c), Some(i));
            let (a, b) = tones_of(i);
            assert!(a < b && b < TONES);
            assert!(seen.insert((a, b)));
            assert_eq!(symbol_of_tones(b, a), Some(i));
        }
        assert_eq!(symbol_of_tones(3, 3), None);
        assert_eq!(symbol_of_tones(3, 99), None);
        let top = BASE_HZ + (TONES as u32 - 1) * STEP_HZ;
        assert!(BASE_HZ >= 300 && top <= 3400);
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize("Hi,\tthere — it’s “me”…"),
            "Hi, there - it's \"me\"..."
        );
        assert_eq!(normalize("日本 café €5"), " café €5");
        assert_eq!(normalize("A-z 0~9"), "A-z 0~9");
    }
}
