//! The Vonage application JWT (spec §1.1): RS256, signed with the
//! application's private key (PEM, PKCS#8), claims `application_id`, `iat`,
//! `nbf`, `exp` and a unique `jti`.
//!
//! Signing costs an RSA operation, so [`AppJwt::token`] keeps the last token
//! and signs anew only when it is within [`DEFAULT_JWT_REFRESH_MARGIN`] of
//! expiring. Time is passed in, so tests need no clock.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// Lifetime of a token (the official Python SDK's default: 15 min).
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(900);
/// A cached token is replaced this long before it expires, so a request
/// in flight never carries a token that expires on the way.
pub const DEFAULT_JWT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The private key file could not be read.
    #[error("vonage private key file {path}: {source}")]
    KeyFile {
        /// The path configured.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key is not an RSA private key in PEM.
    #[error("vonage private key: not an RSA PEM key: {0}")]
    BadKey(String),
    /// No application id configured.
    #[error("vonage application id is empty")]
    NoApplicationId,
    /// Signing failed.
    #[error("vonage jwt signing: {0}")]
    Signing(String),
}

/// The claims of an application JWT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppClaims {
    /// The Vonage application's id.
    pub application_id: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds): equal to `iat`.
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Unique token id (UUIDv4, as the SDKs use).
    pub jti: String,
}

#[derive(Clone)]
struct Cached {
    token: String,
    iat: i64,
    exp: i64,
}

/// Mints and caches application JWTs. `Debug` never shows the key.
pub struct AppJwt {
    application_id: String,
    key: EncodingKey,
    ttl: Duration,
    refresh_margin: Duration,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for AppJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppJwt")
            .field("application_id", &self.application_id)
            .field("key", &"[redacted]")
            .field("ttl", &self.ttl)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

impl AppJwt {
    /// From an application id and a PEM private key held inline.
    pub fn from_pem(application_id: impl Into<String>, pem: &Secret) -> Result<Self, JwtError> {
        let application_id = application_id.into();
        if application_id.trim().is_empty() {
            return Err(JwtError::NoApplicationId);
        }
        // Config often carries the PEM with escaped newlines (env vars).
        let text = pem.expose().replace("\\n", "\n");
        let key = EncodingKey::from_rsa_pem(text.trim().as_bytes())
            .map_err(|e| JwtError::BadKey(e.to_string()))?;
        Ok(Self {
            application_id,
            key,
            ttl: DEFAULT_JWT_TTL,
            refresh_margin: DEFAULT_JWT_REFRESH_MARGIN,
            cache: Mutex::new(None),
        })
    }

    /// From an application id and the path of a PEM private key file.
    pub fn from_pem_file(
        application_id: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<Self, JwtError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| JwtError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(application_id, &Secret::new(text))
    }

    /// Sets the token lifetime and the refresh margin (margin < ttl).
    pub fn with_lifetime(mut self, ttl: Duration, refresh_margin: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_secs(1));
        self.refresh_margin = refresh_margin.min(self.ttl / 2);
        self
    }

    /// The application id the tokens are for.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// A token valid at `now`: the cached one unless it is within the
    /// refresh margin of expiring (or was issued after `now`).
    pub fn token(&self, now: DateTime<Utc>) -> Result<String, JwtError> {
        let now_s = now.timestamp();
        let margin = self.refresh_margin.as_secs() as i64;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref()
            && now_s >= c.iat
            && now_s < c.exp - margin
        {
            return Ok(c.token.clone());
        }
        let (token, claims) = self.sign(now)?;
        *cache = Some(Cached {
            token: token.clone(),
            iat: claims.iat,
            exp: claims.exp,
        });
        Ok(token)
    }

