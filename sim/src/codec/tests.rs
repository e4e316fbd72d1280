//! Unit tests of the codec: round trips through talky's audio path.

use proptest::prelude::*;

use super::*;
use talky::audio::{mulaw, pcm::rms_dbfs, resample};

const SENTENCES: [&str; 5] = [
    "Hello, this is Anna from Talky. Do you have a minute?",
    "Yes! I'd like to hear more - but call me at 3:45 pm; OK?",
    "No thanks. Please remove me from your list.",
    "Mr. O'Neil said: \"50% off (today only) & free shipping\" [sic] {x} ~ #1 @ $9.99",
    "Café crème à 5€, Müller und Søren, señor, ça va?",
];

fn decode_all(rate: u32, pcm: &[i16]) -> (String, Vec<Decoded>) {
    let mut d = Decoder::new(rate);
    let mut ev = d.push(pcm);
    ev.extend(d.flush());
    (d.text().to_string(), ev)
}

fn utterance(rate: u32, text: &str) -> Vec<i16> {
    let mut e = Encoder::new(rate);
    let mut pcm = e.silence(200);
    pcm.extend(e.encode(text));
    pcm.extend(e.silence(400));
    pcm
}

/// Deterministic white noise, uniform, at `dbfs` RMS.
fn noise(n: usize, dbfs: f64, seed: u64) -> Vec<i16> {
    let a = 32768.0 * 10f64.powf(dbfs / 20.0) * 3f64.sqrt();
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            (a * (2.0 * u - 1.0)).round() as i16
        })
        .collect()
}

#[test]
fn round_trip_sentences_at_16k_and_8k() {
    for rate in [16_000, 8_000, 48_000] {
        for s in SENTENCES {
            let (text, ev) = decode_all(rate, &utterance(rate, s));
            assert_eq!(text, normalize(s), "rate {rate}");
            assert!(matches!(ev.first(), Some(Decoded::SpeechStart { .. })));
            assert!(matches!(ev.last(), Some(Decoded::UtteranceEnd { .. })));
            let ends = ev
                .iter()
                .filter(|e| matches!(e, Decoded::UtteranceEnd { .. }))
                .count();
            assert_eq!(ends, 1);
        }
    }
}

#[test]
fn unsupported_characters_are_mapped_or_skipped() {
    let s = "Grüße\taus 東京 — “quoted” it’s…\n";
    assert_eq!(normalize(s), "Grüe aus  - \"quoted\" it's... ");
    let (text, _) = decode_all(SAMPLE_RATE, &utterance(SAMPLE_RATE, s));
    assert_eq!(text, normalize(s));
    assert!(Encoder::new(SAMPLE_RATE).encode("東京").is_empty());
}

#[test]
fn encodings_concatenate() {
    let mut e = Encoder::new(SAMPLE_RATE);
    let mut ab = e.encode("Hello, ");
    ab.extend(e.encode("lovely world"));
    assert_eq!(ab, e.encode("Hello, lovely world"));
    assert_eq!(ab.len(), 19 * e.symbol_samples());
}

#[test]
fn deterministic() {
    let a = Encoder::new(SAMPLE_RATE).encode(SENTENCES[0]);
    let b = Encoder::new(SAMPLE_RATE).encode(SENTENCES[0]);
    assert_eq!(a, b);
}

#[test]
fn repeated_characters_stay_separate() {
    for s in ["bookkeeper", "!!!", "aaaa  bb", "1000000", "...", "zz"] {
        let (text, _) = decode_all(SAMPLE_RATE, &utterance(SAMPLE_RATE, s));
        assert_eq!(text, s);
    }
}

