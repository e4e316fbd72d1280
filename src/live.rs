//! The live feed: what the calls of this node are doing, pushed to the
//! console (`GET /api/v1/live`, server-sent events) as the CallActors
//! record it, never by polling the database.
//!
//! The call store adapter ([`crate::store::PgCallStore`]) publishes each
//! write of a CallActor once it is stored: a status (the first one
//! announces the call), a finished turn, the outcome. The bus keeps the
//! live calls (bounded: a call leaves when it ends; at most
//! [`TURNS_KEPT`] turns each) so that a page that connects, or falls
//! behind, starts from a snapshot, and fans events out through a bounded
//! broadcast channel: a slow page loses events and gets a fresh snapshot,
//! it never holds up a call.
//!
//! One node's calls: a console sees the calls of the node it is connected
//! to (a cluster's nodes each serve their own).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use talky_actors::ports::{CallKey, Role, TurnRecord};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Events a subscriber may fall behind by before it is resynchronised.
pub const CHANNEL_CAPACITY: usize = 1024;
/// Turns of a live call kept for snapshots (the oldest go first).
pub const TURNS_KEPT: usize = 100;

/// One event of the feed.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveEvent {
    /// Whose call it is (a tenant's page sees only its own).
    pub tenant: Uuid,
    /// `call.started`, `call.status`, `turn.text`, `call.ended`.
    pub kind: &'static str,
    /// The message (the console's `live.js` documents each).
    pub data: Value,
}

/// A live call as a snapshot shows it.
#[derive(Clone, Debug)]
struct LiveCall {
    tenant: Uuid,
    data: Value,
    turns: VecDeque<Value>,
}

/// The feed of this node.
pub struct LiveBus {
    tx: broadcast::Sender<LiveEvent>,
    calls: Mutex<HashMap<Uuid, LiveCall>>,
}

