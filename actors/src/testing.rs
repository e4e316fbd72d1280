//! Helpers for tests outside this crate that stand in for a media socket
//! or a call (the root crate's integration suite). Nothing in the product
//! uses them.

use tokio::sync::mpsc;

use crate::call::{CallerAudio, MediaInbound};
use crate::ports::{MEDIA_IN_CAPACITY, MediaIn};

/// A fake call's view of a media session: the callee's items as a channel
/// (capacity [`MEDIA_IN_CAPACITY`]; items are dropped when it is full).
pub fn inbound_channel(inbound: MediaInbound) -> mpsc::Receiver<MediaIn> {
    let MediaInbound::Inline(reply) = inbound;
    let (tx, rx) = mpsc::channel(MEDIA_IN_CAPACITY);
    let _ = reply.send(CallerAudio::forward_to(tx));
    rx
}

/// Receives until `stop` matches an item (kept), the channel closes, or
/// `within` passes: what a test of a streaming port collects.
pub async fn recv_until<T>(
    rx: &mut mpsc::Receiver<T>,
    within: std::time::Duration,
    mut stop: impl FnMut(&T) -> bool,
) -> Vec<T> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let done = stop(&item);
        out.push(item);
        if done {
            break;
        }
    }
    out
}
