//! The call's record keeper: one task per call writes its status changes,
//! turns and outcome in order, so the CallActor never waits on the
//! database while audio is playing. Only the final write is awaited.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::children::timed;
use crate::ports::{CallKey, CallStore, CalleeRequest, ProviderCallId, TurnRecord};

/// One write.
pub(crate) enum StoreOp {
    /// A status transition.
    Status(&'static str, DateTime<Utc>),
    /// The provider's call id.
    ProviderId(ProviderCallId),
    /// A finished turn (boxed: the channel's blocks are sized by the
    /// largest variant).
    Turn(Box<TurnRecord>),
    /// The callee asked for something.
    Request(CalleeRequest),
    /// The outcome; `done` is told once everything before it is written.
    Finish {
        outcome: String,
        reason: String,
        at: DateTime<Utc>,
        done: oneshot::Sender<()>,
    },
}

/// Starts the writer of one call.
pub(crate) fn spawn<S: CallStore>(
    store: Arc<S>,
    key: CallKey,
    timeout: Duration,
) -> mpsc::UnboundedSender<StoreOp> {
    let (tx, mut rx) = mpsc::unbounded_channel::<StoreOp>();
    // Each write's future is boxed while it runs: the task waits on its
    // channel for most of a call and should be small meanwhile.
    tokio::spawn(async move {
        while let Some(op) = rx.recv().await {
            let result = match op {
                StoreOp::Status(status, at) => {
                    timed(
                        timeout,
                        "storing a status",
                        Box::pin(store.status(key, status, at)),
                    )
                    .await
                }
                StoreOp::ProviderId(id) => {
                    timed(
                        timeout,
                        "storing the provider id",
                        Box::pin(store.provider_id(key, id)),
                    )
                    .await
                }
                StoreOp::Turn(turn) => {
                    timed(timeout, "storing a turn", Box::pin(store.turn(key, *turn))).await
                }
                StoreOp::Request(request) => {
                    timed(
                        timeout,
                        "storing a request",
                        Box::pin(store.requested(key, request)),
                    )
                    .await
                }
                StoreOp::Finish {
                    outcome,
                    reason,
                    at,
                    done,
                } => {
                    let r = timed(
                        timeout,
                        "storing the outcome",
                        Box::pin(store.finish(key, &outcome, &reason, at)),
                    )
                    .await;
                    let _ = done.send(());
                    r
                }
            };
            if let Err(e) = result {
                tracing::warn!(call.id = %key.call, error = %e, "call record write failed");
            }
        }
    });
    tx
}
