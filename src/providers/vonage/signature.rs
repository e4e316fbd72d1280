//! Signed webhooks (spec §1.9): `Authorization: Bearer <JWT>`, HS256 with
//! the account's signature secret; claim `payload_hash` = hex SHA-256 of
//! the exact body; `iat` must be recent. Time is passed in.
//!
//! Signed callbacks are a per-application option: whether an unsigned
//! callback is accepted is the caller's policy (a missing header is
//! reported as [`SignatureError::MissingHeader`], distinct from a bad one).

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// How old a signed callback's `iat` may be.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// How far in the future `iat` may be (clock skew between hosts).
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(30);

/// Why a callback's signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Authorization` header.
    #[error("missing Authorization header")]
    MissingHeader,
    /// The header is not `Bearer <token>`, or the token is not a JWT.
    #[error("malformed signature token: {0}")]
    Malformed(String),
    /// The HMAC does not match (wrong secret or tampered token), or the
    /// algorithm is not HS256.
    #[error("bad signature")]
    BadSignature,
    /// A claim we need is missing.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// SHA-256 of the body differs from `payload_hash`.
    #[error("body hash mismatch")]
    BodyHashMismatch,
    /// `iat` is older than the window (or `exp` has passed).
    #[error("token too old (issued {age_secs} s ago)")]
    TooOld {
        /// Seconds since `iat` (or since `exp` when that is what failed).
        age_secs: i64,
    },
    /// `iat` (or `nbf`) is later than now plus the allowed skew.
    #[error("token from the future ({ahead_secs} s ahead)")]
    FromTheFuture {
        /// Seconds ahead of now.
        ahead_secs: i64,
    },
}

#[derive(Deserialize)]
struct Claims {
    iat: Option<i64>,
    nbf: Option<i64>,
    exp: Option<i64>,
    jti: Option<String>,
    payload_hash: Option<String>,
}

/// What a verified token says beyond "valid now for this body".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// The token's id (replay detection), when it has one.
    pub jti: Option<String>,
    /// Seconds from `now` until the token is no longer accepted: the end
    /// of the `iat` window, or `exp` if sooner (at least 1).
    pub valid_for_secs: u64,
}

