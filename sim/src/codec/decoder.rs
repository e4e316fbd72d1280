//! Tone-pair audio -> text, streaming.

use super::alphabet::{self, BASE_HZ, STEP_HZ, TONES};
use super::{BLOCK_MS, UTTERANCE_END_MS};

/// Blocks a symbol run must last to emit its character (40 ms of 55; the
/// last block may be partly past a cut, so > 35 ms of tone heard).
const MIN_RUN_BLOCKS: u32 = 8;
/// Blocks a symbol run must last to start speech.
const SPEECH_START_BLOCKS: u32 = 2;
/// Minimum mean power of a symbol block: RMS 250, about -42 dBFS, so the
/// code survives about 20 dB of attenuation (noise never passes the tone
/// tests below, whatever its level).
const MIN_MEAN_POWER: f32 = 250.0 * 250.0;
/// The two strongest tones must hold this share of the block's energy.
const MIN_PAIR_SHARE: f32 = 0.6;
/// The weaker tone of the pair must have at least this share of the
/// stronger one's power (-6 dB).
const MIN_SECOND_RATIO: f32 = 0.25;
/// The third strongest tone must be below this share of the second.
const MAX_THIRD_RATIO: f32 = 0.1;

/// What the decoder hears. Sample positions count from the first sample
/// ever pushed, at the decoder's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Speech began: `at_sample` is the start of the first tone block.
    SpeechStart { at_sample: u64 },
    /// A character was heard; `at_sample` is where its tone was found to
    /// have ended (a block boundary just after the tone).
    Char { c: char, at_sample: u64 },
    /// 300 ms passed without a symbol since speech (or [`Decoder::flush`]
    /// ended the stream); `at_sample` is where that was found.
    UtteranceEnd { at_sample: u64 },
}

/// Streaming decoder: push samples in any chunking, get events.
#[derive(Debug, Clone)]
pub struct Decoder {
    block_len: usize,
    /// Goertzel coefficients 2 cos(w) per tone.
    coeff: [f32; TONES],
    /// Samples of the block being filled.
    pending: Vec<i16>,
    /// Stream position of the first sample of `pending`.
    block_start: u64,
    run_sym: Option<usize>,
    run_len: u32,
    run_start: u64,
    in_speech: bool,
    quiet_blocks: u32,
    end_blocks: u32,
    text: String,
}

impl Decoder {
    /// A decoder for audio at `sample_rate` Hz.
    ///
    /// # Panics
    /// Unless `sample_rate` is a multiple of 200 Hz and at least 8 kHz.
    pub fn new(sample_rate: u32) -> Self {
        super::check_rate(sample_rate);
        let block_len = (sample_rate * BLOCK_MS / 1000) as usize;
        let mut coeff = [0f32; TONES];
        for (k, c) in coeff.iter_mut().enumerate() {
            let f = f64::from(BASE_HZ + k as u32 * STEP_HZ);
            *c = (2.0 * (2.0 * std::f64::consts::PI * f / f64::from(sample_rate)).cos()) as f32;
        }
        Self {
            block_len,
            coeff,
            pending: Vec::with_capacity(block_len),
            block_start: 0,
            run_sym: None,
            run_len: 0,
            run_start: 0,
            in_speech: false,
            quiet_blocks: 0,
            end_blocks: UTTERANCE_END_MS / BLOCK_MS,
            text: String::new(),
        }
    }

    /// Feeds samples; returns the events they complete.
    pub fn push(&mut self, pcm: &[i16]) -> Vec<Decoded> {
        let mut out = Vec::new();
        self.push_into(pcm, &mut out);
        out
    }

    /// Like [`Decoder::push`], appending to `out` (no allocation when no
    /// event happens).
    pub fn push_into(&mut self, mut pcm: &[i16], out: &mut Vec<Decoded>) {
        if !self.pending.is_empty() {
            let need = self.block_len - self.pending.len();
            let take = need.min(pcm.len());
            self.pending.extend_from_slice(&pcm[..take]);
            pcm = &pcm[take..];
            if self.pending.len() < self.block_len {
                return;
            }
            let block = std::mem::take(&mut self.pending);
            self.block(&block, out);
            self.pending = block;
            self.pending.clear();
        }
        let mut chunks = pcm.chunks_exact(self.block_len);
        for block in &mut chunks {
            self.block(block, out);
        }
        self.pending.extend_from_slice(chunks.remainder());
    }