    /// Signs a fresh token issued at `now`, bypassing the cache.
    pub fn sign(&self, now: DateTime<Utc>) -> Result<(String, AppClaims), JwtError> {
        let iat = now.timestamp();
        let claims = AppClaims {
            application_id: self.application_id.clone(),
            iat,
            nbf: iat,
            exp: iat + self.ttl.as_secs() as i64,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| JwtError::Signing(e.to_string()))?;
        Ok((token, claims))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use jsonwebtoken::{DecodingKey, Validation};

    /// Throwaway RSA key pair generated with openssl for these tests only;
    /// it protects nothing.
    pub(crate) const TEST_PRIVATE_PEM: &str = include_str!("testdata/test_private.pem");
    pub(crate) const TEST_PUBLIC_PEM: &str = include_str!("testdata/test_public.pem");
    pub(crate) const APP_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

    pub(crate) fn decode(token: &str) -> AppClaims {
        let key = DecodingKey::from_rsa_pem(TEST_PUBLIC_PEM.as_bytes()).expect("public key");
        let mut v = Validation::new(Algorithm::RS256);
        // Tests run at fixed instants; expiry is checked by hand.
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AppClaims>(token, &key, &v).expect("valid RS256");
        assert_eq!(data.header.alg, Algorithm::RS256);
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
        data.claims
    }

    fn jwt() -> AppJwt {
        AppJwt::from_pem(APP_ID, &Secret::new(TEST_PRIVATE_PEM)).expect("key")
    }

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).single().expect("time")
    }

    #[test]
    fn token_verifies_with_the_public_key_and_has_the_claims() {
        let now = at(1_700_000_000);
        let claims = decode(&jwt().token(now).expect("token"));
        assert_eq!(claims.application_id, APP_ID);
        assert_eq!(claims.iat, 1_700_000_000);
        assert_eq!(claims.nbf, 1_700_000_000);
        assert_eq!(claims.exp, 1_700_000_900);
        assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());
    }

    #[test]
    fn jti_is_unique_per_signature() {
        let j = jwt();
        let (_, a) = j.sign(at(1)).expect("sign");
        let (_, b) = j.sign(at(1)).expect("sign");
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn cached_until_the_refresh_margin_then_renewed() {
        let j = jwt();
        let t0 = 1_700_000_000;
        let first = j.token(at(t0)).expect("token");
        assert_eq!(j.token(at(t0 + 10)).expect("token"), first);
        assert_eq!(j.token(at(t0 + 900 - 61)).expect("token"), first);
        let renewed = j.token(at(t0 + 900 - 60)).expect("token");
        assert_ne!(renewed, first);
        assert_eq!(decode(&renewed).iat, t0 + 840);
        // A clock that went backwards gets a fresh token too.
        let back = j.token(at(t0)).expect("token");
        assert_ne!(back, renewed);
    }

    #[test]
    fn key_from_file_and_escaped_newlines() {
        let dir = std::env::temp_dir().join(format!("talky-vonage-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("key.pem");
        std::fs::write(&path, TEST_PRIVATE_PEM).expect("write");
        let j = AppJwt::from_pem_file(APP_ID, &path).expect("from file");
        decode(&j.token(at(5)).expect("token"));
        std::fs::remove_dir_all(&dir).ok();

        let escaped = TEST_PRIVATE_PEM.replace('\n', "\\n");
        AppJwt::from_pem(APP_ID, &Secret::new(escaped)).expect("escaped newlines");
    }

    #[test]
    fn bad_inputs_are_errors_and_debug_hides_the_key() {
        assert!(matches!(
            AppJwt::from_pem(APP_ID, &Secret::new("not a key")),
            Err(JwtError::BadKey(_))
        ));
        assert!(matches!(
            AppJwt::from_pem(" ", &Secret::new(TEST_PRIVATE_PEM)),
            Err(JwtError::NoApplicationId)
        ));
        assert!(matches!(
            AppJwt::from_pem_file(APP_ID, "/nonexistent/key.pem"),
            Err(JwtError::KeyFile { .. })
        ));
        let dbg = format!("{:?}", jwt());
        assert!(
            dbg.contains("[redacted]") && !dbg.contains("PRIVATE"),
            "{dbg}"
        );
    }
}
