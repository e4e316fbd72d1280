use std::time::{Duration, Instant};

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `len_ms` of non-silent PCM at `rate` (no byte is 0, so padding shows).
fn audio(len_ms: u64, rate: u32) -> Vec<u8> {
    let samples = u64::from(rate) * len_ms / 1000;
    (0..samples * 2).map(|i| (i % 251 + 1) as u8).collect()
}

/// A synthetic base instant; every test only adds offsets to it.
fn base() -> Instant {
    Instant::now()
}

const S1: SegmentId = SegmentId(1);
const S2: SegmentId = SegmentId(2);
const S3: SegmentId = SegmentId(3);

/// A default 16 kHz playout with one ended segment of `len_ms` audio.
fn with_segment(text: &str, len_ms: u64) -> Playout {
    let mut p = Playout::new(PlayoutConfig::default());
    p.begin_segment(S1, text);
    p.push_audio(S1, &audio(len_ms, 16_000)).unwrap();
    p.end_segment(S1);
    p
}

/// Polls every 20 ms from `t0` up to and including `t0 + until`.
fn poll_until(p: &mut Playout, t0: Instant, until: Duration) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut t = Duration::ZERO;
    while t <= until {
        out.extend(p.poll(t0 + t));
        t += ms(20);
    }
    out
}

/// A config whose lead is longer than any test audio, so that all audio
/// goes at once and playback time is simply `now - t0`.
fn unpaced() -> PlayoutConfig {
    PlayoutConfig {
        max_lead: Duration::from_secs(60),
        ..PlayoutConfig::default()
    }
}

#[test]
fn frame_sizes_follow_the_sample_rate() {
    assert_eq!(Playout::new(PlayoutConfig::new(16_000)).frame_bytes(), 640);
    assert_eq!(Playout::new(PlayoutConfig::new(8_000)).frame_bytes(), 320);
    let odd = PlayoutConfig {
        frame_ms: 0,
        ..PlayoutConfig::new(0)
    };
    assert_eq!(Playout::new(odd).frame_bytes(), 2, "at least one sample");
    let huge = PlayoutConfig {
        frame_ms: u32::MAX,
        ..PlayoutConfig::new(8_000)
    };
    let p = Playout::new(huge);
    assert_eq!(p.frame_bytes(), 16_000, "capped at one second");
    assert_eq!(p.config().frame_ms, MAX_FRAME_MS);
}

#[test]
fn the_first_frame_goes_at_once_and_the_lead_fills() {
    let mut p = with_segment("hello", 1000);
    let t0 = base();
    assert_eq!(p.next_due(t0), Some(t0));
    let frames = p.poll(t0);
    assert_eq!(frames.len(), 10, "200 ms of lead in 20 ms frames");
    assert!(frames[0].spurt_start);
    assert!(frames[1..].iter().all(|f| !f.spurt_start));
    assert!(
        frames
            .iter()
            .all(|f| f.bytes.len() == 640 && f.segment == S1)
    );
    assert_eq!(p.playing_until(), Some(t0 + ms(200)));
    assert_eq!(
        p.next_due(t0),
        Some(t0 + ms(100)),
        "the next batch when the lead falls to 100 ms"
    );
}

#[test]
fn steady_state_sends_five_frames_every_100_ms() {
    let mut p = with_segment("hello", 2000);
    let t0 = base();
    assert_eq!(p.poll(t0).len(), 10, "the lead fills at once");
    for k in 1..=18u64 {
        let t = t0 + ms(100 * k);
        assert_eq!(
            p.next_due(t - ms(100)),
            Some(t),
            "batch {k} due at {k}00 ms"
        );
        assert_eq!(p.poll(t).len(), 5, "batch {k}: 100 ms of frames");
        assert!(p.poll(t).is_empty(), "no second batch at {k}");
        assert_eq!(p.playing_until(), Some(t + ms(200)), "lead topped up");
    }
    assert!(p.is_idle(), "all 100 frames sent in 1 + 18 polls");
    assert_eq!(p.next_due(t0 + ms(1800)), None);
}

