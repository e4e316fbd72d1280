//! The live feed (`GET /api/v1/live`, server-sent events) through a real
//! call: a tenant's page gets a snapshot, then the call announced, its
//! turns as they are stored (the same text the call's record keeps) and
//! its end; another tenant sees none of it; the admin token sees it too;
//! no key is a 401.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use talky_sim::vonage::persona::Personas;

use crate::e2e::{campaign_of, finished_calls, persona_for, world};
use crate::support::TestApp;

/// A subscriber: (event, data) frames as they arrive.
struct Feed {
    frames: tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
    _task: tokio::task::JoinHandle<()>,
}

impl Feed {
    async fn open(app: &TestApp, token: &str) -> Feed {
        let res = reqwest::Client::new()
            .get(app.url("/api/v1/live"))
            .bearer_auth(token)
            .send()
            .await
            .expect("live");
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with("text/event-stream")
        );
        let (tx, frames) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut body = res.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    let (mut event, mut data) = (String::new(), String::new());
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if !event.is_empty() {
                        let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                        if tx.send((event, data)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Feed {
            frames,
            _task: task,
        }
    }

    /// Frames until `until` holds for one (that one included), bounded.
    async fn until(
        &mut self,
        within: Duration,
        until: impl Fn(&str, &Value) -> bool,
    ) -> Vec<(String, Value)> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.frames.recv())
                .await
                .unwrap_or_else(|_| panic!("no matching frame within {within:?}: {got:?}"))
                .expect("the feed is open");
            let done = until(&frame.0, &frame.1);
            got.push(frame);
            if done {
                return got;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_pushed_live_to_its_tenant_and_the_admin_only() {
    let phone = "+442079460971";
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", phone);
    let world = world(personas).await;
    let app = &world.app;
    let (_, key) = app.tenant("acme").await;
    let (_, other_key) = app.tenant("other").await;

    let res = reqwest::Client::new()
        .get(app.url("/api/v1/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(res.status(), 401);

    let mut mine = Feed::open(app, &key).await;
    let mut admin = Feed::open(app, &app.admin_token).await;
    let mut other = Feed::open(app, &other_key).await;
    let first = mine
        .until(Duration::from_secs(5), |e, _| e == "snapshot")
        .await;
    assert_eq!(first[0].1["calls"], serde_json::json!([]), "{first:?}");

    let campaign = campaign_of(app, &key, &[phone], |_| {}).await;
    let frames = mine
        .until(Duration::from_secs(90), |e, _| e == "call.ended")
        .await;
    let calls = finished_calls(app, &key, &campaign, 1).await;
    let call = &calls[0];
    let id = call["id"].as_str().expect("id");
    let kinds: Vec<&str> = frames.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"call.started"), "{kinds:?}");
    assert!(kinds.contains(&"call.status"), "{kinds:?}");
    for (_, data) in &frames {
        assert_eq!(data["call_id"], id, "{data}");
    }
    assert_eq!(frames[0].1["campaign_id"], campaign.as_str());
    // The turns pushed are the turns stored, in order.
    let pushed: Vec<(Value, Value)> = frames
        .iter()
        .filter(|(e, _)| e == "turn.text")
        .map(|(_, d)| (d["seq"].clone(), d["text"].clone()))
        .collect();
    let stored: Vec<(Value, Value)> = call["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .map(|t| (t["seq"].clone(), t["text"].clone()))
        .collect();
    assert!(!stored.is_empty());
    assert_eq!(pushed, stored, "the transcript as it grew");
    // Before each agent turn was stored, its text grew on the feed as it
    // went to speech (`turn.partial` of that turn, ending with the whole
    // text); the callee's words showed while transcribed.
    for (i, (_, turn)) in frames.iter().enumerate() {
        if turn["speaker"] != "agent" || turn["final"] != true {
            continue;
        }
        let partials: Vec<&Value> = frames[..i]
            .iter()
            .filter(|(e, d)| {
                e == "turn.partial"
                    && d["speaker"] == "agent"
                    && d["started_at"] == turn["started_at"]
            })
            .map(|(_, d)| d)
            .collect();
        let last = partials
            .last()
            .unwrap_or_else(|| panic!("no partial before {turn}"));
        assert_eq!(last["text"], turn["text"], "{partials:?}");
    }
    assert!(
        frames
            .iter()
            .any(|(e, d)| e == "turn.partial" && d["speaker"] == "user"),
        "the callee's words showed while spoken: {kinds:?}"
    );
    let ended = &frames.last().expect("ended").1;
    assert_eq!(ended["outcome"], call["outcome"], "{ended}");

    // The admin saw the same call end; the other tenant saw nothing.
    admin
        .until(Duration::from_secs(10), |e, d| {
            e == "call.ended" && d["call_id"] == id
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = Vec::new();
    while let Ok(frame) = other.frames.try_recv() {
        seen.push(frame);
    }
    assert_eq!(seen.len(), 1, "only its empty snapshot: {seen:?}");
    assert_eq!(seen[0].0, "snapshot");
    // A page that connects now starts from an empty snapshot.
    let mut late = Feed::open(app, &key).await;
    let snap = late
        .until(Duration::from_secs(5), |e, _| e == "snapshot")
        .await;
    assert_eq!(snap[0].1["calls"], serde_json::json!([]));
}

/// `call`, a call node of the actor `tree`, is named as people do: its
/// campaign's name, the number masked to its country code and last two
/// digits, its age and (answered) talk time, each child's provider by
/// name with its restarts; the whole number is nowhere in the tree.
pub(crate) fn assert_named(tree: &Value, call: &Value, campaign_name: &str, phone: &str) {
    assert_eq!(call["campaign_name"], campaign_name, "{tree}");
    let digits = phone.trim_start_matches('+');
    assert!(digits.starts_with("44"), "these tests call UK numbers");
    let last_two = &digits[digits.len() - 2..];
    assert_eq!(call["number"], format!("+44 •••• ••{last_two}"), "{tree}");
    assert!(
        !tree.to_string().contains(digits),
        "the whole number is never shown: {tree}"
    );
    assert!(call["age_secs"].is_u64(), "{tree}");
    assert!(call["duration_secs"].is_u64(), "answered: {tree}");
    let children: Vec<(&str, &str)> = call["children"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    assert!(c["restarts"].is_u64(), "{c}");
                    (
                        c["kind"].as_str().unwrap_or(""),
                        c["provider"].as_str().unwrap_or(""),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // The LLM emulator is no known vendor: it goes by its configured name.
    assert_eq!(
        children,
        [("stt", "deepgram"), ("llm", "llm"), ("tts", "elevenlabs")],
        "{tree}"
    );
}

/// The call of `campaign` in a `tree` event, once it is answered.
fn answered_call<'a>(tree: &'a Value, campaign: &str) -> Option<&'a Value> {
    tree["dialer"]["calls"].as_array()?.iter().find(|c| {
        c["key"]["campaign"] == campaign
            && (c["status"] == "answered" || c["status"] == "conversation")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_feed_pushes_the_named_actor_tree_and_a_tenant_feed_never_does() {
    let phone = "+442079460972";
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", phone);
    let world = world(personas).await;
    let app = &world.app;
    let (_, key) = app.tenant("acme").await;

    let mut admin = Feed::open(app, &app.admin_token).await;
    let mut mine = Feed::open(app, &key).await;
    // On connecting, before any call: the tree at once.
    let first = admin
        .until(Duration::from_secs(5), |e, _| e == "tree")
        .await;
    let tree = &first.last().expect("tree").1;
    assert!(tree["children"].is_array(), "{tree}");
    assert_eq!(tree["dialer"]["calls"], serde_json::json!([]), "{tree}");

    let campaign = campaign_of(app, &key, &[phone], |b| {
        b["name"] = serde_json::json!("Spring reminders");
    })
    .await;
    let frames = admin
        .until(Duration::from_secs(60), |e, d| {
            e == "tree" && answered_call(d, &campaign).is_some()
        })
        .await;
    let tree = &frames.last().expect("tree").1;
    let call = answered_call(tree, &campaign).expect("the call");
    assert_named(tree, call, "Spring reminders", phone);
    assert_eq!(call["provider"], "vonage", "{tree}");
    let campaigns = tree["campaigns"].as_array().expect("campaigns");
    assert!(
        campaigns
            .iter()
            .any(|c| c["campaign"] == campaign.as_str() && c["name"] == "Spring reminders"),
        "{tree}"
    );

    // The tenant's feed, open as long as the admin's, never had a tree.
    let seen = mine
        .until(Duration::from_secs(90), |e, _| e == "call.ended")
        .await;
    let mut kinds: Vec<String> = seen.into_iter().map(|(e, _)| e).collect();
    while let Ok((e, _)) = mine.frames.try_recv() {
        kinds.push(e);
    }
    assert!(kinds.contains(&"snapshot".to_string()), "{kinds:?}");
    assert!(!kinds.iter().any(|e| e == "tree"), "{kinds:?}");
    let trees = first.len() + frames.iter().filter(|(e, _)| e == "tree").count();
    assert!(trees >= 2, "the admin's feed repeats the tree: {trees}");
}
