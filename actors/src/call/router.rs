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

/// Chunks held while no STT session takes audio (150 x 20 ms = 3 s of
/// speech, more than a restart with backoff takes; quiet batches hold
/// more); past it the oldest are dropped.
pub(crate) const STT_REPLAY_CAPACITY: usize = 150;

/// Quiet frames after which the caller's audio goes to STT in batches (50
/// x 20 ms = 1 s: past the endpointer's trailing silence, so the end of an
/// utterance is never held back).
pub(crate) const QUIET_FRAMES_BEFORE_BATCHING: u32 = 50;
/// Frames per batch of quiet audio (5 x 20 ms = 100 ms, one socket write
/// instead of five).
pub(crate) const QUIET_BATCH_FRAMES: u32 = 5;

/// Groups the caller's audio for STT: frame by frame while anything may
/// be said, batches of [`QUIET_BATCH_FRAMES`] through long silences (while
/// the agent talks, most of a call). A frame that is not quiet sends the
/// batch begun at once, so speech is never delayed. Bytes and order are
/// kept exactly.
#[derive(Default)]
struct Batcher {
    /// Consecutive quiet frames.
    quiet: u32,
    /// Quiet audio gathered, not yet sent.
    batch: Vec<u8>,
    /// Frames in `batch`.
    frames: u32,
}

impl Batcher {
    /// Takes a frame and whether the VAD found the line quiet after it;
    /// returns what is to be sent now, in order (at most two chunks).
    fn push(&mut self, frame: Vec<u8>, quiet: bool) -> impl Iterator<Item = Vec<u8>> {
        let mut held = None;
        if !quiet {
            self.quiet = 0;
            if self.frames > 0 {
                held = Some(self.take());
            }
            return held.into_iter().chain(Some(frame));
        }
        self.quiet = self.quiet.saturating_add(1);
        if self.quiet <= QUIET_FRAMES_BEFORE_BATCHING {
            return held.into_iter().chain(Some(frame));
        }
        if self.batch.is_empty() {
            self.batch
                .reserve_exact(frame.len() * QUIET_BATCH_FRAMES as usize);
        }
        self.batch.extend_from_slice(&frame);
        self.frames += 1;
        if self.frames >= QUIET_BATCH_FRAMES {
            held = Some(self.take());
        }
        held.into_iter().chain(None)
    }

    fn take(&mut self) -> Vec<u8> {
        self.frames = 0;
        std::mem::take(&mut self.batch)
    }
}

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
        let mut batcher = Batcher::default();
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
                        for chunk in batcher.push(frame, vad.is_quiet()) {
                            router.deliver(chunk);
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(k: u8) -> Vec<u8> {
        vec![k; 640]
    }

    #[test]
    fn quiet_audio_is_batched_after_a_second_and_speech_flushes_at_once() {
        let mut b = Batcher::default();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let mut all_in = Vec::new();
        // 2 s of silence: the first second frame by frame, then batches.
        for k in 0..100u32 {
            let f = frame((k % 200) as u8);
            all_in.extend_from_slice(&f);
            sent.extend(b.push(f, true));
        }
        assert_eq!(sent.len(), 50 + 10, "50 frames then 10 batches");
        assert!(sent[..50].iter().all(|c| c.len() == 640));
        assert!(sent[50..].iter().all(|c| c.len() == 3200));
        // Two more quiet frames wait in a batch; a loud one sends them
        // and itself at once.
        for k in 0..2u8 {
            all_in.extend_from_slice(&frame(k));
            assert_eq!(b.push(frame(k), true).count(), 0);
        }
        let out: Vec<Vec<u8>> = b.push(frame(9), false).collect();
        all_in.extend_from_slice(&frame(9));
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [1280, 640]);
        sent.extend(out);
        // Speech and the silence right after it go frame by frame.
        for _ in 0..50 {
            let out: Vec<Vec<u8>> = b.push(frame(1), true).collect();
            assert_eq!(out.len(), 1);
            all_in.extend_from_slice(&frame(1));
            sent.extend(out);
        }
        assert_eq!(sent.concat(), all_in, "every byte, in order");
    }
}