/// Verifies signed callbacks with one signature secret. `Debug` hides it.
#[derive(Clone)]
pub struct SignatureVerifier {
    key: DecodingKey,
    max_age: Duration,
    max_skew: Duration,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("secret", &"[redacted]")
            .field("max_age", &self.max_age)
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

/// Lowercase hex SHA-256 of `body`.
pub fn payload_hash(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl SignatureVerifier {
    /// With the signature secret and the default window.
    pub fn new(secret: &Secret) -> Self {
        Self {
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
            max_age: DEFAULT_MAX_AGE,
            max_skew: DEFAULT_MAX_SKEW,
        }
    }

    /// Sets how old `iat` may be and how far ahead.
    pub fn with_window(mut self, max_age: Duration, max_skew: Duration) -> Self {
        self.max_age = max_age;
        self.max_skew = max_skew;
        self
    }

    /// Checks the `Authorization` header value against the raw body at `now`.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        self.verify_claims(authorization, body, now).map(|_| ())
    }

    /// [`Self::verify`], returning the claims a caller may bind further
    /// (the `jti` against replays, for as long as the token is valid).
    pub fn verify_claims(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<VerifiedClaims, SignatureError> {
        let header = authorization.ok_or(SignatureError::MissingHeader)?.trim();
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SignatureError::Malformed("not a Bearer token".into()))?;

        let mut v = Validation::new(Algorithm::HS256);
        // Time claims are checked below against the `now` we are given.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &v)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    SignatureError::BadSignature
                }
                _ => SignatureError::Malformed(e.to_string()),
            })?
            .claims;

        let now_s = now.timestamp();
        let iat = claims.iat.ok_or(SignatureError::MissingClaim("iat"))?;
        let skew = self.max_skew.as_secs() as i64;
        for t in [Some(iat), claims.nbf].into_iter().flatten() {
            if t - now_s > skew {
                return Err(SignatureError::FromTheFuture {
                    ahead_secs: t - now_s,
                });
            }
        }
        if now_s - iat > self.max_age.as_secs() as i64 {
            return Err(SignatureError::TooOld {
                age_secs: now_s - iat,
            });
        }
        if let Some(exp) = claims.exp
            && now_s >= exp
        {
            return Err(SignatureError::TooOld {
                age_secs: now_s - exp,
            });
        }

        let want = claims
            .payload_hash
            .ok_or(SignatureError::MissingClaim("payload_hash"))?
            .to_ascii_lowercase();
        if !ct_eq(want.as_bytes(), payload_hash(body).as_bytes()) {
            return Err(SignatureError::BodyHashMismatch);
        }
        let mut until = iat + self.max_age.as_secs() as i64;
        if let Some(exp) = claims.exp {
            until = until.min(exp);
        }
        Ok(VerifiedClaims {
            jti: claims.jti.filter(|j| !j.is_empty()),
            valid_for_secs: (until - now_s).max(1) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const SECRET: &str = "test-signature-secret";
    const BODY: &[u8] =
        br#"{"status":"ringing","uuid":"u1","timestamp":"2020-01-01T12:00:00.000Z"}"#;
    const NOW: i64 = 1_700_000_000;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(NOW, 0).single().expect("t")
    }

    fn sign(claims: &Value, secret: &str) -> String {
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("sign");
        format!("Bearer {t}")
    }

    fn claims(iat: i64, body: &[u8]) -> Value {
        json!({"api_key":"abcd1234","application_id":"app","iat":iat,
               "jti":"j1","payload_hash":payload_hash(body)})
    }

    fn verifier() -> SignatureVerifier {
        SignatureVerifier::new(&Secret::new(SECRET))
    }

    #[test]
    fn valid_signature_passes() {
        let h = sign(&claims(NOW - 10, BODY), SECRET);
        assert_eq!(verifier().verify(Some(&h), BODY, now()), Ok(()));
    }

    #[test]
    fn verified_claims_give_the_jti_and_the_remaining_life() {
        let h = sign(&claims(NOW - 10, BODY), SECRET);
        assert_eq!(
            verifier().verify_claims(Some(&h), BODY, now()),
            Ok(VerifiedClaims {
                jti: Some("j1".into()),
                valid_for_secs: 290
            })
        );
        let mut c = claims(NOW - 10, BODY);
        c["exp"] = json!(NOW + 20);
        c.as_object_mut().expect("obj").remove("jti");
        assert_eq!(
            verifier().verify_claims(Some(&sign(&c, SECRET)), BODY, now()),
            Ok(VerifiedClaims {
                jti: None,
                valid_for_secs: 20
            })
        );
    }

    #[test]
    fn payload_hash_is_hex_sha256() {
        assert_eq!(
            payload_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tampered_body_is_refused() {
        let h = sign(&claims(NOW, BODY), SECRET);
        let tampered =
            br#"{"status":"answered","uuid":"u1","timestamp":"2020-01-01T12:00:00.000Z"}"#;
        assert_eq!(
            verifier().verify(Some(&h), tampered, now()),
            Err(SignatureError::BodyHashMismatch)
        );
    }

    #[test]
    fn wrong_secret_or_tampered_token_is_a_bad_signature() {
        let h = sign(&claims(NOW, BODY), "another-secret");
        assert_eq!(
            verifier().verify(Some(&h), BODY, now()),
            Err(SignatureError::BadSignature)
        );
        // Swap the payload of a valid token for another one.
        let good = sign(&claims(NOW, BODY), SECRET);
        let other = sign(&claims(NOW, b"x"), SECRET);
        let g: Vec<&str> = good.split('.').collect();
        let o: Vec<&str> = other.split('.').collect();
        let forged = format!("{}.{}.{}", g[0], o[1], g[2]);
        assert_eq!(
            verifier().verify(Some(&forged), b"x", now()),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn too_old_and_from_the_future() {
        let v = verifier();
        let old = sign(&claims(NOW - 301, BODY), SECRET);
        assert_eq!(
            v.verify(Some(&old), BODY, now()),
            Err(SignatureError::TooOld { age_secs: 301 })
        );
        let edge = sign(&claims(NOW - 300, BODY), SECRET);
        assert_eq!(v.verify(Some(&edge), BODY, now()), Ok(()));
        let future = sign(&claims(NOW + 60, BODY), SECRET);
        assert_eq!(
            v.verify(Some(&future), BODY, now()),
            Err(SignatureError::FromTheFuture { ahead_secs: 60 })
        );
        let mut c = claims(NOW - 5, BODY);
        c["exp"] = json!(NOW - 1);
        assert_eq!(
            v.verify(Some(&sign(&c, SECRET)), BODY, now()),
            Err(SignatureError::TooOld { age_secs: 1 })
        );
        let wide = verifier().with_window(Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(wide.verify(Some(&old), BODY, now()), Ok(()));
    }

    #[test]
    fn missing_or_malformed_header() {
        let v = verifier();
        assert_eq!(
            v.verify(None, BODY, now()),
            Err(SignatureError::MissingHeader)
        );
        for h in ["", "Basic abc", "Bearer ", "Bearer not.a.jwt", "Bearer x"] {
            assert!(
                matches!(
                    v.verify(Some(h), BODY, now()),
                    Err(SignatureError::Malformed(_))
                ),
                "{h}"
            );
        }
        let mut c = claims(NOW, BODY);
        c.as_object_mut().expect("obj").remove("payload_hash");
        assert_eq!(
            v.verify(Some(&sign(&c, SECRET)), BODY, now()),
            Err(SignatureError::MissingClaim("payload_hash"))
        );
        let mut c = claims(NOW, BODY);
        c.as_object_mut().expect("obj").remove("iat");
        assert_eq!(
            v.verify(Some(&sign(&c, SECRET)), BODY, now()),
            Err(SignatureError::MissingClaim("iat"))
        );
        assert!(format!("{v:?}").contains("[redacted]"));
    }
}
