//! The callee's audio path ([`CallerAudio`]), driven by whoever reads the
//! media socket (its own task; no task of the call's). Audio goes
//! straight to the live STT session (never through an actor mailbox)
//! and runs through a VAD; only control events reach the CallActor. While
//! STT is restarting, audio waits in a bounded buffer and is replayed to
//! the new session, so nothing the callee says is lost to a restart.

use std::collections::VecDeque;

use ractor::ActorRef;
use tokio::sync::{mpsc, watch};

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

/// What a call's STT slot holds: the live session's generation and audio
/// sender, or nothing while STT is away.
pub(crate) type SttSlot = watch::Receiver<Option<(u64, mpsc::Sender<Vec<u8>>)>>;

/// The callee's audio, as the call takes it: whoever reads the media
/// socket pushes each item in (no task or channel between the socket and
/// the STT session). Frames run through the VAD (speech start and end go
/// to the CallActor) and the [`Batcher`] to the live STT session, or wait
/// in a bounded buffer while STT restarts. Dropping it tells the call its
/// media closed.
pub struct CallerAudio(Audio);

enum Audio {
    /// A call's router.
    Call(CallAudio),
    /// Items go to a channel (fakes of a call); the sender of a watch
    /// that never changes keeps [`SttChanges`] waiting.
    Forward(
        mpsc::Sender<MediaIn>,
        watch::Sender<Option<(u64, mpsc::Sender<Vec<u8>>)>>,
    ),
}

struct CallAudio {
    router: Router,
    batcher: Batcher,
    vad: Vad,
    parent: ActorRef<CallMsg>,
    /// The call's end of the STT slot is gone: it is ending, audio goes
    /// nowhere and it is not told when the media closes.
    call_gone: bool,
}

impl CallerAudio {
    pub(crate) fn new(slot: SttSlot, parent: ActorRef<CallMsg>, vad: Vad) -> Self {
        Self(Audio::Call(CallAudio {
            router: Router {
                slot,
                pending: VecDeque::new(),
                counters: Counters::default(),
            },
            batcher: Batcher::default(),
            vad,
            parent,
            call_gone: false,
        }))
    }

    /// For fakes of a call (see [`crate::testing`]): every item goes to
    /// `tx` as it comes (dropped when the channel is full).
    pub(crate) fn forward_to(tx: mpsc::Sender<MediaIn>) -> Self {
        Self(Audio::Forward(tx, watch::channel(None).0))
    }

    /// Takes one item from the socket.
    pub fn push(&mut self, item: MediaIn) {
        let a = match &mut self.0 {
            Audio::Call(a) => a,
            Audio::Forward(tx, _) => {
                let _ = tx.try_send(item);
                return;
            }
        };
        match item {
            MediaIn::Audio(frame) => {
                if a.call_gone {
                    return;
                }
                match a.vad.push_frame(&frame) {
                    Some(VadEvent::SpeechStart) => {
                        let _ = a.parent.cast(CallMsg::CallerSpeech);
                    }
                    Some(VadEvent::SpeechEnd { .. }) => {
                        let silent_for = a.vad.trailing_silence();
                        let _ = a.parent.cast(CallMsg::CallerSilent { silent_for });
                    }
                    None => {}
                }
                for chunk in a.batcher.push(frame, a.vad.last_frame_loud()) {
                    a.router.deliver(chunk);
                }
            }
            MediaIn::Dtmf(digit) => {
                let _ = a.parent.cast(CallMsg::Dtmf(digit));
            }
            MediaIn::Mark(mark) => {
                let _ = a.parent.cast(CallMsg::MarkPlayed(mark));
            }
        }
    }

    /// A watch on the call's STT session, for the socket's task to await
    /// beside its reads (a separate value, so both can be polled at once).
    pub fn stt_changes(&self) -> SttChanges {
        SttChanges(match &self.0 {
            Audio::Call(a) => a.router.slot.clone(),
            Audio::Forward(_, never) => never.subscribe(),
        })
    }

    /// The STT session changed ([`SttChanges::next`] said `true`): sends
    /// the audio held meanwhile.
    pub fn stt_changed(&mut self) {
        if let Audio::Call(a) = &mut self.0 {
            a.router.flush();
        }
    }

    /// The call is gone ([`SttChanges::next`] said `false`).
    pub fn call_gone(&mut self) {
        if let Audio::Call(a) = &mut self.0 {
            a.call_gone = true;
        }
    }
}

impl Drop for CallAudio {
    fn drop(&mut self) {
        if !self.call_gone {
            let _ = self.parent.cast(CallMsg::MediaClosed);
        }
        if self.router.counters.dropped > 0 {
            tracing::warn!(
                dropped = self.router.counters.dropped,
                "caller audio dropped while STT was away"
            );
        }
    }
}

/// Changes of a call's STT session (see [`CallerAudio::stt_changes`]).
pub struct SttChanges(SttSlot);

impl SttChanges {
    /// Waits for the next change: `true` when the session changed, `false`
    /// once the call is gone (and at once ever after: stop awaiting it
    /// then). Cancel-safe.
    pub async fn next(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
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
