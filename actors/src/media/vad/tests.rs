use std::time::Duration;

use super::*;

const RATE: u32 = 16_000;

/// `ms` of a 440 Hz sine whose RMS level is `dbfs`, as 16-bit LE PCM.
fn tone(ms: u64, dbfs: f64, rate: u32) -> Vec<u8> {
    let peak = 10f64.powf(dbfs / 20.0) * 32768.0 * 2f64.sqrt();
    let n = u64::from(rate) * ms / 1000;
    (0..n)
        .flat_map(|i| {
            let x = (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin();
            ((x * peak).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes()
        })
        .collect()
}

fn silence(ms: u64, rate: u32) -> Vec<u8> {
    vec![0; (u64::from(rate) * ms / 1000 * 2) as usize]
}

/// Feeds `pcm` in 20 ms frames; returns each event with the index of the
/// frame (counted from `first`) that caused it.
fn feed(vad: &mut Vad, pcm: &[u8], rate: u32, first: usize) -> Vec<(usize, VadEvent)> {
    let frame = (rate / 50 * 2) as usize;
    pcm.chunks(frame)
        .enumerate()
        .filter_map(|(i, f)| vad.push_frame(f).map(|e| (first + i, e)))
        .collect()
}

fn vad() -> Vad {
    Vad::new(VadConfig::default(), RATE)
}

const LOUD: f64 = -20.0;

#[test]
fn levels_in_dbfs() {
    assert!((frame_dbfs(&tone(20, -3.0, RATE)) + 3.0).abs() < 0.1);
    assert!((frame_dbfs(&tone(20, -40.0, RATE)) + 40.0).abs() < 0.1);
    let square: Vec<u8> = (0..320)
        .flat_map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN }.to_le_bytes())
        .collect();
    assert!(frame_dbfs(&square).abs() < 0.01);
    assert_eq!(frame_dbfs(&silence(20, RATE)), f32::NEG_INFINITY);
    assert_eq!(frame_dbfs(&[]), f32::NEG_INFINITY);
    assert_eq!(
        frame_dbfs(&[0x7f]),
        f32::NEG_INFINITY,
        "half a sample is no sample"
    );
}

#[test]
fn speech_starts_after_min_speech() {
    let mut v = vad();
    assert_eq!(v.push_frame(&tone(20, LOUD, RATE)), None);
    assert_eq!(v.push_frame(&tone(20, LOUD, RATE)), None);
    assert!(!v.in_speech());
    assert_eq!(
        v.push_frame(&tone(20, LOUD, RATE)),
        Some(VadEvent::SpeechStart)
    );
    assert!(v.in_speech());
    assert_eq!(v.push_frame(&tone(20, LOUD, RATE)), None, "only once");
}

#[test]
fn speech_shorter_than_min_speech_is_ignored() {
    let mut v = vad();
    let mut pcm = tone(40, LOUD, RATE);
    pcm.extend(silence(20, RATE));
    pcm.extend(tone(40, LOUD, RATE));
    pcm.extend(silence(1000, RATE));
    assert_eq!(feed(&mut v, &pcm, RATE, 0), []);
    assert!(!v.in_speech());
}

#[test]
fn pauses_shorter_than_the_hangover_do_not_end_speech() {
    let mut v = vad();
    let mut pcm = tone(200, LOUD, RATE); // frames 0..10
    pcm.extend(silence(280, RATE)); // 10..24
    pcm.extend(tone(100, LOUD, RATE)); // 24..29
    pcm.extend(silence(400, RATE)); // 29..49
    let events = feed(&mut v, &pcm, RATE, 0);
    assert_eq!(
        events,
        [
            (2, VadEvent::SpeechStart),
            // 300 ms of silence is 15 frames: frames 29..=43.
            (
                43,
                VadEvent::SpeechEnd {
                    speech: Duration::from_millis(580)
                }
            ),
        ]
    );
    assert!(!v.in_speech());
}

#[test]
fn speech_can_start_again_after_it_ended() {
    let mut v = vad();
    let mut pcm = tone(100, LOUD, RATE);
    pcm.extend(silence(300, RATE));
    pcm.extend(tone(60, LOUD, RATE));
    let events = feed(&mut v, &pcm, RATE, 0);
    assert_eq!(
        events,
        [
            (2, VadEvent::SpeechStart),
            (
                19,
                VadEvent::SpeechEnd {
                    speech: Duration::from_millis(100)
                }
            ),
            (22, VadEvent::SpeechStart),
        ]
    );
}