#[test]
fn steady_state_with_the_refill_at_the_lead_sends_one_frame_per_20_ms() {
    let cfg = PlayoutConfig {
        refill_lead: DEFAULT_MAX_LEAD,
        ..PlayoutConfig::default()
    };
    let mut p = Playout::new(cfg);
    p.begin_segment(S1, "hello");
    p.push_audio(S1, &audio(2000, 16_000)).unwrap();
    p.end_segment(S1);
    let t0 = base();
    p.poll(t0);
    for k in 1..=89u64 {
        let t = t0 + ms(20 * k);
        assert!(p.poll(t - ms(1)).is_empty(), "nothing early at {k}");
        assert_eq!(p.poll(t).len(), 1, "one frame at {k}");
        assert!(p.poll(t).is_empty(), "no second one at {k}");
        assert_eq!(p.next_due(t), Some(t + ms(20)));
        assert_eq!(p.playing_until(), Some(t + ms(200)));
    }
    assert_eq!(p.poll(t0 + ms(1800)).len(), 1);
    assert!(p.is_idle(), "all 100 frames sent");
    assert_eq!(p.next_due(t0 + ms(1800)), None);
    assert_eq!(p.playing_until(), Some(t0 + ms(2000)));
}

#[test]
fn a_late_poll_does_not_burst_beyond_the_lead() {
    let mut p = with_segment("hello", 2000);
    let t0 = base();
    p.poll(t0);
    // The actor stalls 130 ms: playback is still fed (lead 200 ms), so it
    // catches up with the 6 frames that fit, not more.
    assert_eq!(p.poll(t0 + ms(130)).len(), 6);
    assert_eq!(p.playing_until(), Some(t0 + ms(320)));
}

#[test]
fn underrun_pauses_playback_and_resumes_with_a_new_spurt() {
    let mut p = Playout::new(PlayoutConfig::default());
    let t0 = base();
    p.begin_segment(S1, "one two three four");
    p.push_audio(S1, &audio(100, 16_000)).unwrap();
    assert_eq!(p.poll(t0).len(), 5);
    // TTS is slow: nothing to send, nothing due, no panic.
    assert!(p.poll(t0 + ms(50)).is_empty());
    assert!(p.poll(t0 + ms(250)).is_empty());
    assert_eq!(p.next_due(t0 + ms(250)), None);
    assert!(!p.is_idle(), "the segment is still open");
    assert_eq!(p.heard(t0 + ms(250)).played, ms(100), "playback stopped");
    // Audio arrives at 300 ms: it goes at once and playback resumes.
    p.push_audio(S1, &audio(100, 16_000)).unwrap();
    assert_eq!(p.next_due(t0 + ms(300)), Some(t0 + ms(300)));
    let frames = p.poll(t0 + ms(300));
    assert_eq!(frames.len(), 5);
    assert!(frames[0].spurt_start && !frames[1].spurt_start);
    assert_eq!(p.heard(t0 + ms(350)).played, ms(150));
    assert_eq!(p.heard(t0 + ms(900)).played, ms(200));
}

#[test]
fn a_partial_frame_waits_while_its_segment_is_open_then_is_padded() {
    let mut p = Playout::new(PlayoutConfig::default());
    let t0 = base();
    p.begin_segment(S1, "hi");
    p.push_audio(S1, &audio(30, 16_000)).unwrap();
    assert_eq!(p.poll(t0).len(), 1);
    assert_eq!(p.next_due(t0), None, "10 ms left, more may come");
    p.end_segment(S1);
    assert_eq!(p.next_due(t0), Some(t0));
    let frames = p.poll(t0);
    assert_eq!(frames.len(), 1);
    let f = &frames[0].bytes;
    assert_eq!(f.len(), 640);
    assert!(f[..320].iter().all(|&b| b != 0) && f[320..].iter().all(|&b| b == 0));
    assert!(p.is_idle());
}

