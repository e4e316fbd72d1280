//! The §6.2 WebSocket side of the Aura emulator: `Metadata` on open,
//! `Speak` / `Flush` / `Clear` / `Close`, binary audio, `Flushed` /
//! `Cleared`, close codes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use warp::ws::{Message, WebSocket};

use super::{Format, Reply, Shared, encode, err_reply, lock, precheck};
use crate::speech;

/// Upgrades a checked request to a speak session.
pub(super) async fn handle_ws(
    shared: Arc<Shared>,
    query: HashMap<String, String>,
    headers: warp::http::HeaderMap,
    ws: warp::ws::Ws,
) -> Reply {
    use warp::Reply as _;
    let (index, cfg, checked) = precheck(&shared, &query, &headers, true);
    if cfg.half_open {
        shared.wait_shutdown().await;
        return err_reply(503, "SHUTTING_DOWN", "sim: shutting down");
    }
    match checked {
        Err(reply) => {
            let status = reply.status().as_u16();
            shared.log_mut(index, |r| {
                r.status = status;
                r.finished = true;
            });
            *reply
        }
        Ok(format) => {
            shared.log_mut(index, |r| r.status = 101);
            let model = query
                .get("model")
                .cloned()
                .unwrap_or_else(|| "aura-asteria-en".into());
            ws.on_upgrade(move |socket| async move {
                let mut s = Session {
                    shared,
                    index,
                    format,
                    socket,
                    sent: 0,
                    sequence: 0,
                };
                s.run(&model).await;
                s.shared.log_mut(index, |r| r.finished = true);
            })
            .into_response()
        }
    }
}

struct Session {
    shared: Arc<Shared>,
    index: usize,
    format: Format,
    socket: WebSocket,
    sent: usize,
    sequence: u64,
}

/// The session ends (the socket already closed, or to be dropped).
struct End;

impl Session {
    async fn run(&mut self, model: &str) {
        let meta = json!({"type": "Metadata", "request_id": uuid::Uuid::new_v4().to_string(),
                          "model_name": model, "model_version": "sim",
                          "model_uuid": uuid::Uuid::new_v4().to_string()});
        if self.send_text(meta.to_string()).await.is_err() {
            return;
        }
        let _ = self.serve().await;
    }

    async fn send_text(&mut self, t: String) -> Result<(), End> {
        self.socket.send(Message::text(t)).await.map_err(|_| End)
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> End {
        let _ = self.socket.send(Message::close_with(code, reason)).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), SinkExt::close(&mut self.socket))
            .await;
        End
    }

    async fn serve(&mut self) -> Result<(), End> {
        let mut buffer = String::new();
        loop {
            let inactivity = lock(&self.shared.cfg).inactivity;
            let msg = tokio::select! {
                m = tokio::time::timeout(inactivity, self.socket.next()) => m,
                _ = self.shared.wait_shutdown() => return Err(End),
            };
            let msg = match msg {
                Err(_) => return Err(self.close(1011, "NET-0001").await),
                Ok(None) | Ok(Some(Err(_))) => return Err(End),
                Ok(Some(Ok(m))) => m,
            };
            if msg.is_close() {
                return Err(End);
            }
            if msg.is_ping() || msg.is_pong() {
                continue;
            }
            let v: Value = msg
                .to_str()
                .ok()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            self.shared
                .log_mut(self.index, |r| r.messages.push(v.clone()));
            match v["type"].as_str() {
                Some("Speak") => match v["text"].as_str() {
                    Some(t) => buffer.push_str(t),
                    None => return Err(self.close(1008, "DATA-0000").await),
                },
                Some("Flush") => {
                    let text = std::mem::take(&mut buffer);
                    self.generate(&text).await?;
                    let seq = self.sequence;
                    self.sequence += 1;
                    let reply = if lock(&self.shared.cfg).malformed {
                        "{\"type\":\"Flushed\",".to_string()
                    } else {
                        json!({"type": "Flushed", "sequence_id": seq}).to_string()
                    };
                    self.send_text(reply).await?;
                }
                Some("Clear") => {
                    buffer.clear();
                    let seq = self.sequence;
                    self.send_text(json!({"type": "Cleared", "sequence_id": seq}).to_string())
                        .await?;
                }
                Some("Close") => {
                    self.close(1000, "").await;
                    return Ok(());
                }
                _ => return Err(self.close(1008, "DATA-0000").await),
            }
        }
    }

    async fn generate(&mut self, text: &str) -> Result<(), End> {
        let cfg = lock(&self.shared.cfg).clone();
        let chunks = speech::plan(text, self.format.rate, cfg.chunk_ms, cfg.odd_chunks);
        let spoken = crate::codec::normalize(text);
        self.shared
            .log_mut(self.index, |r| r.text.push_str(&spoken));
        let t0 = tokio::time::Instant::now();
        for c in chunks {
            if cfg.drop_after_chunks == Some(self.sent) {
                // Dropped without a close frame.
                return Err(End);
            }
            let due = speech::due(cfg.first_audio_latency, cfg.speed, t0, c.at);
            if !self
                .shared
                .pause(due.saturating_duration_since(tokio::time::Instant::now()))
                .await
            {
                return Err(End);
            }
            let bytes = encode(self.format, c.bytes);
            self.socket
                .send(Message::binary(bytes))
                .await
                .map_err(|_| End)?;
            self.sent += 1;
            self.shared.log_mut(self.index, |r| r.chunks_sent += 1);
        }
        Ok(())
    }
}
