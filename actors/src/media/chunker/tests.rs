use super::*;

/// All chunks of `deltas` pushed in order, then the flushed rest.
fn chunks(deltas: &[&str]) -> Vec<String> {
    let mut c = SentenceChunker::new();
    let mut out: Vec<String> = deltas.iter().flat_map(|d| c.push(d)).collect();
    out.extend(c.flush());
    out
}

/// Chunks of one whole text, split nowhere.
fn whole(text: &str) -> Vec<String> {
    chunks(&[text])
}

#[test]
fn splits_at_sentence_ends() {
    assert_eq!(
        whole("Hi there. How are you? Great! Bye"),
        ["Hi there.", "How are you?", "Great!", "Bye"]
    );
}

#[test]
fn emits_a_sentence_as_soon_as_the_following_space_arrives() {
    let mut c = SentenceChunker::new();
    assert!(c.push("Hello there.").is_empty(), "next char still unknown");
    assert_eq!(c.push(" How"), ["Hello there."]);
    assert!(c.push(" are you").is_empty());
    assert_eq!(c.flush().as_deref(), Some("How are you"));
}

#[test]
fn a_dot_before_a_non_space_does_not_end_a_sentence() {
    assert_eq!(whole("Hello.World is one."), ["Hello.World is one."]);
}

#[test]
fn keeps_decimals_together_even_when_split_across_deltas() {
    assert_eq!(
        whole("Pi is 3.14 roughly. Yes."),
        ["Pi is 3.14 roughly.", "Yes."]
    );
    assert_eq!(
        chunks(&["Pi is 3", ".14 roughly."]),
        ["Pi is 3.14 roughly."]
    );
    assert_eq!(
        chunks(&["Pi is 3.", "14 roughly."]),
        ["Pi is 3.14 roughly."]
    );
}

#[test]
fn does_not_split_after_abbreviations() {
    for text in [
        "Call Mr. Smith today.",
        "Ask Dr. Jones now.",
        "Fruit, e.g. apples, is good.",
        "That is, i.e. never, ok.",
        "Made in the U.S. by hand.",
        "See you at 9 a.m. sharp.",
        "Meet at 5 p.m. on Friday.",
        "Ask Mrs. Doe and Prof. Xu.",
        "Write to J. R. Tolkien now.",
    ] {
        assert_eq!(whole(text), [text], "{text}");
    }
}

#[test]
fn abbreviation_split_across_deltas() {
    assert_eq!(
        chunks(&["Call Mr", ". Smith today."]),
        ["Call Mr. Smith today."]
    );
    assert_eq!(
        chunks(&["Call Mr.", " Smith today."]),
        ["Call Mr. Smith today."]
    );
    assert_eq!(
        chunks(&["Call Mr. ", "Smith today."]),
        ["Call Mr. Smith today."]
    );
}

#[test]
fn an_abbreviation_in_quotes_or_brackets_is_still_one() {
    assert_eq!(whole("He said (Dr. Who) hi."), ["He said (Dr. Who) hi."]);
}

#[test]
fn urls_and_emails_stay_whole() {
    assert_eq!(
        whole("Visit example.com or mail bob@example.org today. Thanks."),
        [
            "Visit example.com or mail bob@example.org today.",
            "Thanks."
        ]
    );
    assert_eq!(
        whole("Go to https://example.com/a?b=1. Done."),
        ["Go to https://example.com/a?b=1.", "Done."]
    );
}

#[test]
fn a_closing_quote_stays_with_its_sentence() {
    assert_eq!(
        whole("She said \"Yes.\" Then she left."),
        ["She said \"Yes.\"", "Then she left."]
    );
    assert_eq!(
        chunks(&["She said “Yes.", "” Then she left."]),
        ["She said “Yes.”", "Then she left."]
    );
    assert_eq!(whole("(It works!) Good."), ["(It works!)", "Good."]);
}

#[test]
fn runs_of_terminators_and_ellipses() {
    assert_eq!(
        whole("Really?! Yes... Well… okay."),
        ["Really?!", "Yes...", "Well…", "okay."]
    );
    assert_eq!(chunks(&["Wait.", "..", " ok"]), ["Wait...", "ok"]);
}

#[test]
fn a_newline_ends_a_chunk() {
    assert_eq!(
        whole("First line\nsecond line\n\n- a list item\n"),
        ["First line", "second line", "- a list item"]
    );
    assert_eq!(chunks(&["A\r", "\nB"]), ["A", "B"]);
}

