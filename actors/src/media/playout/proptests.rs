//! Random audio arrival, segment ends and poll times: the lead is never
//! exceeded, nothing due is held back, every byte goes out once and in
//! order, and what was heard only grows.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

/// What happens at one moment.
#[derive(Clone, Debug)]
enum Op {
    /// A new segment.
    Begin,
    /// Audio of `len` bytes for the `k`-th segment (mod the count).
    Push { k: usize, len: usize },
    /// The `k`-th segment ends.
    End { k: usize },
    /// The actor polls.
    Poll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Begin),
        4 => (0usize..4, 0usize..3000).prop_map(|(k, len)| Op::Push { k, len }),
        1 => (0usize..4).prop_map(|k| Op::End { k }),
        4 => Just(Op::Poll),
    ]
}

/// The test's own account of a segment.
struct Model {
    id: SegmentId,
    text: String,
    bytes: Vec<u8>,
    ended: bool,
}

/// Checks every frame of a poll at `t` against the playback rule and
/// collects its bytes.
struct Checker {
    frame: Duration,
    lead: Duration,
    play_end: Option<Instant>,
    sent: Vec<u8>,
    frame_bytes: usize,
}

impl Checker {
    fn check(&mut self, p: &Playout, t: Instant, frames: Vec<Frame>) -> Result<(), TestCaseError> {
        for f in frames {
            prop_assert_eq!(f.bytes.len(), self.frame_bytes);
            let idle = self.play_end.is_none_or(|e| e < t);
            prop_assert_eq!(f.spurt_start, idle);
            let start = self.play_end.map_or(t, |e| e.max(t));
            let end = start + self.frame;
            // Nothing unplayed: a frame may always go; else within the lead.
            prop_assert!(
                start == t || end <= t + self.lead,
                "lead exceeded at {:?}",
                t
            );
            self.play_end = Some(end);
            self.sent.extend_from_slice(&f.bytes);
        }
        prop_assert_eq!(p.playing_until(), self.play_end);
        if let Some(due) = p.next_due(t) {
            prop_assert!(due > t, "a frame due now was held back");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn pacing_and_bytes(
        ops in prop::collection::vec((0u64..45_000, op()), 1..150),
        rate in prop::sample::select(vec![8_000u32, 16_000]),
        lead_ms in prop::sample::select(vec![5u64, 20, 60, 200]),
    ) {
        let cfg = PlayoutConfig {
            max_lead: Duration::from_millis(lead_ms),
            max_buffered: Duration::from_millis(700),
            ..PlayoutConfig::new(rate)
        };
        let mut p = Playout::new(cfg);
        let mut c = Checker {
            frame: Duration::from_millis(20),
            lead: cfg.max_lead,
            play_end: None,
            sent: Vec::new(),
            frame_bytes: p.frame_bytes(),
        };
        let mut segs: Vec<Model> = Vec::new();
        let t0 = Instant::now();
        let mut t = t0;
        let mut last_played = Duration::ZERO;
        let mut fill = 0u8;
        for (dt_us, op) in ops {
            t += Duration::from_micros(dt_us);
            match op {
                Op::Begin => {
                    let id = SegmentId(segs.len() as u64);
                    let text = format!("segment {} says hi", segs.len());
                    p.begin_segment(id, &text);
                    segs.push(Model { id, text, bytes: Vec::new(), ended: false });
                }
                Op::Push { k, len } if !segs.is_empty() => {
                    let n = segs.len();
                    let s = &mut segs[k % n];
                    let pcm: Vec<u8> = (0..len).map(|_| { fill = fill % 255 + 1; fill }).collect();
                    let whole = (len + s.bytes.len() % 2) & !1;
                    let buffered = samples_in(p.buffered(), rate) as usize * 2;
                    let max = samples_in(cfg.max_buffered, rate) as usize * 2;
                    match p.push_audio(s.id, &pcm) {
                        Ok(()) => {
                            prop_assert!(!s.ended && buffered + whole <= max);
                            s.bytes.extend_from_slice(&pcm);
                        }
                        Err(PlayoutError::SegmentEnded(_)) => prop_assert!(s.ended),
                        Err(PlayoutError::Full) => prop_assert!(buffered + whole > max),
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Op::End { k } if !segs.is_empty() => {
                    let n = segs.len();
                    segs[k % n].ended = true;
                    p.end_segment(segs[k % n].id);
                }
                Op::Poll => {
                    let frames = p.poll(t);
                    c.check(&p, t, frames)?;
                }
                _ => {}
            }
            let played = p.heard(t).played;
            prop_assert!(played >= last_played, "played went back");
            prop_assert!(played <= t - t0);
            last_played = played;
        }
        // End everything and play it out.
        for s in &mut segs {
            s.ended = true;
            p.end_segment(s.id);
        }
        for _ in 0..10_000 {
            if p.is_idle() {
                break;
            }
            t = p.next_due(t).unwrap_or(t + Duration::from_millis(20));
            let frames = p.poll(t);
            c.check(&p, t, frames)?;
        }
        prop_assert!(p.is_idle());
        let want: Vec<u8> = segs
            .iter()
            .flat_map(|s| s.bytes[..s.bytes.len() & !1].iter().copied())
            .collect();
        let got: Vec<u8> = c.sent.iter().copied().filter(|&b| b != 0).collect();
        prop_assert_eq!(got, want);
        let end = p.playing_until().unwrap_or(t).max(t);
        let h = p.clear(end);
        prop_assert!(h.complete);
        let want_text: Vec<&str> = segs
            .iter()
            .filter(|s| s.bytes.len() >= 2)
            .map(|s| s.text.as_str())
            .collect();
        prop_assert_eq!(h.text, want_text.join(" "));
        prop_assert_eq!(h.played, Duration::from_millis(20) * (c.sent.len() / c.frame_bytes) as u32);
    }
}
