use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use talky_actors::ports::{PortError, SttConfig, SttEvent, SttPort, SttSession};
use tokio::sync::mpsc;

use super::*;
use crate::providers::breaker::CircuitBreaker;

const RATE: u32 = 16_000;

fn stt_cfg() -> SttConfig {
    SttConfig {
        language: "en-US".into(),
        sample_rate: RATE,
    }
}

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("deepgram", 5, Duration::from_secs(30)))
}

/// Events until `stop` matches one (included), the channel closes, or 10 s.
async fn collect(
    events: &mut mpsc::Receiver<SttEvent>,
    stop: impl FnMut(&SttEvent) -> bool,
) -> Vec<SttEvent> {
    talky_actors::testing::recv_until(events, Duration::from_secs(10), stop).await
}

fn is_error(e: &SttEvent) -> bool {
    matches!(e, SttEvent::Error(_))
}

#[tokio::test]
async fn connect_refused_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = DeepgramSttConfig::with_base_url(format!("ws://127.0.0.1:{port}"), Secret::new("k"));
    let stt = DeepgramStt::new(cfg, breaker()).unwrap();
    let err = stt.open(stt_cfg()).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn wss_against_a_non_tls_peer_fails_without_panicking() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let cfg = DeepgramSttConfig::with_base_url(format!("wss://{addr}"), Secret::new("k"));
    let stt = DeepgramStt::new(cfg, breaker()).unwrap();
    let err = stt.open(stt_cfg()).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
}

/// A raw server that sends `msgs` after the upgrade, then waits.
async fn raw_server(msgs: Vec<Message>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        for m in msgs {
            if ws.send(m).await.is_err() {
                return;
            }
        }
        while let Some(Ok(_)) = ws.next().await {}
    });
    format!("ws://{addr}")
}

async fn raw_session(msgs: Vec<Message>) -> Vec<SttEvent> {
    let url = raw_server(msgs).await;
    let cfg = DeepgramSttConfig::with_base_url(url, Secret::new("k"));
    let stt = DeepgramStt::new(cfg, breaker()).unwrap();
    let SttSession { audio, mut events } = stt.open(stt_cfg()).await.expect("open");
    let evs = collect(&mut events, is_error).await;
    drop(audio);
    evs
}

#[tokio::test]
async fn oversized_server_message_is_a_protocol_error() {
    let big = format!(
        r#"{{"type":"Metadata","x":"{}"}}"#,
        "a".repeat(MAX_MESSAGE_BYTES + 10)
    );
    let evs = raw_session(vec![Message::text(big)]).await;
    assert!(
        matches!(evs.last(), Some(SttEvent::Error(PortError::Protocol(_)))),
        "{evs:?}"
    );
}

#[tokio::test]
async fn odd_server_messages_never_panic() {
    let evs = raw_session(vec![
        Message::text(r#"{"type":"Metadata","request_id":"x"}"#),
        Message::text(r#"{"type":"Warning","description":"w"}"#),
        Message::text(r#"{"type":"Results","is_final":"yes","channel":{"alternatives":[{"transcript":"hi"}]}}"#),
        Message::text(r#"{"type":"SpeechStarted"}"#),
        Message::text(r#"{"type":"Results","channel":{"alternatives":[]}}"#),
    ])
    .await;
    assert_eq!(evs[0], SttEvent::Interim("hi".into()));
    assert_eq!(evs[1], SttEvent::SpeechStarted);
    assert!(
        matches!(evs.last(), Some(SttEvent::Error(PortError::Protocol(_)))),
        "{evs:?}"
    );
    let evs = raw_session(vec![Message::binary(vec![1u8, 2, 3])]).await;
    assert!(matches!(
        evs.last(),
        Some(SttEvent::Error(PortError::Protocol(_)))
    ));
    let evs = raw_session(vec![Message::Close(Some(
        tungstenite::protocol::CloseFrame {
            code: 1008u16.into(),
            reason: "DATA-0000".into(),
        },
    ))])
    .await;
    assert!(
        matches!(evs.last(), Some(SttEvent::Error(PortError::Protocol(m))) if m.contains("DATA-0000"))
    );
}

#[test]
fn parses_server_messages() {
    let r = |t: &str, fin: bool, sf: bool| {
        format!(
            r#"{{"type":"Results","is_final":{fin},"speech_final":{sf},"channel":{{"alternatives":[{{"transcript":"{t}","confidence":0.9}}]}}}}"#
        )
    };
    assert_eq!(
        parse_server_message(&r("hello there", true, true)).unwrap(),
        Some(SttEvent::Final {
            text: "hello there".into(),
            speech_final: true
        })
    );
    assert_eq!(
        parse_server_message(&r("hello", false, false)).unwrap(),
        Some(SttEvent::Interim("hello".into()))
    );
    assert_eq!(parse_server_message(&r("", true, false)).unwrap(), None);
    assert_eq!(parse_server_message(&r("  ", false, false)).unwrap(), None);
    assert_eq!(
        parse_server_message(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":1.2}"#)
            .unwrap(),
        Some(SttEvent::UtteranceEnd)
    );
    assert_eq!(
        parse_server_message(r#"{"type":"Metadata","duration":1}"#).unwrap(),
        None
    );
    for bad in [
        "",
        "{",
        "[1,2]",
        "null",
        r#"{"type":5}"#,
        r#"{"type":"Results"}"#,
    ] {
        assert!(
            matches!(parse_server_message(bad), Err(PortError::Protocol(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        parse_server_message(r#"{"type":"Error","description":"boom","variant":"x"}"#),
        Err(PortError::Unavailable(m)) if m.contains("boom")
    ));
}

#[test]
fn builds_the_listen_url_and_refuses_bad_settings() {
    let cfg = DeepgramSttConfig::with_base_url("ws://127.0.0.1:9/", Secret::new("k"));
    let stt = DeepgramStt::new(cfg.clone(), breaker()).unwrap();
    let url = stt.listen_url(&stt_cfg());
    assert_eq!(
        url,
        "ws://127.0.0.1:9/v1/listen?model=nova-3&language=en-US&encoding=linear16&sample_rate=16000&channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000&vad_events=true&smart_format=true"
    );
    assert_eq!(
        DeepgramSttConfig::new(Secret::new("k")).base_url,
        DEEPGRAM_BASE_URL
    );
    let bad = DeepgramSttConfig::with_base_url("http://x", Secret::new("k"));
    assert!(matches!(
        DeepgramStt::new(bad, breaker()),
        Err(BuildError::BadSetting {
            setting: "base_url",
            ..
        })
    ));
    let bad = DeepgramSttConfig::with_base_url("ws://x", Secret::new("a\nb"));
    assert!(matches!(
        DeepgramStt::new(bad, breaker()),
        Err(BuildError::BadKey { .. })
    ));
    assert!(!format!("{:?}", stt).contains("Token k"));
}