#[test]
fn cjk_terminators_need_no_space() {
    assert_eq!(whole("你好。再见！真的？"), ["你好。", "再见！", "真的？"]);
    assert_eq!(
        chunks(&["他说「好。", "」然后走了。"]),
        ["他说「好。」", "然后走了。"]
    );
}

#[test]
fn first_chunk_may_end_early_at_a_clause_break() {
    let text = "Well, thanks for taking my call today, I really appreciate it. Also, one more thing, okay.";
    assert_eq!(
        whole(text),
        [
            "Well, thanks for taking my call today,",
            "I really appreciate it.",
            "Also, one more thing, okay."
        ]
    );
}

#[test]
fn clause_breaks_need_a_following_space() {
    assert_eq!(
        whole("The total comes to 1,000,000 dollars: really."),
        ["The total comes to 1,000,000 dollars:", "really."]
    );
    assert_eq!(
        whole("Our meeting is at 10:30 in the morning, okay."),
        ["Our meeting is at 10:30 in the morning,", "okay."]
    );
}

#[test]
fn early_clause_break_waits_for_the_next_char() {
    let mut c = SentenceChunker::new();
    assert!(c.push("Thank you so much for calling us,").is_empty());
    assert_eq!(c.push(" and"), ["Thank you so much for calling us,"]);
}

#[test]
fn dashes_are_clause_breaks() {
    assert_eq!(
        whole("I wanted to ask you something — do you have time?"),
        ["I wanted to ask you something —", "do you have time?"]
    );
}

#[test]
fn short_first_clause_does_not_split() {
    assert_eq!(whole("Hi, how are you?"), ["Hi, how are you?"]);
}

#[test]
fn long_runs_split_at_the_last_whitespace() {
    let text = "word ".repeat(100);
    let out = whole(&text);
    assert!(
        out.iter()
            .all(|c| c.chars().count() <= DEFAULT_MAX_CHUNK_CHARS)
    );
    assert_eq!(
        out[0].chars().count(),
        239,
        "48 words and their 47 spaces fit, 49 words do not"
    );
    assert_eq!(out.join(" "), text.trim());
}

#[test]
fn a_word_longer_than_the_limit_is_cut_hard() {
    let mut c = SentenceChunker::with_limits(24, 10);
    let out = c.push("abcdefghijklmnopqrstuvwxyz");
    assert_eq!(out, ["abcdefghij", "klmnopqrst"]);
    assert_eq!(c.flush().as_deref(), Some("uvwxyz"));
}

#[test]
fn zero_max_counts_as_one() {
    let mut c = SentenceChunker::with_limits(0, 0);
    assert_eq!(c.push("ab"), ["a"]);
    assert_eq!(c.flush().as_deref(), Some("b"));
}

#[test]
fn chunks_are_trimmed_and_whitespace_normalised() {
    assert_eq!(
        whole("  Hello   there.\t\tHow\u{a0}are   you?  "),
        ["Hello there.", "How are you?"]
    );
}

#[test]
fn empty_and_blank_input_emit_nothing() {
    assert!(whole("").is_empty());
    assert!(chunks(&["", "   ", "\n\n", " \t "]).is_empty());
    let mut c = SentenceChunker::new();
    assert_eq!(c.flush(), None);
}

#[test]
fn flush_resets_for_the_next_turn() {
    let mut c = SentenceChunker::new();
    let text = "Thank you so much for calling us, we will be in touch.";
    let first: Vec<String> = c.push(text);
    assert_eq!(first, ["Thank you so much for calling us,"]);
    assert_eq!(c.flush().as_deref(), Some("we will be in touch."));
    assert_eq!(c.push(text), first, "the early first chunk applies again");
}

#[test]
fn only_the_first_chunk_ends_early() {
    let mut c = SentenceChunker::new();
    assert_eq!(c.push("Hello. "), ["Hello."]);
    assert!(c.push("Thank you so much for calling us, and ").is_empty());
}

#[test]
fn multibyte_text_is_handled_char_by_char() {
    let text = "Ça coûte 3,50 €. Très bien — d’accord? Oui.";
    let mut c = SentenceChunker::new();
    let mut out = Vec::new();
    for ch in text.chars() {
        out.extend(c.push(&ch.to_string()));
    }
    out.extend(c.flush());
    assert_eq!(out, ["Ça coûte 3,50 €.", "Très bien — d’accord?", "Oui."]);
}