impl Default for LiveBus {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveBus {
    /// An empty feed.
    pub fn new() -> LiveBus {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        LiveBus {
            tx,
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Applies `event` to the live calls and sends it to the subscribers,
    /// under one lock, so a subscription's snapshot and its events never
    /// overlap or leave a gap.
    fn publish(&self, event: LiveEvent) {
        let Ok(mut calls) = self.calls.lock() else {
            return;
        };
        let id = event.data["call_id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok());
        if let Some(id) = id {
            match event.kind {
                "call.started" => {
                    calls.insert(
                        id,
                        LiveCall {
                            tenant: event.tenant,
                            data: event.data.clone(),
                            turns: VecDeque::new(),
                        },
                    );
                }
                "call.status" => {
                    if let Some(call) = calls.get_mut(&id) {
                        call.data["status"] = event.data["status"].clone();
                        if event.data["status"] == "answered" {
                            call.data["answered_at"] = event.data["at"].clone();
                        }
                    }
                }
                "turn.text" => {
                    if let Some(call) = calls.get_mut(&id) {
                        if call.turns.len() == TURNS_KEPT {
                            call.turns.pop_front();
                        }
                        call.turns.push_back(event.data.clone());
                    }
                }
                "call.ended" => {
                    calls.remove(&id);
                }
                _ => {}
            }
        }
        // No subscriber is not an error.
        let _ = self.tx.send(event);
    }

    /// The live calls `tenant` may see (all for `None`), as the
    /// `snapshot` event carries them, and the events from now on.
    pub fn subscribe(&self, tenant: Option<Uuid>) -> (Value, broadcast::Receiver<LiveEvent>) {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        (snapshot(&calls, tenant), rx)
    }

    /// The snapshot alone (after a subscriber fell behind).
    pub fn snapshot(&self, tenant: Option<Uuid>) -> Value {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        snapshot(&calls, tenant)
    }

    /// A status the call stored; its first one announces the call.
    pub fn status(&self, key: &CallKey, status: &str, at: DateTime<Utc>) {
        let known = self
            .calls
            .lock()
            .map(|c| c.contains_key(&key.call.0))
            .unwrap_or(false);
        if !known && status != "finished" {
            self.publish(LiveEvent {
                tenant: key.tenant.0,
                kind: "call.started",
                data: json!({
                    "call_id": key.call.0,
                    "campaign_id": key.campaign.0,
                    "contact_id": key.contact.0,
                    "attempt": key.attempt,
                    "status": status,
                    "started_at": at,
                }),
            });
            return;
        }
        self.publish(LiveEvent {
            tenant: key.tenant.0,
            kind: "call.status",
            data: json!({ "call_id": key.call.0, "status": status, "at": at }),
        });
    }

    /// A turn the call stored: its whole text, final.
    pub fn turn(&self, key: &CallKey, turn: &TurnRecord) {
        let speaker = match turn.speaker {
            Role::User => "user",
            _ => "agent",
        };
        let mut data = json!({
            "call_id": key.call.0,
            "seq": turn.seq,
            "speaker": speaker,
            "text": turn.text,
            "final": true,
            "interrupted": turn.interrupted,
        });
        if let Some(heard) = &turn.heard_text {
            data["heard_text"] = json!(heard);
        }
        self.publish(LiveEvent {
            tenant: key.tenant.0,
            kind: "turn.text",
            data,
        });
    }

    /// The call's outcome was stored: it leaves the live calls.
    pub fn ended(&self, key: &CallKey, outcome: &str, at: DateTime<Utc>) {
        self.publish(LiveEvent {
            tenant: key.tenant.0,
            kind: "call.ended",
            data: json!({ "call_id": key.call.0, "outcome": outcome, "ended_at": at }),
        });
    }
}

/// Whether a subscriber for `viewer` (a tenant, or `None` for the
/// admin) sees `event`.
pub fn visible(viewer: Option<Uuid>, event: &LiveEvent) -> bool {
    viewer.is_none_or(|t| t == event.tenant)
}

fn snapshot(calls: &HashMap<Uuid, LiveCall>, tenant: Option<Uuid>) -> Value {
    let mut list: Vec<Value> = calls
        .values()
        .filter(|c| tenant.is_none_or(|t| t == c.tenant))
        .map(|c| {
            let mut data = c.data.clone();
            data["turns"] = Value::Array(c.turns.iter().cloned().collect());
            data
        })
        .collect();
    list.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
    json!({ "calls": list })
}

#[cfg(test)]
mod tests {
    use talky_actors::ids::{CallId, CampaignId, ContactId, TenantId};
    use talky_actors::ports::LatencySplit;

    use super::*;

    fn key(tenant: Uuid) -> CallKey {
        CallKey {
            tenant: TenantId(tenant),
            campaign: CampaignId(Uuid::now_v7()),
            contact: ContactId(Uuid::now_v7()),
            call: CallId(Uuid::now_v7()),
            attempt: 1,
        }
    }

    fn turn(seq: i32, text: &str) -> TurnRecord {
        TurnRecord {
            seq,
            speaker: Role::User,
            text: text.into(),
            heard_text: None,
            interrupted: false,
            started_at: Utc::now(),
            ended_at: Utc::now(),
            latency: LatencySplit::default(),
        }
    }

    #[test]
    fn a_call_is_announced_followed_and_forgotten_when_it_ends() {
        let bus = LiveBus::new();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (ka, kb) = (key(a), key(b));
        let (_, mut rx) = bus.subscribe(None);
        bus.status(&ka, "dialing", Utc::now());
        bus.status(&ka, "answered", Utc::now());
        bus.turn(&ka, &turn(0, "Hello?"));
        bus.status(&kb, "dialing", Utc::now());
        let kinds: Vec<&str> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            ["call.started", "call.status", "turn.text", "call.started"]
        );
        // A tenant's snapshot holds its own call with its turns so far.
        let (snap, _) = bus.subscribe(Some(a));
        let calls = snap["calls"].as_array().expect("calls");
        assert_eq!(calls.len(), 1, "{snap}");
        assert_eq!(calls[0]["status"], "answered");
        assert_eq!(calls[0]["turns"][0]["text"], "Hello?");
        assert_eq!(
            bus.snapshot(None)["calls"].as_array().map(Vec::len),
            Some(2)
        );
        bus.ended(&ka, "completed", Utc::now());
        assert_eq!(bus.snapshot(Some(a))["calls"], json!([]));
        assert_eq!(
            bus.snapshot(None)["calls"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn tenants_see_only_their_calls_and_turns_are_bounded() {
        let bus = LiveBus::new();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let k = key(a);
        bus.status(&k, "dialing", Utc::now());
        for seq in 0..(TURNS_KEPT as i32 + 10) {
            bus.turn(&k, &turn(seq, "words"));
        }
        let snap = bus.snapshot(Some(a));
        let turns = snap["calls"][0]["turns"].as_array().expect("turns");
        assert_eq!(turns.len(), TURNS_KEPT);
        assert_eq!(turns[0]["seq"], 10, "the oldest went first");
        assert_eq!(bus.snapshot(Some(b))["calls"], json!([]));
        let event = LiveEvent {
            tenant: a,
            kind: "call.status",
            data: json!({}),
        };
        assert!(visible(Some(a), &event));
        assert!(!visible(Some(b), &event));
        assert!(visible(None, &event), "the admin sees every tenant");
    }
}
