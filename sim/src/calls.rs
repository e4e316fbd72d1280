//! What the two telephony emulators ([`crate::vonage`], [`crate::twilio`])
//! share about their calls, so that the logic is written once:
//!
//! - the call log ([`CallLog`]): every call's record in creation order,
//!   found by its id (uuid or sid) through an index, with the hang-up
//!   signal of each live call and the load counters;
//! - what a handle serves of it: waiting for a call's record to reach a
//!   state ([`CallLog::wait_for`]), and the cloneable reader a stats
//!   server uses ([`StatsSource`]);
//! - the state their handlers share ([`Shared`]: knobs, call log, HTTP
//!   client for webhooks, the server's stop) and the handle that runs one
//!   ([`TelephonySim`]);
//! - the order in which a call's webhooks / callbacks are sent
//!   ([`post_in_order`]): in order, or, with the reorder knob, each pair
//!   swapped (one held back until the next comes, at most
//!   [`REORDER_HOLD`]).
//!
//! - a cold transfer talky asked for ([`Transfer`]) and the person on the
//!   line after it ([`person_talks`]).
//!
//! What differs (the record's fields, the request's wire form, signing)
//! stays with each emulator.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use warp::Filter;

use crate::server::{LoopbackServer, Shutdown, lock};
use crate::vonage::stats::{self, Counters, SimStats};

/// A cold transfer talky asked of an emulator (Vonage `PUT` transfer to an
/// NCCO `connect`, Twilio `Twiml=<Dial>`): where the callee was connected,
/// as the request said it. Tests assert on it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    /// The number dialled (as sent: Vonage digits, Twilio E.164).
    pub number: String,
    /// The caller id shown to the person, when the request gave one.
    pub caller_id: Option<String>,
    /// When the request was accepted.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// How long the person a call was transferred to talks with the callee
/// before hanging up (the call's `completed` comes then).
pub const TRANSFER_TALK: Duration = Duration::from_secs(2);

/// The person a call was transferred to talks for [`TRANSFER_TALK`]; a
/// REST hang-up or the server stopping ends it sooner.
pub(crate) async fn person_talks(shutdown: &Shutdown, hangup: &Notify) {
    tokio::select! {
        _ = tokio::time::sleep(TRANSFER_TALK) => {}
        _ = hangup.notified() => {}
        _ = shutdown.wait() => {}
    }
}

/// A call record the log keeps.
pub trait LoggedCall: Clone {
    /// What a stats server serves of it.
    type Brief;
    /// Its id at the provider (Vonage uuid, Twilio sid).
    fn id(&self) -> &str;
    /// Whether it is over.
    fn ended(&self) -> bool;
    /// It, in brief.
    fn brief(&self) -> Self::Brief;
    /// talky's transfer of it was accepted.
    fn transfer_accepted(&self) -> bool;
}

/// Defines an emulator's `CallBrief` (one call in brief, as a stats
/// server serves it; the id field named `$id`, as that provider names its
/// calls) and makes the emulator's `CallRecord` a [`LoggedCall`] with
/// that brief. Both emulators' records have the fields it reads (`$id`,
/// `to`, `status`, `socket_opened`, `ended`, `hang_up`, `transfer`,
/// `created_at`) and
/// a `HangUpSide` whose `Rest` and `SocketClosed` are talky's hang-ups.
/// A macro rather than a generic struct: the briefs are JSON whose id
/// key differs (`uuid`, `sid`), read by process tests by that name.
macro_rules! call_brief {
    ($id:ident, $id_doc:literal, $to_doc:literal) => {
        /// One call of the emulator, in brief (what a stats server serves).
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
        pub struct CallBrief {
            #[doc = $id_doc]
            pub $id: String,
            #[doc = $to_doc]
            pub to: String,
            /// Its last status.
            pub status: String,
            /// Its media socket connected.
            pub socket_opened: bool,
            /// It is over.
            pub ended: bool,
            /// talky hung it up (REST, or closing the media socket).
            pub hung_up_by_talky: bool,
            /// The number talky transferred it to, once the emulator
            /// accepted the transfer.
            #[serde(default)]
            pub transferred_to: Option<String>,
            /// When it was created.
            pub created_at: DateTime<Utc>,
        }

        impl $crate::calls::LoggedCall for CallRecord {
            type Brief = CallBrief;

            fn id(&self) -> &str {
                &self.$id
            }

            fn ended(&self) -> bool {
                self.ended
            }

            fn transfer_accepted(&self) -> bool {
                self.transfer.is_some()
            }

            fn brief(&self) -> CallBrief {
                CallBrief {
                    $id: self.$id.clone(),
                    to: self.to.clone(),
                    status: self.status.clone(),
                    socket_opened: self.socket_opened,
                    ended: self.ended,
                    hung_up_by_talky: matches!(
                        self.hang_up,
                        Some(HangUpSide::Rest | HangUpSide::SocketClosed)
                    ),
                    transferred_to: self.transfer.as_ref().map(|t| t.number.clone()),
                    created_at: self.created_at,
                }
            }
        }
    };
}
pub(crate) use call_brief;