#[test]
fn silence_separates_utterances() {
    let mut e = Encoder::new(SAMPLE_RATE);
    let mut pcm = e.encode("Hi there.");
    pcm.extend(e.silence(500));
    pcm.extend(e.encode("Still here?"));
    pcm.extend(e.silence(400));
    let mut d = Decoder::new(SAMPLE_RATE);
    let ev = d.push(&pcm);
    let kinds: Vec<_> = ev
        .iter()
        .filter(|e| !matches!(e, Decoded::Char { .. }))
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(matches!(kinds[0], Decoded::SpeechStart { at_sample: 0 }));
    assert!(matches!(kinds[1], Decoded::UtteranceEnd { .. }));
    assert!(matches!(kinds[2], Decoded::SpeechStart { .. }));
    assert!(matches!(kinds[3], Decoded::UtteranceEnd { .. }));
    assert_eq!(d.text(), "Hi there.Still here?");
    // Timestamps: increasing; the end comes 300 ms after the last tone.
    let at: Vec<u64> = ev
        .iter()
        .map(|e| match *e {
            Decoded::SpeechStart { at_sample }
            | Decoded::Char { at_sample, .. }
            | Decoded::UtteranceEnd { at_sample } => at_sample,
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]));
    let first_end = match kinds[1] {
        Decoded::UtteranceEnd { at_sample } => *at_sample,
        _ => unreachable!(),
    };
    let tone_end = (9 * e.symbol_samples() - 240) as u64;
    assert!(
        first_end + 160 >= tone_end + 4800 && first_end <= tone_end + 4800 + 160,
        "utterance end at {first_end}, tones ended at {tone_end}"
    );
    // Flush after a finished utterance adds nothing.
    assert!(d.flush().is_empty());
}

#[test]
fn speech_rate_is_speech_like() {
    let e = Encoder::new(SAMPLE_RATE);
    for s in SENTENCES {
        let n = normalize(s).chars().count() as f64;
        let d = e.duration(s);
        let cps = n / d.as_secs_f64();
        assert!((12.0..=16.0).contains(&cps), "{cps} chars/s");
    }
    let mut e2 = Encoder::new(SAMPLE_RATE);
    let pcm = e2.encode(SENTENCES[0]);
    assert_eq!(
        pcm.len() as f64 / f64::from(SAMPLE_RATE),
        e.duration(SENTENCES[0]).as_secs_f64()
    );
}

#[test]
fn energy_looks_like_speech_to_a_vad() {
    let mut e = Encoder::new(SAMPLE_RATE);
    let speech = e.encode(SENTENCES[1]);
    let frame = 320;
    for f in speech.chunks_exact(frame) {
        assert!(rms_dbfs(f) > -30.0, "speech frame at {}", rms_dbfs(f));
    }
    let whole = rms_dbfs(&speech);
    assert!(whole > -24.0 && whole < -18.0, "{whole}");
    assert!(speech.iter().all(|s| s.unsigned_abs() <= 6001));
    assert!(e.silence(100).iter().all(|&s| s == 0));
    assert_eq!(e.silence(20).len(), 320);
}

#[test]
fn through_16k_8k_16k_resampling() {
    for s in SENTENCES {
        let pcm = utterance(16_000, s);
        let mut down = resample::Downsampler::new();
        let mut up = resample::Upsampler::new();
        let mut out = Vec::new();
        for frame in pcm.chunks(320) {
            let n8 = down.process(frame);
            up.process_into(&n8, &mut out);
        }
        let (text, _) = decode_all(16_000, &out);
        assert_eq!(text, normalize(s));
    }
}

#[test]
fn through_mulaw_at_8k() {
    for s in SENTENCES {
        // Native 8 kHz encoding.
        let bytes = mulaw::encode(&utterance(8_000, s));
        let (text, _) = decode_all(8_000, &mulaw::decode(&bytes));
        assert_eq!(text, normalize(s));
        // 16 kHz TTS -> 8 kHz mu-law leg -> back to 16 kHz.
        let n8 = resample::Downsampler::new().process(&utterance(16_000, s));
        let law = mulaw::decode(&mulaw::encode(&n8));
        let (text8, _) = decode_all(8_000, &law);
        assert_eq!(text8, normalize(s));
        let n16 = resample::Upsampler::new().process(&law);
        let (text16, _) = decode_all(16_000, &n16);
        assert_eq!(text16, normalize(s));
    }
}

