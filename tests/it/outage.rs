//! Outages of the real PostgreSQL and Redis, as a process of talky sees
//! them: each is reached through a loopback TCP relay that the test cuts
//! (every open connection closed, new ones refused at once) and restores,
//! so the shared servers other tests use stay up.
//!
//! - PostgreSQL gone for longer than the pool's time-out while callees ask
//!   not to be called: afterwards every turn, outcome and do-not-call entry
//!   is stored, and the campaign completes.
//! - A campaign paused during a Redis outage dials nothing after the
//!   pause, also once Redis is back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::lifetime::World;

/// A loopback TCP relay to `target` that can be cut and restored.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let flag = up.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cuts = cuts.clone();
                // Only a cut after this connection was made closes it.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Relay {
            addr,
            up,
            cut,
            task,
        }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn socket_of(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).expect("url");
    let host = rest.rsplit('@').next().expect("host");
    let host_port = host.split('/').next().expect("host:port");
    host_port.parse().expect("a 127.0.0.1:port url")
}

fn through(url: &str, relay: &Relay) -> String {
    url.replace(&socket_of(url).to_string(), &relay.addr.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gone_while_callees_opt_out_loses_nothing() {
    let mut world = World::new(&["--default-persona", "remove_me", "--llm-script", "agent"]).await;
    let pg = Relay::start(socket_of(&world.database_url())).await;
    world.set_env("DATABASE_URL", through(&world.database_url(), &pg));
    world.set_env("TALKY_DATABASE__CONNECT_TIMEOUT_MS", "1000".into());
    let a = world.serve("a").await;
    let campaign = world.live_campaign(&a).await;
    world.wait_conversations(&a, &campaign, 3).await;
    pg.cut();
    let cut_at = chrono::Utc::now();
    // Longer than the pool's time-out (1 s) and than the opt-outs take.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let restored_at = chrono::Utc::now();
    pg.restore();
    world
        .wait_campaign_state(&a, &campaign, "completed", Duration::from_secs(150))
        .await;
    let calls = world.calls(&a, &campaign).await;
    let contacts = world.contacts(&a, &campaign).await;
    for c in &contacts {
        assert_eq!(c["status"], "dnc", "every callee asked to be removed: {c}");
    }
    let dnc = world
        .api(&a, reqwest::Method::GET, "/api/v1/dnc?limit=100", None)
        .await;
    let listed: Vec<&str> = dnc["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["phone"].as_str())
        .collect();
    for c in &contacts {
        let phone = c["phone"].as_str().expect("phone");
        assert!(
            listed.contains(&phone),
            "{phone} on the do-not-call list: {dnc}"
        );
    }
    // Calls ended while PostgreSQL was gone: their outcome, turns and
    // opt-out can only have been written after it came back.
    let during: Vec<&Value> = calls
        .iter()
        .filter(|c| {
            c["ended_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t > cut_at && t < restored_at)
        })
        .collect();
    assert!(
        !during.is_empty(),
        "some calls ended during the outage: {calls:#?}"
    );
    for call in &during {
        assert_eq!(call["outcome"], "completed", "{call}");
    }
    for call in calls.iter().filter(|c| c["provider_call_id"].is_string()) {
        assert_eq!(call["status"], "finished", "{call}");
        let id = call["id"].as_str().expect("id");
        let full = world
            .api(
                &a,
                reqwest::Method::GET,
                &format!("/api/v1/calls/{id}"),
                None,
            )
            .await;
        let turns = full["turns"].as_array().cloned().unwrap_or_default();
        assert!(
            turns.iter().any(|t| t["speaker"] == "user"
                && t["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_lowercase()
                    .contains("remove")),
            "the opt-out turn is stored: {full:#}"
        );
        assert!(
            turns.iter().any(|t| t["speaker"] == "agent"),
            "the agent's turns are stored: {full:#}"
        );
    }
    world.finish(vec![a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_paused_during_a_redis_outage_dials_nothing_after() {
    let mut world = World::new(&[]).await;
    let redis = Relay::start(socket_of(&crate::support::redis_url())).await;
    world.set_env("REDIS_URL", through(&crate::support::redis_url(), &redis));
    // A slow pace, so dials wait in the dialer's queue.
    world.set_env("TALKY_DIALER__CALLS_PER_SECOND", "0.5".into());
    world.set_env("TALKY_DIALER__CPS_BURST", "1".into());
    let a = world.serve("a").await;
    let campaign = world.campaign(&a).await;
    // The first call is placed; the others wait for tokens.
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.legs().await.is_empty() {
        assert!(Instant::now() < deadline, "no call placed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.cut();
    tokio::time::sleep(Duration::from_secs(1)).await;
    world
        .api(
            &a,
            reqwest::Method::POST,
            &format!("/api/v1/campaigns/{campaign}/pause"),
            Some(json!({})),
        )
        .await;
    let paused_at = chrono::Utc::now();
    let legs_at_pause = world.legs().await.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    redis.restore();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let legs = world.legs().await;
    assert_eq!(
        legs.len(),
        legs_at_pause,
        "nothing dialled after the pause: {legs:#?}"
    );
    assert!(legs.iter().all(|l| l.created_at <= paused_at), "{legs:#?}");
    let c = world
        .api(
            &a,
            reqwest::Method::GET,
            &format!("/api/v1/campaigns/{campaign}"),
            None,
        )
        .await;
    assert_eq!(c["state"], "paused", "{c}");
    // Nothing waits to be placed: every call row is a placed call or
    // none at all.
    let calls: Vec<Value> = world.calls(&a, &campaign).await;
    for call in &calls {
        assert!(
            call["provider_call_id"].is_string() || call["status"] == "finished",
            "no intent left hanging: {call}"
        );
    }
    world.finish(vec![a]).await;
}
