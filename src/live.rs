//! The live feed: what the calls of this node are doing, pushed to the
//! console (`GET /api/v1/live`, server-sent events) as the CallActors
//! record it, never by polling the database.
//!
//! The call store adapter ([`crate::store::PgCallStore`]) publishes each
//! write of a CallActor once it is stored: a status, a finished turn, the
//! outcome. Besides those, the CallActor hands over notes
//! (`CallStore::live`): the call's campaign name and masked number as it
//! begins (which announces it), and the text of the turn being spoken
//! (the agent's sentences as they go to speech,
//! the callee's interim transcripts) as `turn.partial`, which is shown,
//! never stored: the finished turn replaces it. The bus keeps the
//! live calls (bounded: a call leaves when it ends; at most
//! [`TURNS_KEPT`] turns each, one partial per side) so that a page that connects, or falls
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
use talky_actors::ports::{CallKey, LiveNote, LiveText, Role, TurnRecord};
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
    /// `call.started`, `call.status`, `turn.partial`, `turn.text`,
    /// `call.ended`.
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
    /// The turn each side is speaking now, if any: its start (which names
    /// it) and its `turn.partial` data.
    speaking: [Option<(DateTime<Utc>, Value)>; 2],
}

/// The index of `speaker` in [`LiveCall::speaking`], and its name on the
/// feed.
fn side(speaker: Role) -> (usize, &'static str) {
    match speaker {
        Role::User => (0, "user"),
        _ => (1, "agent"),
    }
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

    /// Applies a change to the live calls and sends the event it yields
    /// (if any) to the subscribers, under one lock, so a subscription's
    /// snapshot and its events never overlap or leave a gap.
    fn publish(
        &self,
        tenant: Uuid,
        change: impl FnOnce(&mut HashMap<Uuid, LiveCall>) -> Option<(&'static str, Value)>,
    ) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((kind, data)) = change(&mut calls) {
            // No subscriber is not an error.
            let _ = self.tx.send(LiveEvent { tenant, kind, data });
        }
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

    /// A CallActor's note: the call's names as it begins (this announces
    /// it), or the text of a turn being spoken.
    pub fn note(&self, key: &CallKey, note: &LiveNote) {
        match note {
            LiveNote::Call {
                campaign_name,
                number,
            } => self.announce(key, "queued", Utc::now(), |data| {
                data["campaign_name"] = json!(campaign_name);
                data["number"] = json!(number);
            }),
            LiveNote::Text(text) => self.partial(key, text),
        }
    }

    /// A status the call stored; the first news of a call the feed does
    /// not know (its actor's [`LiveNote::Call`] was missed) announces it.
    pub fn status(&self, key: &CallKey, status: &str, at: DateTime<Utc>) {
        self.announce(key, status, at, |_| {});
    }

    /// Moves a known call to `status`, or announces an unknown one with
    /// `status` and what `name` adds to it.
    fn announce(
        &self,
        key: &CallKey,
        status: &str,
        at: DateTime<Utc>,
        name: impl FnOnce(&mut Value),
    ) {
        let id = key.call.0;
        self.publish(key.tenant.0, |calls| {
            if let Some(call) = calls.get_mut(&id) {
                call.data["status"] = json!(status);
                if status == "answered" {
                    call.data["answered_at"] = json!(at);
                }
                let data = json!({ "call_id": id, "status": status, "at": at });
                return Some(("call.status", data));
            }
            if status == "finished" {
                return None;
            }
            let mut data = json!({
                "call_id": id,
                "campaign_id": key.campaign.0,
                "contact_id": key.contact.0,
                "attempt": key.attempt,
                "status": status,
                "started_at": at,
            });
            name(&mut data);
            calls.insert(
                id,
                LiveCall {
                    tenant: key.tenant.0,
                    data: data.clone(),
                    turns: VecDeque::new(),
                    speaking: [None, None],
                },
            );
            Some(("call.started", data))
        });
    }

    /// The text of a turn being spoken (not stored yet). Only for a call
    /// the feed knows, and never older than what that side said last.
    fn partial(&self, key: &CallKey, text: &LiveText) {
        let id = key.call.0;
        self.publish(key.tenant.0, |calls| {
            let call = calls.get_mut(&id)?;
            let (i, speaker) = side(text.speaker);
            if call.speaking[i]
                .as_ref()
                .is_some_and(|(at, _)| *at > text.started_at)
            {
                return None;
            }
            let data = json!({
                "call_id": id,
                "speaker": speaker,
                "text": text.text,
                "started_at": text.started_at,
            });
            call.speaking[i] = Some((text.started_at, data.clone()));
            Some(("turn.partial", data))
        });
    }

    /// A turn the call stored: its whole text, final. It ends the text
    /// being spoken of its turn (not of a newer one).
    pub fn turn(&self, key: &CallKey, turn: &TurnRecord) {
        let id = key.call.0;
        let (i, speaker) = side(turn.speaker);
        let mut data = json!({
            "call_id": id,
            "seq": turn.seq,
            "speaker": speaker,
            "text": turn.text,
            "final": true,
            "interrupted": turn.interrupted,
            "started_at": turn.started_at,
        });
        if let Some(heard) = &turn.heard_text {
            data["heard_text"] = json!(heard);
        }
        self.publish(key.tenant.0, |calls| {
            if let Some(call) = calls.get_mut(&id) {
                if call.speaking[i]
                    .as_ref()
                    .is_some_and(|(at, _)| *at <= turn.started_at)
                {
                    call.speaking[i] = None;
                }
                if call.turns.len() == TURNS_KEPT {
                    call.turns.pop_front();
                }
                call.turns.push_back(data.clone());
            }
            Some(("turn.text", data))
        });
    }

    /// The call's outcome was stored: it leaves the live calls.
    pub fn ended(&self, key: &CallKey, outcome: &str, at: DateTime<Utc>) {
        let id = key.call.0;
        self.publish(key.tenant.0, |calls| {
            calls.remove(&id);
            let data = json!({ "call_id": id, "outcome": outcome, "ended_at": at });
            Some(("call.ended", data))
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
            data["speaking"] = Value::Array(
                c.speaking
                    .iter()
                    .flatten()
                    .map(|(_, partial)| partial.clone())
                    .collect(),
            );
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

    #[test]
    fn the_text_being_spoken_shows_until_its_turn_is_stored() {
        let bus = LiveBus::new();
        let a = Uuid::now_v7();
        let k = key(a);
        let said = |speaker, text: &str, started_at| LiveText {
            speaker,
            text: text.into(),
            started_at,
        };
        let t0 = Utc::now();
        // Not for a call the feed does not know.
        let (_, mut rx) = bus.subscribe(None);
        bus.partial(&k, &said(Role::User, "Hel", t0));
        assert!(rx.try_recv().is_err());
        bus.status(&k, "answered", t0);
        bus.partial(&k, &said(Role::User, "Hello who", t0));
        let t1 = t0 + chrono::Duration::seconds(2);
        bus.partial(&k, &said(Role::Assistant, "Hi, this is Ada.", t1));
        let kinds: Vec<&str> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["call.started", "turn.partial", "turn.partial"]);
        let speaking = |bus: &LiveBus| bus.snapshot(Some(a))["calls"][0]["speaking"].clone();
        assert_eq!(
            speaking(&bus)
                .as_array()
                .map(|s| s.iter().map(|p| p["text"].clone()).collect::<Vec<_>>()),
            Some(vec![json!("Hello who"), json!("Hi, this is Ada.")])
        );
        // The callee's turn is stored: its partial goes, the agent's stays.
        let mut user = turn(0, "Hello, who is this?");
        user.started_at = t0;
        bus.turn(&k, &user);
        assert_eq!(speaking(&bus)[0]["speaker"], "agent");
        assert_eq!(speaking(&bus).as_array().map(Vec::len), Some(1));
        // A stored turn older than the agent's partial leaves it; a stale
        // partial never replaces a newer one.
        let mut old = turn(1, "earlier");
        old.speaker = Role::Assistant;
        old.started_at = t0;
        bus.turn(&k, &old);
        bus.partial(&k, &said(Role::Assistant, "stale", t0));
        assert_eq!(speaking(&bus)[0]["text"], "Hi, this is Ada.");
        old.started_at = t1;
        bus.turn(&k, &old);
        assert_eq!(speaking(&bus), json!([]));
    }

    #[test]
    fn a_call_is_announced_by_its_actor_with_its_names() {
        let bus = LiveBus::new();
        let a = Uuid::now_v7();
        let k = key(a);
        let (_, mut rx) = bus.subscribe(None);
        let named = LiveNote::Call {
            campaign_name: "Spring renewals".into(),
            number: "+44 •••• ••77".into(),
        };
        bus.note(&k, &named);
        bus.status(&k, "dialing", Utc::now());
        let events: Vec<LiveEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["call.started", "call.status"]);
        assert_eq!(events[0].data["campaign_name"], "Spring renewals");
        assert_eq!(events[0].data["number"], "+44 •••• ••77");
        assert_eq!(events[0].data["status"], "queued");
        let snap = bus.snapshot(Some(a));
        assert_eq!(snap["calls"][0]["number"], "+44 •••• ••77");
        assert_eq!(snap["calls"][0]["status"], "dialing");
    }
}
