//! How provider callbacks are authenticated (`[vonage]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

/// Vonage callback settings (the API client's come with the dialer).
///
/// Secure by default: with a signature secret every event webhook and
/// answer request must carry a valid signature (401 otherwise); with none,
/// `talky serve` starts only when its public URL is loopback or
/// `insecure_unsigned_callbacks` is set. Every callback URL carries a
/// per-call key ([`crate::providers::vonage::callback`]) either way.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VonageWebhookConfig {
    /// Secret Vonage signs webhooks with (`TALKY_VONAGE__SIGNATURE_SECRET`).
    /// When set, a callback whose signature is missing or does not verify
    /// is refused (401).
    pub signature_secret: Secret,
    /// File holding the signature secret.
    pub signature_secret_file: Option<PathBuf>,
    /// With a signature secret, still accept callbacks that carry no
    /// signature at all (an application without signed callbacks); a bad
    /// signature is refused regardless. Off by default.
    pub allow_unsigned_webhooks: bool,
    /// Let `talky serve` start with no signature secret although its
    /// public URL is not loopback (anyone who learns a callback URL can
    /// then forge that call's events). Off by default.
    pub insecure_unsigned_callbacks: bool,
    /// Server key of the per-call keys in callback URLs
    /// (`TALKY_VONAGE__CALLBACK_KEY`); every node must have the same one.
    /// Empty: derived from `signature_secret`; with neither, random per
    /// process (one node only).
    pub callback_key: Secret,
    /// File holding the callback key.
    pub callback_key_file: Option<PathBuf>,
    /// Deprecated, kept so older files still load: signatures are now
    /// required whenever a secret is set. `true` with
    /// `allow_unsigned_webhooks` is refused as contradictory.
    pub require_signed_webhooks: bool,
}

impl VonageWebhookConfig {
    /// Whether a callback with no `Authorization` header is accepted.
    pub fn accepts_unsigned(&self) -> bool {
        self.signature_secret.is_empty() || self.allow_unsigned_webhooks
    }
}
