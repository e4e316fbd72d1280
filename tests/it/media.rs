//! The media socket: token checked and spent before the upgrade, then
//! frames and commands between Vonage and the call's actor.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use talky_actors::call::CallMsg;
use talky_actors::dialer::call_name;
use talky_actors::ports::{MediaIn, MediaOut};
use tokio_tungstenite::tungstenite::Message;

use crate::support::TestApp;

/// Stands in for a CallActor: echoes each caller frame back, sends a
/// `clear` after the third, and reports DTMF as a mark.
struct Echo;

impl Actor for Echo {
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
            tokio::spawn(async move {
                let mut n = 0;
                let mut inbound = talky_actors::testing::inbound_channel(session.inbound);
                while let Some(item) = inbound.recv().await {
                    match item {
                        MediaIn::Audio(frame) => {
                            n += 1;
                            let _ = session.outbound.send(MediaOut::Audio(frame)).await;
                            if n == 3 {
                                let _ = session.outbound.send(MediaOut::Clear).await;
                            }
                        }
                        MediaIn::Dtmf(d) => {
                            let _ = session
                                .outbound
                                .send(MediaOut::Mark(format!("dtmf-{d}")))
                                .await;
                        }
                        MediaIn::Mark(_) => {}
                    }
                }
            });
        }
        Ok(())
    }
}

async fn intent(app: &TestApp) -> (String, String) {
    let (tenant, key) = app.tenant("acme").await;
    let campaign = app.campaign(&key, "c").await;
    app.dial_intent(&key, &tenant, &campaign).await
}

fn ws_url(app: &TestApp, call: &str, token: Option<&str>) -> String {
    let base = app.base.replace("http://", "ws://");
    match token {
        Some(t) => format!("{base}/vonage/media/{call}?token={t}"),
        None => format!("{base}/vonage/media/{call}"),
    }
}