#[test]
fn frames_run_on_across_segments() {
    let mut p = Playout::new(PlayoutConfig::default());
    let t0 = base();
    let a = audio(30, 16_000);
    let b: Vec<u8> = audio(25, 16_000)
        .iter()
        .map(|x| x.wrapping_add(7) | 1)
        .collect();
    p.begin_segment(S1, "first");
    p.push_audio(S1, &a).unwrap();
    p.end_segment(S1);
    p.begin_segment(S2, "second");
    p.push_audio(S2, &b).unwrap();
    let frames = p.poll(t0);
    assert_eq!(frames.len(), 2, "the last 10 ms of S2 wait for more");
    assert_eq!(frames[0].segment, S1);
    assert_eq!(frames[1].segment, S1, "named by its first byte");
    let sent: Vec<u8> = frames.iter().flat_map(|f| f.bytes.clone()).collect();
    assert_eq!(sent[..960], a[..]);
    assert_eq!(sent[960..], b[..320]);
}

#[test]
fn audio_of_a_later_segment_waits_for_the_earlier_one() {
    let mut p = Playout::new(PlayoutConfig::default());
    let t0 = base();
    p.begin_segment(S1, "first");
    p.begin_segment(S2, "second");
    p.push_audio(S1, &audio(20, 16_000)).unwrap();
    p.push_audio(S2, &audio(100, 16_000)).unwrap();
    p.end_segment(S2);
    let frames = p.poll(t0);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].segment, S1);
    assert_eq!(p.next_due(t0), None, "S1 is open");
    p.end_segment(S1);
    let frames = p.poll(t0 + ms(5));
    assert_eq!(frames.len(), 5);
    assert!(frames.iter().all(|f| f.segment == S2));
}

#[test]
fn eight_khz_frames() {
    let mut p = Playout::new(PlayoutConfig::new(8_000));
    let t0 = base();
    p.begin_segment(S1, "hello there");
    p.push_audio(S1, &audio(1000, 8_000)).unwrap();
    p.end_segment(S1);
    let frames = poll_until(&mut p, t0, ms(1000));
    assert_eq!(frames.len(), 50);
    assert!(frames.iter().all(|f| f.bytes.len() == 320));
    let h = p.heard(t0 + ms(500));
    assert_eq!(h.played, ms(500));
    assert_eq!(p.heard(t0 + ms(1000)).text, "hello there");
}

/// 100 Hz with 20 ms frames: 2 samples (4 bytes) a frame, small enough to
/// check bytes one by one.
fn tiny() -> Playout {
    Playout::new(PlayoutConfig::new(100))
}

#[test]
fn odd_length_pushes_carry_the_half_sample_over() {
    let mut p = tiny();
    let t0 = base();
    p.begin_segment(S1, "x");
    p.push_audio(S1, &[1]).unwrap();
    p.push_audio(S1, &[2, 3]).unwrap();
    assert!(p.poll(t0).is_empty(), "one and a half samples");
    assert_eq!(p.buffered(), ms(10));
    p.push_audio(S1, &[4, 5, 6, 7]).unwrap();
    let frames = p.poll(t0);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].bytes, [1, 2, 3, 4]);
    p.push_audio(S1, &[8]).unwrap();
    let frames = p.poll(t0);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].bytes, [5, 6, 7, 8]);
    p.push_audio(S1, &[]).unwrap();
    p.push_audio(S1, &[9]).unwrap();
    assert_eq!(p.buffered(), Duration::ZERO);
    p.end_segment(S1);
    assert!(p.poll(t0).is_empty(), "the dangling 9 is dropped");
    assert!(p.is_idle());
}

#[test]
fn a_last_partial_frame_is_padded_sample_by_sample() {
    let mut p = tiny();
    let t0 = base();
    p.begin_segment(S1, "x");
    p.push_audio(S1, &[1, 2, 3, 4, 5, 6]).unwrap();
    p.end_segment(S1);
    let frames = p.poll(t0);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].bytes, [5, 6, 0, 0]);
}