/// One call: its record and the signal that hangs it up.
pub(crate) struct CallEntry<R> {
    pub(crate) record: R,
    pub(crate) hangup: Arc<Notify>,
}

/// Every call of an emulator, and its load counters.
pub struct CallLog<R> {
    calls: Mutex<Vec<CallEntry<R>>>,
    /// id -> position in `calls` (append-only), so per-frame updates of
    /// one call do not walk every call.
    index: Mutex<HashMap<String, usize>>,
    /// Read by load tests while calls run.
    pub(crate) counters: Counters,
}

impl<R> Default for CallLog<R> {
    fn default() -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            index: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }
}

/// How often [`CallLog::wait_for`] looks again.
const POLL: Duration = Duration::from_millis(20);

impl<R: LoggedCall> CallLog<R> {
    /// Runs `f` on the record of call `id`.
    pub(crate) fn with_call<T>(&self, id: &str, f: impl FnOnce(&mut R) -> T) -> Option<T> {
        let at = lock(&self.index).get(id).copied()?;
        let mut calls = lock(&self.calls);
        calls.get_mut(at).map(|c| f(&mut c.record))
    }

    /// Whether talky's transfer of call `id` was accepted: then the
    /// provider carries it out, and talky's media socket closing in the
    /// same moment (a crash right after asking) does not hang up the
    /// person's leg.
    pub(crate) fn transfer_accepted(&self, id: &str) -> bool {
        self.with_call(id, |r| r.transfer_accepted()) == Some(true)
    }

    /// Appends a call (and counts it created).
    pub(crate) fn push_entry(&self, entry: CallEntry<R>) {
        let id = entry.record.id().to_owned();
        let mut calls = lock(&self.calls);
        calls.push(entry);
        lock(&self.index).insert(id, calls.len() - 1);
        stats::inc(&self.counters.created, 1);
    }

    /// The hang-up signal of a live call.
    pub(crate) fn live_hangup(&self, id: &str) -> Option<Arc<Notify>> {
        let at = lock(&self.index).get(id).copied()?;
        lock(&self.calls)
            .get(at)
            .filter(|c| !c.record.ended())
            .map(|c| c.hangup.clone())
    }

    /// `f` over every record, in creation order, without copying them
    /// (the log stays locked meanwhile).
    pub(crate) fn scan<T>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &R>) -> T) -> T {
        f(&mut lock(&self.calls).iter().map(|c| &c.record))
    }

    /// `f` of every record, in creation order.
    pub(crate) fn map<T>(&self, f: impl FnMut(&R) -> T) -> Vec<T> {
        self.scan(|all| all.map(f).collect())
    }

    /// Every record, in creation order.
    pub fn records(&self) -> Vec<R> {
        self.map(R::clone)
    }

    /// The record of call `id`.
    pub fn get(&self, id: &str) -> Option<R> {
        self.with_call(id, |r| r.clone())
    }

    /// Waits until call `id`'s record satisfies `pred`; the record
    /// (`None` on time-out or unknown call).
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&R) -> bool,
    ) -> Option<R> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.get(id) {
                Some(r) if pred(&r) => return Some(r),
                None => return None,
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The load counters now (`with_samples`: also every barge-in sample).
    pub fn stats(&self, with_samples: bool) -> SimStats {
        self.counters.snapshot(with_samples)
    }
}

/// Reads a running emulator's load counters and calls (for a stats
/// server); cheap to clone.
pub struct StatsSource<R>(pub(crate) Arc<CallLog<R>>);

impl<R> Clone for StatsSource<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R: LoggedCall> StatsSource<R> {
    /// The counters now (`with_samples`: also every barge-in sample).
    pub fn snapshot(&self, with_samples: bool) -> SimStats {
        self.0.stats(with_samples)
    }

