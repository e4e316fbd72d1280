//! The audio router: the one task that reads the callee's media. Audio
//! goes straight to the live STT session (never through an actor mailbox)
//! and runs through a VAD; only control events reach the CallActor. While
//! STT is restarting, audio waits in a bounded buffer and is replayed to
//! the new session, so nothing the callee says is lost to a restart.

use std::collections::VecDeque;

use ractor::ActorRef;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::msg::CallMsg;
use crate::media::{Vad, VadEvent};
use crate::ports::MediaIn;

/// Frames held while no STT session takes audio (150 x 20 ms = 3 s, more
/// than a restart with backoff takes); past it the oldest are dropped.
pub(crate) const STT_REPLAY_CAPACITY: usize = 150;

/// Frames the router dropped because the replay buffer was full.
#[derive(Default)]
struct Counters {
    dropped: u64,
}

struct Router {
    slot: watch::Receiver<Option<(u64, mpsc::Sender<Vec<u8>>)>>,
    pending: VecDeque<Vec<u8>>,
    counters: Counters,
}

impl Router {
    fn hold(&mut self, frame: Vec<u8>) {
        if self.pending.len() >= STT_REPLAY_CAPACITY {
            self.pending.pop_front();
            self.counters.dropped += 1;
        }
        self.pending.push_back(frame);
    }

    /// Sends held frames, oldest first, while the session takes them.
    fn flush(&mut self) {
        let Some((_, tx)) = self.slot.borrow_and_update().clone() else {
            return;
        };
        while let Some(frame) = self.pending.pop_front() {
            match tx.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(frame))
                | Err(mpsc::error::TrySendError::Closed(frame)) => {
                    self.pending.push_front(frame);
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, frame: Vec<u8>) {
        self.flush();
        if !self.pending.is_empty() {
            self.hold(frame);
            return;
        }
        let current = self.slot.borrow().clone();
        match current {
            Some((_, tx)) => {
                if let Err(
                    mpsc::error::TrySendError::Full(frame)
                    | mpsc::error::TrySendError::Closed(frame),
                ) = tx.try_send(frame)
                {
                    self.hold(frame);
                }
            }
            None => self.hold(frame),
        }
    }
}

/// Starts the router of a call's media.
pub(crate) fn spawn(
    mut inbound: mpsc::Receiver<MediaIn>,
    slot: watch::Receiver<Option<(u64, mpsc::Sender<Vec<u8>>)>>,
    parent: ActorRef<CallMsg>,
    mut vad: Vad,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut router = Router {
            slot,
            pending: VecDeque::new(),
            counters: Counters::default(),
        };
        loop {
            tokio::select! {
                item = inbound.recv() => match item {
                    None => {
                        let _ = parent.cast(CallMsg::MediaClosed);
                        break;
                    }
                    Some(MediaIn::Audio(frame)) => {
                        match vad.push_frame(&frame) {
                            Some(VadEvent::SpeechStart) => { let _ = parent.cast(CallMsg::CallerSpeech); }
                            Some(VadEvent::SpeechEnd { .. }) => { let _ = parent.cast(CallMsg::CallerSilent); }
                            None => {}
                        }
                        router.deliver(frame);
                    }
                    Some(MediaIn::Dtmf(digit)) => { let _ = parent.cast(CallMsg::Dtmf(digit)); }
                    Some(MediaIn::Mark(_)) => {}
                },
                changed = router.slot.changed() => {
                    if changed.is_err() {
                        // The call dropped the slot: it is ending.
                        break;
                    }
                    router.flush();
                }
            }
        }
        if router.counters.dropped > 0 {
            tracing::warn!(
                dropped = router.counters.dropped,
                "caller audio dropped while STT was away"
            );
        }
    })
}
