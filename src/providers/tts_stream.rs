//! The connection and pump of a streaming TTS synthesis, shared by
//! ElevenLabs and Deepgram Aura; each provider's wire format (URLs, what
//! its socket messages and close codes mean) stays in its own module,
//! behind [`TtsWire`].
//!
//! A synthesis is an HTTP body of raw PCM or a WebSocket. [`start_http`]
//! and [`start_ws`] open it; [`stream`] reads up to the first audio within
//! the first-byte budget (every failure up to then is its `Err`) and hands
//! the rest to a pump task: whole-sample [`TtsEvent::Audio`] (an odd byte is
//! carried over), `Done` at the end, a failure as one [`TtsEvent::Error`]
//! after the audio decoded before it, no chunk further apart than the idle
//! timeout. Dropping the receiver cancels (the body is dropped, the socket
//! closed politely, bounded). The attempt's [`BreakerGuard`] is resolved
//! exactly once, on every path.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use talky_actors::ports::{PortError, PortResult, TTS_EVENT_CAPACITY, TtsEvent};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::providers::breaker::BreakerGuard;
use crate::providers::elevenlabs::Assembler;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How long a polite close may take.
const CLOSE_BUDGET: Duration = Duration::from_millis(200);

/// What one provider's streaming socket says.
pub(crate) trait TtsWire: Send + 'static {
    /// The provider, in errors and logs.
    const NAME: &'static str;
    /// The error text of a socket that ends before the end of the audio.
    const ENDED_EARLY: &'static str;
    /// Sent before closing the socket, if the provider wants one.
    const CLOSE_MESSAGE: Option<&'static str>;
    /// A text message: `Ok(Some(done))` ends the read, `Ok(None)` is skipped.
    fn text(text: &str, asm: &mut Assembler, out: &mut Vec<TtsEvent>) -> PortResult<Option<bool>>;
    /// A binary message: `Ok(done)`.
    fn binary(data: &[u8], asm: &mut Assembler, out: &mut Vec<TtsEvent>) -> PortResult<bool>;
    /// A close frame before the end: `Ok(true)` a (lenient) end, else the
    /// typed failure.
    fn close_result(code: u16, reason: &str) -> PortResult<bool>;
}

/// An open synthesis, HTTP body or socket.
pub(crate) enum Conn<W> {
    /// The streamed body of raw PCM.
    Http(BoxStream<'static, reqwest::Result<Bytes>>, PhantomData<W>),
    /// The socket.
    Ws(Box<Ws>),
}

impl<W: TtsWire> Conn<W> {
    /// Reads one body chunk or socket message; `Ok(true)` at the end.
    async fn step(&mut self, asm: &mut Assembler, out: &mut Vec<TtsEvent>) -> PortResult<bool> {
        let name = W::NAME;
        match self {
            Conn::Http(body, _) => match body.next().await {
                None => Ok(true),
                Some(Ok(b)) => {
                    asm.audio(&b, out);
                    Ok(false)
                }
                Some(Err(e)) => Err(PortError::Unavailable(format!(
                    "{name}: connection broken: {e}"
                ))),
            },
            Conn::Ws(ws) => loop {
                let msg = match ws.next().await {
                    None => return Err(PortError::Unavailable(W::ENDED_EARLY.into())),
                    Some(Err(e)) => {
                        return Err(PortError::Unavailable(format!(
                            "{name}: socket broken: {e}"
                        )));
                    }
                    Some(Ok(m)) => m,
                };
                match msg {
                    Message::Text(t) => {
                        if let Some(done) = W::text(t.as_str(), asm, out)? {
                            return Ok(done);
                        }
                    }
                    Message::Binary(b) => return W::binary(&b, asm, out),
                    Message::Close(frame) => {
                        return match frame {
                            None => Ok(true),
                            Some(f) => W::close_result(u16::from(f.code), f.reason.as_str()),
                        };
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            },
        }
    }

    /// Ends politely (bounded): the provider's close message, then the
    /// close handshake; a body is just dropped.
    async fn close(self) {
        if let Conn::Ws(mut ws) = self {
            let _ = tokio::time::timeout(CLOSE_BUDGET, async {
                if let Some(m) = W::CLOSE_MESSAGE {
                    let _ = ws.send(Message::text(m)).await;
                }
                let _ = ws.close().await;
            })
            .await;
        }
    }
}

/// Sends `req`; the streamed body is the connection. The first byte is
/// due `first_byte_timeout` from now, which is the deadline returned; a
/// non-2xx answer (its body read up to a cap, by the deadline) is
/// `status_error`'s verdict.
pub(crate) async fn start_http<W: TtsWire>(
    req: reqwest::RequestBuilder,
    first_byte_timeout: Duration,
    status_error: fn(u16, &reqwest::header::HeaderMap, &[u8]) -> PortError,
) -> PortResult<(Conn<W>, Instant)> {
    let name = W::NAME;
    let deadline = Instant::now() + first_byte_timeout;
    let resp = match tokio::time::timeout_at(deadline, req.send()).await {
        Err(_) => return Err(PortError::Timeout(format!("{name}: first byte"))),
        Ok(Err(e)) if e.is_timeout() => {
            return Err(PortError::Timeout(format!("{name}: connect: {e}")));
        }
        Ok(Err(e)) => return Err(PortError::Unavailable(format!("{name}: {e}"))),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while body.len() < MAX_ERROR_BODY {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(b))) => body.extend_from_slice(&b),
                _ => break,
            }
        }
        return Err(status_error(status.as_u16(), &headers, &body));
    }
    Ok((
        Conn::Http(resp.bytes_stream().boxed(), PhantomData),
        deadline,
    ))
}

