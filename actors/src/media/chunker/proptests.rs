//! Whatever the split of the deltas, the chunks are the same and together
//! they are exactly the (whitespace-normalised) input.

use super::*;
use proptest::prelude::*;

const SAMPLES: &[&str] = &[
    "Hello! This is Anna from Acme Energy, calling about your contract. ",
    "Is now a good time? ",
    "The price is 3.14 dollars per unit, e.g. for the basic plan. ",
    "Mr. Smith said \"Yes.\" Then Dr. Jones agreed at 9 a.m. sharp. ",
    "Visit example.com or write to help@example.org... We answer fast!\n",
    "Well, thanks for taking my call today, I really appreciate it — truly; honestly: yes. ",
    "Our office in the U.S. opens at 10:30, Monday to Friday.\n\n",
    "(Remember: it's free!) Okay?! ",
    "Ça coûte 3,50 €. Très bien — d’accord? ",
    "supercalifragilisticexpialidocious-and-then-some-more-hyphenated-words ",
    "   \t",
];

/// A text of sample sentences and split points on char boundaries.
fn text_and_splits() -> impl Strategy<Value = (String, Vec<usize>)> {
    prop::collection::vec(prop::sample::select(SAMPLES), 1..12).prop_flat_map(|parts| {
        let text = parts.concat();
        let n = text.chars().count();
        (Just(text), prop::collection::vec(0..=n, 0..20))
    })
}

/// Pushes `text` in deltas split at the given char positions.
fn run(text: &str, splits: &[usize], first_min: usize, max: usize) -> Vec<String> {
    let mut cuts: Vec<usize> = splits.to_vec();
    cuts.sort_unstable();
    let bytes: Vec<usize> = cuts
        .iter()
        .filter_map(|&c| text.char_indices().nth(c).map(|(b, _)| b))
        .collect();
    let mut c = SentenceChunker::with_limits(first_min, max);
    let mut out = Vec::new();
    let mut from = 0;
    for b in bytes.into_iter().chain([text.len()]) {
        out.extend(c.push(&text[from..b]));
        from = b;
    }
    out.extend(c.flush());
    out
}

proptest! {
    #[test]
    fn chunks_concatenate_to_the_normalised_input((text, splits) in text_and_splits()) {
        let out = run(&text, &splits, DEFAULT_FIRST_CHUNK_MIN_CHARS, DEFAULT_MAX_CHUNK_CHARS);
        prop_assert_eq!(out.join(" "), normalise(&text));
        for c in &out {
            prop_assert!(!c.is_empty());
            prop_assert_eq!(c.trim(), c.as_str());
            prop_assert!(!c.contains("  ") && !c.contains('\n'));
            prop_assert!(c.chars().count() <= DEFAULT_MAX_CHUNK_CHARS);
        }
    }

    #[test]
    fn chunks_do_not_depend_on_the_split((text, splits) in text_and_splits()) {
        prop_assert_eq!(
            run(&text, &splits, DEFAULT_FIRST_CHUNK_MIN_CHARS, DEFAULT_MAX_CHUNK_CHARS),
            run(&text, &[], DEFAULT_FIRST_CHUNK_MIN_CHARS, DEFAULT_MAX_CHUNK_CHARS)
        );
    }

    #[test]
    fn small_limits_still_lose_nothing((text, splits) in text_and_splits(), max in 80usize..200) {
        // 80 chars exceeds the longest word of the samples, so no word is cut.
        let out = run(&text, &splits, 5, max);
        prop_assert_eq!(out.join(" "), normalise(&text));
        prop_assert!(out.iter().all(|c| c.chars().count() <= max));
        prop_assert_eq!(out, run(&text, &[], 5, max));
    }

    #[test]
    fn arbitrary_text_never_panics_and_keeps_every_word(text in "\\PC{0,300}", splits in prop::collection::vec(0usize..300, 0..10)) {
        let out = run(&text, &splits, DEFAULT_FIRST_CHUNK_MIN_CHARS, DEFAULT_MAX_CHUNK_CHARS);
        let got: String = out.concat().chars().filter(|c| !c.is_whitespace()).collect();
        let want: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        prop_assert_eq!(got, want);
    }
}
