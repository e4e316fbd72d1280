//! The providers' media sockets, and the one path they share: Vonage's
//! `GET /vonage/media/{call_id}?token=…` (here) and Twilio's
//! `GET /twilio/media/{call_id}/{token}` (`super::twilio`).
//!
//! The token is the call's single-use secret (only its hash is stored): a
//! missing token is 401, a wrong or already spent one (or the call of
//! another provider) 403, both before the upgrade, spent in one
//! conditional UPDATE. After it, the socket is bound to the call's actor
//! through a bounded [`MediaSession`]: 20 ms PCM frames at 16 kHz in and
//! out, marks, DTMF, `clear`. No audio passes through an actor mailbox; a
//! full inbound channel drops the frame (the caller's audio is real time:
//! late audio is worth nothing).
//!
//! Only the wire differs between providers: a [`MediaWire`] reads the
//! provider's messages into [`MediaIn`]s and writes the call's
//! [`MediaOut`]s as the provider's messages (Vonage: binary 640-byte
//! frames and JSON commands, `providers::vonage::socket`; Twilio: JSON
//! text with base64 μ-law at 8 kHz, `providers::twilio::socket`). A wire
//! may need messages before the call can be attached (Twilio's `start`
//! names the stream every outbound message must carry): those are read
//! within `media.idle_timeout_secs`. Everything else is here, once: the
//! binding to the call, `media.max_message_bytes`, the idle timeout
//! (`media.idle_timeout_secs` without caller audio closes the socket,
//! 1008), the close codes, and the recording.
//!
//! When the call's campaign records calls, both directions are also
//! tapped into the call's spool (`crate::recording`) at 16 kHz: each
//! caller frame as the call gets it, each agent frame as it is written
//! to the socket (a `clear` cuts nothing already sent). Closing the
//! socket finishes the spool and queues it for encoding.
//!
//! When talky closes the socket (a message of the wrong kind or size, no
//! audio for too long, a stream that never starts), the call is asked to
//! hang up with the reason; a stream the provider ends (`stop`, a close)
//! just tells the call its media closed.

use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use talky_actors::call::CallMsg;
use talky_actors::call::lifecycle::EndCause;
use talky_actors::call::{MediaInbound, MediaSession};
use talky_actors::dialer::call_name;
use talky_actors::ids::{CallId, CampaignId, TenantId};
use talky_actors::ports::{MEDIA_OUT_CAPACITY, MediaIn, MediaOut};
use tokio::sync::{mpsc, oneshot};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use super::problem::ApiError;
use super::{Ctx, query, with_ctx};
use crate::db;
use crate::net::ws::{self, Message, WebSocket, Ws};
use crate::providers::telephony::TelephonyProvider;
use crate::providers::vonage::socket::{CLOSE_IDLE, check_frame, event, outbound};
use crate::recording::spool::{Direction, Spool, SpoolTap};

/// How long a call may take to accept its media socket (it answers from
/// its mailbox, behind whatever it is doing).
const ATTACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Close code for a message too big for `media.max_message_bytes` or
/// broken at the WebSocket level (RFC 6455: message too big).
pub const CLOSE_TOO_BIG: u16 = 1009;

/// The query of Vonage's socket URL.
#[derive(Debug, Default, Deserialize)]
pub struct MediaQuery {
    /// The call's media token.
    pub token: Option<String>,
}

/// Why talky closes a media socket: the close code and reason the
/// provider reads, and why the call ends (its hang-up reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// WebSocket close code.
    pub code: u16,
    /// Close reason (sent to the provider).
    pub reason: String,
    /// Why the call ends.
    pub why: String,
}

/// What one provider message was, once the call is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Caller audio: the socket is not idle.
    Audio,
    /// Anything else (an event, a message to ignore).
    Other,
    /// The provider ended the stream.
    Stop,
}

/// A message before the call is attached.
pub enum Handshake<W> {
    /// More is needed.
    Wait,
    /// The stream is ready: its writer.
    Ready(W),
    /// The provider ended the stream before it started.
    Stop,
}

