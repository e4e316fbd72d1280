//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC>`.
//!
//! The secret a tenant receives is `whsec_` + base64 of random bytes; the
//! HMAC-SHA256 key is those bytes (decoded), the message
//! `"{webhook-id}.{webhook-timestamp}.{body}"`. A receiver recomputes it
//! with any Standard Webhooks library, so the format here is the spec's
//! byte for byte (the unit test pins the spec's own example).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::providers::vonage::callback::hmac_sha256;

/// Prefix of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the spec asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// A new secret: `whsec_` + base64 of [`SECRET_BYTES`] random bytes.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The secret could not be decoded (a stored secret is always ours, so
/// this means a corrupted row).
#[derive(Debug, thiserror::Error)]
#[error("webhook secret is not whsec_ + base64")]
pub struct BadSecret;

/// The HMAC key of a secret: the bytes after `whsec_`, base64-decoded.
fn key(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(encoded).map_err(|_| BadSecret)
}

/// The `webhook-signature` header value of one attempt: `v1,` + base64
/// of HMAC-SHA256(key, `"{id}.{timestamp}.{body}"`).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = key(secret)?;
    let mut message = Vec::with_capacity(id.len() + 24 + body.len());
    message.extend_from_slice(id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(hmac_sha256(&key, &message))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks spec's example, recomputed independently
    /// with Python's `hmac` and `base64`:
    /// `base64(hmac.new(b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    /// b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}',
    /// sha256).digest())`.
    #[test]
    fn signs_the_specs_example() {
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .expect("valid secret");
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Any change of id, time or body changes it.
        let other = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            br#"{"test": 2432232314}"#,
        )
        .expect("valid secret");
        assert_ne!(sig, other);
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_usable() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX), "{a}");
        assert_eq!(key(&a).expect("decodes").len(), SECRET_BYTES);
        assert!(signature(&a, "msg_1", 1, b"{}").is_ok());
        assert!(signature("whsec_***", "msg_1", 1, b"{}").is_err());
    }
}
