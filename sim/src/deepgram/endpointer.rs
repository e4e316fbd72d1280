//! The emulator's ears: query parameters, the codec decoder, and an
//! endpointer on stream time producing Deepgram's server messages.

use serde_json::{Value, json};

use crate::codec::{Decoded, Decoder, TONE_MS};

/// The model id reported in `metadata`.
pub const MODEL_UUID: &str = "1ed36bac-f71c-4f3f-a31f-02fd6525c489";

/// Endpointing when the query does not say (Deepgram's 10 ms would split
/// the code's symbols; see the module doc).
pub const DEFAULT_ENDPOINTING_MS: u32 = 300;

/// The query parameters of one `/v1/listen` handshake, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenParams {
    /// `model` (default `base`, as Deepgram).
    pub model: String,
    /// `language`.
    pub language: String,
    /// `sample_rate`.
    pub sample_rate: u32,
    /// `interim_results`.
    pub interim_results: bool,
    /// `endpointing` in ms; `None` when `false`.
    pub endpointing_ms: Option<u32>,
    /// `utterance_end_ms`.
    pub utterance_end_ms: Option<u32>,
    /// `vad_events`.
    pub vad_events: bool,
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("Invalid value for {key}: {v}")),
    }
}

impl ListenParams {
    /// Validates the query like the service: `encoding` and `sample_rate`
    /// required (the emulator decodes `linear16` only), one channel,
    /// `utterance_end_ms` only with `interim_results=true`.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, String> {
        let get = |k: &str| {
            pairs
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        let encoding = get("encoding").ok_or("Missing required parameter: encoding")?;
        if encoding != "linear16" {
            return Err(format!("Unsupported encoding: {encoding}"));
        }
        let sample_rate: u32 = get("sample_rate")
            .ok_or("Missing required parameter: sample_rate")?
            .parse()
            .map_err(|_| "Invalid sample_rate".to_string())?;
        if !(8_000..=48_000).contains(&sample_rate) || !sample_rate.is_multiple_of(200) {
            return Err(format!("Unsupported sample_rate: {sample_rate}"));
        }
        if let Some(ch) = get("channels")
            && ch != "1"
        {
            return Err(format!("Unsupported channels: {ch}"));
        }
        let interim_results = get("interim_results")
            .map(|v| parse_bool("interim_results", v))
            .transpose()?
            .unwrap_or(false);
        let endpointing_ms = match get("endpointing") {
            None => Some(DEFAULT_ENDPOINTING_MS),
            Some("false") => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| format!("Invalid value for endpointing: {v}"))?,
            ),
        };
        let utterance_end_ms = get("utterance_end_ms")
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| format!("Invalid value for utterance_end_ms: {v}"))
            })
            .transpose()?;
        if utterance_end_ms.is_some() && !interim_results {
            return Err("utterance_end_ms requires interim_results=true".into());
        }
        let vad_events = get("vad_events")
            .map(|v| parse_bool("vad_events", v))
            .transpose()?
            .unwrap_or(false);
        Ok(Self {
            model: get("model").unwrap_or("base").to_string(),
            language: get("language").unwrap_or("en").to_string(),
            sample_rate,
            interim_results,
            endpointing_ms,
            utterance_end_ms,
            vad_events,
        })
    }
}

/// Decoder + endpointer on stream time (samples).
#[derive(Debug)]
pub struct Endpointer {
    p: ListenParams,
    dec: Decoder,
    rate: u64,
    interim_every_chars: usize,
    interim_every: u64,
    /// Characters not yet finalised, with the sample where each was heard.
    chars: Vec<(char, u64)>,
    /// Start of the audio span the next result covers.
    seg_start: u64,
    chars_at_interim: usize,
    last_interim_at: u64,
    last_char_at: Option<u64>,
    /// A word was heard since the last UtteranceEnd.
    utterance_open: bool,
    last_msg_at: u64,
    request_id: String,
}

