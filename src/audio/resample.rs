//! Streaming 16 kHz <-> 8 kHz resampling by a factor of two.
//!
//! Both directions use one linear-phase half-band FIR low-pass: 63 taps,
//! windowed sinc with cut-off at 4 kHz (a quarter of 16 kHz) and a Kaiser
//! window (β = 6.5, about -65 dB stop band), so the pass band is flat to
//! about 3.4 kHz (telephony) and content above about 4.6 kHz is removed
//! before decimating (naive sample dropping aliases, `specs/providers.md`
//! §8.2). In a half-band filter every other tap is zero, so only 33 taps do
//! work.
//!
//! Both resamplers keep their filter history across calls: feeding a stream
//! in any chunking gives exactly the same output samples (same arithmetic in
//! the same order). Each direction delays the signal by [`DELAY_16K`]
//! samples at 16 kHz (about 1.9 ms), so a round trip delays by twice that.

use std::sync::OnceLock;

const TAPS: usize = 63;
const CENTER: usize = TAPS / 2;
const KAISER_BETA: f64 = 6.5;

/// Delay of each direction, in 16 kHz samples (the filter's group delay).
pub const DELAY_16K: usize = CENTER;

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < 1e-12 * sum {
            break;
        }
    }
    sum
}

/// The filter taps at 16 kHz, normalised to unity DC gain.
fn taps() -> &'static [f32; TAPS] {
    static TAPS_CELL: OnceLock<[f32; TAPS]> = OnceLock::new();
    TAPS_CELL.get_or_init(|| {
        let mut h = [0f64; TAPS];
        let denom = bessel_i0(KAISER_BETA);
        for (k, tap) in h.iter_mut().enumerate() {
            let x = k as f64 - CENTER as f64;
            let sinc = if x == 0.0 {
                1.0
            } else {
                let a = std::f64::consts::PI * x / 2.0;
                a.sin() / a
            };
            let r = x / CENTER as f64;
            let w = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / denom;
            *tap = 0.5 * sinc * w;
            // Exact zeros of the half band (sin(k*pi) is not exactly 0 in f64).
            if x != 0.0 && (k + CENTER).is_multiple_of(2) {
                *tap = 0.0;
            }
        }
        let sum: f64 = h.iter().sum();
        let mut out = [0f32; TAPS];
        for (o, v) in out.iter_mut().zip(h) {
            *o = (v / sum) as f32;
        }
        out
    })
}

/// Rounds half away from zero and saturates (`as` saturates); cheaper
/// than `f32::round`, which is a libm call without SSE4.1.
fn to_i16(v: f32) -> i16 {
    (v + 0.5f32.copysign(v)) as i16
}

/// Non-zero taps of the even phase: `h[0], h[2], ..., h[62]`.
const PHASE: usize = TAPS.div_ceil(2);

/// The even-phase taps reversed, scaled by `scale`, so a dot product with
/// the oldest-first history window is one contiguous pass.
fn phase_taps(scale: f32) -> [f32; PHASE] {
    let h = taps();
    let mut out = [0f32; PHASE];
    for (i, o) in out.iter_mut().enumerate() {
        *o = h[2 * (PHASE - 1 - i)] * scale;
    }
    out
}

fn down_taps() -> &'static [f32; PHASE] {
    static CELL: OnceLock<[f32; PHASE]> = OnceLock::new();
    CELL.get_or_init(|| phase_taps(1.0))
}

fn up_taps() -> &'static [f32; PHASE] {
    static CELL: OnceLock<[f32; PHASE]> = OnceLock::new();
    CELL.get_or_init(|| phase_taps(2.0))
}

