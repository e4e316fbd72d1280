//! The demo's customer: a webhook receiver on loopback, as an operator's
//! CRM would run one. It answers its first [`FAILED_FIRST`] deliveries
//! with 503 (so the demo shows talky retrying with the same `webhook-id`),
//! then 200, and checks every signature itself (HMAC-SHA256 per the
//! Standard Webhooks spec, computed here, not by talky's signer).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use tokio::sync::oneshot;
use warp::Filter as _;

/// Deliveries the receiver refuses before it accepts any.
pub const FAILED_FIRST: usize = 2;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// `webhook-id`: one per event, the same on every retry.
    pub id: String,
    /// The body's `type`.
    pub event_type: String,
    /// The body's `data`.
    pub data: Value,
    /// What the receiver answered.
    pub status: u16,
    /// Whether `webhook-signature` verified under the endpoint's secret.
    pub verified: bool,
}

/// The running receiver (stops when dropped).
pub struct Receiver {
    /// Where talky posts.
    pub url: String,
    secret: Arc<Mutex<Option<Vec<u8>>>>,
    log: Arc<Mutex<Vec<Delivery>>>,
    _stop: oneshot::Sender<()>,
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

impl Receiver {
    /// Binds 127.0.0.1:0 and serves.
    pub async fn start() -> anyhow::Result<Receiver> {
        let log: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let secret: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let (seen, key) = (log.clone(), secret.clone());
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
                let id = header("webhook-id");
                let verified = key.lock().ok().and_then(|k| k.clone()).is_some_and(|k| {
                    verifies(
                        &k,
                        &id,
                        &header("webhook-timestamp"),
                        &body,
                        &header("webhook-signature"),
                    )
                });
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let Ok(mut log) = seen.lock() else {
                    return warp::http::StatusCode::INTERNAL_SERVER_ERROR;
                };
                let status = if log.len() < FAILED_FIRST { 503 } else { 200 };
                log.push(Delivery {
                    id,
                    event_type: json["type"].as_str().unwrap_or("?").to_string(),
                    data: json["data"].clone(),
                    status,
                    verified,
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
            url: format!("http://{addr}/talky-events"),
            secret,
            log,
            _stop: stop,
        })
    }

    /// Sets the endpoint's secret (`whsec_` + base64) as talky gave it.
    pub fn set_secret(&self, secret: &str) -> anyhow::Result<()> {
        let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret))?;
        if let Ok(mut slot) = self.secret.lock() {
            *slot = Some(key);
        }
        Ok(())
    }

    /// Every request so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The `webhook-id`s accepted (2xx) for `event_type` events, by the
    /// `data` field `by`.
    pub fn accepted_by(&self, event_type: &str, by: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for d in self.deliveries() {
            if d.event_type == event_type && (200..300).contains(&d.status) {
                let key = d.data[by].as_str().unwrap_or_default().to_string();
                out.entry(key).or_default().insert(d.id);
            }
        }
        out
    }
}

/// One line per event type: events (distinct ids), requests, refused
/// requests, events accepted, and whether every signature verified.
pub fn table(deliveries: &[Delivery]) -> String {
    #[derive(Default)]
    struct Line {
        ids: BTreeSet<String>,
        accepted: BTreeSet<String>,
        requests: usize,
        refused: usize,
        verified: bool,
    }
    let mut lines: BTreeMap<&str, Line> = BTreeMap::new();
    for d in deliveries {
        let line = lines.entry(&d.event_type).or_insert_with(|| Line {
            verified: true,
            ..Line::default()
        });
        line.ids.insert(d.id.clone());
        line.requests += 1;
        if (200..300).contains(&d.status) {
            line.accepted.insert(d.id.clone());
        } else {
            line.refused += 1;
        }
        line.verified &= d.verified;
    }
    let mut out = vec![format!(
        "{:<20} {:>6} {:>8} {:>8} {:>9}  signatures",
        "event", "events", "requests", "refused", "delivered"
    )];
    for (event, l) in lines {
        out.push(format!(
            "{:<20} {:>6} {:>8} {:>8} {:>9}  {}",
            event,
            l.ids.len(),
            l.requests,
            l.refused,
            l.accepted.len(),
            if l.verified { "all valid" } else { "INVALID" }
        ));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
    }

    #[test]
    fn the_table_counts_events_retries_and_signatures() {
        let d = |id: &str, t: &str, status: u16, verified: bool| Delivery {
            id: id.into(),
            event_type: t.into(),
            data: json!({}),
            status,
            verified,
        };
        let t = table(&[
            d("a", "call.ended", 503, true),
            d("a", "call.ended", 200, true),
            d("b", "call.ended", 200, true),
            d("c", "call.analyzed", 200, false),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        let ended: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(ended, ["call.ended", "2", "3", "1", "2", "all", "valid"]);
        assert!(lines[1].starts_with("call.analyzed") && lines[1].ends_with("INVALID"));
    }
}
