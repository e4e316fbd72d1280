//! The call's record keeper: one task per call writes its status changes,
//! turns, requests and outcome in order, so the CallActor never waits on
//! the database while audio is playing.
//!
//! A call's records must survive a database outage longer than the call:
//! each write is tried until it lands (a doubling backoff from
//! [`RETRY_FIRST`] to [`RETRY_MAX`]), the ops behind it wait in a bounded
//! queue ([`QUEUE_CAPACITY`]), and the task outlives the CallActor until
//! its queue is empty (it owns its `Arc` of the store). Nothing is lost
//! silently: an op that finds the queue full, or that the store refuses
//! for good ([`PortError::Rejected`]), is logged and counted in
//! `talky_call_record_writes_dropped_total`; every failed attempt counts in
//! `talky_call_record_write_retries_total`. Only a process exit loses
//! what is still queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::children::timed;
use crate::ids::CallId;
use crate::ports::{
    CallKey, CallStore, CalleeRequest, LiveText, PortError, PortResult, ProviderCallId, TurnRecord,
};

/// Ops a call may have waiting behind the one being written. A call makes
/// a few dozen writes (a status per step, a turn per utterance, a request
/// or two, the outcome), so 512 holds a long call's records through an
/// outage of any length; at worst it holds 512 turn records (a few hundred
/// KB), which bounds a call's memory while the database is down.
pub(crate) const QUEUE_CAPACITY: usize = 512;

/// Wait after the first failed attempt of a write.
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest wait between attempts: a recovered database is noticed within
/// this, and an outage costs one attempt per call every this long.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(5);

/// One write.
pub(crate) enum StoreOp {
    /// A status transition.
    Status(&'static str, DateTime<Utc>),
    /// The provider's call id.
    ProviderId(ProviderCallId),
    /// A finished turn (boxed: the channel's blocks are sized by the
    /// largest variant).
    Turn(Box<TurnRecord>),
    /// The callee asked for something; once stored, the writer's `stored`
    /// callback is told.
    Request(CalleeRequest),
    /// The outcome; `done` is told once it is written (or dropped), and so
    /// after everything before it.
    Finish {
        outcome: String,
        reason: String,
        at: DateTime<Utc>,
        done: oneshot::Sender<()>,
    },
}

impl StoreOp {
    /// What it is, for logs (never its content: numbers, transcripts).
    fn kind(&self) -> &'static str {
        match self {
            StoreOp::Status(..) => "status",
            StoreOp::ProviderId(_) => "provider_id",
            StoreOp::Turn(_) => "turn",
            StoreOp::Request(_) => "request",
            StoreOp::Finish { .. } => "finish",
        }
    }
}

/// The CallActor's end of its writer.
pub(crate) struct StoreWriter {
    tx: mpsc::Sender<StoreOp>,
    call: CallId,
    /// Hands text being spoken to the store's live watchers
    /// ([`CallStore::live_text`]): not a write, so not queued.
    live: Box<dyn Fn(LiveText) + Send + Sync>,
}

impl StoreWriter {
    /// Queues a write; false (logged and counted) when it was dropped
    /// because the queue is full.
    pub(crate) fn send(&self, op: StoreOp) -> bool {
        match self.tx.try_send(op) {
            Ok(()) => true,
            Err(e) => {
                let op = match e {
                    mpsc::error::TrySendError::Full(op) | mpsc::error::TrySendError::Closed(op) => {
                        op
                    }
                };
                dropped(self.call, op.kind(), "queue full");
                false
            }
        }
    }

    /// Shows the text of a turn being spoken to live watchers (never
    /// waits; nothing is stored).
    pub(crate) fn live(&self, text: LiveText) {
        (self.live)(text);
    }
}

/// Writers whose queue is not empty yet (their call may be over): what a
/// stopping process waits for before it exits.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Counts one writer while it lives.
struct Running;