/// How one provider's socket is read (module docs).
pub trait MediaWire: Send + 'static {
    /// Its outbound half.
    type Writer: WireWriter;
    /// Whose socket it is.
    const PROVIDER: TelephonyProvider;
    /// The writer when the socket is ready at once; `None`: the messages
    /// before it go to [`Self::handshake`].
    fn ready(&mut self) -> Option<Self::Writer>;
    /// One message before the stream is ready.
    fn handshake(&mut self, message: Message) -> Result<Handshake<Self::Writer>, Refusal>;
    /// One message of the attached stream (not a close); what the call
    /// hears of it goes to `out`, caller audio as 20 ms frames at 16 kHz.
    fn read(&mut self, message: Message, out: &mut Vec<MediaIn>) -> Result<Inbound, Refusal>;
}

/// How the call's outbound items are written on one provider's socket.
pub trait WireWriter: Send + 'static {
    /// The messages one item becomes (none while a provider frame is
    /// still partial); `agent` is given the 16 kHz PCM it writes (the
    /// recording's agent side).
    fn write(&mut self, item: MediaOut, out: &mut Vec<Message>, agent: &mut dyn FnMut(&[u8]));
}

/// Vonage's wire: binary 640-byte frames of `audio/l16;rate=16000`, JSON
/// events in (`websocket:dtmf`, `websocket:notify`), JSON commands out.
pub struct VonageWire;

/// Vonage's outbound half.
pub struct VonageWriter;

impl MediaWire for VonageWire {
    type Writer = VonageWriter;
    const PROVIDER: TelephonyProvider = TelephonyProvider::Vonage;

    fn ready(&mut self) -> Option<VonageWriter> {
        Some(VonageWriter)
    }

    fn handshake(&mut self, _: Message) -> Result<Handshake<VonageWriter>, Refusal> {
        Ok(Handshake::Ready(VonageWriter))
    }

    fn read(&mut self, message: Message, out: &mut Vec<MediaIn>) -> Result<Inbound, Refusal> {
        if message.is_binary() {
            let bytes = message.into_bytes();
            check_frame(&bytes).map_err(|(code, reason)| Refusal {
                code,
                reason,
                why: format!("media frame of {} bytes", bytes.len()),
            })?;
            out.push(MediaIn::Audio(bytes.to_vec()));
            return Ok(Inbound::Audio);
        }
        if let Ok(text) = message.to_str()
            && let Some(item) = event(text)
        {
            out.push(item);
        }
        Ok(Inbound::Other)
    }
}

impl WireWriter for VonageWriter {
    fn write(&mut self, item: MediaOut, out: &mut Vec<Message>, agent: &mut dyn FnMut(&[u8])) {
        let message = outbound(item);
        if message.is_binary() {
            agent(message.as_bytes());
        }
        out.push(message);
    }
}

/// Vonage's route.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    warp::path!("vonage" / "media" / CallId)
        .and(warp::get())
        .and(with_ctx(ctx))
        .and(query::<MediaQuery>())
        .and(ws::ws())
        .and_then(|call: CallId, ctx: Ctx, q: MediaQuery, ws: Ws| async move {
            Ok::<Response, warp::Rejection>(
                upgrade(ctx, call, q.token.as_deref(), ws, |_| VonageWire).await,
            )
        })
        .boxed()
}

/// Spends the token (401/403 before the upgrade) and runs the socket over
/// the wire `wire` makes of the call's row.
pub async fn upgrade<W: MediaWire>(
    ctx: Ctx,
    call: CallId,
    token: Option<&str>,
    ws: Ws,
    wire: impl FnOnce(&db::calls::Call) -> W,
) -> Response {
    match admit(&ctx, call, token, W::PROVIDER).await {
        Ok(row) => {
            let max = ctx.config.media.max_message_bytes as usize;
            let wire = wire(&row);
            ws.max_message_size(max)
                .max_frame_size(max)
                .on_upgrade(move |socket| {
                    let owner = (TenantId(row.tenant_id), CampaignId(row.campaign_id));
                    session(ctx, call, owner, socket, wire)
                })
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Spends the call's media token on `provider`'s socket: the call's row.
pub async fn admit(
    ctx: &Ctx,
    call: CallId,
    token: Option<&str>,
    provider: TelephonyProvider,
) -> Result<db::calls::Call, ApiError> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("the media socket needs its token".into()))?;
    let mut conn = ctx.live_conn().await?;
    let hash = db::api_keys::hash(token);
    match db::calls::spend_media_token(&mut conn, call, &hash, provider).await? {
        Some(row) => Ok(row),
        None => Err(ApiError::Forbidden(
            "unknown call, wrong token, or a token already used".into(),
        )),
    }
}

/// Opens the call's spool when its campaign records calls; a failure
/// only costs the recording.
async fn spool(
    ctx: &Ctx,
    call: CallId,
    (tenant, campaign): (TenantId, CampaignId),
) -> Option<Spool> {
    match ctx.recorder.wanted(tenant, campaign).await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            tracing::warn!(call.id = %call, error = %e, "recording: cannot tell whether to record");
            return None;
        }
    }
    match ctx.recorder.open(tenant, call).await {
        Ok(spool) => Some(spool),
        Err(e) => {
            tracing::error!(call.id = %call, error = %e, "recording: spool not opened; call not recorded");
            None
        }
    }
}