#[test]
fn overflow_is_refused_whole_and_room_comes_back() {
    let cfg = PlayoutConfig {
        max_buffered: ms(100),
        ..PlayoutConfig::default()
    };
    let mut p = Playout::new(cfg);
    let t0 = base();
    p.begin_segment(S1, "x");
    p.push_audio(S1, &audio(100, 16_000)).unwrap();
    assert_eq!(p.buffered(), ms(100));
    assert_eq!(p.push_audio(S1, &[1, 2]), Err(PlayoutError::Full));
    assert_eq!(
        p.push_audio(S1, &[1]),
        Ok(()),
        "half a sample takes no room"
    );
    assert_eq!(p.push_audio(S1, &[2]), Err(PlayoutError::Full));
    assert_eq!(p.buffered(), ms(100));
    assert_eq!(p.poll(t0).len(), 5);
    assert_eq!(p.buffered(), Duration::ZERO);
    p.push_audio(S1, &[2, 3, 4]).unwrap();
    assert_eq!(p.buffered(), duration_of(2, 16_000));
}

#[test]
fn unknown_and_ended_segments_are_refused() {
    let mut p = Playout::new(PlayoutConfig::default());
    assert_eq!(
        p.push_audio(S1, &[0, 0]),
        Err(PlayoutError::UnknownSegment(S1))
    );
    assert_eq!(
        p.push_alignment(S1, &[(0, 0)]),
        Err(PlayoutError::UnknownSegment(S1))
    );
    p.end_segment(S1); // ignored
    p.begin_segment(S1, "x");
    p.end_segment(S1);
    assert_eq!(
        p.push_audio(S1, &[0, 0]),
        Err(PlayoutError::SegmentEnded(S1))
    );
    assert_eq!(p.push_alignment(S1, &[(0, 0)]), Ok(()));
}

#[test]
fn a_second_begin_of_the_same_id_is_ignored() {
    let mut p = with_segment("original text", 100);
    p.begin_segment(S1, "other");
    let t0 = base();
    poll_until(&mut p, t0, ms(100));
    assert_eq!(p.clear(t0 + ms(100)).text, "original text");
}

#[test]
fn empty_playout() {
    let mut p = Playout::new(PlayoutConfig::default());
    let t0 = base();
    assert!(p.is_idle());
    assert_eq!(p.next_due(t0), None);
    assert!(p.poll(t0).is_empty());
    assert_eq!(p.playing_until(), None);
    let h = p.clear(t0);
    assert_eq!(
        h,
        Heard {
            text: String::new(),
            complete: true,
            played: Duration::ZERO
        }
    );
}

#[test]
fn clear_mid_segment_reports_the_heard_prefix_on_a_word_boundary() {
    // 23 chars over 2300 ms: 100 ms a character.
    let mut p = with_segment("one two three four five", 2300);
    let t0 = base();
    let frames = poll_until(&mut p, t0, ms(1000));
    assert_eq!(frames.len(), 60, "1000 ms played plus the 200 ms lead");
    // 1000 ms: "one two th" played, "three" is not whole.
    let h = p.clear(t0 + ms(1000));
    assert_eq!(h.text, "one two");
    assert!(!h.complete);
    assert_eq!(h.played, ms(1000));
    // Everything unsent is gone.
    assert!(p.is_idle());
    assert!(p.poll(t0 + ms(1020)).is_empty());
    assert_eq!(
        p.push_audio(S1, &[0, 0]),
        Err(PlayoutError::UnknownSegment(S1))
    );
}

#[test]
fn heard_trims_back_to_whole_words_at_every_point() {
    let text = "one two three four five";
    let mut p = with_segment(text, 2300);
    let t0 = base();
    poll_until(&mut p, t0, ms(2300));
    let at = |t: u64| p.heard(t0 + ms(t)).text;
    assert_eq!(at(0), "");
    assert_eq!(at(299), "");
    assert_eq!(at(300), "one");
    assert_eq!(at(699), "one");
    assert_eq!(at(700), "one two");
    assert_eq!(at(1300), "one two three");
    assert_eq!(at(2299), "one two three four");
    assert_eq!(at(2300), text);
    assert!(p.heard(t0 + ms(2300)).complete);
    assert!(!p.heard(t0 + ms(2299)).complete);
}

