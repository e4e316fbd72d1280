//! TtsActor: synthesises the agent's sentences one after another; audio
//! goes into the call's bounded TTS channel (never a mailbox), a
//! `CallMsg::TtsReady` wakes the CallActor to drain it.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::timed;
use crate::call::msg::CallMsg;
use crate::media::SegmentId;
use crate::ports::{PortError, TtsEvent, TtsPort, TtsRequest};

/// TTS audio chunks buffered towards the CallActor: with [`TTS_AHEAD`]
/// this bounds a call's agent audio in memory; a full channel stops the
/// synthesis task reading the provider's stream.
pub(crate) const TTS_AUDIO_CAPACITY: usize = 4;

/// Unsent audio the CallActor takes into its playout before leaving the
/// rest in the channel: ample against underruns (the playout is polled
/// every 100 ms and TTS runs faster than real time), small next to a
/// whole reply (16 KB at 16 kHz).
pub(crate) const TTS_AHEAD: Duration = Duration::from_millis(500);

/// A chunk of a segment's audio; an empty one ends the segment.
pub(crate) type TtsChunk = (SegmentId, Vec<u8>);

/// The actor.
pub(crate) struct TtsActor<T>(PhantomData<fn() -> T>);

impl<T> TtsActor<T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

/// What it starts from.
pub(crate) struct TtsArgs<T> {
    /// The provider.
    pub provider: Arc<T>,
    /// The CallActor.
    pub parent: ActorRef<CallMsg>,
    /// This child's generation.
    pub generation: u64,
    /// Timeout to the start of a synthesis.
    pub timeout: Duration,
    /// Where the audio goes.
    pub audio: mpsc::Sender<TtsChunk>,
    /// Voice, language and rate of every request.
    pub template: TtsRequest,
}

/// Its messages.
pub(crate) enum TtsChildMsg {
    /// Queue a sentence.
    Speak {
        /// Its playout segment.
        segment: SegmentId,
        /// Its text.
        text: String,
    },
    /// Drop the queue and the synthesis in progress.
    Cancel,
    /// The synthesis of this segment is complete.
    Next(SegmentId),
    /// A synthesis failed.
    Failed(PortError),
}

/// Its state.
pub(crate) struct TtsChildState<T> {
    args: TtsArgs<T>,
    queue: VecDeque<(SegmentId, String)>,
    current: Option<(SegmentId, JoinHandle<()>)>,
}

impl<T: TtsPort> TtsChildState<T> {
    fn start_next(&mut self, myself: &ActorRef<TtsChildMsg>) {
        if self.current.is_some() {
            return;
        }
        let Some((segment, text)) = self.queue.pop_front() else {
            return;
        };
        let provider = self.args.provider.clone();
        let parent = self.args.parent.clone();
        let audio = self.args.audio.clone();
        let generation = self.args.generation;
        let timeout = self.args.timeout;
        let request = TtsRequest {
            text,
            ..self.args.template.clone()
        };
        let myself = myself.clone();
        let task = tokio::spawn(async move {
            let mut events =
                match timed(timeout, "starting TTS", provider.synthesize(request)).await {
                    Ok(rx) => rx,
                    Err(e) => {
                        let _ = myself.cast(TtsChildMsg::Failed(e));
                        return;
                    }
                };
            loop {
                match events.recv().await {
                    Some(TtsEvent::Audio(bytes)) if bytes.is_empty() => {}
                    Some(TtsEvent::Audio(bytes)) => {
                        if audio.send((segment, bytes)).await.is_err() {
                            return;
                        }
                        let _ = parent.cast(CallMsg::TtsReady);
                    }
                    Some(TtsEvent::Alignment(_)) => {}
                    Some(TtsEvent::Done) => {
                        // The end marker, behind the segment's audio.
                        if audio.send((segment, Vec::new())).await.is_err() {
                            return;
                        }
                        let _ = parent.cast(CallMsg::TtsDone {
                            generation,
                            segment,
                        });
                        let _ = myself.cast(TtsChildMsg::Next(segment));
                        return;
                    }
                    Some(TtsEvent::Error(e)) => {
                        let _ = myself.cast(TtsChildMsg::Failed(e));
                        return;
                    }
                    None => {
                        let _ = myself.cast(TtsChildMsg::Failed(PortError::Protocol(
                            "the TTS stream ended before its end".into(),
                        )));
                        return;
                    }
                }
            }
        });
        self.current = Some((segment, task));
    }
}

impl<T: TtsPort> Actor for TtsActor<T> {
    type Msg = TtsChildMsg;
    type State = TtsChildState<T>;
    type Arguments = TtsArgs<T>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(TtsChildState {
            args,
            queue: VecDeque::new(),
            current: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TtsChildMsg::Speak { segment, text } => {
                state.queue.push_back((segment, text));
                state.start_next(&myself);
            }
            TtsChildMsg::Cancel => {
                state.queue.clear();
                if let Some((_, task)) = state.current.take() {
                    task.abort();
                }
            }
            TtsChildMsg::Next(segment) => {
                if state.current.as_ref().is_some_and(|(s, _)| *s == segment) {
                    state.current = None;
                    state.start_next(&myself);
                }
            }
            TtsChildMsg::Failed(e) => return Err(Box::new(e)),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((_, task)) = state.current.take() {
            task.abort();
        }
        Ok(())
    }
}
