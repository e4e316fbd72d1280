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
use crate::ports::{PortError, SttConfig, SttEvent, SttPort, SttSession};

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
    /// The session is open (from the opening task).
    Opened(SttSession),
    /// The session failed, or could not be opened.
    Failed(PortError),
}

/// Its state.
pub(crate) struct SttChildState {
    /// Opens the session; `None` once it answered.
    opening: Option<JoinHandle<()>>,
    /// Forwards the open session's events.
    forward: Option<JoinHandle<()>>,
    parent: ActorRef<CallMsg>,
    generation: u64,
    slot: Arc<AudioSlot>,
}

impl<S: SttPort> Actor for SttActor<S> {
    type Msg = SttChildMsg;
    type State = SttChildState;
    type Arguments = SttArgs<S>;

    /// Returns at once: the session opens in a task of its own (a
    /// WebSocket handshake, seconds at worst), because the CallActor awaits
    /// this while it spawns the child and must never wait on the network
    /// (the greeting and the playout would stall). Until the session is
    /// published the callee's audio waits in the router's replay buffer; a
    /// failed open fails the child, as a failed session does.
    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (provider, config, timeout) = (args.provider, args.config, args.timeout);
        let me = myself.clone();
        let opening = tokio::spawn(async move {
            let msg = match timed(timeout, "opening STT", provider.open(config)).await {
                Ok(session) => SttChildMsg::Opened(session),
                Err(e) => SttChildMsg::Failed(e),
            };
            let _ = me.cast(msg);
        });
        Ok(SttChildState {
            opening: Some(opening),
            forward: None,
            parent: args.parent,
            generation: args.generation,
            slot: args.slot,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SttChildMsg::Opened(session) => {
                state.opening = None;
                let generation = state.generation;
                state.slot.send_replace(Some((generation, session.audio)));
                let parent = state.parent.clone();
                let mut events = session.events;
                let slot = state.slot.clone();
                state.forward = Some(tokio::spawn(async move {
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
                    // Withdraw the dead session at once, so the router holds
                    // the callee's audio for the next one instead of losing it.
                    withdraw(&slot, generation);
                    let _ = myself.cast(SttChildMsg::Failed(failure));
                }));
                Ok(())
            }
            SttChildMsg::Failed(e) => Err(Box::new(e)),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(task) = state.opening.take() {
            task.abort();
        }
        if let Some(task) = state.forward.take() {
            task.abort();
        }
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