#[test]
fn clear_after_everything_was_sent_reports_only_what_played() {
    // 22 chars over 1000 ms, all sent at once.
    let mut p = Playout::new(unpaced());
    let t0 = base();
    p.begin_segment(S1, "alpha beta gamma delta");
    p.push_audio(S1, &audio(1000, 16_000)).unwrap();
    p.end_segment(S1);
    assert_eq!(p.poll(t0).len(), 50);
    assert!(p.is_idle());
    let h = p.clear(t0 + ms(500));
    assert_eq!(h.text, "alpha beta");
    assert!(!h.complete);
    assert_eq!(h.played, ms(500));
}

#[test]
fn with_the_default_lead_the_last_200_ms_sent_are_not_yet_heard() {
    let mut p = with_segment("alpha beta gamma delta", 1000);
    let t0 = base();
    poll_until(&mut p, t0, ms(800));
    assert!(p.is_idle(), "all sent by 800 ms");
    let h = p.clear(t0 + ms(800));
    assert_eq!(h.played, ms(800));
    assert_eq!(h.text, "alpha beta gamma", "17.6 chars played");
    assert!(!h.complete);
}

#[test]
fn complete_playthrough_reports_the_whole_text() {
    let mut p = Playout::new(PlayoutConfig::default());
    let t0 = base();
    p.begin_segment(S1, "  Hello there.");
    p.push_audio(S1, &audio(500, 16_000)).unwrap();
    p.end_segment(S1);
    p.begin_segment(S2, "How are you? ");
    p.push_audio(S2, &audio(610, 16_000)).unwrap();
    p.end_segment(S2);
    poll_until(&mut p, t0, ms(1200));
    assert!(p.is_idle());
    let end = p.playing_until().unwrap();
    assert_eq!(end, t0 + ms(1120), "1110 ms padded to 56 frames");
    assert!(!p.heard(end - ms(1)).complete);
    let h = p.clear(end);
    assert_eq!(h.text, "Hello there. How are you?");
    assert!(h.complete);
    assert_eq!(h.played, ms(1120));
}

#[test]
fn clear_in_a_later_segment_keeps_the_earlier_ones_whole() {
    let mut p = Playout::new(unpaced());
    let t0 = base();
    p.begin_segment(S1, "First sentence.");
    p.push_audio(S1, &audio(300, 16_000)).unwrap();
    p.end_segment(S1);
    p.begin_segment(S2, "Second one here.");
    p.push_audio(S2, &audio(1600, 16_000)).unwrap();
    p.end_segment(S2);
    p.begin_segment(S3, "Third.");
    p.push_audio(S3, &audio(600, 16_000)).unwrap();
    p.poll(t0);
    // 300 ms of S1, then 1100 of S2's 1600 ms: 11 of 16 chars.
    let h = p.clear(t0 + ms(1400));
    assert_eq!(h.text, "First sentence. Second one");
    assert!(!h.complete);
}

#[test]
fn alignment_overrides_proportion() {
    let mut p = Playout::new(unpaced());
    let t0 = base();
    // Proportion would say 10 of 22 chars at 500 ms ("alpha beta" is 10).
    // The voice lingers on "alpha": "beta" only starts at 600 ms.
    p.begin_segment(S1, "alpha beta gamma delta");
    p.push_alignment(S1, &[(0, 0), (6, 600)]).unwrap();
    p.push_alignment(S1, &[(11, 800), (17, 900)]).unwrap();
    p.push_audio(S1, &audio(1000, 16_000)).unwrap();
    p.end_segment(S1);
    p.poll(t0);
    assert_eq!(p.heard(t0 + ms(500)).text, "");
    assert_eq!(p.heard(t0 + ms(600)).text, "alpha");
    assert_eq!(p.heard(t0 + ms(850)).text, "alpha beta");
    assert_eq!(p.heard(t0 + ms(999)).text, "alpha beta gamma");
    assert_eq!(p.heard(t0 + ms(1000)).text, "alpha beta gamma delta");
}

#[test]
fn alignment_indices_count_in_the_text_as_given() {
    let mut p = Playout::new(unpaced());
    let t0 = base();
    p.begin_segment(S1, "  ab cd");
    p.push_alignment(S1, &[(2, 0), (5, 100)]).unwrap();
    p.push_audio(S1, &audio(200, 16_000)).unwrap();
    p.end_segment(S1);
    p.poll(t0);
    assert_eq!(p.heard(t0 + ms(150)).text, "ab");
}

