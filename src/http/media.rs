//! Vonage's media socket: `GET /vonage/media/{call_id}?token=…` (upgrade).
//!
//! The token is the call's single-use secret (only its hash is stored): a
//! missing token is 401, a wrong or already spent one 403, both before the
//! upgrade. After it, the socket is bound to the call's actor through a
//! bounded [`MediaSession`]: 20 ms PCM frames in and out, `clear` and
//! `notify` as Vonage's JSON commands, DTMF and notify echoes in. No audio
//! passes through an actor mailbox; a full inbound channel drops the frame
//! (the caller's audio is real time: late audio is worth nothing).
//!
//! When the call's campaign records calls, both directions are also
//! tapped into the call's spool (`crate::recording`): each caller frame as
//! it arrives, each agent frame as it is written to the socket (a `clear`
//! cuts nothing already sent). Closing the socket finishes the spool and
//! queues it for encoding.

use super::ws::{Message, WebSocket, Ws};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use talky_actors::call::CallMsg;
use talky_actors::dialer::call_name;
use talky_actors::ids::{CallId, CampaignId, TenantId};
use talky_actors::ports::{MEDIA_OUT_CAPACITY, MediaIn, MediaInbound, MediaOut, MediaSession};
use tokio::sync::{mpsc, oneshot};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};

use super::problem::ApiError;
use super::{Ctx, query, with_ctx};
use crate::db;
use crate::recording::spool::{Direction, Spool, SpoolTap};

/// Bytes of one 20 ms frame at 16 kHz, the rate our NCCO asks for.
pub const FRAME_BYTES: usize = 640;
/// Largest WebSocket message accepted (a frame is 640 bytes; JSON events
/// are small).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
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
        .and(super::ws::ws())
        .and_then(|call: CallId, ctx: Ctx, q: MediaQuery, ws: Ws| async move {
            match admit(&ctx, call, q.token.as_deref()).await {
                Ok(row) => Ok::<Response, warp::Rejection>(
                    ws.max_message_size(MAX_MESSAGE_BYTES)
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
    let mut conn = ctx.conn().await?;
    let hash = db::api_keys::hash(token);
    match db::calls::spend_media_token(&mut conn, call, &hash).await? {
        Some(row) => Ok(row),
        None => Err(ApiError::Forbidden(
            "unknown call, wrong token, or a token already used".into(),
        )),
    }
}

/// Parses one of Vonage's JSON events on the socket.
pub(crate) fn event(text: &str) -> Option<MediaIn> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    match value.get("event").and_then(|e| e.as_str())? {
        "websocket:dtmf" => value
            .get("digit")
            .or_else(|| value.get("dtmf").and_then(|d| d.get("digit")))
            .and_then(|d| d.as_str())
            .and_then(|d| d.chars().next())
            .map(MediaIn::Dtmf),
        "websocket:notify" => value
            .get("payload")
            .and_then(|p| p.get("mark"))
            .and_then(|m| m.as_str())
            .map(|m| MediaIn::Mark(m.to_string())),
        _ => None,
    }
}

pub(crate) fn outbound(item: MediaOut) -> Message {
    match item {
        MediaOut::Audio(mut bytes) => {
            // Vonage takes exactly one 20 ms frame per message.
            bytes.resize(FRAME_BYTES, 0);
            Message::binary(bytes)
        }
        MediaOut::Clear => Message::text(r#"{"action":"clear"}"#),
        MediaOut::Mark(mark) => Message::text(
            serde_json::json!({ "action": "notify", "payload": { "mark": mark } }).to_string(),
        ),
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
    let writer = tokio::spawn(async move {
        // The playout hands frames over in batches (100 ms at a time): all
        // that is queued goes out in one write.
        while let Some(first) = out_rx.recv().await {
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
    loop {
        let message = tokio::select! {
            message = stream.next() => match message {
                Some(Ok(message)) => message,
                _ => break,
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
            if bytes.len() != FRAME_BYTES {
                tracing::debug!(call.id = %call, len = bytes.len(), "media frame of unexpected size");
            }
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
    // Tells the call its media closed.
    drop(audio);
    writer.abort();
    // The writer's tap clone must be gone before the spool can finish.
    let _ = writer.await;
    drop(tap);
    if let Some(spool) = spool {
        ctx.recorder.close(spool).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vonage_events_on_the_socket() {
        assert_eq!(
            event(r#"{"event":"websocket:dtmf","digit":"5","duration":260}"#),
            Some(MediaIn::Dtmf('5'))
        );
        assert_eq!(
            event(r##"{"event":"websocket:dtmf","dtmf":{"digit":"#"}}"##),
            Some(MediaIn::Dtmf('#'))
        );
        assert_eq!(
            event(r#"{"event":"websocket:notify","payload":{"mark":"seg-3"}}"#),
            Some(MediaIn::Mark("seg-3".into()))
        );
        assert_eq!(
            event(r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}"#),
            None
        );
        assert_eq!(event("not json"), None);
    }

    #[test]
    fn outbound_frames_are_exact() {
        let m = outbound(MediaOut::Audio(vec![1; 100]));
        assert_eq!(m.as_bytes().len(), FRAME_BYTES);
        assert_eq!(
            outbound(MediaOut::Clear).to_str(),
            Ok(r#"{"action":"clear"}"#)
        );
        let mark = outbound(MediaOut::Mark("m1".into()));
        assert_eq!(
            mark.to_str(),
            Ok(r#"{"action":"notify","payload":{"mark":"m1"}}"#)
        );
    }
}