#[test]
fn the_threshold_decides() {
    let mut v = vad();
    assert_eq!(feed(&mut v, &tone(500, -47.0, RATE), RATE, 0), []);
    let mut v = vad();
    assert_eq!(
        feed(&mut v, &tone(60, -43.0, RATE), RATE, 0),
        [(2, VadEvent::SpeechStart)]
    );
}

#[test]
fn works_at_8_khz_and_other_frame_lengths() {
    let mut v = Vad::new(VadConfig::default(), 8_000);
    assert_eq!(
        feed(&mut v, &tone(60, LOUD, 8_000), 8_000, 0),
        [(2, VadEvent::SpeechStart)]
    );
    // 10 ms frames: 6 of them make 60 ms.
    let mut v = vad();
    let pcm = tone(60, LOUD, RATE);
    let events: Vec<_> = pcm.chunks(320).filter_map(|f| v.push_frame(f)).collect();
    assert_eq!(events, [VadEvent::SpeechStart]);
    assert!(v.in_speech());
}

#[test]
fn zero_durations_switch_on_one_frame() {
    let cfg = VadConfig {
        min_speech: Duration::ZERO,
        hangover: Duration::ZERO,
        ..VadConfig::default()
    };
    let mut v = Vad::new(cfg, RATE);
    assert_eq!(
        v.push_frame(&tone(20, LOUD, RATE)),
        Some(VadEvent::SpeechStart)
    );
    assert_eq!(
        v.push_frame(&silence(20, RATE)),
        Some(VadEvent::SpeechEnd {
            speech: Duration::from_millis(20)
        })
    );
}

#[test]
fn empty_and_odd_frames_do_not_panic() {
    let mut v = vad();
    assert_eq!(v.push_frame(&[]), None);
    assert_eq!(v.push_frame(&[1]), None);
    let mut odd = tone(20, LOUD, RATE);
    odd.push(0x55);
    assert_eq!(v.push_frame(&odd), None);
    let bad = VadConfig {
        threshold_dbfs: f32::NAN,
        ..VadConfig::default()
    };
    let mut v = Vad::new(bad, 0);
    assert_eq!(
        feed(&mut v, &tone(200, 0.0, RATE), RATE, 0),
        [],
        "NaN threshold: never loud"
    );
}

#[test]
fn reset_forgets_the_stream() {
    let mut v = vad();
    feed(&mut v, &tone(100, LOUD, RATE), RATE, 0);
    assert!(v.in_speech());
    v.reset();
    assert!(!v.in_speech());
    assert_eq!(v.push_frame(&silence(20, RATE)), None);
    assert_eq!(v.config(), &VadConfig::default());
}

#[test]
fn full_scale_frames_do_not_overflow() {
    let mut v = vad();
    let loud: Vec<u8> = (0..320).flat_map(|_| i16::MIN.to_le_bytes()).collect();
    for _ in 0..2 {
        assert_eq!(v.push_frame(&loud), None);
    }
    assert_eq!(v.push_frame(&loud), Some(VadEvent::SpeechStart));
}

#[test]
fn the_silence_that_ended_speech_is_the_configured_hangover() {
    for hangover_ms in [300u64, 700, 1000] {
        let mut vad = Vad::new(
            VadConfig {
                hangover: Duration::from_millis(hangover_ms),
                ..VadConfig::default()
            },
            RATE,
        );
        let mut events = feed(&mut vad, &tone(500, LOUD, RATE), RATE, 0);
        events.extend(feed(&mut vad, &silence(2000, RATE), RATE, 25));
        let ended = events
            .iter()
            .find(|(_, e)| matches!(e, VadEvent::SpeechEnd { .. }))
            .expect("speech ends");
        // Reported on the frame that completed the hangover.
        assert_eq!(
            ended.0,
            25 + (hangover_ms / 20) as usize - 1,
            "{hangover_ms}"
        );
        assert_eq!(
            vad.trailing_silence(),
            Duration::from_millis(hangover_ms),
            "{hangover_ms}"
        );
    }
}
