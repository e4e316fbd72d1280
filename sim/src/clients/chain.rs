//! Both variants of each enum against their emulators, and a mixed chain
//! moving from a failing primary to the fallback as the actors do.

use talky::providers::aura::AuraTts;
use talky::providers::deepgram_stt::DeepgramStt;
use talky::providers::elevenlabs::ElevenLabs;
use talky::providers::whisper::WhisperStt;
use talky_actors::ports::{SttConfig, SttPort, SttSession, TtsEvent, TtsPort, TtsRequest};

use std::sync::Arc;
use std::time::Duration;

use talky_actors::ports::SttEvent;
use talky_actors::supervision::ProviderChain;

use crate::aura::{AuraSim, AuraSimConfig};
use crate::codec::{Decoder, Encoder, normalize};
use crate::deepgram::{DeepgramSim, DeepgramSimConfig, FailHandshake};
use crate::elevenlabs::{ElevenLabsSim, ElevenLabsSimConfig};
use crate::whisper::{WhisperSim, WhisperSimConfig};
use talky::audio::pcm::{bytes_to_i16, i16_to_bytes};
use talky::config::Secret;
use talky::providers::aura::AuraConfig;
use talky::providers::breaker::CircuitBreaker;
use talky::providers::chain::*;
use talky::providers::deepgram_stt::DeepgramSttConfig;
use talky::providers::elevenlabs::ElevenLabsConfig;
use talky::providers::whisper::WhisperConfig;

fn breaker(name: &str) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(name, 5, Duration::from_secs(30)))
}

fn stt_cfg() -> SttConfig {
    SttConfig {
        language: "en".into(),
        sample_rate: 16_000,
    }
}

/// Opens through the chain as the SttActor does: a failed open counts
/// against the provider in use, and after `switch_after` the chain moves on.
async fn open_through(chain: &mut ProviderChain<Arc<AnyStt>>) -> (SttSession, &'static str) {
    for _ in 0..10 {
        let p = chain.current();
        match p.open(stt_cfg()).await {
            Ok(s) => return (s, p.name()),
            Err(_) => {
                chain.on_failure();
            }
        }
    }
    panic!("no provider opened");
}

/// Speaks `text` into a session (real-time-ish pacing is not needed) and
/// returns the finals' text.
async fn transcript(session: SttSession, text: &str) -> String {
    let enc = Encoder::new(16_000);
    let mut audio = enc.silence(300);
    audio.extend(enc.clone().encode(text));
    audio.extend(enc.silence(1500));
    let SttSession {
        audio: tx,
        mut events,
    } = session;
    let bytes = i16_to_bytes(&audio);
    let send = async move {
        for f in bytes.chunks(640) {
            if tx.send(f.to_vec()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let recv = async {
        let mut out = Vec::new();
        while let Some(ev) = events.recv().await {
            match ev {
                SttEvent::Final { text, .. } => out.push(text),
                SttEvent::Error(e) => panic!("{e}"),
                _ => {}
            }
        }
        out.join(" ")
    };
    let (_, text) =
        tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(send, recv) })
            .await
            .expect("session ended");
    text
}

#[tokio::test]
async fn stt_chain_falls_back_from_a_failing_deepgram_to_whisper() {
    let deepgram = DeepgramSim::start(DeepgramSimConfig::default())
        .await
        .unwrap();
    deepgram.update(|c| {
        c.fail_handshake = Some(FailHandshake {
            status: 503,
            next: 100,
        })
    });
    let whisper = WhisperSim::start(WhisperSimConfig::default())
        .await
        .unwrap();
    let dg = DeepgramStt::new(
        DeepgramSttConfig::with_base_url(deepgram.base_url(), Secret::new(deepgram.api_key())),
        breaker("deepgram"),
    )
    .unwrap();
    let wh = WhisperStt::new(
        WhisperConfig::with_base_url(whisper.base_url(), Secret::new(whisper.api_key())),
        breaker("whisper"),
    )
    .unwrap();
    let mut chain = ProviderChain::new(
        vec![
            Arc::new(AnyStt::Deepgram(dg.clone())),
            Arc::new(AnyStt::Whisper(wh)),
        ],
        2,
    )
    .unwrap();
    let (session, name) = open_through(&mut chain).await;
    assert_eq!(name, "whisper");
    assert_eq!(chain.position(), 1);
    assert_eq!(
        transcript(session, "Who is calling?").await,
        normalize("Who is calling?")
    );
    assert_eq!(whisper.request_count(), 1);

    // The Deepgram variant works through the enum too once it recovers.
    deepgram.update(|c| c.fail_handshake = None);
    let session = AnyStt::Deepgram(dg).open(stt_cfg()).await.unwrap();
    assert_eq!(
        transcript(session, "Hello there").await,
        normalize("Hello there")
    );
}

#[tokio::test]
async fn tts_enum_dispatches_to_both_providers() {
    let el = ElevenLabsSim::start(ElevenLabsSimConfig::default())
        .await
        .unwrap();
    let aura = AuraSim::start(AuraSimConfig::default()).await.unwrap();
    let mut ec = ElevenLabsConfig::new(Secret::new(el.api_key()));
    ec.base_url = el.base_url();
    ec.ws_base_url = el.ws_base_url();
    let mut ac = AuraConfig::new(Secret::new(aura.api_key()));
    ac.base_url = aura.base_url();
    let chain = [
        AnyTts::ElevenLabs(ElevenLabs::new(ec, breaker("elevenlabs")).unwrap()),
        AnyTts::Aura(AuraTts::new(ac, breaker("aura")).unwrap()),
    ];
    for p in &chain {
        let mut rx = p
            .synthesize(TtsRequest {
                text: "Hi there.".into(),
                voice: "21m00Tcm4TlvDq8ikWAM".into(),
                language: "en".into(),
                sample_rate: 16_000,
            })
            .await
            .unwrap();
        let mut d = Decoder::new(16_000);
        let mut done = false;
        while let Some(ev) = rx.recv().await {
            match ev {
                TtsEvent::Audio(a) => {
                    d.push(&bytes_to_i16(&a));
                }
                TtsEvent::Done => done = true,
                TtsEvent::Error(e) => panic!("{}: {e}", p.name()),
                TtsEvent::Alignment(_) => {}
            }
        }
        d.flush();
        assert!(done, "{}", p.name());
        assert_eq!(d.take_text(), "Hi there.", "{}", p.name());
    }
    assert_eq!((el.request_count(), aura.request_count()), (1, 1));
}
