//! The dialer's state: the queue of admitted dials and the live calls.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ractor::{ActorId, ActorRef};

use super::admission::Admission;
use super::config::DialerConfig;
use super::msg::{CampaignCalls, DialRequest};
use super::ports::Intent;
use super::room::Room;
use crate::call::{CallMsg, CallPorts, Ports};
use crate::cluster::ClusterPort;
use crate::ids::{CallId, CampaignId};
use crate::ports::CallKey;
use crate::schedule::bucket::TokenBucket;

pub(crate) struct Queued {
    pub(crate) request: DialRequest,
    pub(crate) intent: Intent,
    pub(crate) room: Room,
}

pub(crate) struct LiveCall {
    pub(crate) key: CallKey,
    pub(crate) actor: ActorRef<CallMsg>,
    /// Its room, until given back.
    pub(crate) room: Option<Room>,
    /// The call reported; the entry waits for the actor to stop.
    pub(crate) reported: bool,
    /// The actor stopped; the entry waits for the report.
    pub(crate) stopped: bool,
}

/// The dialer's state.
pub struct DialerState<P: CallPorts, D> {
    pub(crate) config: DialerConfig,
    pub(crate) ports: Ports<P>,
    pub(crate) store: Arc<D>,
    pub(crate) cluster: Arc<dyn ClusterPort>,
    pub(crate) admission: Admission,
    pub(crate) bucket: TokenBucket,
    pub(crate) campaigns: HashMap<CampaignId, CampaignCalls>,
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) live: HashMap<ActorId, LiveCall>,
    pub(crate) by_call: HashMap<CallId, ActorId>,
    pub(crate) pace_pending: bool,
    /// The periodic [`DialerMsg::RenewSlots`].
    pub(crate) renew_timer: Option<ractor::concurrency::JoinHandle<()>>,
    pub(crate) dialled: u64,
    pub(crate) crashed: u64,
    pub(crate) not_placed: u64,
    /// New dials are refused (the node is stopping).
    pub(crate) draining: bool,
}

/// The key of a queued dial's intent.
pub(crate) fn queued_key(q: &Queued) -> CallKey {
    CallKey {
        tenant: q.request.tenant,
        campaign: q.request.campaign,
        contact: q.request.contact,
        call: q.intent.call,
        attempt: q.request.attempt,
    }
}
