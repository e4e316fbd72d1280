//! The product's clients against their emulators, on loopback: every
//! provider client of `talky::providers` driven through its public API
//! (every error path and knob), and the recorder's round trips of speech
//! in the in-band code. The client's pure checks (parsers, settings) stay
//! beside the client in `talky`.

mod analysis;
mod aura;
mod chain;
mod deepgram_stt;
mod elevenlabs;
mod openai;
mod recording;
mod whisper;

/// What a TTS stream delivered, for the Aura and ElevenLabs client tests.
#[derive(Debug, Default)]
struct Collected {
    audio: Vec<Vec<u8>>,
    alignment: Vec<(usize, u32)>,
    done: bool,
    error: Option<talky_actors::ports::PortError>,
}

/// Reads a TTS stream to its end (10 s at most); an event after `Done`
/// or an error fails the test.
async fn collect(mut rx: tokio::sync::mpsc::Receiver<talky_actors::ports::TtsEvent>) -> Collected {
    use talky_actors::ports::TtsEvent;
    let mut c = Collected::default();
    let all = async {
        while let Some(ev) = rx.recv().await {
            assert!(!c.done && c.error.is_none(), "event after the end: {ev:?}");
            match ev {
                TtsEvent::Audio(a) => c.audio.push(a),
                TtsEvent::Alignment(a) => c.alignment.extend(a),
                TtsEvent::Done => c.done = true,
                TtsEvent::Error(e) => c.error = Some(e),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), all)
        .await
        .expect("stream ended");
    c
}

/// The text in TTS audio chunks (s16le at `rate`), each of whole samples.
fn decode(chunks: &[Vec<u8>], rate: u32) -> String {
    let mut d = crate::codec::Decoder::new(rate);
    for c in chunks {
        assert_eq!(c.len() % 2, 0, "chunk of whole samples");
        d.push(&talky::audio::pcm::bytes_to_i16(c));
    }
    d.flush();
    d.take_text()
}