/// Reads the messages a wire needs before the call is attached, within
/// `within`: its writer, `None` when the provider ended the stream first.
async fn handshake<W: MediaWire>(
    wire: &mut W,
    stream: &mut SplitStream<WebSocket>,
    within: std::time::Duration,
) -> Result<Option<W::Writer>, Refusal> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return Err(Refusal {
                    code: CLOSE_IDLE,
                    reason: format!("the stream did not start within {} s", within.as_secs()),
                    why: format!("media stream did not start within {} s", within.as_secs()),
                });
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(Refusal {
                    code: CLOSE_TOO_BIG,
                    reason: "message too big or malformed".into(),
                    why: format!("media socket error: {e}"),
                });
            }
            Ok(Some(Ok(message))) => message,
        };
        if message.is_close() {
            return Ok(None);
        }
        match wire.handshake(message)? {
            Handshake::Wait => continue,
            Handshake::Ready(writer) => return Ok(Some(writer)),
            Handshake::Stop => return Ok(None),
        }
    }
}

async fn session<W: MediaWire>(
    ctx: Ctx,
    call: CallId,
    owner: (TenantId, CampaignId),
    socket: WebSocket,
    mut wire: W,
) {
    let (mut sink, mut stream) = socket.split();
    let Some(actor) = ractor::registry::where_is(call_name(call)) else {
        tracing::warn!(call.id = %call, provider = %W::PROVIDER, "media socket for a call not live on this node");
        let _ = sink
            .send(Message::close_with(1011u16, "call not here"))
            .await;
        return;
    };
    let idle = std::time::Duration::from_secs(ctx.config.media.idle_timeout_secs);
    let writer = match wire.ready() {
        Some(writer) => writer,
        None => match handshake(&mut wire, &mut stream, idle).await {
            Ok(Some(writer)) => writer,
            Ok(None) => {
                tracing::info!(call.id = %call, provider = %W::PROVIDER, "media stream ended before it started");
                let why = "media stream ended before it started".to_string();
                let _ = actor.send_message(CallMsg::Hangup(EndCause::Failed(why)));
                let _ = sink.send(Message::close()).await;
                return;
            }
            Err(r) => {
                tracing::warn!(call.id = %call, provider = %W::PROVIDER, why = %r.why, "media stream refused before it started");
                let _ = actor.send_message(CallMsg::Hangup(EndCause::Failed(r.why)));
                let _ = sink.send(Message::close_with(r.code, r.reason)).await;
                return;
            }
        },
    };
    // Opened before the call can send its first agent frame.
    let spool = spool(&ctx, call, owner).await;
    let (audio_tx, audio_rx) = oneshot::channel();
    let (out_tx, mut out_rx) = mpsc::channel(MEDIA_OUT_CAPACITY);
    let attached = actor
        .send_message(CallMsg::AttachMedia(MediaSession {
            inbound: MediaInbound::Inline(audio_tx),
            outbound: out_tx,
        }))
        .is_ok();
    // The call hands back its audio router, which this task then feeds
    // frame by frame; no answer means it refused the socket.
    let audio = match attached {
        true => tokio::time::timeout(ATTACH_TIMEOUT, audio_rx)
            .await
            .ok()
            .and_then(Result::ok),
        false => None,
    };
    let Some(mut audio) = audio else {
        let _ = sink.send(Message::close_with(1011u16, "call ended")).await;
        if let Some(spool) = spool {
            // Empty: the encoder deletes it and marks the call unrecorded.
            ctx.recorder.close(spool).await;
        }
        return;
    };
    let tap: Option<SpoolTap> = spool.as_ref().map(|s| s.tap.clone());
    let agent_tap = tap.clone();
    // Closing with a code and reason, when talky refuses the socket.
    let (close_tx, mut close_rx) = oneshot::channel::<(u16, String)>();
    let mut wire_out = writer;
    let mut writer = tokio::spawn(async move {
        let mut messages = Vec::new();
        let mut agent = |pcm: &[u8]| {
            if let Some(tap) = &agent_tap {
                tap.push(Direction::Agent, pcm);
            }
        };
        // The playout hands frames over in batches (100 ms at a time): all
        // that is queued goes out in one write.
        loop {
            // A refusal wins over the end of the outbound queue: both may be
            // ready at once, and the close must carry its code.
            let first = tokio::select! {
                biased;
                close = &mut close_rx => {
                    if let Ok((code, reason)) = close {
                        let _ = sink.send(Message::close_with(code, reason)).await;
                    }
                    return;
                }
                first = out_rx.recv() => match first {
                    Some(first) => first,
                    None => break,
                },
            };
            let mut next = Some(first);
            while let Some(item) = next.take() {
                wire_out.write(item, &mut messages, &mut agent);
                for message in messages.drain(..) {
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                }
                next = out_rx.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::close()).await;
    });
    let mut stt = audio.stt_changes();
    let mut call_gone = false;
    // One timer per socket, re-armed only when it fires: a frame just
    // notes its time (no timer work on the 20 ms path).
    let mut last_frame = tokio::time::Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let mut heard: Vec<MediaIn> = Vec::new();
    // Why talky closes the socket, if it does.
    let mut refuse: Option<Refusal> = None;
    loop {
        let message = tokio::select! {
            message = stream.next() => match message {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    // Too big for `media.max_message_bytes`, or broken.
                    tracing::warn!(call.id = %call, error = %e, "media socket error");
                    refuse = Some(Refusal {
                        code: CLOSE_TOO_BIG,
                        reason: "message too big or malformed".into(),
                        why: format!("media socket error: {e}"),
                    });
                    break;
                }
                None => break,
            },
            _ = &mut idle_timer => {
                if last_frame.elapsed() < idle {
                    idle_timer.as_mut().reset(last_frame + idle);
                    continue;
                }
                tracing::warn!(call.id = %call, idle_s = idle.as_secs(), "media socket idle: closing it");
                refuse = Some(Refusal {
                    code: CLOSE_IDLE,
                    reason: format!("no audio for {} s", idle.as_secs()),
                    why: format!("media socket idle for {} s", idle.as_secs()),
                });
                break;
            },
            changed = stt.next(), if !call_gone => {
                if changed {
                    audio.stt_changed();
                } else {
                    audio.call_gone();
                    call_gone = true;
                }
                continue;
            }
        };
        if message.is_close() {
            break;
        }
        match wire.read(message, &mut heard) {
            Ok(kind) => {
                if kind == Inbound::Audio {
                    last_frame = tokio::time::Instant::now();
                }
                for item in heard.drain(..) {
                    if let (Some(tap), MediaIn::Audio(frame)) = (&tap, &item) {
                        tap.push(Direction::Callee, frame);
                    }
                    audio.push(item);
                }
                if kind == Inbound::Stop {
                    break;
                }
            }
            Err(r) => {
                tracing::warn!(call.id = %call, provider = %W::PROVIDER, why = %r.why, "media message refused: closing");
                refuse = Some(r);
                break;
            }
        }
    }
    // The close code goes to the writer before the call learns its media
    // closed: dropping `audio` ends the outbound queue, and a writer that
    // saw that first would close without the code.
    let refused = match refuse {
        Some(r) => {
            // The leg is hung up and the call ended with the reason; the
            // socket's close tells the provider why.
            let _ = actor.send_message(CallMsg::Hangup(EndCause::Failed(r.why)));
            let _ = close_tx.send((r.code, r.reason));
            true
        }
        None => false,
    };
    // Tells the call its media closed.
    drop(audio);
    let closed = refused
        && tokio::time::timeout(std::time::Duration::from_secs(3), &mut writer)
            .await
            .is_ok();
    if !closed {
        writer.abort();
        // The writer's tap clone must be gone before the spool can finish.
        let _ = writer.await;
    }
    drop(tap);
    if let Some(spool) = spool {
        ctx.recorder.close(spool).await;
    }
}
