//! LlmActor: one streamed completion at a time; its events go to the
//! CallActor as `CallMsg::Llm`, tagged with the agent turn.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use super::timed;
use crate::call::msg::CallMsg;
use crate::ports::{ChatRequest, LlmEvent, LlmPort, PortError};

/// The actor.
pub(crate) struct LlmActor<L>(PhantomData<fn() -> L>);

impl<L> LlmActor<L> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

/// What it starts from.
pub(crate) struct LlmArgs<L> {
    /// The provider.
    pub provider: Arc<L>,
    /// The CallActor.
    pub parent: ActorRef<CallMsg>,
    /// This child's generation.
    pub generation: u64,
    /// Timeout to the start of a stream.
    pub timeout: Duration,
}

/// Its messages.
pub(crate) enum LlmChildMsg {
    /// Start a completion for an agent turn (cancels any other).
    Generate {
        /// The turn.
        turn: u64,
        /// The request.
        request: ChatRequest,
    },
    /// Stop the current completion.
    Cancel,
    /// The stream failed.
    Failed(PortError),
}

/// Its state.
pub(crate) struct LlmChildState<L> {
    provider: Arc<L>,
    parent: ActorRef<CallMsg>,
    generation: u64,
    timeout: Duration,
    current: Option<JoinHandle<()>>,
}

impl<L: LlmPort> Actor for LlmActor<L> {
    type Msg = LlmChildMsg;
    type State = LlmChildState<L>;
    type Arguments = LlmArgs<L>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(LlmChildState {
            provider: args.provider,
            parent: args.parent,
            generation: args.generation,
            timeout: args.timeout,
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
            LlmChildMsg::Generate { turn, request } => {
                if let Some(task) = state.current.take() {
                    task.abort();
                }
                let provider = state.provider.clone();
                let parent = state.parent.clone();
                let generation = state.generation;
                let timeout = state.timeout;
                state.current = Some(tokio::spawn(async move {
                    let mut events =
                        match timed(timeout, "starting the LLM stream", provider.stream(request))
                            .await
                        {
                            Ok(rx) => rx,
                            Err(e) => {
                                let _ = myself.cast(LlmChildMsg::Failed(e));
                                return;
                            }
                        };
                    while let Some(event) = events.recv().await {
                        if let LlmEvent::Error(e) = event {
                            let _ = myself.cast(LlmChildMsg::Failed(e));
                            return;
                        }
                        let finished = matches!(event, LlmEvent::Finish(_));
                        if parent
                            .cast(CallMsg::Llm {
                                generation,
                                turn,
                                event,
                            })
                            .is_err()
                            || finished
                        {
                            return;
                        }
                    }
                    let _ = myself.cast(LlmChildMsg::Failed(PortError::Protocol(
                        "the LLM stream ended without a finish".into(),
                    )));
                }));
                Ok(())
            }
            LlmChildMsg::Cancel => {
                if let Some(task) = state.current.take() {
                    task.abort();
                }
                Ok(())
            }
            LlmChildMsg::Failed(e) => Err(Box::new(e)),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(task) = state.current.take() {
            task.abort();
        }
        Ok(())
    }
}
