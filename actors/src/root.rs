//! The RootSupervisor: the top of the tree. It starts the DialerActor and
//! one CampaignActor per running campaign from factories, and restarts a
//! child that fails, with the OTP intensity limit of
//! [`crate::supervision`]; a child over the limit is given up on and logged
//! (its campaign stays `running` in the store, so the next start of talky,
//! or another node, takes it over). A child that stops normally (a
//! campaign completed) is simply forgotten.
//!
//! Children are found by name (ractor's registry: `dialer`,
//! `campaign-<id>`), so whoever talks to them survives their restarts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};

use crate::ports::Clock;
use crate::supervision::{RestartDecision, RestartPolicy, RestartTracker};

/// Spawns a child linked to the given supervisor, returning its cell.
pub type ChildFactory = Arc<
    dyn Fn(ActorCell) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>
        + Send
        + Sync,
>;

/// A child as the supervisor view shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChildInfo {
    /// Registry name.
    pub name: String,
    /// Running now.
    pub running: bool,
    /// Restarts so far.
    pub restarts: u64,
    /// Over the intensity limit: no more restarts.
    pub gave_up: bool,
}

/// What the root handles.
pub enum RootMsg {
    /// Start (or replace) a named child.
    Start {
        /// Registry name of the child.
        name: String,
        /// How to (re)spawn it.
        factory: ChildFactory,
        /// Started, or why not.
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// Stop a child on purpose (it is not restarted).
    Stop(String),
    /// Restart a failed child (after its backoff).
    Respawn(String),
    /// The children.
    Children(RpcReplyPort<Vec<ChildInfo>>),
}

/// The actor.
pub struct RootSupervisor<C>(std::marker::PhantomData<fn() -> C>);

impl<C> RootSupervisor<C> {
    /// The actor value to spawn.
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<C> Default for RootSupervisor<C> {
    fn default() -> Self {
        Self::new()
    }
}

/// What the root starts from.
pub struct RootArgs<C> {
    /// Restart intensity per child.
    pub policy: RestartPolicy,
    /// Time.
    pub clock: Arc<C>,
}

struct Entry {
    factory: ChildFactory,
    cell: Option<ActorCell>,
    tracker: RestartTracker,
    gave_up: bool,
}

/// The root's state.
pub struct RootState<C> {
    policy: RestartPolicy,
    clock: Arc<C>,
    children: HashMap<String, Entry>,
    by_id: HashMap<ActorId, String>,
}

impl<C: Clock> RootState<C> {
    async fn spawn(&mut self, myself: &ActorRef<RootMsg>, name: &str) -> Result<(), String> {
        let Some(entry) = self.children.get_mut(name) else {
            return Err(format!("no child {name}"));
        };
        match (entry.factory)(myself.get_cell()).await {
            Ok(cell) => {
                self.by_id.insert(cell.get_id(), name.to_string());
                entry.cell = Some(cell);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn failed(&mut self, myself: &ActorRef<RootMsg>, name: &str, why: &str) {
        let now = self.clock.now();
        let Some(entry) = self.children.get_mut(name) else {
            return;
        };
        entry.cell = None;
        match entry.tracker.on_failure(now) {
            RestartDecision::Restart { after } => {
                metrics::counter!(crate::metrics::ACTOR_RESTARTS, "actor" => actor_kind(name))
                    .increment(1);
                tracing::warn!(child = name, error = why, ?after, "restarting failed child");
                let name = name.to_string();
                myself.send_after(after, move || RootMsg::Respawn(name));
            }
            RestartDecision::Escalate => {
                entry.gave_up = true;
                tracing::error!(
                    child = name,
                    error = why,
                    "child failed beyond its restart limit; giving up on it"
                );
            }
        }
    }
}

/// The kind of a root child from its name (`dialer…`, `campaign-…`), a
/// metrics label of bounded cardinality.
fn actor_kind(name: &str) -> &'static str {
    if name.starts_with("campaign") {
        "campaign"
    } else if name.starts_with("dialer") {
        "dialer"
    } else {
        "other"
    }
}

impl<C: Clock> Actor for RootSupervisor<C> {
    type Msg = RootMsg;
    type State = RootState<C>;
    type Arguments = RootArgs<C>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RootState {
            policy: args.policy,
            clock: args.clock,
            children: HashMap::new(),
            by_id: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMsg::Start {
                name,
                factory,
                reply,
            } => {
                if let Some(old) = state.children.get(&name).and_then(|e| e.cell.clone()) {
                    state.by_id.remove(&old.get_id());
                    old.stop(Some("replaced".into()));
                }
                state.children.insert(
                    name.clone(),
                    Entry {
                        factory,
                        cell: None,
                        tracker: RestartTracker::new(state.policy),
                        gave_up: false,
                    },
                );
                let result = state.spawn(&myself, &name).await;
                if result.is_err() {
                    state.children.remove(&name);
                }
                let _ = reply.send(result);
            }
            RootMsg::Stop(name) => {
                if let Some(entry) = state.children.remove(&name)
                    && let Some(cell) = entry.cell
                {
                    state.by_id.remove(&cell.get_id());
                    cell.stop(Some("stopped by the root".into()));
                }
            }
            RootMsg::Respawn(name) => {
                let wanted = state
                    .children
                    .get(&name)
                    .is_some_and(|e| e.cell.is_none() && !e.gave_up);
                if wanted && let Err(e) = state.spawn(&myself, &name).await {
                    state.failed(&myself, &name, &e);
                }
            }
            RootMsg::Children(reply) => {
                let mut children: Vec<ChildInfo> = state
                    .children
                    .iter()
                    .map(|(name, e)| ChildInfo {
                        name: name.clone(),
                        running: e.cell.is_some(),
                        restarts: e.tracker.total_restarts(),
                        gave_up: e.gave_up,
                    })
                    .collect();
                children.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = reply.send(children);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Never ractor's default, which would stop the root (and so the
        // whole tree) when any child ends.
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(name) = state.by_id.remove(&cell.get_id()) {
                    state.failed(&myself, &name, &err.to_string());
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(name) = state.by_id.remove(&cell.get_id()) {
                    tracing::info!(child = %name, reason = ?reason, "child finished");
                    state.children.remove(&name);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use ractor::call_t;

    use super::*;
    use crate::ports::TokioClock;

    /// A child that fails on `true` and stops normally on `false`.
    struct Flaky;

    impl Actor for Flaky {
        type Msg = bool;
        type State = ();
        type Arguments = Arc<AtomicU32>;

        async fn pre_start(
            &self,
            _myself: ActorRef<bool>,
            starts: Arc<AtomicU32>,
        ) -> Result<(), ActorProcessingErr> {
            starts.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        async fn handle(
            &self,
            myself: ActorRef<bool>,
            fail: bool,
            _state: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            if fail {
                panic!("flaky child failed");
            }
            myself.stop(Some("done".into()));
            Ok(())
        }
    }

    fn factory(name: &'static str, starts: Arc<AtomicU32>) -> ChildFactory {
        Arc::new(move |supervisor| {
            let starts = starts.clone();
            Box::pin(async move {
                Actor::spawn_linked(Some(name.to_string()), Flaky, starts, supervisor)
                    .await
                    .map(|(actor, _)| actor.get_cell())
            })
        })
    }

    fn send(name: &str, fail: bool) {
        if let Some(cell) = ractor::registry::where_is(name) {
            let _ = cell.send_message(fail);
        }
    }

    async fn root() -> ActorRef<RootMsg> {
        Actor::spawn(
            None,
            RootSupervisor::<TokioClock>::new(),
            RootArgs {
                policy: RestartPolicy::default(),
                clock: Arc::new(TokioClock),
            },
        )
        .await
        .expect("root")
        .0
    }

    #[tokio::test(start_paused = true)]
    async fn failed_children_restart_within_the_intensity_then_are_given_up() {
        let root = root().await;
        let starts = Arc::new(AtomicU32::new(0));
        let name = "flaky-restart";
        call_t!(
            root,
            |reply| RootMsg::Start {
                name: name.into(),
                factory: factory(name, starts.clone()),
                reply
            },
            1000
        )
        .expect("rpc")
        .expect("started");
        let sibling = Arc::new(AtomicU32::new(0));
        call_t!(
            root,
            |reply| RootMsg::Start {
                name: "sibling".into(),
                factory: factory("sibling", sibling.clone()),
                reply
            },
            1000
        )
        .expect("rpc")
        .expect("started");
        for expected_starts in 2..=4 {
            send(name, true);
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(starts.load(Ordering::SeqCst), expected_starts);
        }
        // A fourth failure within 10 s is over the limit.
        send(name, true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 4);
        let children = call_t!(root, RootMsg::Children, 1000).expect("children");
        let flaky = children.iter().find(|c| c.name == name).expect("listed");
        assert_eq!(
            (flaky.running, flaky.restarts, flaky.gave_up),
            (false, 3, true)
        );
        let sib = children
            .iter()
            .find(|c| c.name == "sibling")
            .expect("listed");
        assert!(
            sib.running && sib.restarts == 0,
            "the sibling was untouched"
        );
        assert_eq!(sibling.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_that_finishes_is_forgotten_not_restarted() {
        let root = root().await;
        let starts = Arc::new(AtomicU32::new(0));
        let name = "flaky-finish";
        call_t!(
            root,
            |reply| RootMsg::Start {
                name: name.into(),
                factory: factory(name, starts.clone()),
                reply
            },
            1000
        )
        .expect("rpc")
        .expect("started");
        send(name, false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        let children = call_t!(root, RootMsg::Children, 1000).expect("children");
        assert!(children.iter().all(|c| c.name != name));
    }
}