/// The HTTP status a socket's upgrade was refused with.
fn refused_status(err: tokio_tungstenite::tungstenite::Error) -> u16 {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// Opens a socket at `url`, expecting the upgrade refused: its status.
pub(crate) async fn refused(url: String) -> u16 {
    refused_status(
        tokio_tungstenite::connect_async(url)
            .await
            .expect_err("refused"),
    )
}

/// The checks of a media socket's token before the upgrade, for `call`
/// and its `token` (`url(call, token)` the socket's URL): no token is a
/// 401; a wrong token, or the right one for another call, a 403.
pub(crate) async fn assert_tokens_checked(
    url: impl Fn(&str, Option<&str>) -> String,
    call: &str,
    token: &str,
) {
    assert_eq!(refused(url(call, None)).await, 401);
    assert_eq!(refused(url(call, Some("tk_wrong"))).await, 403);
    let other = uuid::Uuid::now_v7().to_string();
    assert_eq!(refused(url(&other, Some(token))).await, 403);
}

/// After the token's one upgrade: it is spent (a 403 at `url`), and a
/// plain GET of the socket's path `get` (no upgrade) is a client mistake,
/// a 400, not a 5xx.
pub(crate) async fn assert_spent(app: &TestApp, url: String, get: &str) {
    assert_eq!(refused(url).await, 403);
    let res = app.client.get(app.url(get)).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_and_single_use() {
    let app = TestApp::start().await;
    let (call, token) = intent(&app).await;
    assert_tokens_checked(|c, t| ws_url(&app, c, t), &call, &token).await;
    // The right token opens once (the call is not live here: closed at once).
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, &call, Some(&token)))
        .await
        .expect("upgrade");
    let closed = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("closes");
    assert!(
        matches!(closed, Some(Ok(Message::Close(_))) | None),
        "{closed:?}"
    );
    let reused = ws_url(&app, &call, Some(&token));
    assert_spent(&app, reused, &format!("/vonage/media/{call}?token=x")).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_and_commands_flow_between_vonage_and_the_call() {
    let app = TestApp::start().await;
    let (call, token) = intent(&app).await;
    let (echo, _) = Actor::spawn(Some(call_name(call.parse().expect("call id"))), Echo, ())
        .await
        .expect("echo");
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, &call, Some(&token)))
        .await
        .expect("upgrade");
    socket
        .send(Message::text(r#"{"event":"websocket:connected","content-type":"audio/l16;rate=16000","call_id":"x"}"#))
        .await
        .expect("connected");
    for i in 0..3u8 {
        socket
            .send(Message::binary(vec![i; 640]))
            .await
            .expect("frame");
    }
    socket
        .send(Message::text(
            r#"{"event":"websocket:dtmf","digit":"7","duration":200}"#,
        ))
        .await
        .expect("dtmf");
    let mut got = Vec::new();
    while got.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("message")
        {
            Some(Ok(m)) => got.push(m),
            other => panic!("{other:?}"),
        }
    }
    for (i, m) in got.iter().take(3).enumerate() {
        assert_eq!(
            m,
            &Message::binary(vec![i as u8; 640]),
            "echoed in order, 640 bytes"
        );
    }
    assert_eq!(got[3], Message::text(r#"{"action":"clear"}"#));
    assert_eq!(
        got[4],
        Message::text(r#"{"action":"notify","payload":{"mark":"dtmf-7"}}"#)
    );
    let _ = socket.close(None).await;
    echo.stop(None);
    app.stop().await;
}

/// Stands in for a CallActor: takes the socket's audio and notes every
/// hang-up it is asked for.
struct Listener(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Actor for Listener {
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
        match msg {
            CallMsg::AttachMedia(session) => {
                tokio::spawn(async move {
                    let _out = session.outbound;
                    let mut inbound = talky_actors::testing::inbound_channel(session.inbound);
                    while inbound.recv().await.is_some() {}
                });
            }
            CallMsg::Hangup(cause) => {
                let why = match cause {
                    talky_actors::call::lifecycle::EndCause::Failed(why) => why,
                    other => format!("{other:?}"),
                };
                self.0.lock().unwrap_or_else(|e| e.into_inner()).push(why);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Opens a call's socket with a [`Listener`] behind it; the socket and
/// what the call was asked.
async fn listened(
    app: &TestApp,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ActorRef<CallMsg>,
) {
    let (call, token) = intent(app).await;
    let hangups = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (actor, _) = Actor::spawn(
        Some(call_name(call.parse().expect("call id"))),
        Listener(hangups.clone()),
        (),
    )
    .await
    .expect("listener");
    let (socket, _) = tokio_tungstenite::connect_async(ws_url(app, &call, Some(&token)))
        .await
        .expect("upgrade");
    (socket, hangups, actor)
}

/// What the stand-in call was asked to hang up for, once it was asked (the
/// request is a message the call handles on its own time).
async fn asked_to_hang_up(hangups: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
    crate::support::eventually(
        "the call is asked to hang up",
        Duration::from_secs(5),
        || async {
            let asked = hangups.lock().unwrap_or_else(|e| e.into_inner()).clone();
            (!asked.is_empty()).then_some(asked)
        },
    )
    .await
    .0
}

/// Reads until the server's close frame; its code.
pub(crate) async fn close_code(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("the server closes in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => {
                eprintln!("socket ended without a close frame: {other:?}");
                return None;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_idle_sockets_and_oversized_messages_are_closed_and_end_the_call() {
    let app = TestApp::start_with(|c| c.media.idle_timeout_secs = 1).await;

    // A binary message that is not one 20 ms frame (640 bytes at 16 kHz).
    let (mut socket, hangups, actor) = listened(&app).await;
    socket
        .send(Message::binary(vec![0u8; 640]))
        .await
        .expect("frame");
    socket
        .send(Message::binary(vec![0u8; 100]))
        .await
        .expect("short frame");
    assert_eq!(close_code(&mut socket).await, Some(1007));
    let asked = asked_to_hang_up(&hangups).await;
    assert_eq!(asked, ["media frame of 100 bytes"], "the call is ended");
    actor.stop(None);

    // No audio for longer than media.idle_timeout_secs (1 s here).
    let (mut socket, hangups, actor) = listened(&app).await;
    socket
        .send(Message::binary(vec![0u8; 640]))
        .await
        .expect("frame");
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut socket).await, Some(1008));
    assert!(started.elapsed() >= Duration::from_millis(900));
    let asked = asked_to_hang_up(&hangups).await;
    assert_eq!(asked, ["media socket idle for 1 s"]);
    actor.stop(None);

    // A message bigger than media.max_message_bytes (8 KiB) is not read
    // whole into memory: the socket is closed.
    let (mut socket, hangups, actor) = listened(&app).await;
    let _ = socket.send(Message::binary(vec![0u8; 64 * 1024])).await;
    let code = close_code(&mut socket).await;
    assert!(matches!(code, Some(1009) | None), "{code:?}");
    let asked = asked_to_hang_up(&hangups).await;
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].starts_with("media socket error"), "{asked:?}");
    actor.stop(None);
    app.stop().await;
}
