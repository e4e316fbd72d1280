//! A WebSocket upgrade like `warp::ws()`, but with the socket's buffers
//! sized for 20 ms media frames.
//!
//! warp's filter keeps tungstenite's defaults, among them a 128 KiB read
//! buffer per socket that tungstenite zero-fills up to its capacity before
//! every read: 128 KiB of RSS per live call and a 128 KiB memset per
//! 640-byte frame (50 a second per call). This filter upgrades through the
//! same hyper machinery (the request's `OnUpgrade`) and builds the socket
//! with [`media_config`]; [`WebSocket`] and [`Message`] mirror warp's API
//! so handlers only change their imports.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, handshake::derive_accept_key};
use warp::Filter;
use warp::reply::{Reply, Response};

/// Read buffer of a media socket: a few frames (a 640-byte frame and its
/// header fit many times); a larger message grows it as needed.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes gathered before tungstenite writes on its own: a batch of frames
/// fed before one flush (the playout's 100 ms, five 644-byte messages)
/// leaves in one write. The buffer keeps the capacity it grew to, so this
/// is memory per socket too.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// tungstenite's configuration for media sockets: small buffers and the
/// given message limit.
pub fn media_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// The filter: a WebSocket upgrade request (rejected like `warp::ws()`'s
/// when it is not one).
pub fn ws() -> impl Filter<Extract = (Ws,), Error = warp::Rejection> + Clone {
    warp::header::exact_ignore_case("upgrade", "websocket")
        .and(warp::header::exact("sec-websocket-version", "13"))
        .and(warp::header::<String>("sec-websocket-key"))
        .and(warp::ext::optional::<OnUpgrade>())
        .map(|key: String, on_upgrade: Option<OnUpgrade>| Ws {
            key,
            on_upgrade,
            max_message_bytes: 64 << 20,
            max_frame_bytes: None,
        })
}

/// An upgrade request, finished with [`Ws::on_upgrade`].
pub struct Ws {
    key: String,
    on_upgrade: Option<OnUpgrade>,
    max_message_bytes: usize,
    max_frame_bytes: Option<usize>,
}

impl Ws {
    /// Largest message (and frame) accepted.
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.max_message_bytes = max;
        self
    }

    /// Largest frame accepted (at most the message limit in effect).
    pub fn max_frame_size(mut self, max: usize) -> Self {
        self.max_frame_bytes = Some(max);
        self
    }

    /// Answers 101 and runs `func` on the socket once upgraded.
    pub fn on_upgrade<F, U>(self, func: F) -> Response
    where
        F: FnOnce(WebSocket) -> U + Send + 'static,
        U: Future<Output = ()> + Send + 'static,
    {
        let Some(on_upgrade) = self.on_upgrade else {
            return warp::http::StatusCode::BAD_REQUEST.into_response();
        };
        let mut config = media_config(self.max_message_bytes);
        if let Some(frame) = self.max_frame_bytes {
            config = config.max_frame_size(Some(frame));
        }
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let inner = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    func(WebSocket { inner }).await;
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        let accept = derive_accept_key(self.key.as_bytes());
        let mut res = Response::default();
        *res.status_mut() = warp::http::StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(
            "connection",
            warp::http::HeaderValue::from_static("upgrade"),
        );
        h.insert("upgrade", warp::http::HeaderValue::from_static("websocket"));
        if let Ok(v) = warp::http::HeaderValue::from_str(&accept) {
            h.insert("sec-websocket-accept", v);
        }
        res
    }
}

/// An upgraded socket: a `Stream` of [`Message`]s and a `Sink` of them.
pub struct WebSocket {
    inner: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
}

/// One message, with warp's accessors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    inner: tungstenite::Message,
}

impl Message {
    /// A binary message.
    pub fn binary(bytes: impl Into<bytes::Bytes>) -> Self {
        Self {
            inner: tungstenite::Message::Binary(bytes.into()),
        }
    }

    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            inner: tungstenite::Message::text(text.into()),
        }
    }

    /// A close without a reason.
    pub fn close() -> Self {
        Self {
            inner: tungstenite::Message::Close(None),
        }
    }

    /// A close with a code and a reason.
    pub fn close_with(code: impl Into<u16>, reason: impl Into<String>) -> Self {
        Self {
            inner: tungstenite::Message::Close(Some(CloseFrame {
                code: CloseCode::from(code.into()),
                reason: reason.into().into(),
            })),
        }
    }

    /// Binary?
    pub fn is_binary(&self) -> bool {
        self.inner.is_binary()
    }

    /// Text?
    pub fn is_text(&self) -> bool {
        self.inner.is_text()
    }

    /// Ping?
    pub fn is_ping(&self) -> bool {
        self.inner.is_ping()
    }

    /// Pong?
    pub fn is_pong(&self) -> bool {
        self.inner.is_pong()
    }

    /// Close?
    pub fn is_close(&self) -> bool {
        self.inner.is_close()
    }

    /// The text of a text message.
    #[allow(clippy::result_unit_err)] // warp's signature
    pub fn to_str(&self) -> Result<&str, ()> {
        match &self.inner {
            tungstenite::Message::Text(t) => Ok(t.as_str()),
            _ => Err(()),
        }
    }

    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.inner {
            tungstenite::Message::Text(t) => t.as_bytes(),
            tungstenite::Message::Binary(b)
            | tungstenite::Message::Ping(b)
            | tungstenite::Message::Pong(b) => b,
            tungstenite::Message::Close(Some(c)) => c.reason.as_bytes(),
            _ => &[],
        }
    }

    /// The payload.
    pub fn into_bytes(self) -> bytes::Bytes {
        self.inner.into_data()
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, tungstenite::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|m| m.map(|r| r.map(|inner| Message { inner })))
    }
}

impl Sink<Message> for WebSocket {
    type Error = tungstenite::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        Pin::new(&mut self.inner).start_send(item.inner)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
