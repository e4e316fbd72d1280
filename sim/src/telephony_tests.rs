//! Test helpers shared by the Vonage and Twilio emulators' tests (each
//! drives its emulator with a tiny in-test "talky"): serving that stand-in
//! on loopback, the one writer of its media socket, and the check of the
//! scripted conversation both run with the `interested` persona.

use futures_util::{Sink, SinkExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use warp::Filter;
use warp::filters::ws::Message;

use crate::callee::{Heard, Said};

/// Serves `routes` on 127.0.0.1 (any free port): where, and the task.
pub(crate) async fn serve<F>(routes: F) -> (std::net::SocketAddr, JoinHandle<()>)
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        warp::serve(routes).incoming(listener).run().await;
    });
    (addr, task)
}

/// The one writer of a socket: everything sent on the returned channel
/// goes out in order; a close message (or a failed send) ends it, and the
/// socket is closed when the channel is dropped.
pub(crate) fn writer<S>(mut sink: S) -> (mpsc::UnboundedSender<Message>, JoinHandle<()>)
where
    S: Sink<Message> + Unpin + Send + 'static,
{
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let task = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = m.is_close();
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    (out_tx, task)
}

/// The agent's lines to the `interested` persona: greeting, then a reply
/// after each of its utterances.
pub(crate) const AGENT_LINES: [&str; 3] = [
    "Hi, this is Anna.",
    "Wonderful, I will send details.",
    "Goodbye.",
];

/// What the `interested` persona answers.
pub(crate) const PERSONA_LINES: [&str; 2] = ["Yes, I am interested.", "Great, thank you. Bye."];

/// Both directions of the scripted conversation decoded exactly: the
/// persona heard every agent line (`heard`, the emulator's record) and
/// said its own (`said`), which the agent decoded (`agent_heard`).
pub(crate) fn assert_conversation(heard: &[Heard], said: &[Said], agent_heard: &[String]) {
    let heard: Vec<&str> = heard.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(heard, AGENT_LINES);
    assert_eq!(agent_heard, PERSONA_LINES);
    let said: Vec<&str> = said.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(said, PERSONA_LINES);
}