#[test]
fn survives_white_noise_at_minus_40_dbfs() {
    for (i, s) in SENTENCES.iter().enumerate() {
        let clean = utterance(16_000, s);
        let n = noise(clean.len(), -40.0, i as u64);
        assert!((rms_dbfs(&n) + 40.0).abs() < 0.5);
        let noisy: Vec<i16> = clean.iter().zip(&n).map(|(a, b)| a + b).collect();
        let (text, ev) = decode_all(16_000, &noisy);
        assert_eq!(text, normalize(s));
        let ends = ev
            .iter()
            .filter(|e| matches!(e, Decoded::UtteranceEnd { .. }))
            .count();
        assert_eq!(ends, 1);
        // And the noisy audio through the 8 kHz mu-law leg.
        let n8 = resample::Downsampler::new().process(&noisy);
        let law = mulaw::decode(&mulaw::encode(&n8));
        let (text8, _) = decode_all(8_000, &law);
        assert_eq!(text8, normalize(s));
    }
}

#[test]
fn survives_18_db_of_attenuation() {
    for s in SENTENCES {
        let quiet: Vec<i16> = utterance(8_000, s).iter().map(|&v| v / 8).collect();
        let law = mulaw::decode(&mulaw::encode(&quiet));
        let (text, _) = decode_all(8_000, &law);
        assert_eq!(text, normalize(s));
    }
}

#[test]
fn noise_alone_decodes_nothing() {
    for level in [-50.0, -40.0, -30.0, -20.0] {
        let n = noise(16_000 * 3, level, 7);
        let (text, ev) = decode_all(16_000, &n);
        assert_eq!(text, "", "noise at {level} dBFS");
        assert!(ev.is_empty());
    }
    let n = noise(16_000 * 3, -40.0, 99);
    let (text, ev) = decode_all(16_000, &n);
    assert_eq!(text, "");
    assert!(ev.is_empty());
}