impl Endpointer {
    /// For a validated handshake.
    pub fn new(p: ListenParams, interim_every_chars: usize, interim_every_ms: u32) -> Self {
        let rate = u64::from(p.sample_rate);
        Self {
            dec: Decoder::new(p.sample_rate),
            rate,
            interim_every_chars: interim_every_chars.max(1),
            interim_every: rate * u64::from(interim_every_ms) / 1000,
            p,
            chars: Vec::new(),
            seg_start: 0,
            chars_at_interim: 0,
            last_interim_at: 0,
            last_char_at: None,
            utterance_open: false,
            last_msg_at: 0,
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn ms(&self, ms: u32) -> u64 {
        self.rate * u64::from(ms) / 1000
    }

    fn secs(&self, samples: u64) -> f64 {
        (samples as f64 / self.rate as f64 * 1000.0).round() / 1000.0
    }

    /// Seconds of audio received.
    pub fn duration_secs(&self) -> f64 {
        self.secs(self.dec.position())
    }

    /// Feeds samples; returns the messages to send.
    pub fn push(&mut self, pcm: &[i16]) -> Vec<Value> {
        let mut out = Vec::new();
        for ev in self.dec.push(pcm) {
            self.on_decoded(ev, &mut out);
        }
        let pos = self.dec.position();
        if let Some(last) = self.last_char_at {
            if let Some(ep) = self.p.endpointing_ms
                && !self.chars.is_empty()
                && pos.saturating_sub(last) >= self.ms(ep)
            {
                out.push(self.result(pos, true, true, false));
            }
            if let Some(ue) = self.p.utterance_end_ms
                && self.utterance_open
                && pos.saturating_sub(last) >= self.ms(ue)
            {
                if !self.chars.is_empty() {
                    out.push(self.result(pos, true, false, false));
                }
                self.utterance_open = false;
                out.push(json!({
                    "type": "UtteranceEnd",
                    "channel": [0, 1],
                    "last_word_end": self.secs(last),
                }));
            }
        }
        if out.is_empty()
            && self.chars.is_empty()
            && pos.saturating_sub(self.last_msg_at) >= self.rate
        {
            // A second of audio with nothing to say: an empty result.
            out.push(self.result(pos, true, false, false));
        }
        if !out.is_empty() {
            self.last_msg_at = pos;
        }
        out
    }

    fn on_decoded(&mut self, ev: Decoded, out: &mut Vec<Value>) {
        match ev {
            Decoded::SpeechStart { at_sample } => {
                if self.p.vad_events {
                    out.push(json!({
                        "type": "SpeechStarted",
                        "channel": [0],
                        "timestamp": self.secs(at_sample),
                    }));
                }
            }
            Decoded::Char { c, at_sample } => {
                self.chars.push((c, at_sample));
                self.last_char_at = Some(at_sample);
                self.utterance_open = true;
                if self.p.interim_results
                    && (self.chars.len() - self.chars_at_interim >= self.interim_every_chars
                        || at_sample.saturating_sub(self.last_interim_at) >= self.interim_every)
                {
                    self.chars_at_interim = self.chars.len();
                    self.last_interim_at = at_sample;
                    out.push(self.result(at_sample, false, false, false));
                }
            }
            Decoded::UtteranceEnd { .. } => {}
        }
    }

    /// `Finalize` (`from_finalize`) or `CloseStream`: pending text becomes
    /// a final result.
    pub fn finalize(&mut self, from_finalize: bool) -> Vec<Value> {
        let mut out = Vec::new();
        for ev in self.dec.flush() {
            self.on_decoded(ev, &mut out);
        }
        let pos = self.dec.position();
        if !self.chars.is_empty() || from_finalize {
            out.push(self.result(pos, true, false, from_finalize));
        }
        self.last_msg_at = pos;
        out
    }

    /// A `Results` message for the pending text up to `pos`; a final one
    /// consumes it.
    fn result(
        &mut self,
        pos: u64,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> Value {
        let transcript: String = self.chars.iter().map(|(c, _)| *c).collect();
        let tone = self.ms(TONE_MS);
        let mut words = Vec::new();
        let mut word = String::new();
        let mut w_start = 0u64;
        let mut w_end = 0u64;
        for &(c, at) in &self.chars {
            if c == ' ' {
                if !word.is_empty() {
                    words.push(self.word_json(&word, w_start, w_end));
                    word.clear();
                }
                continue;
            }
            if word.is_empty() {
                w_start = at.saturating_sub(tone);
            }
            w_end = at;
            word.push(c);
        }
        if !word.is_empty() {
            words.push(self.word_json(&word, w_start, w_end));
        }
        let start = self.seg_start;
        let v = json!({
            "type": "Results",
            "channel_index": [0, 1],
            "duration": self.secs(pos.saturating_sub(start)),
            "start": self.secs(start),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{
                "transcript": transcript,
                "confidence": if transcript.is_empty() { 0.0 } else { 0.99 },
                "words": words,
            }]},
            "metadata": {
                "request_id": self.request_id,
                "model_uuid": MODEL_UUID,
                "model_info": {"name": "general-nova-3", "version": "2024-sim", "arch": "nova-3"},
            },
        });
        if is_final {
            self.chars.clear();
            self.chars_at_interim = 0;
            self.seg_start = pos;
            self.last_interim_at = pos;
        }
        v
    }

    fn word_json(&self, word: &str, start: u64, end: u64) -> Value {
        let bare: String = word
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .collect::<String>()
            .to_lowercase();
        json!({
            "word": bare,
            "start": self.secs(start),
            "end": self.secs(end),
            "confidence": 0.99,
            "punctuated_word": word,
        })
    }
}
