//! The CampaignActor's contacts and state in PostgreSQL, scoped to one
//! tenant.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use talky_actors::call::campaign_outcome;
use talky_actors::call::lifecycle::EndCause;
use talky_actors::campaign::CampaignState;
use talky_actors::campaign_actor::{
    CampaignSettings, CampaignStore, Claim, ClaimedCall, ClaimedContact, DueContact, GiveUpReason,
    StateWrite,
};
use talky_actors::ids::{CampaignId, ContactId, TenantId};
use talky_actors::ports::{PortError, PortResult};
use talky_actors::schedule::retry::{CallOutcome, NextStep, RetryPolicy};
use talky_actors::schedule::window::{CallingWindow, DaySet};

use super::with_conn;
use crate::db::{self, DbError};

/// The PostgreSQL campaign store of one tenant.
#[derive(Clone)]
pub struct PgCampaignStore {
    /// Pool.
    pub pool: db::Pool,
    /// The tenant every query is scoped to.
    pub tenant: TenantId,
    /// Per-operation timeout.
    pub timeout: Duration,
}

/// A contact's zones: its own, or every zone of its number's country.
fn zones(timezone: Option<&str>, phone: &str) -> Vec<Tz> {
    match timezone.and_then(|z| z.parse::<Tz>().ok()) {
        Some(tz) => vec![tz],
        None => crate::phone::candidate_zones(phone),
    }
}

fn not_found(campaign: CampaignId) -> PortError {
    PortError::Rejected(format!("campaign {campaign} does not exist"))
}

impl PgCampaignStore {
    async fn settings(&self, campaign: CampaignId) -> PortResult<(CampaignSettings, i32)> {
        let tenant = self.tenant;
        let row = with_conn(&self.pool, self.timeout, async move |conn| {
            db::campaigns::get(conn, tenant, campaign).await
        })
        .await?
        .ok_or_else(|| not_found(campaign))?;
        let days = DaySet::from_bits(row.window_days)
            .map_err(|e| PortError::Protocol(format!("campaign window: {e}")))?;
        let window = CallingWindow::new(row.window_start, row.window_end, days)
            .map_err(|e| PortError::Protocol(format!("campaign window: {e}")))?;
        let settings = CampaignSettings {
            tenant,
            campaign,
            name: row.name.clone(),
            state: row.state(),
            window,
            retry: RetryPolicy::new(
                row.retry_backoff_secs.max(0) as u32,
                row.max_attempts.max(1) as u32,
            ),
            max_concurrent_calls: row.max_concurrent_calls.max(0) as u32,
        };
        Ok((settings, row.max_attempts))
    }
}

impl CampaignStore for PgCampaignStore {
    async fn load(&self, campaign: CampaignId) -> PortResult<CampaignSettings> {
        self.settings(campaign).await.map(|(s, _)| s)
    }

    async fn state(&self, campaign: CampaignId) -> PortResult<CampaignState> {
        let tenant = self.tenant;
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::campaigns::stored_state(conn, tenant, campaign).await
        })
        .await?
        .ok_or_else(|| not_found(campaign))
    }

    async fn claimed(&self, campaign: CampaignId) -> PortResult<Vec<ClaimedContact>> {
        let tenant = self.tenant;
        with_conn(&self.pool, self.timeout, async move |conn| {
            let contacts = db::contacts::with_status(conn, tenant, campaign, "in_progress").await?;
            let mut out = Vec::with_capacity(contacts.len());
            for c in contacts {
                let attempt = c.attempts + 1;
                let call = db::calls::for_attempt(conn, tenant, campaign, ContactId(c.id), attempt)
                    .await?;
                let call = match call {
                    None => ClaimedCall::NotPlaced,
                    Some(call) if call.status != "finished" => ClaimedCall::Live,
                    Some(call) => {
                        let cause = EndCause::from_stored(
                            call.outcome.as_deref().unwrap_or("failed"),
                            call.hangup_reason.as_deref().unwrap_or(""),
                        );
                        ClaimedCall::Ended(campaign_outcome(
                            &cause,
                            call.do_not_call,
                            call.callback_at,
                        ))
                    }
                };
                out.push(ClaimedContact {
                    contact: ContactId(c.id),
                    attempt: attempt as u32,
                    call,
                });
            }
            Ok::<_, DbError>(out)
        })
        .await
    }

    async fn due_contacts(
        &self,
        campaign: CampaignId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> PortResult<Vec<DueContact>> {
        let (_, max_attempts) = self.settings(campaign).await?;
        let tenant = self.tenant;
        let rows = with_conn(&self.pool, self.timeout, async move |conn| {
            db::contacts::due(conn, tenant, campaign, now, max_attempts, i64::from(limit)).await
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|c| DueContact {
                id: ContactId(c.id),
                zones: zones(c.timezone.as_deref(), &c.phone),
                phone: c.phone,
                attempts: c.attempts.max(0) as u32,
            })
            .collect())
    }

    async fn claim(&self, campaign: CampaignId, contact: ContactId) -> PortResult<Claim> {
        let tenant = self.tenant;
        with_conn(&self.pool, self.timeout, async move |conn| {
            if db::contacts::claim(conn, tenant, campaign, contact).await? {
                return Ok(Some(Claim::Claimed));
            }
            // Nothing claimed: say whether the campaign stopped running
            // (the actor follows that at once) or the contact went.
            Ok(
                match db::campaigns::stored_state(conn, tenant, campaign).await? {
                    None => None,
                    Some(CampaignState::Running) => Some(Claim::NotDue),
                    Some(stored) => Some(Claim::NotRunning(stored)),
                },
            )
        })
        .await?
        .ok_or_else(|| not_found(campaign))
    }

    async fn release(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        until: DateTime<Utc>,
    ) -> PortResult<()> {
        let tenant = self.tenant;
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::contacts::release(conn, tenant, campaign, contact, until).await
        })
        .await
    }

    async fn defer(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        until: DateTime<Utc>,
    ) -> PortResult<()> {
        let tenant = self.tenant;
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::contacts::defer(conn, tenant, campaign, contact, until).await
        })
        .await
    }

    async fn give_up(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        reason: GiveUpReason,
    ) -> PortResult<()> {
        let tenant = self.tenant;
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::contacts::give_up(conn, tenant, campaign, contact, reason.as_str()).await
        })
        .await
    }

    async fn record_outcome(
        &self,
        campaign: CampaignId,
        contact: ContactId,
        outcome: CallOutcome,
        next: NextStep,
        attempts: u32,
    ) -> PortResult<()> {
        let tenant = self.tenant;
        let next_at = next.retry_at();
        let status = next.status().as_str();
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::contacts::record_outcome(
                conn,
                tenant,
                campaign,
                contact,
                outcome.as_str(),
                status,
                next_at,
                attempts.min(i32::MAX as u32) as i32,
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn set_state(
        &self,
        campaign: CampaignId,
        state: CampaignState,
    ) -> PortResult<StateWrite> {
        let tenant = self.tenant;
        let stored = with_conn(&self.pool, self.timeout, async move |conn| {
            db::campaigns::set_state(conn, tenant, campaign, state).await
        })
        .await?
        .ok_or_else(|| not_found(campaign))?;
        Ok(if stored == state {
            StateWrite::Written
        } else {
            StateWrite::Refused(stored)
        })
    }

    async fn remaining(&self, campaign: CampaignId) -> PortResult<u64> {
        let tenant = self.tenant;
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::contacts::remaining(conn, tenant, campaign).await
        })
        .await
        .map(|n| n.max(0) as u64)
    }
}
