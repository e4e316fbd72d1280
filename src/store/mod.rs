//! PostgreSQL adapters of the actor ports: the CallActor's [`CallStore`],
//! the DialerActor's [`DialStore`] and the CampaignActor's
//! [`CampaignStore`]. Each call takes a pooled connection under a timeout
//! and maps failures to `PortError::Unavailable`, so the actors' own retry
//! and supervision rules apply.
//!
//! [`CallStore`]: talky_actors::ports::CallStore
//! [`DialStore`]: talky_actors::dialer::DialStore
//! [`CampaignStore`]: talky_actors::campaign_actor::CampaignStore

mod call;
mod campaign;
mod dial;

use std::time::Duration;

use talky_actors::ports::PortError;

pub use call::PgCallStore;
pub use campaign::PgCampaignStore;
pub(crate) use dial::media_token;
pub use dial::{PgDialStore, PgLegLedger};

use crate::db::{self, DbError};

/// Default time one store operation may take.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

impl From<DbError> for PortError {
    fn from(e: DbError) -> Self {
        PortError::Unavailable(e.to_string())
    }
}

/// Runs `work` with a pooled connection under `timeout`.
pub(crate) async fn with_conn<T, F>(
    pool: &db::Pool,
    timeout: Duration,
    work: F,
) -> Result<T, PortError>
where
    F: AsyncFnOnce(&mut diesel_async::AsyncPgConnection) -> Result<T, DbError>,
{
    let run = async {
        let mut conn = pool.get().await.map_err(DbError::from)?;
        work(&mut conn).await
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result.map_err(PortError::from),
        Err(_) => Err(PortError::Timeout(format!(
            "store operation after {timeout:?}"
        ))),
    }
}