#[test]
fn an_open_segment_is_estimated_at_the_configured_rate() {
    // 30 chars at 15 chars/s: about 2 s of speech, of which 1 s arrived.
    let mut p = Playout::new(unpaced());
    let t0 = base();
    let text = "abcd efgh ijkl mnop qrst uvwxy";
    assert_eq!(text.len(), 30);
    p.begin_segment(S1, text);
    p.push_audio(S1, &audio(1000, 16_000)).unwrap();
    p.poll(t0);
    // 1 s of 2: 15 chars, "abcd efgh ijkl " -> three words.
    assert_eq!(p.clear(t0 + ms(1000)).text, "abcd efgh ijkl");
}

#[test]
fn an_open_segment_is_estimated_at_the_rate_measured_on_finished_ones() {
    let mut p = Playout::new(unpaced());
    let t0 = base();
    // 10 chars in 1 s: 10 chars/s.
    p.begin_segment(S1, "abcd efgh.");
    p.push_audio(S1, &audio(1000, 16_000)).unwrap();
    p.end_segment(S1);
    // 20 chars: about 2 s; 600 ms arrived, 500 ms played -> 5 chars.
    p.begin_segment(S2, "ijkl mnop qrst uvwx.");
    p.push_audio(S2, &audio(600, 16_000)).unwrap();
    p.poll(t0);
    assert_eq!(p.heard(t0 + ms(1500)).text, "abcd efgh. ijkl");
    // Never taken as shorter than what arrived: with no rate to estimate
    // by, proportion over the audio received.
    let mut q = Playout::new(PlayoutConfig {
        chars_per_second: 0.0,
        ..unpaced()
    });
    q.begin_segment(S2, "ijkl mnop qrst uvwx.");
    q.push_audio(S2, &audio(1000, 16_000)).unwrap();
    q.poll(t0);
    assert_eq!(q.heard(t0 + ms(500)).text, "ijkl mnop");
}

#[test]
fn a_segment_without_audio_adds_no_text_and_blocks_nothing() {
    let mut p = Playout::new(PlayoutConfig::default());
    let t0 = base();
    p.begin_segment(S1, "never spoken");
    p.begin_segment(S2, "spoken");
    p.push_audio(S2, &audio(40, 16_000)).unwrap();
    p.end_segment(S2);
    assert!(p.poll(t0).is_empty(), "S1 is open");
    p.end_segment(S1);
    assert_eq!(p.poll(t0).len(), 2);
    let h = p.clear(t0 + ms(40));
    assert_eq!(h.text, "spoken");
    assert!(h.complete);
}

#[test]
fn after_clear_a_new_turn_starts_at_once() {
    let mut p = with_segment("old turn", 1000);
    let t0 = base();
    p.poll(t0);
    p.clear(t0 + ms(50));
    assert_eq!(p.playing_until(), None, "the far end dropped its lead");
    p.begin_segment(S1, "new turn");
    p.push_audio(S1, &audio(100, 16_000)).unwrap();
    p.end_segment(S1);
    let frames = p.poll(t0 + ms(60));
    assert_eq!(frames.len(), 5);
    assert!(frames[0].spurt_start);
    let h = p.clear(t0 + ms(160));
    assert_eq!(h.text, "new turn");
    assert!(h.complete);
}

#[test]
fn heard_does_not_clear() {
    let mut p = with_segment("one two", 700);
    let t0 = base();
    poll_until(&mut p, t0, ms(700));
    assert_eq!(p.heard(t0 + ms(400)).text, "one");
    assert_eq!(p.heard(t0 + ms(700)).text, "one two");
    assert_eq!(
        p.heard(t0 + ms(400)).text,
        "one",
        "asking again changes nothing"
    );
    assert_eq!(p.clear(t0 + ms(700)).text, "one two");
}

