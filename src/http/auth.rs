//! Credentials: a tenant's API key or the admin token, both as
//! `Authorization: Bearer <secret>`.

use sha2::{Digest, Sha256};
use talky_actors::ids::TenantId;
use warp::Filter;

use super::problem::ApiError;
use super::{Ctx, with_ctx};
use crate::db;

fn bearer(header: Option<&str>) -> Result<&str, ApiError> {
    let header = header.ok_or_else(|| {
        ApiError::Unauthorized("missing Authorization header (expected: Bearer <API key>)".into())
    })?;
    let (scheme, token) = header.trim().split_once(' ').ok_or_else(|| {
        ApiError::Unauthorized("malformed Authorization header (expected: Bearer <API key>)".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "malformed Authorization header (expected: Bearer <API key>)".into(),
        ));
    }
    Ok(token.trim())
}

/// The tenant whose live API key the request carries, within the key's
/// request rate (429 with `Retry-After` past it).
pub fn tenant(ctx: Ctx) -> impl Filter<Extract = (TenantId,), Error = warp::Rejection> + Clone {
    with_ctx(ctx)
        .and(warp::header::optional::<String>("authorization"))
        .and_then(|ctx: Ctx, header: Option<String>| async move {
            let secret = bearer(header.as_deref())?;
            let mut conn = ctx.conn().await?;
            match db::api_keys::authenticate(&mut conn, secret).await {
                Ok(Some((tenant, key))) => {
                    drop(conn);
                    match ctx.limiter.check(key, std::time::Instant::now()) {
                        Ok(()) => Ok(tenant),
                        Err(wait) => {
                            let retry_after_secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                            Err(warp::Rejection::from(ApiError::TooManyRequests {
                                detail: format!(
                                    "this API key is over its request rate ({} per second, \
                                     bursts of {}); retry after {retry_after_secs} s",
                                    ctx.config.api.rate_per_second, ctx.config.api.burst
                                ),
                                retry_after_secs,
                            }))
                        }
                    }
                }
                Ok(None) => Err(warp::Rejection::from(ApiError::Unauthorized(
                    "unknown or revoked API key".into(),
                ))),
                Err(e) => Err(ApiError::from(e).into()),
            }
        })
}

/// Requires the admin token. With none configured the admin API is off
/// and every admin request is refused.
pub fn admin(ctx: Ctx) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    with_ctx(ctx)
        .and(warp::header::optional::<String>("authorization"))
        .and_then(|ctx: Ctx, header: Option<String>| async move {
            let secret = bearer(header.as_deref())?;
            let expected = ctx.config.admin.token.expose();
            if expected.is_empty() {
                return Err(warp::Rejection::from(ApiError::Unauthorized(
                    "the admin API is disabled (TALKY_ADMIN_TOKEN is not set)".into(),
                )));
            }
            if !constant_time_eq(secret, expected) {
                return Err(ApiError::Unauthorized("wrong admin token".into()).into());
            }
            Ok(())
        })
        .untuple_one()
}

/// Compares digests, so the time taken says nothing about the token.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let da = Sha256::digest(a.as_bytes());
    let db = Sha256::digest(b.as_bytes());
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer tk_abc")).ok(), Some("tk_abc"));
        assert_eq!(bearer(Some("bearer  tk_abc ")).ok(), Some("tk_abc"));
        assert!(bearer(None).is_err());
        assert!(bearer(Some("Basic abc")).is_err());
        assert!(bearer(Some("Bearer")).is_err());
        assert!(bearer(Some("Bearer ")).is_err());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq("secret", "secret"));
        assert!(!constant_time_eq("secret", "secreT"));
        assert!(!constant_time_eq("", "secret"));
    }
}