/// Dot product in a fixed order with eight lanes (vectorisable, and the
/// same result however the stream was chunked).
fn dot(taps: &[f32; PHASE], win: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (t, w) in taps.chunks_exact(8).zip(win.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += t[l] * w[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// 16 kHz -> 8 kHz: low-pass, then keep every even-indexed sample of the
/// stream (indices counted from the first sample ever pushed).
///
/// Polyphase: output `y[m] = sum_j h[2j] x[2m - 2j] + h[31] x[2m - 31]`,
/// so the even-indexed inputs go through the 32 even taps and the
/// odd-indexed ones only through the centre tap.
#[derive(Debug, Clone)]
pub struct Downsampler {
    /// Even-indexed inputs, oldest first: the last `PHASE - 1`, then the
    /// ones of the current call.
    even: Vec<f32>,
    /// Odd-indexed inputs, oldest first: the last `ODD_HIST`, then the
    /// ones of the current call.
    odd: Vec<f32>,
    /// Whether the next input sample has an even stream index.
    even_next: bool,
}

/// `x[2m - 31]` is the 16th odd-indexed sample back from `x[2m]`.
const ODD_HIST: usize = CENTER.div_ceil(2);

impl Default for Downsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler {
    pub fn new() -> Self {
        Self {
            even: vec![0.0; PHASE - 1],
            odd: vec![0.0; ODD_HIST],
            even_next: true,
        }
    }

    /// Forgets the history (as if newly created).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Resamples a chunk of 16 kHz samples; returns the 8 kHz samples it
    /// completes (half the input, give or take one for odd chunk sizes).
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::with_capacity(input.len() / 2 + 1);
        self.process_into(input, &mut out);
        out
    }

    /// Like [`Downsampler::process`], appending to `out`.
    pub fn process_into(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let taps = down_taps();
        let centre = taps_centre();
        out.reserve(input.len() / 2 + 1);
        for &s in input {
            let x = f32::from(s);
            if self.even_next {
                self.even.push(x);
                let win = &self.even[self.even.len() - PHASE..];
                let y = dot(taps, win) + centre * self.odd[self.odd.len() - ODD_HIST];
                out.push(to_i16(y));
            } else {
                self.odd.push(x);
            }
            self.even_next = !self.even_next;
        }
        let e = self.even.len() - (PHASE - 1);
        self.even.drain(..e);
        let o = self.odd.len() - ODD_HIST;
        self.odd.drain(..o);
    }
}

fn taps_centre() -> f32 {
    taps()[CENTER]
}

/// 8 kHz -> 16 kHz: zero-stuffing interpolation by two through the same
/// low-pass (polyphase), two output samples per input sample:
/// `y[2m] = 2 sum_j h[2j] x[m - j]` and `y[2m + 1] = 2 h[31] x[m - 15]`
/// (the centre is the only non-zero odd tap).
#[derive(Debug, Clone)]
pub struct Upsampler {
    /// The last `PHASE - 1` input samples, oldest first, then the ones of
    /// the current call.
    buf: Vec<f32>,
}

impl Default for Upsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler {
    pub fn new() -> Self {
        Self {
            buf: vec![0.0; PHASE - 1],
        }
    }

    /// Forgets the history (as if newly created).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Resamples a chunk of 8 kHz samples to twice as many 16 kHz samples.
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::with_capacity(input.len() * 2);
        self.process_into(input, &mut out);
        out
    }

    /// Like [`Upsampler::process`], appending to `out`.
    pub fn process_into(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let taps = up_taps();
        let centre = 2.0 * taps_centre();
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        out.reserve(input.len() * 2);
        for i in 0..input.len() {
            // Newest input x[m] at win[PHASE - 1]; x[m - j] = win[PHASE - 1 - j].
            let win = &self.buf[i..i + PHASE];
            out.push(to_i16(dot(taps, win)));
            out.push(to_i16(centre * win[PHASE - 1 - CENTER / 2]));
        }
        let keep_from = self.buf.len() - (PHASE - 1);
        self.buf.drain(..keep_from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tone(freq: f64, rate: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn half_band_shape() {
        let h = taps();
        let sum: f32 = h.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert!((h[CENTER] - 0.5).abs() < 0.01);
        for k in (1..TAPS).step_by(2) {
            if k != CENTER {
                assert_eq!(h[k], 0.0);
            }
        }
        for k in 0..TAPS {
            assert_eq!(h[k], h[TAPS - 1 - k]);
        }
    }

    #[test]
    fn passes_speech_band_and_blocks_aliases() {
        for f in [300.0, 1000.0, 3000.0, 3300.0] {
            let x = tone(f, 16000.0, 3200, 10000.0);
            let y = Downsampler::new().process(&x);
            let gain = rms(&y[100..]) / rms(&x[200..]);
            assert!((gain - 1.0).abs() < 0.03, "{f} Hz gain {gain}");
        }
        for f in [4800.0, 6000.0, 7500.0] {
            let x = tone(f, 16000.0, 3200, 10000.0);
            let y = Downsampler::new().process(&x);
            let gain = rms(&y[100..]) / rms(&x[200..]);
            assert!(gain < 0.01, "{f} Hz leaks {gain}");
        }
    }

    #[test]
    fn upsampling_keeps_band_and_round_trip_delays() {
        for f in [400.0, 1500.0, 3200.0] {
            let x = tone(f, 8000.0, 1600, 10000.0);
            let y = Upsampler::new().process(&x);
            assert_eq!(y.len(), 3200);
            let gain = rms(&y[200..]) / rms(&x[100..]);
            assert!((gain - 1.0).abs() < 0.03, "{f} Hz gain {gain}");
        }
        // An impulse comes back after 2 * DELAY_16K samples.
        let mut x = vec![0i16; 400];
        x[10] = 16000;
        let y = Upsampler::new().process(&Downsampler::new().process(&x));
        let peak = y
            .iter()
            .enumerate()
            .max_by_key(|(_, v)| v.unsigned_abs())
            .unwrap()
            .0;
        assert_eq!(peak, 10 + 2 * DELAY_16K);
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_output(
            cuts in proptest::collection::vec(1usize..500, 1..20),
        ) {
            let x: Vec<i16> = (0..4000)
                .map(|i: i32| ((i * 7919 % 2001) - 1000) as i16 * 9)
                .collect();
            let whole_down = Downsampler::new().process(&x);
            let whole_up = Upsampler::new().process(&x);
            let mut d = Downsampler::new();
            let mut u = Upsampler::new();
            let (mut down, mut up) = (Vec::new(), Vec::new());
            let mut pos = 0;
            let mut c = cuts.iter().cycle();
            while pos < x.len() {
                let end = (pos + c.next().unwrap()).min(x.len());
                d.process_into(&x[pos..end], &mut down);
                u.process_into(&x[pos..end], &mut up);
                pos = end;
            }
            prop_assert_eq!(down, whole_down);
            prop_assert_eq!(up, whole_up);
        }
    }
}
