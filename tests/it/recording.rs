//! Call recordings end to end: a recorded call's media socket (callee
//! frames in, agent frames out through a stand-in call actor) becomes an
//! Ogg Opus file served at `GET /api/v1/calls/{id}/recording`, with the
//! callee's words on the left and the agent's on the right; and a spool
//! left by a crash is encoded by the next server to start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use talky::recording::encode::decode_file;
use talky::recording::spool::{Direction, SpoolHeader, encode_record};
use talky_actors::call::CallMsg;
use talky_actors::dialer::call_name;
use talky_actors::ids::{CallId, TenantId};
use talky_actors::ports::MediaOut;
use talky_sim::codec::{Decoder, Encoder};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestApp, campaign_body, test_config};

const CALLEE_SAYS: &str = "I would like a callback.";
const AGENT_SAYS: &str = "Sure, I can do that!";

/// Stands in for a CallActor: speaks `AGENT_SAYS` as paced 20 ms frames
/// and drains the caller's audio.
struct Speaker;

impl Actor for Speaker {
    type Msg = CallMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<CallMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<CallMsg>,
        msg: CallMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let CallMsg::AttachMedia(session) = msg {
            let outbound = session.outbound.clone();
            tokio::spawn(async move {
                let mut enc = Encoder::new(16_000);
                let mut pcm = enc.silence(200);
                enc.encode_into(AGENT_SAYS, &mut pcm);
                // All at once, far ahead of real time: the recording places
                // early agent audio seamlessly, whereas paced frames delayed
                // past the mixer's tolerance by a loaded machine would put
                // real silence into a tone (and lose that character).
                for frame in pcm.chunks(320) {
                    let bytes = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
                    if outbound.send(MediaOut::Audio(bytes)).await.is_err() {
                        return;
                    }
                }
                // A barge-in after the words: cuts nothing already sent.
                let _ = outbound.send(MediaOut::Clear).await;
            });
            let mut inbound = talky_actors::testing::inbound_channel(session.inbound);
            tokio::spawn(async move { while inbound.recv().await.is_some() {} });
        }
        Ok(())
    }
}

/// A call intent of a campaign; returns (tenant, call, media token).
pub(crate) async fn intent(
    app: &TestApp,
    key: &str,
    tenant: &str,
    record: bool,
) -> (String, String) {
    let mut body = campaign_body("rec");
    body["recording_enabled"] = json!(record);
    let (status, campaign) = app.post("/api/v1/campaigns", key, &body).await;
    assert_eq!(status, 201, "{campaign}");
    assert_eq!(campaign["recording_enabled"], record);
    let campaign = campaign["id"].as_str().expect("id").to_string();
    app.dial_intent(key, tenant, &campaign).await
}

async fn get_recording(app: &TestApp, call: &str, key: &str) -> (u16, String, Vec<u8>) {
    let res = app
        .client
        .get(app.url(&format!("/api/v1/calls/{call}/recording")))
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, res.bytes().await.expect("body").to_vec())
}

