//! `X-Twilio-Signature` as Twilio computes it (providers.md §2.4): the
//! full URL Twilio requests, then for a form POST every parameter name
//! followed by its value, names sorted (byte order) and each name's values
//! sorted, no separators; HMAC-SHA1 of that with the auth token as the
//! key, base64.
//!
//! HMAC (RFC 2104) is written out over the `sha1` crate talky already
//! depends on, so the emulator needs no second crypto stack; the tests
//! check it against RFC 2202's vectors and against an independent
//! implementation.

use base64::Engine;
use sha1::{Digest, Sha1};

/// SHA-1's block size, bytes.
const BLOCK: usize = 64;

/// HMAC-SHA1 of `message` under `key`.
pub fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let mut inner = Sha1::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = Sha1::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The string Twilio signs: `url`, then each parameter's name and value,
/// sorted by name and then by value (§2.4 step 2). `params` are the form
/// fields of a POST; pass none for a GET (its parameters are in the URL).
pub fn signed_string(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| {
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    let mut s = String::from(url);
    for (name, value) in sorted {
        s.push_str(name);
        s.push_str(value);
    }
    s
}

/// The `X-Twilio-Signature` header value for a request to `url` with the
/// form `params` (none for a GET or a WebSocket upgrade).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mac = hmac_sha1(auth_token.as_bytes(), signed_string(url, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rfc_2202_vectors() {
        assert_eq!(
            hex(&hmac_sha1(&[0x0b; 20], b"Hi There")),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // A key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha1(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn names_then_values_are_sorted() {
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let params = vec![
            p("To", "+1"),
            p("StatusCallbackEvent", "ringing"),
            p("CallSid", "CA1"),
            p("StatusCallbackEvent", "answered"),
        ];
        assert_eq!(
            signed_string("https://x.example/cb?a=1", &params),
            "https://x.example/cb?a=1CallSidCA1StatusCallbackEventansweredStatusCallbackEventringingTo+1"
        );
        assert_eq!(signed_string("https://x/y", &[]), "https://x/y");
    }
}
