//! SttActor: one streaming STT session. Its audio sender is published in
//! the call's audio slot, where the router finds it; its events go to the
//! CallActor as `CallMsg::Stt`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::timed;
use crate::call::msg::CallMsg;
use crate::ports::{PortError, SttConfig, SttEvent, SttPort};

/// Where the router finds the live STT session's audio input.
pub(crate) type AudioSlot = watch::Sender<Option<(u64, mpsc::Sender<Vec<u8>>)>>;

/// The actor.
pub(crate) struct SttActor<S>(PhantomData<fn() -> S>);

impl<S> SttActor<S> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

/// What it starts from.
pub(crate) struct SttArgs<S> {
    /// The provider to open a session with.
    pub provider: Arc<S>,
    /// Session settings.
    pub config: SttConfig,
    /// The CallActor.
    pub parent: ActorRef<CallMsg>,
    /// This child's generation.
    pub generation: u64,
    /// Where to publish the session's audio sender.
    pub slot: Arc<AudioSlot>,
    /// Open timeout.
    pub timeout: Duration,
}

/// Its messages.
pub(crate) enum SttChildMsg {
    /// The session failed.
    Failed(PortError),
}

/// Its state.
pub(crate) struct SttChildState {
    forward: JoinHandle<()>,
    generation: u64,
    slot: Arc<AudioSlot>,
}

impl<S: SttPort> Actor for SttActor<S> {
    type Msg = SttChildMsg;
    type State = SttChildState;
    type Arguments = SttArgs<S>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let session = timed(args.timeout, "opening STT", args.provider.open(args.config)).await?;
        let generation = args.generation;
        args.slot.send_replace(Some((generation, session.audio)));
        let parent = args.parent;
        let mut events = session.events;
        let slot = args.slot.clone();
        let forward = tokio::spawn(async move {
            let failure = loop {
                match events.recv().await {
                    Some(SttEvent::Error(e)) => break e,
                    Some(event) => {
                        if parent.cast(CallMsg::Stt { generation, event }).is_err() {
                            return;
                        }
                    }
                    None => break PortError::Unavailable("STT session closed".into()),
                }
            };
            // Withdraw the dead session at once, so the router holds the
            // callee's audio for the next one instead of losing it.
            withdraw(&slot, generation);
            let _ = myself.cast(SttChildMsg::Failed(failure));
        });
        Ok(SttChildState {
            forward,
            generation,
            slot: args.slot,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SttChildMsg::Failed(e) => Err(Box::new(e)),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.forward.abort();
        withdraw(&state.slot, state.generation);
        Ok(())
    }
}

/// Removes this generation's sender, unless a newer session replaced it.
fn withdraw(slot: &AudioSlot, generation: u64) {
    slot.send_if_modified(|current| {
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
            true
        } else {
            false
        }
    });
}