/// Opens the socket of `url` (with `headers`) within `connect_budget`,
/// then sends `messages`; the first audio is due `first_byte_timeout` after
/// the handshake, which is the deadline returned.
pub(crate) async fn start_ws<W: TtsWire>(
    url: &str,
    headers: Vec<(&'static str, reqwest::header::HeaderValue)>,
    config: WebSocketConfig,
    connect_budget: Duration,
    first_byte_timeout: Duration,
    messages: Vec<String>,
    handshake_error: fn(tungstenite::Error) -> PortError,
) -> PortResult<(Conn<W>, Instant)> {
    let name = W::NAME;
    let mut request = url
        .into_client_request()
        .map_err(|e| PortError::Rejected(format!("{name}: bad URL: {e}")))?;
    for (k, v) in headers {
        request.headers_mut().insert(k, v);
    }
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (mut ws, _resp) = match tokio::time::timeout(connect_budget, connect).await {
        Err(_) => {
            return Err(PortError::Timeout(format!("{name}: websocket handshake")));
        }
        Ok(Err(e)) => return Err(handshake_error(e)),
        Ok(Ok(s)) => s,
    };
    let deadline = Instant::now() + first_byte_timeout;
    for m in messages {
        match tokio::time::timeout_at(deadline, ws.send(Message::text(m))).await {
            Err(_) => return Err(PortError::Timeout(format!("{name}: first byte"))),
            Ok(Err(e)) => {
                return Err(PortError::Unavailable(format!(
                    "{name}: socket broken: {e}"
                )));
            }
            Ok(Ok(())) => {}
        }
    }
    Ok((Conn::Ws(Box::new(ws)), deadline))
}

/// The synthesis `started` (or why it failed to start), at `rate`: waits
/// for the first audio (or the end) until `deadline`, then pumps the rest
/// into the returned receiver with at most `idle_timeout` between chunks.
/// `guard` is resolved on every path.
pub(crate) async fn stream<W: TtsWire>(
    started: PortResult<(Conn<W>, Instant)>,
    rate: u32,
    idle_timeout: Duration,
    mut guard: BreakerGuard,
) -> PortResult<mpsc::Receiver<TtsEvent>> {
    let (mut conn, deadline) = match started {
        Ok(c) => c,
        Err(e) => {
            guard.resolve(Some(&e));
            return Err(e);
        }
    };
    let mut asm = Assembler::new(rate);
    let mut events = Vec::new();
    let mut done = false;
    // Up to the first audio (or the end) within the first-byte budget.
    while events.is_empty() && !done {
        match tokio::time::timeout_at(deadline, conn.step(&mut asm, &mut events)).await {
            Err(_) => {
                let e = PortError::Timeout(format!("{}: first byte", W::NAME));
                guard.resolve(Some(&e));
                conn.close().await;
                return Err(e);
            }
            Ok(Err(e)) => {
                guard.resolve(Some(&e));
                conn.close().await;
                return Err(e);
            }
            Ok(Ok(d)) => done = d,
        }
    }
    guard.produced_output = !events.is_empty();
    let (tx, rx) = mpsc::channel(TTS_EVENT_CAPACITY);
    tokio::spawn(pump(conn, asm, events, done, idle_timeout, tx, guard));
    Ok(rx)
}

/// Hands the events over, then streams the rest.
async fn pump<W: TtsWire>(
    mut conn: Conn<W>,
    mut asm: Assembler,
    mut events: Vec<TtsEvent>,
    mut done: bool,
    idle_timeout: Duration,
    tx: mpsc::Sender<TtsEvent>,
    mut guard: BreakerGuard,
) {
    loop {
        for ev in events.drain(..) {
            guard.produced_output = true;
            if tx.send(ev).await.is_err() {
                // The receiver is gone: the caller cancelled.
                guard.resolve(None);
                conn.close().await;
                return;
            }
        }
        if done {
            asm.finish();
            guard.resolve(None);
            let _ = tx.send(TtsEvent::Done).await;
            // Let the server's close frame arrive (bounded).
            conn.close().await;
            return;
        }
        let step = tokio::select! {
            _ = tx.closed() => {
                guard.resolve(None);
                conn.close().await;
                return;
            }
            r = tokio::time::timeout(idle_timeout, conn.step(&mut asm, &mut events)) => r,
        };
        let err = match step {
            Ok(Ok(d)) => {
                done = d;
                continue;
            }
            Ok(Err(e)) => e,
            Err(_) => PortError::Timeout(format!("{}: idle between chunks", W::NAME)),
        };
        tracing::debug!(provider = W::NAME, error = %err, "TTS stream failed");
        crate::providers::observe::error(guard.provider(), "synthesize", &err);
        guard.resolve(Some(&err));
        // Audio decoded before the failure still goes out first.
        for ev in events.drain(..) {
            if tx.send(ev).await.is_err() {
                break;
            }
        }
        let _ = tx.send(TtsEvent::Error(err)).await;
        conn.close().await;
        return;
    }
}
