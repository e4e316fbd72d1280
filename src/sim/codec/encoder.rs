//! Text -> tone-pair audio.

use std::time::Duration;

use super::alphabet::{self, BASE_HZ, STEP_HZ, TONES};
use super::{GAP_MS, TONE_AMPLITUDE, TONE_MS};

/// Turns text into audio at a fixed sample rate. Cheap: two rotating
/// oscillators per symbol, no trigonometry per sample.
#[derive(Debug, Clone)]
pub struct Encoder {
    rate: u32,
    tone_len: usize,
    gap_len: usize,
    /// Raised-cosine fade-in gains (reversed for the fade-out).
    ramp: Vec<f64>,
    /// Per tone, (cos, sin) of the phase step per sample.
    step: [(f64, f64); TONES],
}

impl Encoder {
    /// An encoder producing samples at `sample_rate` Hz.
    ///
    /// # Panics
    /// Unless `sample_rate` is a multiple of 200 Hz and at least 8 kHz.
    pub fn new(sample_rate: u32) -> Self {
        super::check_rate(sample_rate);
        let ms = |m: u32| (sample_rate as usize * m as usize) / 1000;
        let ramp_len = (sample_rate as usize * 3) / 2000;
        let ramp = (0..ramp_len)
            .map(|n| {
                let x = std::f64::consts::PI * (n as f64 + 0.5) / ramp_len as f64;
                0.5 * (1.0 - x.cos())
            })
            .collect();
        let mut step = [(0.0, 0.0); TONES];
        for (k, s) in step.iter_mut().enumerate() {
            let f = f64::from(BASE_HZ + k as u32 * STEP_HZ);
            let w = 2.0 * std::f64::consts::PI * f / f64::from(sample_rate);
            *s = (w.cos(), w.sin());
        }
        Self {
            rate: sample_rate,
            tone_len: ms(TONE_MS),
            gap_len: ms(GAP_MS),
            ramp,
            step,
        }
    }

    /// The sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Samples per symbol (tone and gap).
    pub fn symbol_samples(&self) -> usize {
        self.tone_len + self.gap_len
    }

    /// One utterance: the symbols of `normalize(text)`, each its tone then
    /// its 15 ms gap, no other leading or trailing silence. Unsupported
    /// characters are mapped or skipped as [`super::normalize`] says.
    pub fn encode(&mut self, text: &str) -> Vec<i16> {
        let mut out = Vec::new();
        self.encode_into(text, &mut out);
        out
    }

    /// Like [`Encoder::encode`], appending to `out`.
    pub fn encode_into(&mut self, text: &str, out: &mut Vec<i16>) {
        let norm = super::normalize(text);
        out.reserve(norm.chars().count() * self.symbol_samples());
        for c in norm.chars() {
            if let Some(sym) = alphabet::symbol_of(c) {
                self.push_symbol(sym, out);
            }
        }
    }

    fn push_symbol(&self, sym: usize, out: &mut Vec<i16>) {
        let (a, b) = alphabet::tones_of(sym);
        let (ca, sa) = self.step[a];
        let (cb, sb) = self.step[b];
        // Oscillator states (cos, sin), both starting at phase 0.
        let (mut xa, mut ya) = (1.0f64, 0.0f64);
        let (mut xb, mut yb) = (1.0f64, 0.0f64);
        let amp = f64::from(TONE_AMPLITUDE);
        let ramp_len = self.ramp.len();
        for n in 0..self.tone_len {
            let gain = if n < ramp_len {
                self.ramp[n]
            } else if n >= self.tone_len - ramp_len {
                self.ramp[self.tone_len - 1 - n]
            } else {
                1.0
            };
            out.push((amp * gain * (ya + yb)).round() as i16);
            (xa, ya) = (xa * ca - ya * sa, ya * ca + xa * sa);
            (xb, yb) = (xb * cb - yb * sb, yb * cb + xb * sb);
        }
        out.resize(out.len() + self.gap_len, 0);
    }

    /// `ms` milliseconds of digital silence.
    pub fn silence(&self, ms: u32) -> Vec<i16> {
        vec![0; (self.rate as usize * ms as usize) / 1000]
    }

    /// How long `encode(text)` plays.
    pub fn duration(&self, text: &str) -> Duration {
        super::symbols_duration(super::normalize(text).chars().count())
    }
}
