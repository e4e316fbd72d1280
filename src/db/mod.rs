//! PostgreSQL through diesel-async and a bb8 pool.
//!
//! Model functions (one module per table family) take a connection, so a
//! handler composes several of them in one transaction. Every query on
//! tenant-owned rows takes the `TenantId` and filters on it: another
//! tenant's row is simply not found.

pub mod analyses;
pub mod api_keys;
pub mod calls;
pub mod campaigns;
pub mod contacts;
pub mod dnc;
pub mod recordings;
pub mod schema;
pub mod summary;
pub mod tenants;

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;

use crate::config::DatabaseConfig;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The pool every handler and actor adapter draws from.
pub type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;
/// One pooled connection.
pub type Conn<'a> = bb8::PooledConnection<'a, AsyncDieselConnectionManager<AsyncPgConnection>>;

/// What can go wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time (database down or pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] DieselError),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl DbError {
    /// Whether this is a unique-constraint violation (a duplicate).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for DbError {
    fn from(e: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// Builds the pool. Every connection gets the statement timeout. The pool
/// connects lazily, so start-up does not fail on a database that is still
/// coming up; readiness reports it instead.
pub fn pool(url: &str, config: &DatabaseConfig) -> Pool {
    sized_pool(url, config, config.pool_size)
}

/// The live calls' own pool (`database.live_pool_size`): the call, dial
/// and campaign stores, the reconciler, the provider's webhooks and the
/// media socket draw from it, so no API load can make a live call wait.
pub fn live_pool(url: &str, config: &DatabaseConfig) -> Pool {
    sized_pool(url, config, config.live_pool_size)
}

/// Connections of the webhook delivery worker's own pool: it holds one
/// only for a claim or a result, never while a request is in flight.
pub const WEBHOOKS_POOL_SIZE: u32 = 2;

/// The webhook delivery worker's own small pool: no receiver, however
/// slow, can take a connection from the calls or the API.
pub fn webhooks_pool(url: &str, config: &DatabaseConfig) -> Pool {
    sized_pool(url, config, WEBHOOKS_POOL_SIZE)
}

fn sized_pool(url: &str, config: &DatabaseConfig, size: u32) -> Pool {
    let statement_timeout_ms = config.statement_timeout_ms;
    let mut manager_config = ManagerConfig::default();
    manager_config.custom_setup = Box::new(move |url| {
        let url = url.to_string();
        async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            diesel::sql_query(format!("SET statement_timeout = {statement_timeout_ms}"))
                .execute(&mut conn)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::new_with_config(url, manager_config);
    bb8::Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
        .build_unchecked(manager)
}

/// Applies pending migrations; returns the versions applied.
pub async fn migrate(url: &str) -> Result<Vec<String>, DbError> {
    let conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect())
            .map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?
}

/// A cheap round trip, for readiness.
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

/// Keyset pagination: ids are UUIDv7, so "after this id" is "created later".
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Rows to return, at most.
    pub limit: i64,
    /// Return rows after this id (the previous page's last id).
    pub after: Option<uuid::Uuid>,
}
