//! The URLs we give Twilio for a call, and the per-call key in them.
//!
//! Status and AMD callbacks both go to
//! `{public}/twilio/status/{call_id}/{key}` (one route: an AMD callback is
//! the one without `CallStatus`, see `super::status`). `key` is the
//! call's callback key, computed from the same server key as Vonage's
//! ([`CallbackKey`]), but over `twilio/{call_id}`: a Vonage URL's key
//! does not open the Twilio route of the same call or the other way round.
//! Nothing is stored: any node with the server key recomputes it.
//!
//! Why a key as well as `X-Twilio-Signature`: with API-key authentication
//! and no auth token configured, nothing can verify the signature, and
//! the URL key is then the only proof a callback came from someone we gave
//! the URL to; with the token, both are checked (`super::signature`).

use percent_encoding::utf8_percent_encode;

use super::twiml::{SEGMENT, TwimlError};
use crate::providers::vonage::CallbackKey;

/// The callback key of one call's Twilio URLs.
pub fn call_key(key: &CallbackKey, call: &str) -> String {
    key.for_call(&format!("twilio/{call}"))
}

/// Whether `given` is the call's Twilio callback key (constant time).
pub fn verify_call_key(key: &CallbackKey, call: &str, given: &str) -> bool {
    key.verify(&format!("twilio/{call}"), given)
}

/// `http(s)://host...` without a trailing `/`, or the error naming it.
pub(crate) fn http_base(public_url: &str) -> Result<&str, TwimlError> {
    let b = public_url.trim().trim_end_matches('/');
    let ok =
        (b.starts_with("https://") && b.len() > 8) || (b.starts_with("http://") && b.len() > 7);
    if ok {
        Ok(b)
    } else {
        Err(TwimlError::PublicUrl(public_url.to_owned()))
    }
}

/// `{public}/twilio/status/{call_id}/{key}`: the `StatusCallback` and the
/// `AsyncAmdStatusCallback` of a call.
pub fn status_url(public_url: &str, call: &str, key: &str) -> Result<String, TwimlError> {
    if call.trim().is_empty() {
        return Err(TwimlError::Empty("call id"));
    }
    Ok(format!(
        "{}/twilio/status/{}/{}",
        http_base(public_url)?,
        utf8_percent_encode(call, SEGMENT),
        utf8_percent_encode(key, SEGMENT)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_call_and_apart_from_vonage() {
        let k = CallbackKey::new(b"server");
        let a = call_key(&k, "c1");
        assert_eq!(a.len(), 32);
        assert!(verify_call_key(&k, "c1", &a));
        assert!(!verify_call_key(&k, "c2", &a));
        assert!(!verify_call_key(&CallbackKey::new(b"other"), "c1", &a));
        assert!(!verify_call_key(&k, "c1", ""));
        assert!(!verify_call_key(
            &k,
            "c1",
            "not hex at all, and longer than 32 chars"
        ));
        // The Vonage key of the same call is another key.
        assert_ne!(a, k.for_call("c1"));
        assert!(!verify_call_key(&k, "c1", &k.for_call("c1")));
    }

    #[test]
    fn status_urls() {
        assert_eq!(
            status_url("https://dialer.example.com/", "c-1", "abc").expect("url"),
            "https://dialer.example.com/twilio/status/c-1/abc"
        );
        assert_eq!(
            status_url("http://127.0.0.1:9", "c/1", "k").expect("url"),
            "http://127.0.0.1:9/twilio/status/c%2F1/k"
        );
        for bad in ["", "https://", "ws://h", "h.example"] {
            assert!(status_url(bad, "c", "k").is_err(), "{bad:?}");
        }
        assert_eq!(
            status_url("https://h", " ", "k"),
            Err(TwimlError::Empty("call id"))
        );
    }
}
