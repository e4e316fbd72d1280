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

/// Quiet frames after speech that go to STT one by one (25 x 20 ms = 500
/// ms: the endpointer's 300 ms of trailing silence and a margin), so the
/// end of an utterance is never held back.
pub(crate) const PROMPT_QUIET_FRAMES: u32 = 25;
/// Frames per batch (5 x 20 ms = 100 ms, one socket write instead of five).
pub(crate) const BATCH_FRAMES: u32 = 5;

/// Groups the caller's audio for STT: loud frames (speech) and long
/// silences go in batches of [`BATCH_FRAMES`]; the first
/// [`PROMPT_QUIET_FRAMES`] quiet frames after a loud one go at once, with
/// whatever was batched before them. Speech reaches STT at most 80 ms
/// later (interim results are that much later); the silence that ends an
/// utterance, which the final waits for, is not delayed. Our own VAD, not
/// STT, detects barge-in, so that is not delayed either. Bytes and order
/// are kept exactly.
#[derive(Default)]
struct Batcher {
    /// Consecutive quiet frames (saturating).
    quiet: u32,
    /// Audio gathered, not yet sent.
    batch: Vec<u8>,
    /// Frames in `batch`.
    frames: u32,
}

impl Batcher {
    /// Takes a frame and whether it was loud; returns what is to be sent
    /// now, in order (at most two chunks).
    fn push(&mut self, frame: Vec<u8>, loud: bool) -> impl Iterator<Item = Vec<u8>> {
        if loud {
            self.quiet = 0;
        } else {
            self.quiet = self.quiet.saturating_add(1);
            if self.quiet <= PROMPT_QUIET_FRAMES {
                let held = (self.frames > 0).then(|| self.take());
                return held.into_iter().chain(Some(frame));
            }
        }
        if self.batch.is_empty() {
            self.batch
                .reserve_exact(frame.len() * BATCH_FRAMES as usize);
        }
        self.batch.extend_from_slice(&frame);
        self.frames += 1;
        let full = (self.frames >= BATCH_FRAMES).then(|| self.take());
        full.into_iter().chain(None)
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
                        for chunk in batcher.push(frame, vad.last_frame_loud()) {
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
    fn speech_and_long_silence_are_batched_the_end_of_speech_is_not() {
        let mut b = Batcher::default();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let mut all_in = Vec::new();
        let mut push = |b: &mut Batcher, k: u8, loud: bool, sent: &mut Vec<Vec<u8>>| {
            let f = frame(k);
            all_in.extend_from_slice(&f);
            let out: Vec<Vec<u8>> = b.push(f, loud).collect();
            let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
            sent.extend(out);
            sizes
        };
        // Silence from the start (the callee has not spoken): batches.
        for k in 0..10 {
            push(&mut b, k, false, &mut sent);
        }
        let start = sent.len();
        // 1 s of speech: 100 ms batches (the first after the silence's
        // prompt window, which a call begins in, is prompt).
        for k in 0..50 {
            push(&mut b, k, true, &mut sent);
        }
        assert!(
            sent[start..].iter().all(|c| c.len() == 3200),
            "speech in batches"
        );
        // Two loud frames wait; the first quiet frame sends them and itself.
        push(&mut b, 1, true, &mut sent);
        push(&mut b, 2, true, &mut sent);
        assert_eq!(push(&mut b, 3, false, &mut sent), [1280, 640]);
        // The rest of the 500 ms after speech goes frame by frame.
        for k in 1..25 {
            assert_eq!(push(&mut b, k, false, &mut sent), [640], "quiet frame {k}");
        }
        // Then batches again.
        for k in 0..4 {
            assert!(push(&mut b, k, false, &mut sent).is_empty());
        }
        assert_eq!(push(&mut b, 4, false, &mut sent), [3200]);
        // Nothing lost or reordered (what still waits is the last batch).
        let pending = b.take();
        sent.push(pending);

        assert_eq!(sent.concat(), all_in, "every byte, in order");
    }
}
