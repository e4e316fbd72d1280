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
