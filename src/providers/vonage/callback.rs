//! Per-call callback keys: every URL talky hands Vonage for a call (the
//! create-call `event_url`, the NCCO `connect` `eventUrl`, the `answer_url`)
//! carries, after the call id, a key only this cluster can compute:
//! `/vonage/events/{call_id}/{key}`, `/vonage/answer/{call_id}/{key}`.
//!
//! `key = hex(HMAC-SHA256(server key, "talky-vonage-callback:" + call id))[..32]`
//! (128 bits). Nothing new is stored: any node holding the same server key
//! recomputes it and compares in constant time. The server key is shared
//! configuration (`vonage.callback_key`), or derived from the signature
//! secret, which every node has too; only with neither (loopback or the
//! explicit insecure flag) is it random per process, which then verifies
//! only the URLs this process gave out.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::VonageWebhookConfig;

/// Hex characters of a per-call key (128 bits).
pub const KEY_HEX_LEN: usize = 32;

/// HMAC-SHA256 (RFC 2104) over sha2.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a [`CallbackKey`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `vonage.callback_key`.
    Configured,
    /// Derived from `vonage.signature_secret`.
    SignatureSecret,
    /// Random, this process only (no secret configured).
    Process,
}

/// The server key per-call callback keys are derived from. `Debug` hides it.
#[derive(Clone)]
pub struct CallbackKey {
    key: [u8; 32],
    source: KeySource,
}

impl std::fmt::Debug for CallbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackKey")
            .field("key", &"[redacted]")
            .field("source", &self.source)
            .finish()
    }
}

static PROCESS_KEY: OnceLock<[u8; 32]> = OnceLock::new();

impl CallbackKey {
    /// From a configured secret (any length).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac_sha256(b"talky-vonage-callback-key", secret),
            source: KeySource::Configured,
        }
    }

    /// The key of this configuration: `callback_key`, else derived from
    /// `signature_secret`, else random for this process (the same for
    /// every server in it).
    pub fn from_config(cfg: &VonageWebhookConfig) -> Self {
        let configured = cfg.callback_key.expose().trim();
        if !configured.is_empty() {
            return Self::new(configured.as_bytes());
        }
        let sig = cfg.signature_secret.expose().trim();
        if !sig.is_empty() {
            return Self {
                key: hmac_sha256(b"talky-vonage-callback-key-from-signature", sig.as_bytes()),
                source: KeySource::SignatureSecret,
            };
        }
        let key = *PROCESS_KEY.get_or_init(|| {
            let mut k = [0u8; 32];
            rand::fill(&mut k);
            k
        });
        Self {
            key,
            source: KeySource::Process,
        }
    }

    /// Where it came from.
    pub fn source(&self) -> KeySource {
        self.source
    }

    /// The key of one call's callback URLs.
    pub fn for_call(&self, call: &str) -> String {
        let mac = hmac_sha256(
            &self.key,
            format!("talky-vonage-callback:{call}").as_bytes(),
        );
        hex(&mac[..KEY_HEX_LEN / 2])
    }

    /// Whether `key` is this call's key (constant time).
    pub fn verify(&self, call: &str, key: &str) -> bool {
        let want = self.for_call(call);
        key.len() == want.len() && bool::from(want.as_bytes().ct_eq(key.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn keys_are_per_call_and_per_secret() {
        let a = CallbackKey::new(b"one");
        let k = a.for_call("c1");
        assert_eq!(k.len(), KEY_HEX_LEN);
        assert!(a.verify("c1", &k));
        assert!(!a.verify("c2", &k), "another call's key");
        assert!(!CallbackKey::new(b"two").verify("c1", &k), "another secret");
        assert!(!a.verify("c1", &k[..31]));
        assert!(!a.verify("c1", ""));
        assert!(!a.verify("c1", &k.to_uppercase()));
        assert!(format!("{a:?}").contains("[redacted]"));
    }

    #[test]
    fn from_config_prefers_the_callback_key_then_the_signature_secret() {
        let mut cfg = VonageWebhookConfig::default();
        let process = CallbackKey::from_config(&cfg);
        assert_eq!(process.source(), KeySource::Process);
        assert_eq!(
            CallbackKey::from_config(&cfg).for_call("c"),
            process.for_call("c"),
            "one random key per process"
        );
        cfg.signature_secret = Secret::new("sig");
        let derived = CallbackKey::from_config(&cfg);
        assert_eq!(derived.source(), KeySource::SignatureSecret);
        assert_ne!(derived.for_call("c"), process.for_call("c"));
        assert_ne!(
            derived.for_call("c"),
            CallbackKey::new(b"sig").for_call("c"),
            "not the secret used as the key"
        );
        cfg.callback_key = Secret::new("cb");
        let configured = CallbackKey::from_config(&cfg);
        assert_eq!(configured.source(), KeySource::Configured);
        assert_eq!(
            configured.for_call("c"),
            CallbackKey::new(b"cb").for_call("c")
        );
    }
}
