//! A half-open probe is always resolved. The caller of a provider may give
//! up on an attempt (its own timeout drops the future) between the breaker
//! letting the probe through and the probe's result: that attempt counts as
//! a failure, and after the cool-down the breaker lets a further probe
//! through. Without it the breaker would refuse the provider until the
//! process restarts.
//!
//! No emulator: a bare listener on loopback that accepts TCP and, until it
//! is told to answer, never says a word; then it answers properly (a
//! WebSocket upgrade for Deepgram, a JSON transcript for Whisper).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use talky_actors::ports::{PortError, PortResult, SttConfig, SttPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Secret;
use crate::providers::breaker::{BreakerState, CircuitBreaker};
use crate::providers::deepgram_stt::{DeepgramStt, DeepgramSttConfig};
use crate::providers::whisper::{WhisperConfig, WhisperStt};

/// How long the breaker stays open before a probe.
const OPEN_FOR: Duration = Duration::from_millis(300);
/// The client's own budget for a handshake (or a whole request).
const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
/// The caller's budget, shorter: it gives up first.
const CALLER_TIMEOUT: Duration = Duration::from_millis(100);

/// Accepts TCP; holds each connection in silence until `answer` is set,
/// after which new connections are served by `serve`.
async fn listener<F, Fut>(serve: F) -> (String, Arc<AtomicBool>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let answer = Arc::new(AtomicBool::new(false));
    let flag = answer.clone();
    tokio::spawn(async move {
        let mut silent = Vec::new();
        while let Ok((tcp, _)) = l.accept().await {
            if flag.load(Ordering::SeqCst) {
                tokio::spawn(serve(tcp));
            } else {
                // Never read, never answered, never closed.
                silent.push(tcp);
            }
        }
    });
    (addr.to_string(), answer)
}

fn stt_cfg() -> SttConfig {
    SttConfig {
        language: "en-US".into(),
        sample_rate: 16_000,
    }
}

fn is_circuit_open(e: &PortError) -> bool {
    matches!(e, PortError::Unavailable(m) if m.contains("circuit open"))
}

/// The scenario, with `call` one attempt on the provider behind `breaker`
/// (threshold 1, open for [`OPEN_FOR`]), served by a listener that stays
/// silent until `answer` is set: the client's own timeout opens the
/// breaker; after the cool-down the probe is abandoned by its caller,
/// which counts as a failure (open again, refusing); after a further
/// cool-down a further probe goes out; once the provider answers, a probe
/// succeeds and closes the breaker. What that call returned.
async fn probe_scenario<T, F, Fut>(breaker: &CircuitBreaker, answer: &AtomicBool, call: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    let failure = async || call().await.map(drop).expect_err("a failure");

    // Never answered: the client's own timeout opens the breaker.
    let e = failure().await;
    assert!(matches!(e, PortError::Timeout(_)), "{e}");
    assert_eq!(breaker.state(), BreakerState::Open);
    let e = failure().await;
    assert!(is_circuit_open(&e), "{e}");

    // After the cool-down the probe goes out, and its caller gives up on it
    // before the client's own timeout.
    tokio::time::sleep(OPEN_FOR).await;
    let gave_up = tokio::time::timeout(CALLER_TIMEOUT, call()).await;
    assert!(gave_up.is_err(), "the caller timed out");
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "the abandoned probe counts as a failure"
    );
    let e = failure().await;
    assert!(is_circuit_open(&e), "cooling down: {e}");

    // After a further cool-down a further probe goes out (and fails on the
    // client's own timeout: the server is still silent).
    tokio::time::sleep(OPEN_FOR).await;
    let e = failure().await;
    assert!(
        matches!(e, PortError::Timeout(_)),
        "a probe, not refused: {e}"
    );

    // The provider is back: the next probe succeeds and closes the breaker.
    answer.store(true, Ordering::SeqCst);
    tokio::time::sleep(OPEN_FOR).await;
    let ok = call()
        .await
        .map_err(|e| e.to_string())
        .expect("the provider answers");
    assert_eq!(breaker.state(), BreakerState::Closed);
    ok
}

#[tokio::test]
async fn deepgram_probe_dropped_by_its_caller_counts_as_a_failure_and_the_breaker_probes_again() {
    let (addr, answer) = listener(|tcp| async move {
        if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
    let breaker = Arc::new(CircuitBreaker::new("deepgram", 1, OPEN_FOR));
    let mut cfg = DeepgramSttConfig::with_base_url(format!("ws://{addr}"), Secret::new("k"));
    cfg.connect_timeout = CLIENT_TIMEOUT;
    let stt = DeepgramStt::new(cfg, breaker.clone()).expect("client");

    let session = probe_scenario(&breaker, &answer, || stt.open(stt_cfg())).await;
    drop(session);
}

/// Answers one transcription request with `{"text":"back"}`.
async fn whisper_answer(mut tcp: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    // Read the head and the body (its length from Content-Length).
    loop {
        let Ok(n) = tcp.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
    }
    let body = r#"{"text":"back"}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(resp.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

#[tokio::test]
async fn whisper_probe_dropped_by_its_caller_counts_as_a_failure_and_the_breaker_probes_again() {
    let (addr, answer) = listener(whisper_answer).await;
    let breaker = Arc::new(CircuitBreaker::new("whisper", 1, OPEN_FOR));
    let mut cfg = WhisperConfig::with_base_url(format!("http://{addr}"), Secret::new("k"));
    cfg.request_timeout = CLIENT_TIMEOUT;
    cfg.max_retries = 0;
    let stt = WhisperStt::new(cfg, breaker.clone()).expect("client");
    let pcm = vec![0u8; 3200];

    let text = probe_scenario(&breaker, &answer, || stt.transcribe(&pcm, 16_000, "en")).await;
    assert_eq!(text, "back");
}
