//! The ports a call is generic over, as one type parameter, and the
//! provider chains it holds.

use std::sync::Arc;

use crate::ports::{CallStore, Clock, LlmPort, SttPort, TelephonyPort, TtsPort};

/// The port implementations a call uses, as one type parameter.
pub trait CallPorts: Send + Sync + 'static {
    /// Telephony.
    type Telephony: TelephonyPort;
    /// Speech to text (one type; a provider chain holds several values).
    type Stt: SttPort;
    /// LLM.
    type Llm: LlmPort;
    /// Text to speech.
    type Tts: TtsPort;
    /// Call records.
    type Store: CallStore;
    /// Time.
    type Clock: Clock;
}

/// The ports of a call: one telephony, store and clock; a provider chain
/// (primary first) for each of STT, LLM and TTS.
pub struct Ports<P: CallPorts> {
    /// Places and ends the call.
    pub telephony: Arc<P::Telephony>,
    /// STT providers, primary first (at least one).
    pub stt: Vec<Arc<P::Stt>>,
    /// LLM providers, primary first (at least one).
    pub llm: Vec<Arc<P::Llm>>,
    /// TTS providers, primary first (at least one).
    pub tts: Vec<Arc<P::Tts>>,
    /// Records.
    pub store: Arc<P::Store>,
    /// Time.
    pub clock: Arc<P::Clock>,
}

impl<P: CallPorts> Clone for Ports<P> {
    fn clone(&self) -> Self {
        Self {
            telephony: self.telephony.clone(),
            stt: self.stt.clone(),
            llm: self.llm.clone(),
            tts: self.tts.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
        }
    }
}