    /// Every call created so far, in brief (`GET /stats/calls`): what
    /// process tests count legs with.
    pub fn calls(&self) -> Vec<R::Brief> {
        self.0.map(R::brief)
    }
}

/// What a telephony emulator's handlers share: its knobs `C` (changed
/// while it runs), its calls (records `R`), the client its webhooks go
/// out with, and the server's stop.
pub(crate) struct Shared<C, R> {
    pub(crate) cfg: Mutex<C>,
    /// Every call, by id, and the load counters.
    pub(crate) calls: Arc<CallLog<R>>,
    pub(crate) http: reqwest::Client,
    pub(crate) shutdown: Shutdown,
}

impl<C: Clone, R> Shared<C, R> {
    /// A copy of the knobs.
    pub(crate) fn cfg(&self) -> C {
        lock(&self.cfg).clone()
    }
}

/// A running telephony emulator (knobs `C`, call records `R`); stops
/// when dropped or [`stop`](Self::stop)ped.
pub struct TelephonySim<C, R> {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    pub(crate) shared: Arc<Shared<C, R>>,
    server: LoopbackServer,
}

impl<C: Clone + Send + 'static, R: LoggedCall + Send + 'static> TelephonySim<C, R> {
    /// Binds 127.0.0.1:`port` (0: any free port) and serves the routes
    /// `routes` makes over the shared state until the handle goes; `http`
    /// posts the webhooks.
    pub(crate) async fn start<F>(
        port: u16,
        cfg: C,
        http: reqwest::Client,
        routes: impl FnOnce(Arc<Shared<C, R>>) -> F,
    ) -> std::io::Result<Self>
    where
        F: Filter + Clone + Send + Sync + 'static,
        F::Extract: warp::Reply,
    {
        let state = |shutdown| Shared {
            cfg: Mutex::new(cfg),
            calls: Arc::default(),
            http,
            shutdown,
        };
        let (server, shared) = LoopbackServer::start_shared(port, state, routes).await?;
        Ok(Self {
            addr: server.addr(),
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`: the client's `api_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of the knobs.
    pub fn config(&self) -> C {
        self.shared.cfg()
    }

    /// Changes knobs (for calls created afterwards; webhook knobs apply at
    /// once).
    pub fn update(&self, f: impl FnOnce(&mut C)) {
        f(&mut lock(&self.shared.cfg));
    }

    /// The call log: every call by id, waits on them, the load counters.
    pub fn log(&self) -> &CallLog<R> {
        &self.shared.calls
    }

    /// Every call so far, in creation order.
    pub fn calls(&self) -> Vec<R> {
        self.log().records()
    }

    /// One call by id (uuid, sid).
    pub fn call(&self, id: &str) -> Option<R> {
        self.log().get(id)
    }

    /// The load counters (`with_samples`: also every barge-in sample).
    pub fn stats(&self, with_samples: bool) -> SimStats {
        self.log().stats(with_samples)
    }

    /// A cloneable reader of the counters and calls (for a stats server).
    pub fn stats_source(&self) -> StatsSource<R> {
        StatsSource(self.shared.calls.clone())
    }

    /// Waits until call `id` has ended; its record (`None` on time-out or
    /// unknown call).
    pub async fn wait_ended(&self, id: &str, timeout: Duration) -> Option<R> {
        self.wait_for(id, timeout, R::ended).await
    }

    /// Waits until call `id`'s record satisfies `pred`; the record
    /// (`None` on time-out or unknown call).
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&R) -> bool,
    ) -> Option<R> {
        self.log().wait_for(id, timeout, pred).await
    }

    /// Stops serving (running calls are abandoned) and waits briefly for
    /// the server.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Longest a webhook is held back by the reorder knob when no other
/// follows.
pub const REORDER_HOLD: Duration = Duration::from_millis(300);

/// A queue of a call's webhooks to send, bounded or not.
pub(crate) trait HookQueue<H> {
    /// The next, `None` once the call is done with them.
    fn next(&mut self) -> impl Future<Output = Option<H>> + Send;
}

impl<H: Send> HookQueue<H> for mpsc::Receiver<H> {
    fn next(&mut self) -> impl Future<Output = Option<H>> + Send {
        self.recv()
    }
}

impl<H: Send> HookQueue<H> for mpsc::UnboundedReceiver<H> {
    fn next(&mut self) -> impl Future<Output = Option<H>> + Send {
        self.recv()
    }
}

/// Sends a call's webhooks through `post`, one at a time, in the order
/// they come, until the queue ends. When `reorder()` says so (read per
/// webhook: the knob applies at once), one is held back and sent after
/// the next one, or alone after [`REORDER_HOLD`] / at the end.
pub(crate) async fn post_in_order<H, Q, P, F>(mut rx: Q, reorder: impl Fn() -> bool, post: P)
where
    Q: HookQueue<H>,
    P: Fn(H) -> F,
    F: Future<Output = ()>,
{
    let mut held: Option<H> = None;
    loop {
        let next = if held.is_some() {
            tokio::select! {
                m = rx.next() => m,
                _ = tokio::time::sleep(REORDER_HOLD) => {
                    if let Some(h) = held.take() {
                        post(h).await;
                    }
                    continue;
                }
            }
        } else {
            rx.next().await
        };
        let Some(hook) = next else {
            if let Some(h) = held.take() {
                post(h).await;
            }
            break;
        };
        if reorder() {
            match held.take() {
                Some(h) => {
                    post(hook).await;
                    post(h).await;
                }
                None => held = Some(hook),
            }
        } else {
            post(hook).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Clone, Debug, PartialEq)]
    struct Rec {
        id: String,
        ended: bool,
        transferred: bool,
    }

    impl LoggedCall for Rec {
        type Brief = String;
        fn id(&self) -> &str {
            &self.id
        }
        fn ended(&self) -> bool {
            self.ended
        }
        fn brief(&self) -> String {
            self.id.clone()
        }
        fn transfer_accepted(&self) -> bool {
            self.transferred
        }
    }

    #[tokio::test]
    async fn the_log_finds_updates_and_waits_by_id() {
        let log = Arc::new(CallLog::default());
        for id in ["a", "b"] {
            log.push_entry(CallEntry {
                record: Rec {
                    id: id.into(),
                    ended: false,
                    transferred: false,
                },
                hangup: Arc::new(Notify::new()),
            });
        }
        assert_eq!(log.stats(false).calls_created, 2);
        assert!(log.live_hangup("b").is_some());
        assert!(log.live_hangup("c").is_none());
        assert_eq!(log.with_call("b", |r| r.ended = true), Some(()));
        assert!(log.live_hangup("b").is_none(), "an ended call is not live");
        let waited = log.wait_for("b", Duration::ZERO, |r| r.ended).await;
        assert_eq!(waited.map(|r| r.id), Some("b".to_owned()));
        assert_eq!(
            log.wait_for("a", Duration::from_millis(50), |r| r.ended)
                .await,
            None,
            "times out"
        );
        assert_eq!(
            log.wait_for("c", Duration::from_secs(5), |_| true).await,
            None
        );
        assert_eq!(StatsSource(log.clone()).calls(), vec!["a", "b"]);
        assert_eq!(log.records().len(), 2);
        // A socket closing after an accepted transfer is the transfer's.
        assert!(!log.transfer_accepted("a"));
        log.with_call("a", |r| r.transferred = true);
        assert!(log.transfer_accepted("a"));
        assert!(!log.transfer_accepted("c"), "an unknown call");
    }

    async fn sent(hooks: Vec<u32>, reorder: bool) -> Vec<u32> {
        let (tx, rx) = mpsc::unbounded_channel();
        for h in hooks {
            tx.send(h).expect("queued");
        }
        drop(tx);
        let out = Mutex::new(Vec::new());
        let flag = AtomicBool::new(reorder);
        post_in_order(
            rx,
            || flag.load(Ordering::SeqCst),
            |h| {
                lock(&out).push(h);
                async {}
            },
        )
        .await;
        out.into_inner().expect("out")
    }

    #[tokio::test]
    async fn hooks_go_in_order_or_swapped_in_pairs() {
        assert_eq!(sent(vec![1, 2, 3, 4, 5], false).await, [1, 2, 3, 4, 5]);
        assert_eq!(
            sent(vec![1, 2, 3, 4, 5], true).await,
            [2, 1, 4, 3, 5],
            "the last one held is sent at the end"
        );
    }

    #[tokio::test]
    async fn a_held_hook_goes_alone_after_the_hold() {
        let (tx, rx) = mpsc::channel(4);
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        let poster = tokio::spawn(post_in_order(
            rx,
            || true,
            move |h: u32| {
                lock(&o).push(h);
                async {}
            },
        ));
        tx.send(1).await.expect("queued");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while lock(&out).is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "never sent");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*lock(&out), [1], "sent alone while the queue is open");
        drop(tx);
        poster.await.expect("poster");
    }
}
