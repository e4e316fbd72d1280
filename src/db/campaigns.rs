//! Campaigns: an agent, a calling policy and a contact list.

use chrono::{DateTime, NaiveTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use talky_actors::campaign::{CampaignCommand, CampaignState, IllegalTransition};
use talky_actors::ids::{CampaignId, TenantId};
use uuid::Uuid;

use super::schema::{calls, campaigns};
use super::{DbError, Page};

/// Bounds of `ring_timeout_secs` (the migration's CHECK): 15 s, as the US
/// Telemarketing Sales Rule asks before abandoning a call, to Vonage's
/// longest `ringing_timer`.
pub const RING_TIMEOUT_SECS: (i32, i32) = (15, 120);
/// Bounds of `reprompt_after_secs` (the migration's CHECK).
pub const REPROMPT_AFTER_SECS: (i32, i32) = (3, 60);

/// A stored campaign.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = campaigns)]
pub struct Campaign {
    /// Primary key.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// Operator's label.
    pub name: String,
    /// Lifecycle state (`CampaignState` name).
    pub state: String,
    /// The agent's instructions.
    pub system_prompt: String,
    /// First words of every answered call.
    pub greeting: String,
    /// Message left on voicemail when `voicemail_action` says so.
    pub voicemail_message: Option<String>,
    /// `leave_message` or `hangup`.
    pub voicemail_action: String,
    /// TTS voice id.
    pub voice: String,
    /// BCP 47 language of the conversation.
    pub language: String,
    /// LLM model name.
    pub llm_model: String,
    /// E.164 number shown to the callee.
    pub caller_id: String,
    /// Calling window start, contact's local time.
    pub window_start: NaiveTime,
    /// Calling window end, contact's local time.
    pub window_end: NaiveTime,
    /// Window days, bit 0 = Monday.
    pub window_days: i16,
    /// Calls of this campaign live at once, at most.
    pub max_concurrent_calls: i32,
    /// Dial attempts per contact, at most.
    pub max_attempts: i32,
    /// Base retry delay (seconds).
    pub retry_backoff_secs: i32,
    /// Hard limit on a call's length (seconds).
    pub max_call_duration_secs: i32,
    /// Record both sides of each call.
    pub recording_enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Which provider(s) place its calls (`Telephony` name).
    pub telephony: String,
    /// Post-call analysis settings (`analysis::settings::AnalysisSettings`
    /// as validated); `None`: calls are not analysed.
    pub analysis: Option<serde_json::Value>,
    /// Days a ready recording is kept before the sweeper deletes it;
    /// `None`: kept until the campaign is deleted.
    pub recording_retention_days: Option<i32>,
    /// E.164 number a call is handed to (cold transfer); with
    /// `transfer_announce`, or neither (a CHECK holds them together).
    pub transfer_number: Option<String>,
    /// The line the agent says before the transfer.
    pub transfer_announce: Option<String>,
    /// How long a call rings before it is given up as unanswered
    /// (seconds).
    pub ring_timeout_secs: i32,
    /// Callee silence before the agent reprompts (seconds).
    pub reprompt_after_secs: i32,
}

impl Campaign {
    /// The typed state; a value outside the CHECK constraint cannot exist.
    pub fn state(&self) -> CampaignState {
        self.state.parse().unwrap_or(CampaignState::Draft)
    }

    /// The transfer setting, when the campaign has one.
    pub fn transfer(&self) -> Option<talky_actors::call::TransferConfig> {
        match (&self.transfer_number, &self.transfer_announce) {
            (Some(number), Some(announce)) => Some(talky_actors::call::TransferConfig {
                number: number.clone(),
                announce: announce.clone(),
            }),
            _ => None,
        }
    }

    /// The typed telephony; a value outside the CHECK constraint cannot
    /// exist.
    pub fn telephony(&self) -> crate::providers::telephony::Telephony {
        self.telephony.parse().unwrap_or_default()
    }

    /// The typed analysis settings; `None` when the campaign has none (a
    /// stored value is always one the API validated).
    pub fn analysis(&self) -> Option<crate::analysis::settings::AnalysisSettings> {
        self.analysis
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
    }
}

/// Why a lifecycle command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// No such campaign for this tenant.
    #[error("campaign not found")]
    NotFound,
    /// The state machine refused it.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for TransitionError {
    fn from(e: diesel::result::Error) -> Self {
        TransitionError::Db(DbError::Query(e))
    }
}

