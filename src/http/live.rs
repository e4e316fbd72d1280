//! `GET /api/v1/live`: the live feed (`crate::live`) as server-sent
//! events. A tenant's API key sees its own calls; the admin token sees
//! every tenant's. The first event is a `snapshot` of the live calls, then
//! one event per stored change; a subscriber that falls more than
//! [`crate::live::CHANNEL_CAPACITY`] events behind gets a fresh snapshot
//! instead of the ones it missed. Comments keep idle connections open.
//! The admin token also gets a `tree` event (the actor tree, as
//! `GET /api/v1/supervisor/actors` answers it) on connecting and then
//! every [`TREE_EVERY`]; a tenant never does (it names every tenant's
//! campaigns).

use std::convert::Infallible;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::sse::Event;

use futures_util::Stream;
use ractor::ActorRef;
use talky_actors::root::RootMsg;

use super::supervisor::SupervisorView;
use super::{Ctx, auth};
use crate::live::{LiveBus, LiveEvent, visible};

/// Keep-alive comment interval (under common proxies' idle time-outs).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often the admin's feed carries the actor tree.
pub const TREE_EVERY: Duration = Duration::from_secs(2);

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    // The admin token first: a tenant key is then looked up as usual.
    let viewer = auth::admin(ctx.clone())
        .map(|| None)
        .or(auth::tenant(ctx.clone()).map(|t: talky_actors::ids::TenantId| Some(t.0)))
        .unify();
    warp::path!("api" / "v1" / "live")
        .and(warp::get())
        .and(viewer)
        .map(move |viewer: Option<Uuid>| feed(ctx.live.clone(), viewer, ctx.root.clone()))
        .boxed()
}

/// The live feed of what `viewer` may see. Not in the OpenAPI document:
/// a stream that never ends is no request/response operation (and an
/// API fuzzer would wait on it for ever); README documents it. The actor
/// tree under `root`, if any, is merged in for the admin viewer (`None`)
/// only.
pub fn feed(
    bus: std::sync::Arc<LiveBus>,
    viewer: Option<Uuid>,
    root: Option<ActorRef<RootMsg>>,
) -> Response {
    let (snapshot, rx) = bus.subscribe(viewer);
    let first = sse("snapshot", &snapshot);
    let events = futures_util::stream::unfold(
        (bus, rx, Some(first)),
        move |(bus, mut rx, mut pending)| async move {
            if let Some(event) = pending.take() {
                return Some((Ok::<Event, Infallible>(event), (bus, rx, None)));
            }
            loop {
                match rx.recv().await {
                    Ok(e) if visible(viewer, &e) => {
                        let event = to_sse(&e);
                        return Some((Ok(event), (bus, rx, None)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        let snapshot = sse("snapshot", &bus.snapshot(viewer));
                        return Some((Ok(snapshot), (bus, rx, None)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    let events = match root {
        Some(root) if viewer.is_none() => {
            futures_util::future::Either::Left(futures_util::stream::select(events, trees(root)))
        }
        _ => futures_util::future::Either::Right(events),
    };
    warp::sse::reply(warp::sse::keep_alive().interval(KEEP_ALIVE).stream(events)).into_response()
}

/// `tree` events: one at once, then one every [`TREE_EVERY`] (a slow
/// gathering delays the next, never piles them up). Each actor answers
/// under a time-out, so a stuck one cannot stall the feed. A task
/// gathers them (the actor calls' futures are not `Sync`, as warp's
/// stream must be) and ends when the subscriber has gone.
fn trees(root: ActorRef<RootMsg>) -> impl Stream<Item = Result<Event, Infallible>> + Send + Sync {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(1);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TREE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = tx.closed() => return,
            }
            let view = SupervisorView::gather(&root).await;
            match Event::default().event("tree").json_data(&view) {
                Ok(event) => {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "actor tree not serialised"),
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}

fn to_sse(event: &LiveEvent) -> Event {
    sse(event.kind, &event.data)
}

fn sse(kind: &str, data: &Value) -> Event {
    Event::default().event(kind).data(data.to_string())
}