    /// Ends the stream: a symbol run in progress that is already long
    /// enough yields its character, and speech in progress ends. A partial
    /// block stays pending (it is continued by a later push).
    pub fn flush(&mut self) -> Vec<Decoded> {
        let mut out = Vec::new();
        let at = self.block_start;
        self.end_run(at, &mut out);
        if self.in_speech {
            self.in_speech = false;
            out.push(Decoded::UtteranceEnd { at_sample: at });
        }
        self.quiet_blocks = 0;
        out
    }

    /// All characters decoded so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Takes the characters decoded so far, leaving the text empty.
    pub fn take_text(&mut self) -> String {
        std::mem::take(&mut self.text)
    }

    /// Whether the decoder is inside an utterance.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Samples consumed so far (including a pending partial block).
    pub fn position(&self) -> u64 {
        self.block_start + self.pending.len() as u64
    }

    /// Classifies one full block and runs the state machine.
    fn block(&mut self, block: &[i16], out: &mut Vec<Decoded>) {
        let sym = self.classify(block);
        let start = self.block_start;
        self.block_start += block.len() as u64;
        match sym {
            Some(s) if self.run_sym == Some(s) => self.run_len += 1,
            _ => {
                self.end_run(start, out);
                if let Some(s) = sym {
                    self.run_sym = Some(s);
                    self.run_len = 1;
                    self.run_start = start;
                }
            }
        }
        if sym.is_some() {
            self.quiet_blocks = 0;
            if !self.in_speech && self.run_len >= SPEECH_START_BLOCKS {
                self.in_speech = true;
                out.push(Decoded::SpeechStart {
                    at_sample: self.run_start,
                });
            }
        } else {
            self.quiet_blocks += 1;
            if self.in_speech && self.quiet_blocks >= self.end_blocks {
                self.in_speech = false;
                out.push(Decoded::UtteranceEnd {
                    at_sample: self.block_start,
                });
            }
        }
    }

    fn end_run(&mut self, at: u64, out: &mut Vec<Decoded>) {
        if let Some(s) = self.run_sym.take() {
            if self.run_len >= MIN_RUN_BLOCKS {
                let c = alphabet::char_of(s);
                self.text.push(c);
                out.push(Decoded::Char { c, at_sample: at });
            }
            self.run_len = 0;
        }
    }

    /// The symbol a block carries, if any.
    fn classify(&self, block: &[i16]) -> Option<usize> {
        let n = block.len() as f32;
        let mut s1 = [0f32; TONES];
        let mut s2 = [0f32; TONES];
        let mut energy = 0f32;
        for &x in block {
            let x = f32::from(x);
            energy += x * x;
            for k in 0..TONES {
                let s = x + self.coeff[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s;
            }
        }
        if energy < MIN_MEAN_POWER * n {
            return None;
        }
        // Top three tone powers; |X|^2 * 2 / N is a steady tone's energy.
        let (mut i1, mut i2) = (usize::MAX, usize::MAX);
        let (mut p1, mut p2, mut p3) = (-1f32, -1f32, -1f32);
        for k in 0..TONES {
            let p = (s1[k] * s1[k] + s2[k] * s2[k] - self.coeff[k] * s1[k] * s2[k]) * 2.0 / n;
            if p > p1 {
                (p3, p2, i2) = (p2, p1, i1);
                (p1, i1) = (p, k);
            } else if p > p2 {
                (p3, p2, i2) = (p2, p, k);
            } else if p > p3 {
                p3 = p;
            }
        }
        if p1 + p2 < MIN_PAIR_SHARE * energy
            || p2 < MIN_SECOND_RATIO * p1
            || p3 > MAX_THIRD_RATIO * p2
        {
            return None;
        }
        alphabet::symbol_of_tones(i1, i2)
    }
}