/// Stores a new campaign.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    campaign: &Campaign,
) -> Result<Campaign, DbError> {
    Ok(diesel::insert_into(campaigns::table)
        .values(campaign)
        .returning(Campaign::as_returning())
        .get_result(conn)
        .await?)
}

/// One campaign of a tenant.
pub async fn get(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Option<Campaign>, DbError> {
    Ok(campaigns::table
        .filter(campaigns::tenant_id.eq(tenant.0))
        .filter(campaigns::id.eq(id.0))
        .select(Campaign::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A page of a tenant's campaigns, optionally in one state.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    state: Option<CampaignState>,
    page: Page,
) -> Result<Vec<Campaign>, DbError> {
    let mut query = campaigns::table
        .filter(campaigns::tenant_id.eq(tenant.0))
        .select(Campaign::as_select())
        .order(campaigns::id)
        .limit(page.limit)
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(campaigns::state.eq(state.as_str()));
    }
    if let Some(after) = page.after {
        query = query.filter(campaigns::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// Writes a campaign's settings back (state and timestamps excepted);
/// `None` when there is no such campaign.
pub async fn save(
    conn: &mut AsyncPgConnection,
    campaign: &Campaign,
) -> Result<Option<Campaign>, DbError> {
    Ok(diesel::update(
        campaigns::table
            .filter(campaigns::tenant_id.eq(campaign.tenant_id))
            .filter(campaigns::id.eq(campaign.id)),
    )
    .set((
        campaigns::name.eq(&campaign.name),
        campaigns::system_prompt.eq(&campaign.system_prompt),
        campaigns::greeting.eq(&campaign.greeting),
        campaigns::voicemail_message.eq(&campaign.voicemail_message),
        campaigns::voicemail_action.eq(&campaign.voicemail_action),
        campaigns::voice.eq(&campaign.voice),
        campaigns::language.eq(&campaign.language),
        campaigns::llm_model.eq(&campaign.llm_model),
        campaigns::caller_id.eq(&campaign.caller_id),
        campaigns::window_start.eq(campaign.window_start),
        campaigns::window_end.eq(campaign.window_end),
        campaigns::window_days.eq(campaign.window_days),
        campaigns::max_concurrent_calls.eq(campaign.max_concurrent_calls),
        campaigns::max_attempts.eq(campaign.max_attempts),
        campaigns::retry_backoff_secs.eq(campaign.retry_backoff_secs),
        campaigns::max_call_duration_secs.eq(campaign.max_call_duration_secs),
        campaigns::ring_timeout_secs.eq(campaign.ring_timeout_secs),
        campaigns::reprompt_after_secs.eq(campaign.reprompt_after_secs),
        campaigns::recording_enabled.eq(campaign.recording_enabled),
        campaigns::telephony.eq(&campaign.telephony),
        campaigns::analysis.eq(&campaign.analysis),
        campaigns::recording_retention_days.eq(campaign.recording_retention_days),
        campaigns::transfer_number.eq(&campaign.transfer_number),
        campaigns::transfer_announce.eq(&campaign.transfer_announce),
        campaigns::updated_at.eq(Utc::now()),
    ))
    .returning(Campaign::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Deletes a campaign with its contacts and calls.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
) -> Result<bool, DbError> {
    conn.transaction::<_, DbError, _>(async move |conn| {
        // Its calls go with it (cascade); their recordings' files and
        // objects are queued for the sweeper in the same transaction.
        super::recordings::queue_campaign_deletions(conn, tenant, id).await?;
        let n = diesel::delete(
            campaigns::table
                .filter(campaigns::tenant_id.eq(tenant.0))
                .filter(campaigns::id.eq(id.0)),
        )
        .execute(conn)
        .await?;
        Ok(n > 0)
    })
    .await
}

/// Locks a campaign row for the rest of the transaction.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Option<Campaign>, DbError> {
    Ok(campaigns::table
        .filter(campaigns::tenant_id.eq(tenant.0))
        .filter(campaigns::id.eq(id.0))
        .select(Campaign::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Whether any call of the campaign is not finished yet.
pub async fn has_live_calls(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        calls::table
            .filter(calls::tenant_id.eq(tenant.0))
            .filter(calls::campaign_id.eq(id.0))
            .filter(calls::status.ne("finished")),
    ))
    .get_result(conn)
    .await?)
}

/// Carries out an operator command under a row lock, so two concurrent
/// commands cannot both pass the state check.
pub async fn transition(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
    command: CampaignCommand,
) -> Result<Campaign, TransitionError> {
    conn.transaction::<_, TransitionError, _>(async move |conn| {
        let campaign = lock(conn, tenant, id)
            .await?
            .ok_or(TransitionError::NotFound)?;
        let live = has_live_calls(conn, tenant, id).await?;
        let next = campaign.state().apply(command, live)?;
        Ok(
            diesel::update(campaigns::table.filter(campaigns::id.eq(id.0)))
                .set((
                    campaigns::state.eq(next.as_str()),
                    campaigns::updated_at.eq(Utc::now()),
                ))
                .returning(Campaign::as_returning())
                .get_result(conn)
                .await?,
        )
    })
    .await
}

/// Stores a lifecycle state chosen by the CampaignActor, only over a
/// state it may follow ([`CampaignState::may_replace`]): one statement,
/// so an operator's command committed meanwhile (through any node) is
/// never overwritten. Returns the state stored afterwards (`state` when
/// written, else whatever the campaign holds); `None`: no such campaign.
pub async fn set_state(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
    state: CampaignState,
) -> Result<Option<CampaignState>, DbError> {
    let from: Vec<&'static str> = state
        .valid_from()
        .iter()
        .filter(|s| **s != state)
        .map(|s| s.as_str())
        .collect();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let now = Utc::now();
        // Only a real change: `campaign.completed` is reported once.
        let moved = diesel::update(
            campaigns::table
                .filter(campaigns::tenant_id.eq(tenant.0))
                .filter(campaigns::id.eq(id.0))
                .filter(campaigns::state.eq_any(from)),
        )
        .set((
            campaigns::state.eq(state.as_str()),
            campaigns::updated_at.eq(now),
        ))
        .returning(Campaign::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        if let Some(campaign) = moved {
            if state == CampaignState::Completed {
                use crate::webhooks::{events, outbox};
                let data = events::campaign_completed(campaign.id, &campaign.name, now);
                outbox::emit(conn, tenant.0, events::CAMPAIGN_COMPLETED, data, now).await?;
            }
            return Ok(Some(state));
        }
        stored_state(conn, tenant, id).await
    })
    .await
}

/// A campaign's stored lifecycle state alone; `None`: no such campaign.
pub async fn stored_state(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Option<CampaignState>, DbError> {
    let state: Option<String> = campaigns::table
        .filter(campaigns::tenant_id.eq(tenant.0))
        .filter(campaigns::id.eq(id.0))
        .select(campaigns::state)
        .first(conn)
        .await
        .optional()?;
    // A value outside the CHECK constraint cannot be stored.
    Ok(state.map(|s| s.parse().unwrap_or(CampaignState::Draft)))
}

/// Every campaign (all tenants) in a state with a live actor: running,
/// paused or stopping. Read at start-up to resume them.
pub async fn live(conn: &mut AsyncPgConnection) -> Result<Vec<Campaign>, DbError> {
    Ok(campaigns::table
        .filter(campaigns::state.eq_any(["running", "paused", "stopping"]))
        .order(campaigns::id)
        .select(Campaign::as_select())
        .load(conn)
        .await?)
}
