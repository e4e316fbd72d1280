//! Operator API keys. A key is `tk_` followed by 40 random base62
//! characters; only its SHA-256 is stored, so a database leak yields no
//! usable key. The first characters are kept as a prefix to tell keys apart.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::Rng;
use sha2::{Digest, Sha256};
use talky_actors::ids::{ApiKeyId, TenantId};
use uuid::Uuid;

use super::DbError;
use super::schema::api_keys;

/// Every key starts with this, so leaked keys are easy to scan for.
pub const KEY_PREFIX: &str = "tk_";
/// Random characters after the prefix (~238 bits).
const KEY_RANDOM_LEN: usize = 40;
/// Characters of the key kept in clear as its display prefix.
const DISPLAY_PREFIX_LEN: usize = 10;

/// A stored key (without the secret).
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    /// Primary key.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// Operator's label.
    pub name: String,
    /// First characters of the key, shown in listings.
    pub prefix: String,
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new key and the one copy of its secret.
pub struct NewKey {
    /// The stored row.
    pub key: ApiKey,
    /// The secret, to be shown once.
    pub secret: String,
}

/// The hash under which a key is stored and looked up.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn generate_secret() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let random: String = (0..KEY_RANDOM_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{KEY_PREFIX}{random}")
}

/// Creates a key for a tenant.
pub async fn create(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    name: &str,
) -> Result<NewKey, DbError> {
    let secret = generate_secret();
    let row = ApiKey {
        id: ApiKeyId::new().0,
        tenant_id: tenant.0,
        name: name.to_string(),
        prefix: secret[..DISPLAY_PREFIX_LEN].to_string(),
        key_hash: hash(&secret),
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    let key = diesel::insert_into(api_keys::table)
        .values(&row)
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await?;
    Ok(NewKey { key, secret })
}

/// The tenant and key id a secret authenticates, if it is a live key.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    secret: &str,
) -> Result<Option<(TenantId, ApiKeyId)>, DbError> {
    if !secret.starts_with(KEY_PREFIX) {
        return Ok(None);
    }
    let found: Option<(Uuid, Uuid, Option<DateTime<Utc>>)> = api_keys::table
        .filter(api_keys::key_hash.eq(hash(secret)))
        .filter(api_keys::revoked_at.is_null())
        .select((api_keys::tenant_id, api_keys::id, api_keys::last_used_at))
        .first(conn)
        .await
        .optional()?;
    let Some((tenant, id, last_used)) = found else {
        return Ok(None);
    };
    let now = Utc::now();
    if last_used.is_none_or(|t| now - t > chrono::Duration::minutes(1)) {
        diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
            .set(api_keys::last_used_at.eq(now))
            .execute(conn)
            .await?;
    }
    Ok(Some((TenantId(tenant), ApiKeyId(id))))
}

/// A tenant's keys, newest last.
pub async fn list(conn: &mut AsyncPgConnection, tenant: TenantId) -> Result<Vec<ApiKey>, DbError> {
    Ok(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant.0))
        .order(api_keys::id)
        .select(ApiKey::as_select())
        .load(conn)
        .await?)
}

/// Revokes a key; `None` when the tenant has no such key.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: ApiKeyId,
) -> Result<Option<ApiKey>, DbError> {
    let existing: Option<ApiKey> = api_keys::table
        .filter(api_keys::tenant_id.eq(tenant.0))
        .filter(api_keys::id.eq(id.0))
        .select(ApiKey::as_select())
        .first(conn)
        .await
        .optional()?;
    let Some(existing) = existing else {
        return Ok(None);
    };
    if existing.revoked_at.is_some() {
        return Ok(Some(existing));
    }
    Ok(Some(
        diesel::update(api_keys::table.filter(api_keys::id.eq(id.0)))
            .set(api_keys::revoked_at.eq(Utc::now()))
            .returning(ApiKey::as_returning())
            .get_result(conn)
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_look_right_and_differ() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + KEY_RANDOM_LEN);
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }
}
