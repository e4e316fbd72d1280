//! Mixed provider chains. The actors hold one call's chain as
//! `Vec<Arc<P::Stt>>` (and `P::Tts`) of ONE type, so a chain of different
//! providers ([Deepgram, Whisper], [ElevenLabs, Aura]) needs one type that
//! is any of them: these enums, which dispatch each port call to the
//! provider they hold.

use talky_actors::ports::{
    PortResult, SttConfig, SttPort, SttSession, TtsEvent, TtsPort, TtsRequest,
};
use tokio::sync::mpsc;

use crate::providers::aura::{self, AuraTts};
use crate::providers::deepgram_stt::{self, DeepgramStt};
use crate::providers::elevenlabs::{self, ElevenLabs};
use crate::providers::whisper::{self, WhisperStt};

/// Any speech-to-text provider of a chain.
#[derive(Clone, Debug)]
pub enum AnyStt {
    /// Deepgram live streaming (the primary).
    Deepgram(DeepgramStt),
    /// Groq Whisper batch (the fallback).
    Whisper(WhisperStt),
}

impl AnyStt {
    /// The provider's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            AnyStt::Deepgram(_) => deepgram_stt::NAME,
            AnyStt::Whisper(_) => whisper::NAME,
        }
    }
}

impl SttPort for AnyStt {
    fn provider_name(&self) -> &str {
        self.name()
    }

    fn open(&self, cfg: SttConfig) -> impl Future<Output = PortResult<SttSession>> + Send {
        let this = self.clone();
        async move {
            match this {
                AnyStt::Deepgram(p) => p.open(cfg).await,
                AnyStt::Whisper(p) => p.open(cfg).await,
            }
        }
    }
}

/// Any text-to-speech provider of a chain.
#[derive(Clone, Debug)]
pub enum AnyTts {
    /// ElevenLabs (the primary).
    ElevenLabs(ElevenLabs),
    /// Deepgram Aura (the fallback).
    Aura(AuraTts),
}

impl AnyTts {
    /// The provider's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            AnyTts::ElevenLabs(_) => elevenlabs::NAME,
            AnyTts::Aura(_) => aura::NAME,
        }
    }
}

impl TtsPort for AnyTts {
    fn provider_name(&self) -> &str {
        self.name()
    }

    fn synthesize(
        &self,
        req: TtsRequest,
    ) -> impl Future<Output = PortResult<mpsc::Receiver<TtsEvent>>> + Send {
        let this = self.clone();
        async move {
            match this {
                AnyTts::ElevenLabs(p) => p.synthesize(req).await,
                AnyTts::Aura(p) => p.synthesize(req).await,
            }
        }
    }
}