/// Polls until the recording is served; every answer before is a 409.
pub(crate) async fn wait_ready(app: &TestApp, call: &str, key: &str) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ct, body) = get_recording(app, call, key).await;
        match status {
            200 => {
                assert_eq!(ct, "audio/ogg");
                return body;
            }
            409 => assert_eq!(ct, "application/problem+json"),
            other => panic!("{other} {}", String::from_utf8_lossy(&body)),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording never ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn decode_text(pcm: &[i16]) -> String {
    let mut d = Decoder::new(16_000);
    d.push(pcm);
    d.flush();
    d.take_text()
}

/// Checks the file with opusinfo and decodes it: (left text, right text).
pub(crate) fn check_file(dir: &Path, bytes: &[u8]) -> (String, String) {
    let path = dir.join(format!("{}.ogg", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(&path, bytes).expect("write");
    let out = std::process::Command::new("opusinfo")
        .arg(&path)
        .output()
        .expect("opusinfo (opus-tools; run scripts/services.sh)");
    let info = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{info}");
    assert!(
        !info.contains("WARNING") && !info.contains("ERROR"),
        "{info}"
    );
    assert!(info.contains("Channels: 2"), "{info}");
    let decoded = decode_file(&path).expect("decode");
    let _ = std::fs::remove_file(&path);
    (decode_text(&decoded.left), decode_text(&decoded.right))
}

fn ws_url(app: &TestApp, call: &str, token: &str) -> String {
    let base = app.base.replace("http://", "ws://");
    format!("{base}/vonage/media/{call}?token={token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_is_served_as_ogg_opus_to_its_tenant_only() {
    let app = TestApp::start().await;
    let (tenant, key) = app.tenant("acme").await;
    let (_, other_key) = app.tenant("other").await;
    let (call, token) = intent(&app, &key, &tenant, true).await;
    let (status, _, _) = get_recording(&app, &call, &key).await;
    assert_eq!(status, 404, "no recording before the call");

    let (speaker, _) = Actor::spawn(Some(call_name(call.parse().expect("call"))), Speaker, ())
        .await
        .expect("speaker");
    let (socket, _) = tokio_tungstenite::connect_async(ws_url(&app, &call, &token))
        .await
        .expect("upgrade");
    let (mut tx, mut rx) = socket.split();
    let heard = tokio::spawn(async move {
        let mut frames = 0usize;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
            if m.is_binary() {
                frames += 1;
            }
            if m.is_text() {
                break; // the clear after the agent's words
            }
        }
        frames
    });
    let mut enc = Encoder::new(16_000);
    let mut callee = enc.encode(CALLEE_SAYS);
    callee.extend(enc.silence(800));
    // Sent as fast as the socket takes them, for the same reason as the
    // agent's frames: the timeline must not depend on the machine's load.
    for frame in callee.chunks(320) {
        let mut bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        bytes.resize(640, 0);
        tx.send(Message::binary(bytes)).await.expect("frame");
    }
    let agent_frames = (enc.encode(AGENT_SAYS).len() + 3200).div_ceil(320);
    assert_eq!(
        heard.await.expect("reader"),
        agent_frames,
        "every agent frame sent"
    );
    let (status, _, _) = get_recording(&app, &call, &key).await;
    assert_eq!(status, 409, "still spooling while the socket is open");
    let _ = tx.close().await;
    speaker.stop(None);

    let body = wait_ready(&app, &call, &key).await;
    // The last 500 bytes, as an audio element seeking asks (RFC 9110).
    let res = app
        .client
        .get(app.url(&format!("/api/v1/calls/{call}/recording")))
        .bearer_auth(&key)
        .header("range", "bytes=-500")
        .send()
        .await
        .expect("range");
    assert_eq!(res.status().as_u16(), 206);
    let n = body.len();
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes {}-{}/{n}", n - 500, n - 1).as_str()
    );
    assert_eq!(res.bytes().await.expect("part")[..], body[n - 500..]);
    let (left, right) = check_file(&std::env::temp_dir(), &body);
    assert_eq!(left, CALLEE_SAYS, "the callee on the left");
    assert_eq!(right, AGENT_SAYS, "the agent on the right");

    let (status, ct, _) = get_recording(&app, &call, &other_key).await;
    assert_eq!((status, ct.as_str()), (404, "application/problem+json"));
    let mut conn = app.db.conn().await;
    let row = talky::db::recordings::get(
        &mut conn,
        tenant.parse().expect("tenant"),
        call.parse().expect("call"),
    )
    .await
    .expect("row")
    .expect("call");
    assert_eq!(row.status.as_deref(), Some("ready"));
    assert_eq!(row.bytes, Some(body.len() as i64));
    let ms = row.duration_ms.expect("duration");
    assert!((2000..6000).contains(&ms), "{ms} ms");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecorded_campaign_spools_nothing() {
    let app = TestApp::start().await;
    let (tenant, key) = app.tenant("acme").await;
    let (call, token) = intent(&app, &key, &tenant, false).await;
    let (speaker, _) = Actor::spawn(Some(call_name(call.parse().expect("call"))), Speaker, ())
        .await
        .expect("speaker");
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, &call, &token))
        .await
        .expect("upgrade");
    socket
        .send(Message::binary(vec![1u8; 640]))
        .await
        .expect("frame");
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
    let _ = socket.close(None).await;
    speaker.stop(None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = get_recording(&app, &call, &key).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let dir = app.server().ctx.recorder.dir().join("spool");
    let spools = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(spools, 0, "no spool in {}", dir.display());
    app.stop().await;
}

pub(crate) fn write_crash_spool(dir: &Path, tenant: TenantId, call: CallId) -> PathBuf {
    let mut enc = Encoder::new(16_000);
    let callee = enc.encode(CALLEE_SAYS);
    let mut bytes = SpoolHeader {
        sample_rate: 16_000,
        tenant,
        call,
    }
    .to_bytes()
    .to_vec();
    for (i, frame) in callee.chunks(320).enumerate() {
        let pcm: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        encode_record(Direction::Callee, i as u64 * 20_000, &pcm, &mut bytes);
    }
    bytes.extend_from_slice(&[1, 2, 3, 4]); // torn by the crash
    let path = dir.join("spool").join(format!("{call}.spool"));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("spool dir");
    std::fs::write(&path, bytes).expect("spool");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spools_left_by_a_crash_are_encoded_at_the_next_start() {
    let app = TestApp::start().await;
    let (tenant, key) = app.tenant("acme").await;
    let (call, _) = intent(&app, &key, &tenant, true).await;
    let tenant_id: TenantId = tenant.parse().expect("tenant");
    let call_id: CallId = call.parse().expect("call");
    // The state a crash mid-call leaves: the row says spooled, the spool
    // is on disk, nobody will finish it.
    let mut conn = app.db.conn().await;
    talky::db::recordings::set_status(&mut conn, tenant_id, call_id, Some("spooled"))
        .await
        .expect("status");
    let dir = app.server().ctx.recorder.dir().to_path_buf();
    let spool = write_crash_spool(&dir, tenant_id, call_id);
    let (status, _, _) = get_recording(&app, &call, &key).await;
    assert_eq!(status, 409);

    // A fresh server on the same database and directory picks it up.
    let mut config = test_config(&app.db.url);
    config.recordings.dir = dir.clone();
    let restarted = talky::app::Server::start(config).await.expect("restart");
    let body = wait_ready(&app, &call, &key).await;
    let (left, right) = check_file(&std::env::temp_dir(), &body);
    assert_eq!(left, CALLEE_SAYS);
    assert_eq!(right, "");
    assert!(!spool.exists(), "the spool is deleted once encoded");
    assert!(dir.join(&tenant).join(format!("{call}.ogg")).exists());
    restarted.stop().await;
    app.stop().await;
}
