//! Vonage's media socket: `GET /vonage/media/{call_id}?token=…` (upgrade).
//!
//! The token is the call's single-use secret (only its hash is stored): a
//! missing token is 401, a wrong or already spent one 403, both before the
//! upgrade. After it, the socket is bound to the call's actor through a
//! bounded [`MediaSession`]: 20 ms PCM frames in and out, `clear` and
//! `notify` as Vonage's JSON commands, DTMF and notify echoes in. No audio
//! passes through an actor mailbox; a full inbound channel drops the frame
//! (the caller's audio is real time: late audio is worth nothing). The
//! socket's wire format is `providers::vonage::socket`'s; this module is
//! the route and the pump.
//!
//! When the call's campaign records calls, both directions are also
//! tapped into the call's spool (`crate::recording`): each caller frame as
//! it arrives, each agent frame as it is written to the socket (a `clear`
//! cuts nothing already sent). Closing the socket finishes the spool and
//! queues it for encoding.

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use talky_actors::call::CallMsg;
use talky_actors::call::lifecycle::EndCause;
use talky_actors::call::{MediaInbound, MediaSession};
use talky_actors::dialer::call_name;
use talky_actors::ids::{CallId, CampaignId, TenantId};
use talky_actors::ports::{MEDIA_OUT_CAPACITY, MediaIn};
use tokio::sync::{mpsc, oneshot};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use super::problem::ApiError;
use super::{Ctx, query, with_ctx};
use crate::db;
use crate::net::ws::{self, Message, WebSocket, Ws};
use crate::providers::vonage::socket::{CLOSE_IDLE, check_frame, event, outbound};
use crate::recording::spool::{Direction, Spool, SpoolTap};

/// How long a call may take to accept its media socket (it answers from
/// its mailbox, behind whatever it is doing).
const ATTACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The query of the socket URL.
#[derive(Debug, Default, Deserialize)]
pub struct MediaQuery {
    /// The call's media token.
    pub token: Option<String>,
}

/// The route.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    warp::path!("vonage" / "media" / CallId)
        .and(warp::get())
        .and(with_ctx(ctx))
        .and(query::<MediaQuery>())
        .and(ws::ws())
        .and_then(|call: CallId, ctx: Ctx, q: MediaQuery, ws: Ws| async move {
            match admit(&ctx, call, q.token.as_deref()).await {
                Ok(row) => Ok::<Response, warp::Rejection>(
                    ws.max_message_size(ctx.config.media.max_message_bytes as usize)
                        .max_frame_size(ctx.config.media.max_message_bytes as usize)
                        .on_upgrade(move |socket| {
                            let owner = (TenantId(row.tenant_id), CampaignId(row.campaign_id));
                            session(ctx, call, owner, socket)
                        })
                        .into_response(),
                ),
                Err(e) => Ok(e.into_response()),
            }
        })
        .boxed()
}

async fn admit(ctx: &Ctx, call: CallId, token: Option<&str>) -> Result<db::calls::Call, ApiError> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("the media socket needs its token".into()))?;
    let mut conn = ctx.live_conn().await?;
    let hash = db::api_keys::hash(token);
    match db::calls::spend_media_token(&mut conn, call, &hash).await? {
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

async fn session(ctx: Ctx, call: CallId, owner: (TenantId, CampaignId), socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let Some(actor) = ractor::registry::where_is(call_name(call)) else {
        tracing::warn!(call.id = %call, "media socket for a call not live on this node");
        let _ = sink
            .send(Message::close_with(1011u16, "call not here"))
            .await;
        return;
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
    let mut writer = tokio::spawn(async move {
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
                let message = outbound(item);
                if let Some(tap) = &agent_tap
                    && message.is_binary()
                {
                    tap.push(Direction::Agent, message.as_bytes());
                }
                if sink.feed(message).await.is_err() {
                    return;
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
    let idle = std::time::Duration::from_secs(ctx.config.media.idle_timeout_secs);
    // One timer per socket, re-armed only when it fires: a frame just
    // notes its time (no timer work on the 20 ms path).
    let mut last_frame = tokio::time::Instant::now();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    // Why talky closes the socket, if it does.
    let mut refuse: Option<(u16, String, String)> = None;
    loop {
        let message = tokio::select! {
            message = stream.next() => match message {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    // Too big for `media.max_message_bytes`, or broken.
                    tracing::warn!(call.id = %call, error = %e, "media socket error");
                    refuse = Some((
                        1009,
                        "message too big or malformed".into(),
                        format!("media socket error: {e}"),
                    ));
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
                refuse = Some((
                    CLOSE_IDLE,
                    format!("no audio for {} s", idle.as_secs()),
                    format!("media socket idle for {} s", idle.as_secs()),
                ));
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
        if message.is_binary() {
            let bytes = message.into_bytes();
            if let Err((code, reason)) = check_frame(&bytes) {
                tracing::warn!(call.id = %call, len = bytes.len(), "media frame of the wrong size: closing");
                refuse = Some((
                    code,
                    reason,
                    format!("media frame of {} bytes", bytes.len()),
                ));
                break;
            }
            last_frame = tokio::time::Instant::now();
            if let Some(tap) = &tap {
                tap.push(Direction::Callee, &bytes);
            }
            audio.push(MediaIn::Audio(bytes.to_vec()));
        } else if let Ok(text) = message.to_str() {
            if let Some(item) = event(text) {
                audio.push(item);
            }
        } else if message.is_close() {
            break;
        }
    }
    // The close code goes to the writer before the call learns its media
    // closed: dropping `audio` ends the outbound queue, and a writer that
    // saw that first would close without the code.
    let refused = match refuse {
        Some((code, reason, why)) => {
            // The leg is hung up and the call ended with the reason; the
            // socket's close tells the provider why.
            let _ = actor.send_message(CallMsg::Hangup(EndCause::Failed(why)));
            let _ = close_tx.send((code, reason));
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