#[test]
fn a_lead_shorter_than_a_frame_still_sends_one_frame_at_a_time() {
    let cfg = PlayoutConfig {
        max_lead: ms(5),
        ..PlayoutConfig::default()
    };
    let mut p = Playout::new(cfg);
    p.begin_segment(S1, "x");
    p.push_audio(S1, &audio(100, 16_000)).unwrap();
    let t0 = base();
    assert_eq!(p.poll(t0).len(), 1);
    assert_eq!(p.next_due(t0), Some(t0 + ms(20)));
    assert!(p.poll(t0 + ms(19)).is_empty());
    assert_eq!(p.poll(t0 + ms(20)).len(), 1);
    assert!(!p.poll(t0 + ms(40))[0].spurt_start, "back to back, no gap");
}

#[test]
fn whole_words_cuts_inside_words_back() {
    use super::heard::whole_words;
    assert_eq!(whole_words("one two", 0), "");
    assert_eq!(whole_words("one two", 2), "");
    assert_eq!(whole_words("one two", 3), "one");
    assert_eq!(whole_words("one two", 4), "one");
    assert_eq!(whole_words("one two", 6), "one");
    assert_eq!(whole_words("one two", 7), "one two");
    assert_eq!(whole_words("one two", 99), "one two");
    assert_eq!(whole_words("héllo wörld", 5), "héllo");
    assert_eq!(whole_words("", 3), "");
}

#[test]
fn a_late_mark_echo_delays_what_counts_as_heard_by_the_measured_lag() {
    // 23 chars over 2300 ms: 100 ms a character.
    let text = "one two three four five";
    let mut p = with_segment(text, 2300);
    let t0 = base();
    poll_until(&mut p, t0, ms(500));
    // A mark sent at stream position 400 ms (6400 samples) echoed at
    // 700 ms: the callee plays 300 ms behind the send times.
    p.mark_played(6400, t0 + ms(700));
    assert_eq!(p.lag(), ms(300));
    assert_eq!(p.heard(t0 + ms(700)).played, ms(400));
    // By send times "one two" (700 ms) would be heard; the callee is at
    // 400 ms: "one" only.
    assert_eq!(p.heard(t0 + ms(700)).text, "one");
    poll_until(&mut p, t0 + ms(520), ms(2300));
    let h = p.clear(t0 + ms(1300));
    assert_eq!(h.played, ms(1000));
    assert_eq!(h.text, "one two", "without the lag: \"one two three\"");
}

#[test]
fn the_lag_moves_the_end_of_playback_and_is_kept_for_the_next_turn() {
    let mut p = with_segment("alpha beta", 1000);
    let t0 = base();
    poll_until(&mut p, t0, ms(1000));
    assert_eq!(p.playing_until(), Some(t0 + ms(1000)));
    p.mark_played(16_000 / 2, t0 + ms(620));
    assert_eq!(p.lag(), ms(120));
    assert_eq!(p.playing_until(), Some(t0 + ms(1120)));
    assert!(!p.heard(t0 + ms(1119)).complete);
    assert!(p.clear(t0 + ms(1120)).complete);
    // The next turn starts with the path's lag.
    p.begin_segment(S2, "gamma");
    p.push_audio(S2, &audio(500, 16_000)).unwrap();
    p.end_segment(S2);
    let t1 = t0 + ms(2000);
    poll_until(&mut p, t1, ms(500));
    assert_eq!(p.playing_until(), Some(t1 + ms(620)));
}

#[test]
fn echoes_of_unsent_positions_are_ignored_and_early_or_very_late_ones_are_bounded() {
    let mut p = with_segment("alpha beta", 1000);
    let t0 = base();
    poll_until(&mut p, t0, ms(100));
    // Position 900 ms was never sent in this turn: a stale echo.
    p.mark_played(14_400, t0 + ms(1000));
    assert_eq!(p.lag(), Duration::ZERO);
    // Echoed before its estimated time (a faster path): no lag.
    p.mark_played(3200, t0 + ms(100));
    assert_eq!(p.lag(), Duration::ZERO);
    // Echoed absurdly late: capped.
    p.mark_played(3200, t0 + ms(60_000));
    assert_eq!(p.lag(), MAX_PLAYBACK_LAG);
    assert_eq!(
        p.position(),
        16 * 300,
        "300 ms sent by 100 ms with the lead"
    );
}
