//! Text -> tone-pair audio.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::alphabet::{self, BASE_HZ, STEP_HZ, TONES};
use super::{GAP_MS, TONE_AMPLITUDE, TONE_MS};

/// Turns text into audio at a fixed sample rate. Cheap: each tone's 55 ms
/// waveform (ramps included) is computed once per sample rate and shared
/// by all encoders of that rate (15 tones x 880 samples at 16 kHz, 53 KB),
/// so a symbol costs two table reads and an add per sample.
#[derive(Debug, Clone)]
pub struct Encoder {
    rate: u32,
    tone_len: usize,
    gap_len: usize,
    /// `TONES` waveforms of `tone_len` samples each, tone after tone.
    waves: Arc<[f32]>,
}

/// The tone waveforms of one sample rate.
fn waves(rate: u32, tone_len: usize) -> Arc<[f32]> {
    static CACHE: OnceLock<Mutex<HashMap<u32, Arc<[f32]>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(rate)
        .or_insert_with(|| {
            let ramp_len = (rate as usize * 3) / 2000;
            let ramp = |n: usize| {
                let x = std::f64::consts::PI * (n as f64 + 0.5) / ramp_len as f64;
                0.5 * (1.0 - x.cos())
            };
            let amp = f64::from(TONE_AMPLITUDE);
            let mut out = Vec::with_capacity(TONES * tone_len);
            for k in 0..TONES {
                let f = f64::from(BASE_HZ + k as u32 * STEP_HZ);
                let w = 2.0 * std::f64::consts::PI * f / f64::from(rate);
                for n in 0..tone_len {
                    let gain = if n < ramp_len {
                        ramp(n)
                    } else if n >= tone_len - ramp_len {
                        ramp(tone_len - 1 - n)
                    } else {
                        1.0
                    };
                    out.push((amp * gain * (w * n as f64).sin()) as f32);
                }
            }
            out.into()
        })
        .clone()
}

impl Encoder {
    /// An encoder producing samples at `sample_rate` Hz.
    ///
    /// # Panics
    /// Unless `sample_rate` is a multiple of 200 Hz and at least 8 kHz.
    pub fn new(sample_rate: u32) -> Self {
        super::check_rate(sample_rate);
        let ms = |m: u32| (sample_rate as usize * m as usize) / 1000;
        let tone_len = ms(TONE_MS);
        Self {
            rate: sample_rate,
            tone_len,
            gap_len: ms(GAP_MS),
            waves: waves(sample_rate, tone_len),
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
        let len = self.tone_len;
        let wa = &self.waves[a * len..(a + 1) * len];
        let wb = &self.waves[b * len..(b + 1) * len];
        out.extend(wa.iter().zip(wb).map(|(x, y)| {
            let v = x + y;
            // Round half away from zero (cheaper than f32::round).
            (v + 0.5f32.copysign(v)) as i16
        }));
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
