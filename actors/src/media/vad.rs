//! A small energy voice activity detector for 20 ms PCM frames: confirms
//! barge-in (the callee really speaks, not a click) and cuts utterances for
//! the batch speech-to-text fallback.
//!
//! A frame is loud when its RMS level reaches the threshold. Speech starts
//! after `min_speech` of consecutive loud frames and ends after `hangover`
//! of consecutive quiet ones, so short noises and short pauses are ignored.

#[cfg(test)]
mod tests;

use std::time::Duration;

use super::pcm::{duration_of, samples_in};

/// Level (dBFS) at or above which a frame counts as voice.
pub const DEFAULT_THRESHOLD_DBFS: f32 = -45.0;
/// Loud audio needed to declare speech: shorter bursts are clicks.
pub const DEFAULT_MIN_SPEECH: Duration = Duration::from_millis(60);
/// Quiet audio needed to declare speech over: shorter pauses are breaths
/// between words.
pub const DEFAULT_HANGOVER: Duration = Duration::from_millis(300);

/// How the detector decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadConfig {
    /// Frame level (RMS, dBFS) at or above which a frame is loud.
    pub threshold_dbfs: f32,
    /// Consecutive loud audio that starts speech.
    pub min_speech: Duration,
    /// Consecutive quiet audio that ends speech.
    pub hangover: Duration,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold_dbfs: DEFAULT_THRESHOLD_DBFS,
            min_speech: DEFAULT_MIN_SPEECH,
            hangover: DEFAULT_HANGOVER,
        }
    }
}

/// A change of the speech state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VadEvent {
    /// `min_speech` of loud audio was seen: the callee speaks.
    SpeechStart,
    /// `hangover` of quiet audio followed speech: the callee stopped.
    SpeechEnd {
        /// From the start of the first loud frame to the end of the last
        /// one (pauses within included, the closing hangover not).
        speech: Duration,
    },
}

/// The detector's state for one audio stream.
#[derive(Clone, Debug)]
pub struct Vad {
    /// The configuration it was made with.
    cfg: VadConfig,
    /// Samples per second (at least 1).
    sample_rate: u32,
    /// Mean square sample value at the threshold: comparing energies
    /// avoids a logarithm per frame.
    threshold_energy: f64,
    /// `min_speech` in samples.
    min_speech: u64,
    /// `hangover` in samples.
    hangover: u64,
    /// Whether speech is on.
    in_speech: bool,
    /// Consecutive loud samples (before speech starts) or speech samples so
    /// far (once it has).
    loud: u64,
    /// Consecutive quiet samples since the last loud frame.
    quiet: u64,
    /// Whether the last frame was above the threshold.
    last_loud: bool,
    /// The quiet audio that ended the last speech.
    trailing_silence: Duration,
}

impl Vad {
    /// A detector for PCM at `sample_rate` (0 counts as 1).
    pub fn new(cfg: VadConfig, sample_rate: u32) -> Self {
        let sample_rate = sample_rate.max(1);
        let amplitude = 10f64.powf(f64::from(cfg.threshold_dbfs) / 20.0) * 32768.0;
        Self {
            threshold_energy: amplitude * amplitude,
            min_speech: samples_in(cfg.min_speech, sample_rate),
            hangover: samples_in(cfg.hangover, sample_rate),
            sample_rate,
            cfg,
            in_speech: false,
            loud: 0,
            quiet: 0,
            last_loud: false,
            trailing_silence: Duration::ZERO,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &VadConfig {
        &self.cfg
    }

    /// Takes the next frame (16-bit LE PCM, any length; an odd last byte is
    /// ignored) and returns the state change it caused, if any.
    pub fn push_frame(&mut self, pcm: &[u8]) -> Option<VadEvent> {
        let samples = (pcm.len() / 2) as u64;
        if samples == 0 {
            return None;
        }
        let loud = mean_square(pcm) >= self.threshold_energy;
        self.last_loud = loud;
        if self.in_speech {
            if loud {
                self.loud += self.quiet + samples;
                self.quiet = 0;
                return None;
            }
            self.quiet += samples;
            if self.quiet < self.hangover {
                return None;
            }
            let speech = duration_of(self.loud, self.sample_rate);
            self.trailing_silence = duration_of(self.quiet, self.sample_rate);
            self.reset();
            return Some(VadEvent::SpeechEnd { speech });
        }
        if !loud {
            self.loud = 0;
            return None;
        }
        self.loud += samples;
        if self.loud < self.min_speech {
            return None;
        }
        self.in_speech = true;
        self.quiet = 0;
        Some(VadEvent::SpeechStart)
    }

    /// Whether speech is on (started and not yet ended).
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// The quiet audio that ended the last speech: the configured
    /// `hangover`, rounded up to whole frames. The speech ended that long
    /// before the [`VadEvent::SpeechEnd`] that reported it.
    pub fn trailing_silence(&self) -> Duration {
        self.trailing_silence
    }

    /// Whether the last frame pushed was above the threshold.
    pub fn last_frame_loud(&self) -> bool {
        self.last_loud
    }

    /// Forgets the stream so far (e.g. when the turn changes).
    pub fn reset(&mut self) {
        self.in_speech = false;
        self.loud = 0;
        self.quiet = 0;
    }
}

/// RMS level of 16-bit LE PCM in dBFS (a full-scale square wave is 0);
/// negative infinity for silence or no samples.
pub fn frame_dbfs(pcm: &[u8]) -> f32 {
    let ms = mean_square(pcm);
    if ms <= 0.0 {
        return f32::NEG_INFINITY;
    }
    (10.0 * (ms / (32768.0 * 32768.0)).log10()) as f32
}

/// Mean of the squared samples (0 for no samples).
fn mean_square(pcm: &[u8]) -> f64 {
    let mut sum = 0u64;
    let mut n = 0u64;
    for s in pcm.chunks_exact(2) {
        if let &[lo, hi] = s {
            let v = i64::from(i16::from_le_bytes([lo, hi]));
            sum = sum.saturating_add(v.unsigned_abs() * v.unsigned_abs());
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum as f64 / n as f64 }
}