#[test]
fn char_timestamps_follow_the_tones() {
    let mut e = Encoder::new(SAMPLE_RATE);
    let pcm = e.encode("abc");
    let sym = e.symbol_samples() as u64;
    let (_, ev) = decode_all(SAMPLE_RATE, &pcm);
    let chars: Vec<(char, u64)> = ev
        .iter()
        .filter_map(|e| match *e {
            Decoded::Char { c, at_sample } => Some((c, at_sample)),
            _ => None,
        })
        .collect();
    assert_eq!(chars.len(), 3);
    for (i, (c, at)) in chars.iter().enumerate() {
        assert_eq!(*c, ['a', 'b', 'c'][i]);
        let tone_end = i as u64 * sym + 880;
        assert!(*at >= tone_end && *at <= tone_end + 80, "{c} at {at}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_chunking_gives_the_same_events(
        sizes in proptest::collection::vec(1usize..2000, 1..40),
        which in 0usize..SENTENCES.len(),
    ) {
        let pcm = utterance(SAMPLE_RATE, SENTENCES[which]);
        let (whole_text, whole_ev) = decode_all(SAMPLE_RATE, &pcm);
        let mut d = Decoder::new(SAMPLE_RATE);
        let mut ev = Vec::new();
        let mut pos = 0;
        let mut it = sizes.iter().cycle();
        while pos < pcm.len() {
            let end = (pos + it.next().unwrap()).min(pcm.len());
            ev.extend(d.push(&pcm[pos..end]));
            pos = end;
        }
        ev.extend(d.flush());
        prop_assert_eq!(d.text(), whole_text.as_str());
        prop_assert_eq!(ev, whole_ev);
        prop_assert_eq!(whole_text, normalize(SENTENCES[which]));
    }

    #[test]
    fn a_cut_anywhere_decodes_a_prefix(
        frac in 0.0f64..1.0,
        which in 0usize..SENTENCES.len(),
        resampled in any::<bool>(),
    ) {
        let mut e = Encoder::new(SAMPLE_RATE);
        let full = e.encode(SENTENCES[which]);
        let want = normalize(SENTENCES[which]);
        let cut = (frac * full.len() as f64) as usize;
        let mut played = full[..cut].to_vec();
        // After a barge-in the leg carries silence.
        played.extend(e.silence(500));
        if resampled {
            let n8 = resample::Downsampler::new().process(&played);
            let law = mulaw::decode(&mulaw::encode(&n8));
            played = resample::Upsampler::new().process(&law);
        }
        let (text, _) = decode_all(SAMPLE_RATE, &played);
        prop_assert!(want.starts_with(&text), "cut {} decoded {:?}", cut, text);
        // Every symbol whose tone and gap were fully played is there.
        let complete = cut / e.symbol_samples();
        prop_assert!(text.chars().count() >= complete, "cut {} decoded {:?}", cut, text);
        // And nothing whose tone had played less than 35 ms (30 ms after
        // resampling filters smeared the cut edge).
        let started = cut.div_ceil(e.symbol_samples());
        let partial_ms = (cut % e.symbol_samples()) * 1000 / 16_000;
        let min_ms = if resampled { 30 } else { 35 };
        let partial = !cut.is_multiple_of(e.symbol_samples());
        let max = if partial_ms < min_ms && partial {
            started - 1
        } else {
            started
        };
        prop_assert!(text.chars().count() <= max, "cut {} decoded {:?}", cut, text);
    }

    #[test]
    fn a_cut_without_trailing_silence_decodes_a_prefix(
        cut in 0usize..50_000,
        chunk in 1usize..700,
    ) {
        let mut e = Encoder::new(SAMPLE_RATE);
        let full = e.encode(SENTENCES[0]);
        let cut = cut.min(full.len());
        let mut d = Decoder::new(SAMPLE_RATE);
        for c in full[..cut].chunks(chunk) {
            d.push(c);
        }
        d.flush();
        prop_assert!(normalize(SENTENCES[0]).starts_with(d.text()));
        prop_assert!(d.text().chars().count() >= cut / e.symbol_samples());
    }
}

fn alphabet_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(0usize..105, 1..40)
        .prop_map(|v| v.into_iter().map(super::alphabet::char_of).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any text of the alphabet, starting at any sample offset (not aligned
    /// to the decoder's blocks), through the whole telephone leg: 16 kHz
    /// TTS, 8 kHz mu-law, 16 kHz again, white noise, 20 ms frames.
    #[test]
    fn any_text_at_any_offset_through_the_leg(
        text in alphabet_text(),
        offset in 0usize..1200,
        leg in 0u8..3,
    ) {
        let mut e = Encoder::new(16_000);
        let mut pcm = vec![0i16; offset];
        pcm.extend(e.encode(&text));
        pcm.extend(e.silence(400));
        if leg >= 1 {
            let n8 = resample::Downsampler::new().process(&pcm);
            let law = mulaw::decode(&mulaw::encode(&n8));
            pcm = resample::Upsampler::new().process(&law);
        }
        if leg >= 2 {
            let n = noise(pcm.len(), -40.0, offset as u64);
            pcm = pcm.iter().zip(&n).map(|(a, b)| a.saturating_add(*b)).collect();
        }
        let mut d = Decoder::new(16_000);
        let mut ends = 0;
        for frame in pcm.chunks(320) {
            ends += d
                .push(frame)
                .iter()
                .filter(|e| matches!(e, Decoded::UtteranceEnd { .. }))
                .count();
        }
        prop_assert_eq!(d.text(), text.as_str());
        prop_assert_eq!(ends, 1);
    }

    /// The same at a native 8 kHz mu-law leg, cut anywhere: a prefix.
    #[test]
    fn any_text_cut_anywhere_at_8k_mulaw(
        text in alphabet_text(),
        offset in 0usize..600,
        frac in 0.0f64..1.0,
    ) {
        let mut e = Encoder::new(8_000);
        let speech = e.encode(&text);
        let cut = (frac * speech.len() as f64) as usize;
        let mut pcm = vec![0i16; offset];
        pcm.extend(&speech[..cut]);
        pcm.extend(e.silence(400));
        let law = mulaw::decode(&mulaw::encode(&pcm));
        let (got, _) = decode_all(8_000, &law);
        prop_assert!(text.starts_with(&got), "cut {} of {:?}: {:?}", cut, text, got);
        prop_assert!(got.chars().count() >= cut / e.symbol_samples());
    }
}
