//! The demo's customer: a [`crate::receiver::Receiver`] that refuses its
//! first [`FAILED_FIRST`] deliveries with 503 (so the demo shows talky
//! retrying with the same `webhook-id`), then accepts, and the closing
//! table of what it got.

use std::collections::{BTreeMap, BTreeSet};

use crate::receiver::{Received, Receiver};

/// Deliveries the receiver refuses before it accepts any.
pub const FAILED_FIRST: usize = 2;

/// Starts the demo's receiver.
pub async fn start() -> std::io::Result<Receiver> {
    Receiver::start(|n| if n < FAILED_FIRST { 503 } else { 200 }).await
}

/// One line per event type: events (distinct ids), requests, refused
/// requests, events accepted, and whether every signature verified under
/// `secret`.
pub fn table(received: &[Received], secret: &str) -> String {
    #[derive(Default)]
    struct Line {
        ids: BTreeSet<String>,
        accepted: BTreeSet<String>,
        requests: usize,
        refused: usize,
        verified: bool,
    }
    let mut lines: BTreeMap<String, Line> = BTreeMap::new();
    for r in received {
        let line = lines.entry(r.event_type()).or_insert_with(|| Line {
            verified: true,
            ..Line::default()
        });
        line.ids.insert(r.id.clone());
        line.requests += 1;
        if r.accepted() {
            line.accepted.insert(r.id.clone());
        } else {
            line.refused += 1;
        }
        line.verified &= r.verifies(secret);
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
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac as _};

    use super::*;

    #[test]
    fn the_table_counts_events_retries_and_signatures() {
        let key = b"0123456789abcdef01234567";
        let secret = format!("whsec_{}", STANDARD.encode(key));
        let r = |id: &str, t: &str, status: u16, signed: bool| {
            let body = format!(r#"{{"type":"{t}","data":{{"id":"{id}"}}}}"#).into_bytes();
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
            mac.update(format!("{id}.1700000000.").as_bytes());
            mac.update(&body);
            let sig = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
            Received {
                id: id.into(),
                timestamp: "1700000000".into(),
                signature: if signed { sig } else { "v1,bm9wZQ==".into() },
                body,
                status,
            }
        };
        let got = [
            r("a", "call.ended", 503, true),
            r("a", "call.ended", 200, true),
            r("b", "call.ended", 200, true),
            r("c", "call.analyzed", 200, false),
        ];
        let t = table(&got, &secret);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        let ended: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(ended, ["call.ended", "2", "3", "1", "2", "all", "valid"]);
        assert!(lines[1].starts_with("call.analyzed") && lines[1].ends_with("INVALID"));
        let accepted: Vec<Received> = got.iter().filter(|r| r.accepted()).cloned().collect();
        let by = crate::receiver::ids_by(&accepted, "call.ended", "id");
        assert_eq!(by.len(), 2);
        assert_eq!(by["a"].len(), 1, "the refused try is not counted");
    }
}