impl Running {
    fn start() -> Self {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until every call's records are written (every writer emptied its
/// queue and ended), at most `limit`; how many writers are still running.
/// A stopping process calls it last, after its calls ended.
pub async fn wait_for_record_writers(limit: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let n = RUNNING.load(Ordering::SeqCst);
        if n == 0 || tokio::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn dropped(call: CallId, kind: &'static str, why: &str) {
    metrics::counter!(crate::metrics::RECORD_WRITES_DROPPED, "op" => kind).increment(1);
    tracing::warn!(call.id = %call, op = kind, why, "call record write dropped");
}

/// Starts the writer of one call. `stored` is told each request once it is
/// stored (the do-not-call acknowledgement waits on it).
pub(crate) fn spawn<S: CallStore>(
    store: Arc<S>,
    key: CallKey,
    timeout: Duration,
    stored: impl Fn(CalleeRequest) + Send + 'static,
) -> StoreWriter {
    let (tx, mut rx) = mpsc::channel::<StoreOp>(QUEUE_CAPACITY);
    let running = Running::start();
    let watched = store.clone();
    let live = Box::new(move |text: LiveText| watched.live_text(key, text));
    tokio::spawn(async move {
        let _running = running;
        // `recv` yields what is queued even after the CallActor (the only
        // sender) is gone: the task ends with an empty queue.
        while let Some(op) = rx.recv().await {
            let kind = op.kind();
            let result = write_until_done(&*store, key, timeout, &op).await;
            match (&op, result) {
                (StoreOp::Request(request), Ok(())) => stored(*request),
                (_, Ok(())) => {}
                (_, Err(e)) => {
                    tracing::warn!(call.id = %key.call, op = kind, error = %e, "call record refused by the store");
                    dropped(key.call, kind, "rejected");
                }
            }
            if let StoreOp::Finish { done, .. } = op {
                let _ = done.send(());
            }
        }
    });
    StoreWriter {
        tx,
        call: key.call,
        live,
    }
}

/// Tries one write until it lands; gives up only on an error that says a
/// retry cannot help ([`PortError::Rejected`]).
async fn write_until_done<S: CallStore>(
    store: &S,
    key: CallKey,
    timeout: Duration,
    op: &StoreOp,
) -> PortResult<()> {
    let mut wait = RETRY_FIRST;
    loop {
        match write_once(store, key, timeout, op).await {
            Ok(()) => return Ok(()),
            Err(e @ PortError::Rejected(_)) => return Err(e),
            Err(e) => {
                metrics::counter!(crate::metrics::RECORD_WRITE_RETRIES, "op" => op.kind())
                    .increment(1);
                tracing::debug!(call.id = %key.call, op = op.kind(), error = %e, retry_in = ?wait, "call record write failed");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// One attempt. Each write's future is boxed while it runs: the task
/// waits on its channel for most of a call and should be small meanwhile.
async fn write_once<S: CallStore>(
    store: &S,
    key: CallKey,
    timeout: Duration,
    op: &StoreOp,
) -> PortResult<()> {
    match op {
        StoreOp::Status(status, at) => {
            timed(
                timeout,
                "storing a status",
                Box::pin(store.status(key, status, *at)),
            )
            .await
        }
        StoreOp::ProviderId(id) => {
            timed(
                timeout,
                "storing the provider id",
                Box::pin(store.provider_id(key, id.clone())),
            )
            .await
        }
        StoreOp::Turn(turn) => {
            timed(
                timeout,
                "storing a turn",
                Box::pin(store.turn(key, (**turn).clone())),
            )
            .await
        }
        StoreOp::Request(request) => {
            timed(
                timeout,
                "storing a request",
                Box::pin(store.requested(key, *request)),
            )
            .await
        }
        StoreOp::Finish {
            outcome,
            reason,
            at,
            ..
        } => {
            timed(
                timeout,
                "storing the outcome",
                Box::pin(store.finish(key, outcome, reason, *at)),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::tests::fakes::{FakeStore, key, lock};

    fn status(s: &'static str) -> StoreOp {
        StoreOp::Status(s, Utc::now())
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_retried_in_order_until_they_land() {
        let store = Arc::new(FakeStore::default());
        store.fail_for(Duration::from_secs(20));
        let writer = spawn(store.clone(), key(), Duration::from_secs(5), |_| {});
        for s in ["dialing", "ringing", "answered"] {
            assert!(writer.send(status(s)));
        }
        drop(writer);
        tokio::time::sleep(Duration::from_secs(19)).await;
        assert!(lock(&store.log).statuses.is_empty(), "the store is down");
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(
            lock(&store.log).statuses,
            ["dialing", "ringing", "answered"],
            "once each, in order, after the writer's owner is gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_write_is_dropped_and_the_next_one_lands() {
        let store = Arc::new(FakeStore::default());
        *lock(&store.reject_next) = 1;
        let writer = spawn(store.clone(), key(), Duration::from_secs(5), |_| {});
        writer.send(status("dialing"));
        writer.send(status("ringing"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(lock(&store.log).statuses, ["ringing"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded_and_an_op_beyond_it_is_refused() {
        let store = Arc::new(FakeStore::default());
        store.fail_for(Duration::from_secs(60));
        let writer = spawn(store.clone(), key(), Duration::from_secs(5), |_| {});
        // One in flight (taken off the queue), the queue full behind it.
        assert!(writer.send(status("dialing")));
        tokio::task::yield_now().await;
        for _ in 0..QUEUE_CAPACITY {
            assert!(writer.send(status("ringing")));
        }
        assert!(!writer.send(status("answered")), "over the cap: dropped");
        tokio::time::sleep(Duration::from_secs(70)).await;
        let statuses = lock(&store.log).statuses.clone();
        assert_eq!(statuses.len(), QUEUE_CAPACITY + 1);
        assert!(!statuses.contains(&"answered"));
    }
}
