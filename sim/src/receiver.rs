//! A customer's webhook receiver on loopback, as an operator's CRM would
//! run one: it logs every request talky posts and answers each with a
//! status the caller chooses (to fail the first deliveries, say), and it
//! checks Standard Webhooks signatures with its own HMAC-SHA256, sharing
//! no code with talky's signer. The demo and the integration tests use it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use tokio::sync::oneshot;
use warp::Filter as _;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// `webhook-id`: one per event, the same on every retry.
    pub id: String,
    /// `webhook-timestamp` (Unix seconds of the attempt).
    pub timestamp: String,
    /// `webhook-signature`.
    pub signature: String,
    /// The body as sent.
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body's `type`.
    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or("?").to_string()
    }

    /// Whether it was answered 2xx.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether its signature holds under `secret` (`whsec_` + base64).
    pub fn verifies(&self, secret: &str) -> bool {
        secret_key(secret).is_some_and(|key| {
            verifies(&key, &self.id, &self.timestamp, &self.body, &self.signature)
        })
    }
}

/// The `webhook-id`s of the `event_type` events among `received`, by
/// their `data` field `by` (a call's id, say): how a customer counts what
/// it got per call.
pub fn ids_by(
    received: &[Received],
    event_type: &str,
    by: &str,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in received {
        let body = r.json();
        if body["type"] == event_type {
            let key = body["data"][by].as_str().unwrap_or_default().to_string();
            out.entry(key).or_default().insert(r.id.clone());
        }
    }
    out
}

/// The HMAC key of an endpoint secret (`whsec_` + base64).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

/// Whether `signature` (space-separated `v1,<base64>` entries) holds the
/// HMAC-SHA256 of `{id}.{timestamp}.{body}` under `key`.
pub fn verifies(key: &[u8], id: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

/// The running receiver (stops when dropped).
pub struct Receiver {
    /// Where talky posts.
    pub url: String,
    log: Arc<Mutex<Vec<Received>>>,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    /// Binds 127.0.0.1:0 and answers the `n`th request (from 0) with
    /// `answer(n)`.
    pub async fn start(
        answer: impl Fn(usize) -> u16 + Send + Sync + 'static,
    ) -> std::io::Result<Receiver> {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer = Arc::new(answer);
        let seen = log.clone();
        let route = warp::post()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(move |headers: warp::http::HeaderMap, body: bytes::Bytes| {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let Ok(mut log) = seen.lock() else {
                    return warp::http::StatusCode::INTERNAL_SERVER_ERROR;
                };
                let status = answer(log.len());
                log.push(Received {
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body: body.to_vec(),
                    status,
                });
                warp::http::StatusCode::from_u16(status)
                    .unwrap_or(warp::http::StatusCode::INTERNAL_SERVER_ERROR)
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async {
                    let _ = stopped.await;
                })
                .run(),
        );
        Ok(Receiver {
            url: format!("http://{addr}/hooks"),
            log,
            _stop: stop,
        })
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::accepted)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_signature_verifies_only_over_its_own_id_timestamp_and_body() {
        let key = b"0123456789abcdef01234567";
        let sig = sign(key, "msg_1", "1700000000", b"{}");
        assert!(verifies(key, "msg_1", "1700000000", b"{}", &sig));
        assert!(verifies(
            key,
            "msg_1",
            "1700000000",
            b"{}",
            &format!("v1,bm9wZQ== {sig}")
        ));
        assert!(!verifies(key, "msg_2", "1700000000", b"{}", &sig));
        assert!(!verifies(key, "msg_1", "1700000001", b"{}", &sig));
        assert!(!verifies(key, "msg_1", "1700000000", b"{ }", &sig));
        assert!(!verifies(
            b"another key",
            "msg_1",
            "1700000000",
            b"{}",
            &sig
        ));
        assert!(!verifies(key, "msg_1", "1700000000", b"{}", ""));
        let secret = format!("whsec_{}", STANDARD.encode(key));
        let r = Received {
            id: "msg_1".into(),
            timestamp: "1700000000".into(),
            signature: sig,
            body: b"{}".to_vec(),
            status: 200,
        };
        assert!(r.verifies(&secret));
        assert!(!r.verifies("whsec_bm9wZQ=="));
    }

    #[tokio::test]
    async fn it_answers_as_told_and_logs_every_request() {
        let receiver = Receiver::start(|n| if n == 0 { 503 } else { 200 })
            .await
            .expect("bind");
        let http = reqwest::Client::new();
        for _ in 0..2 {
            let _ = http
                .post(&receiver.url)
                .header("webhook-id", "msg_x")
                .body(r#"{"type":"call.ended"}"#)
                .send()
                .await
                .expect("post");
        }
        let got = receiver.received();
        assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [503, 200]);
        assert_eq!(receiver.accepted().len(), 1);
        assert_eq!(got[0].event_type(), "call.ended");
        assert_eq!(got[0].id, "msg_x");
    }
}
