//! Calls, their raw provider events and their turns.
//!
//! A call row is first a dial intent: written before the provider is asked
//! to call, unique on (campaign, contact, attempt), so whatever crashes in
//! between, one attempt is dialled at most once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use talky_actors::ids::{CallId, CampaignId, ContactId, TenantId};
use uuid::Uuid;

use super::schema::{call_events, call_turns, calls};
use super::{DbError, Page};
use crate::providers::telephony::TelephonyProvider;

/// The call `id` of `tenant`: what every update of one call filters on.
type OneCall = diesel::dsl::Filter<
    diesel::dsl::Filter<calls::table, diesel::dsl::Eq<calls::tenant_id, Uuid>>,
    diesel::dsl::Eq<calls::id, Uuid>,
>;

fn one(tenant: TenantId, id: CallId) -> OneCall {
    calls::table
        .filter(calls::tenant_id.eq(tenant.0))
        .filter(calls::id.eq(id.0))
}

/// A stored call.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = calls)]
pub struct Call {
    /// Primary key.
    pub id: Uuid,
    /// Owner.
    pub tenant_id: Uuid,
    /// Campaign that placed it.
    pub campaign_id: Uuid,
    /// Contact called.
    pub contact_id: Uuid,
    /// Which attempt of the contact this is (1-based).
    pub attempt: i32,
    /// Number dialled (E.164), as it was at dial time.
    pub phone: String,
    /// Telephony provider.
    pub provider: String,
    /// The provider's id, once it accepted the call.
    pub provider_call_id: Option<String>,
    /// Where the call is in its state machine.
    pub status: String,
    /// How it ended.
    pub outcome: Option<String>,
    /// Why it was hung up, in words.
    pub hangup_reason: Option<String>,
    /// Intent written.
    pub created_at: DateTime<Utc>,
    /// Provider asked to dial.
    pub dialed_at: Option<DateTime<Utc>>,
    /// Answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Answered-to-end, seconds.
    pub duration_secs: Option<i32>,
    /// SHA-256 of the single-use media socket token.
    pub media_token_hash: Option<Vec<u8>>,
    /// When the media token was spent.
    pub media_token_used_at: Option<DateTime<Utc>>,
    /// The callee asked to be called back then.
    pub callback_at: Option<DateTime<Utc>>,
    /// The callee asked never to be called again.
    pub do_not_call: bool,
    /// The node (process) that runs the call (see `reconcile`).
    pub node_id: Option<String>,
    /// When a cold transfer was asked of the provider (see `reconcile`).
    pub transfer_requested_at: Option<DateTime<Utc>>,
}

impl Call {
    /// The provider the row names (a value outside the CHECK constraint
    /// cannot exist).
    pub fn telephony_provider(&self) -> TelephonyProvider {
        TelephonyProvider::parse(&self.provider).unwrap_or(TelephonyProvider::Vonage)
    }

    /// The leg's id as the telephony port takes it (qualified with its
    /// provider: `crate::providers::telephony`), once known.
    pub fn leg(&self) -> Option<talky_actors::ports::ProviderCallId> {
        self.provider_call_id
            .as_deref()
            .map(|id| crate::providers::telephony::leg_id(self.telephony_provider(), id))
    }
}

/// A raw provider event.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = call_events)]
pub struct CallEvent {
    /// Primary key.
    pub id: i64,
    /// Owner, once the call is known.
    pub tenant_id: Option<Uuid>,
    /// The call, once known.
    pub call_id: Option<Uuid>,
    /// Provider that sent it.
    pub provider: String,
    /// Provider's call id.
    pub provider_call_id: String,
    /// Provider's status name, kept as sent.
    pub status: String,
    /// Provider's timestamp.
    pub provider_timestamp: DateTime<Utc>,
    /// The event as received.
    pub payload: serde_json::Value,
    /// When we stored it.
    pub received_at: DateTime<Utc>,
}

/// One turn of a conversation.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = call_turns)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct CallTurn {
    /// Owner.
    pub tenant_id: Uuid,
    /// The call.
    pub call_id: Uuid,
    /// Order within the call, from 0.
    pub seq: i32,
    /// `agent` or `user`.
    pub speaker: String,
    /// What was said or generated.
    pub text: String,
    /// Agent turns: only what the callee heard.
    pub heard_text: Option<String>,
    /// Cut short by a barge-in or hang-up.
    pub interrupted: bool,
    /// Turn start.
    pub started_at: DateTime<Utc>,
    /// Turn end.
    pub ended_at: Option<DateTime<Utc>>,
    /// End of user speech -> STT final (ms).
    pub stt_ms: Option<i32>,
    /// STT final -> LLM first token (ms).
    pub llm_first_token_ms: Option<i32>,
    /// LLM first token -> first TTS audio (ms).
    pub tts_first_audio_ms: Option<i32>,
    /// First TTS audio -> first frame sent (ms).
    pub first_frame_ms: Option<i32>,
    /// End of user speech -> first frame sent (ms).
    pub voice_to_voice_ms: Option<i32>,
}

/// Filters for listing calls.
#[derive(Clone, Debug, Default)]
pub struct CallFilter {
    /// Only this campaign's calls.
    pub campaign: Option<CampaignId>,
    /// Only calls in this status.
    pub status: Option<String>,
    /// Only calls with this outcome.
    pub outcome: Option<String>,
}

/// A dial intent to write: one attempt of one contact, by one node.
#[derive(Clone, Copy, Debug)]
pub struct NewIntent<'a> {
    /// Owner.
    pub tenant: TenantId,
    /// The campaign dialling.
    pub campaign: CampaignId,
    /// The contact.
    pub contact: ContactId,
    /// Which attempt (from 1).
    pub attempt: i32,
    /// The number, as dialled.
    pub phone: &'a str,
    /// SHA-256 of the media socket's single-use token.
    pub media_token_hash: Option<&'a [u8]>,
    /// The node that runs the call (`redis.node_id`).
    pub node: Option<&'a str>,
}

/// Writes a dial intent. A second intent for the same (campaign, contact,
/// attempt) fails with a unique violation (`DbError::is_unique_violation`).
pub async fn create_intent(
    conn: &mut AsyncPgConnection,
    intent: NewIntent<'_>,
) -> Result<Call, DbError> {
    let NewIntent {
        tenant,
        campaign,
        contact,
        attempt,
        phone,
        media_token_hash,
        node,
    } = intent;
    let call = Call {
        id: CallId::new().0,
        tenant_id: tenant.0,
        campaign_id: campaign.0,
        contact_id: contact.0,
        attempt,
        phone: phone.to_string(),
        provider: "vonage".into(),
        provider_call_id: None,
        status: "queued".into(),
        outcome: None,
        hangup_reason: None,
        created_at: Utc::now(),
        dialed_at: None,
        answered_at: None,
        ended_at: None,
        duration_secs: None,
        media_token_hash: media_token_hash.map(<[u8]>::to_vec),
        media_token_used_at: None,
        callback_at: None,
        do_not_call: false,
        node_id: node.map(str::to_string),
        transfer_requested_at: None,
    };
    Ok(diesel::insert_into(calls::table)
        .values(&call)
        .returning(Call::as_returning())
        .get_result(conn)
        .await?)
}

/// Records how a call ended, with its talk time when it was answered.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    outcome: &str,
    hangup_reason: Option<&str>,
) -> Result<Option<Call>, DbError> {
    finish_at(conn, tenant, id, outcome, hangup_reason, Utc::now()).await
}

/// [`finish`] at a given time.
pub async fn finish_at(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    outcome: &str,
    hangup_reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Option<Call>, DbError> {
    finish_where(conn, tenant, id, outcome, hangup_reason, at, false).await
}

/// Sets the outcome and `finished` (only of a call not finished yet when
/// `unfinished_only`); the talk time counts from the answer. Under the
/// row's lock, so `call.ended` goes to the outbox exactly once: when the
/// row first gets its outcome (the lifecycle may have stored the status
/// `finished` just before; a repeated finish rewrites the outcome and
/// emits nothing). In the same transaction a conversation of a campaign
/// with analysis settings is queued for its analysis
/// (`analyses::mark_in_tx`, once), so a finished conversation is never
/// left unqueued.
async fn finish_where(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    outcome: &str,
    hangup_reason: Option<&str>,
    at: DateTime<Utc>,
    unfinished_only: bool,
) -> Result<Option<Call>, DbError> {
    let outcome = outcome.to_string();
    let hangup_reason = hangup_reason.map(str::to_string);
    conn.transaction::<_, DbError, _>(async move |conn| {
        let Some(call) = one(tenant, id)
            .select(Call::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
        else {
            return Ok(None);
        };
        if unfinished_only && call.status == "finished" {
            return Ok(None);
        }
        let first_outcome = call.outcome.is_none();
        let duration = call
            .answered_at
            .map(|answered| (at - answered).num_seconds().clamp(0, i32::MAX as i64) as i32);
        let finished = diesel::update(one(tenant, id))
            .set((
                calls::status.eq("finished"),
                calls::outcome.eq(&outcome),
                calls::hangup_reason.eq(&hangup_reason),
                calls::ended_at.eq(at),
                calls::duration_secs.eq(duration),
            ))
            .returning(Call::as_returning())
            .get_result(conn)
            .await?;
        super::analyses::mark_in_tx(conn, tenant, id, at).await?;
        if first_outcome {
            emit_call_ended(conn, &finished, at).await?;
        }
        Ok(Some(finished))
    })
    .await
}

/// `call.ended` of a call that just finished (when anyone listens).
async fn emit_call_ended(
    conn: &mut AsyncPgConnection,
    call: &Call,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    use crate::webhooks::{events, outbox};
    if !outbox::subscribed(conn, call.tenant_id, events::CALL_ENDED).await? {
        return Ok(());
    }
    let tenant = TenantId(call.tenant_id);
    let turns = turns(conn, tenant, CallId(call.id)).await?;
    let records: bool = super::schema::campaigns::table
        .filter(super::schema::campaigns::tenant_id.eq(call.tenant_id))
        .filter(super::schema::campaigns::id.eq(call.campaign_id))
        .select(super::schema::campaigns::recording_enabled)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(false);
    let data = events::call_ended(call, &turns, records);
    outbox::emit(conn, call.tenant_id, events::CALL_ENDED, data, at).await
}

/// A status transition; the first `dialing` and `answered` set their
/// timestamps. Never moves a finished call.
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    status: &str,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    let status = status.to_string();
    conn.transaction::<_, DbError, _>(async move |conn| {
        let target = one(tenant, id).filter(calls::status.ne("finished"));
        match status.as_str() {
            "dialing" => {
                diesel::update(target)
                    .set((calls::status.eq(&status), calls::dialed_at.eq(at)))
                    .execute(conn)
                    .await?;
            }
            "answered" => {
                // The first answer only: `call.started` once per call.
                let answered = diesel::update(target.filter(calls::answered_at.is_null()))
                    .set((calls::status.eq(&status), calls::answered_at.eq(at)))
                    .returning(Call::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                if let Some(call) = answered {
                    use crate::webhooks::{events, outbox};
                    if outbox::subscribed(conn, tenant.0, events::CALL_STARTED).await? {
                        let data = events::call(&call);
                        outbox::emit(conn, tenant.0, events::CALL_STARTED, data, at).await?;
                    }
                }
            }
            _ => {
                diesel::update(target)
                    .set(calls::status.eq(&status))
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    })
    .await
}

/// Marks an unfinished call as having asked its provider for a cold
/// transfer (before the request goes out).
pub async fn mark_transfer_requested(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    let updated = diesel::update(one(tenant, id).filter(calls::status.ne("finished")))
        .set(calls::transfer_requested_at.eq(at))
        .execute(conn)
        .await?;
    if updated == 0 {
        return Err(DbError::Query(diesel::result::Error::NotFound));
    }
    Ok(())
}

/// The provider's id of the call.
pub async fn set_provider_id(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    provider_call_id: &str,
) -> Result<(), DbError> {
    diesel::update(one(tenant, id))
        .set(calls::provider_call_id.eq(provider_call_id))
        .execute(conn)
        .await?;
    Ok(())
}

/// The leg of the call: its provider and that provider's id (what the
/// call store writes when a create-call answers).
pub async fn set_provider_leg(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    provider: TelephonyProvider,
    provider_call_id: &str,
) -> Result<(), DbError> {
    diesel::update(one(tenant, id))
        .set((
            calls::provider.eq(provider.as_str()),
            calls::provider_call_id.eq(provider_call_id),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that `provider` is asked to place the call, before it is (the
/// telephony chain's ledger): only while no provider id is known. `false`
/// when no row changed (no such call, or its leg is known already).
pub async fn set_placing_provider(
    conn: &mut AsyncPgConnection,
    id: CallId,
    provider: TelephonyProvider,
) -> Result<bool, DbError> {
    let n = diesel::update(
        calls::table
            .filter(calls::id.eq(id.0))
            .filter(calls::provider_call_id.is_null()),
    )
    .set(calls::provider.eq(provider.as_str()))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// The provider recorded on a call, by id alone (the chain's ledger).
pub async fn provider_of(
    conn: &mut AsyncPgConnection,
    id: CallId,
) -> Result<Option<String>, DbError> {
    Ok(calls::table
        .filter(calls::id.eq(id.0))
        .select(calls::provider)
        .first(conn)
        .await
        .optional()?)
}

/// The callee asked to be called back.
pub async fn set_callback(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::update(one(tenant, id))
        .set(calls::callback_at.eq(at))
        .execute(conn)
        .await?;
    Ok(())
}

/// The callee asked never to be called again: flag the call and put the
/// number on the tenant's do-not-call list (which marks its contacts).
pub async fn set_do_not_call(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
) -> Result<(), DbError> {
    conn.transaction::<_, DbError, _>(async move |conn| {
        let Some(call) = get(conn, tenant, id).await? else {
            return Ok(());
        };
        diesel::update(one(tenant, id))
            .set(calls::do_not_call.eq(true))
            .execute(conn)
            .await?;
        let reason = format!("asked during call {id}");
        super::dnc::add_from(conn, tenant, &call.phone, Some(&reason), Some(id)).await?;
        Ok(())
    })
    .await
}

/// The call of one attempt, if its intent was written.
pub async fn for_attempt(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    campaign: CampaignId,
    contact: ContactId,
    attempt: i32,
) -> Result<Option<Call>, DbError> {
    Ok(calls::table
        .filter(calls::tenant_id.eq(tenant.0))
        .filter(calls::campaign_id.eq(campaign.0))
        .filter(calls::contact_id.eq(contact.0))
        .filter(calls::attempt.eq(attempt))
        .select(Call::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Stores a raw event of `provider` once: a repeat of the same (provider,
/// provider call id, status, timestamp) is ignored. Returns whether it was
/// new.
#[allow(clippy::too_many_arguments)]
pub async fn record_event(
    conn: &mut AsyncPgConnection,
    provider: TelephonyProvider,
    tenant: Option<TenantId>,
    call: Option<CallId>,
    provider_call_id: &str,
    status: &str,
    provider_timestamp: DateTime<Utc>,
    payload: &serde_json::Value,
) -> Result<bool, DbError> {
    let n = diesel::insert_into(call_events::table)
        .values((
            call_events::provider.eq(provider.as_str()),
            call_events::tenant_id.eq(tenant.map(|t| t.0)),
            call_events::call_id.eq(call.map(|c| c.0)),
            call_events::provider_call_id.eq(provider_call_id),
            call_events::status.eq(status),
            call_events::provider_timestamp.eq(provider_timestamp),
            call_events::payload.eq(payload),
        ))
        .on_conflict((
            call_events::provider,
            call_events::provider_call_id,
            call_events::status,
            call_events::provider_timestamp,
        ))
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Appends a turn.
pub async fn insert_turn(conn: &mut AsyncPgConnection, turn: &CallTurn) -> Result<(), DbError> {
    diesel::insert_into(call_turns::table)
        .values(turn)
        .execute(conn)
        .await?;
    Ok(())
}

/// A page of a tenant's calls.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    filter: &CallFilter,
    page: Page,
) -> Result<Vec<Call>, DbError> {
    let mut query = calls::table
        .filter(calls::tenant_id.eq(tenant.0))
        .select(Call::as_select())
        .order(calls::id)
        .limit(page.limit)
        .into_boxed();
    if let Some(campaign) = filter.campaign {
        query = query.filter(calls::campaign_id.eq(campaign.0));
    }
    if let Some(status) = &filter.status {
        query = query.filter(calls::status.eq(status.clone()));
    }
    if let Some(outcome) = &filter.outcome {
        query = query.filter(calls::outcome.eq(outcome.clone()));
    }
    if let Some(after) = page.after {
        query = query.filter(calls::id.gt(after));
    }
    Ok(query.load(conn).await?)
}

/// One call of a tenant.
pub async fn get(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
) -> Result<Option<Call>, DbError> {
    Ok(one(tenant, id)
        .select(Call::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Spends a call's single-use media token on `provider`'s socket: the
/// call when the token is its own and unused and the call is `provider`'s
/// (now marked used), `None` otherwise (unknown call, wrong token, used
/// before, or another provider's call), in one conditional UPDATE.
pub async fn spend_media_token(
    conn: &mut AsyncPgConnection,
    id: CallId,
    token_hash: &[u8],
    provider: TelephonyProvider,
) -> Result<Option<Call>, DbError> {
    Ok(diesel::update(
        calls::table
            .filter(calls::id.eq(id.0))
            .filter(calls::provider.eq(provider.as_str()))
            .filter(calls::media_token_hash.eq(token_hash))
            .filter(calls::media_token_used_at.is_null()),
    )
    .set(calls::media_token_used_at.eq(Utc::now()))
    .returning(Call::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Replaces a call's media token hash (answer_url mode re-mints it when
/// Vonage asks for the NCCO): only while the call is not finished and its
/// current token is unspent, in one conditional UPDATE, so a token already
/// used to open the socket can never be replaced. The call, or `None`
/// (unknown, finished or spent).
pub async fn remint_media_token(
    conn: &mut AsyncPgConnection,
    id: CallId,
    new_hash: &[u8],
) -> Result<Option<Call>, DbError> {
    Ok(diesel::update(
        calls::table
            .filter(calls::id.eq(id.0))
            .filter(calls::status.ne("finished"))
            .filter(calls::media_token_hash.is_not_null())
            .filter(calls::media_token_used_at.is_null()),
    )
    .set(calls::media_token_hash.eq(new_hash))
    .returning(Call::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// A call by id alone, for provider webhooks (which carry no tenant).
pub async fn get_unscoped(
    conn: &mut AsyncPgConnection,
    id: CallId,
) -> Result<Option<Call>, DbError> {
    Ok(calls::table
        .filter(calls::id.eq(id.0))
        .select(Call::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A call's turns in order.
pub async fn turns(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
) -> Result<Vec<CallTurn>, DbError> {
    Ok(call_turns::table
        .filter(call_turns::tenant_id.eq(tenant.0))
        .filter(call_turns::call_id.eq(id.0))
        .order(call_turns::seq)
        .select(CallTurn::as_select())
        .load(conn)
        .await?)
}

/// A call's raw events in provider time order.
pub async fn events(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
) -> Result<Vec<CallEvent>, DbError> {
    Ok(call_events::table
        .filter(call_events::tenant_id.eq(tenant.0))
        .filter(call_events::call_id.eq(id.0))
        .order((call_events::provider_timestamp, call_events::id))
        .select(CallEvent::as_select())
        .load(conn)
        .await?)
}

// ----- process lifetime: ownership, placement, reconciliation ---------------

/// Marks a written intent as being placed, by `node`, before the provider
/// is asked: from here on the provider may have a leg for it, so a crash
/// must be reconciled with the provider, not simply released. `false` when
/// the intent is no longer `queued` (or gone).
pub async fn mark_dialing(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    node: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::update(one(tenant, id).filter(calls::status.eq("queued")))
        .set((
            calls::status.eq("dialing"),
            calls::dialed_at.eq(at),
            calls::node_id.eq(node),
        ))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Deletes an intent that was never placed (still `queued`, no provider
/// id): the attempt is given back as if it had not been written. `false`
/// when it was placed meanwhile (or is gone).
pub async fn cancel_intent(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
) -> Result<bool, DbError> {
    let n = diesel::delete(
        one(tenant, id)
            .filter(calls::status.eq("queued"))
            .filter(calls::provider_call_id.is_null()),
    )
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Every call not finished, of every tenant, except those of `node`
/// (`None`: all): what the reconciler looks at. Few rows (live calls and
/// the orphans of dead processes), read through `calls_unfinished_idx`.
pub async fn unfinished(
    conn: &mut AsyncPgConnection,
    except_node: Option<&str>,
) -> Result<Vec<Call>, DbError> {
    let mut query = calls::table
        .filter(calls::status.ne("finished"))
        .select(Call::as_select())
        .order(calls::id)
        .into_boxed();
    if let Some(node) = except_node {
        query = query.filter(calls::node_id.is_null().or(calls::node_id.ne(node)));
    }
    Ok(query.load(conn).await?)
}

/// Records the provider's id of a call that has none yet (learnt from a
/// webhook when the create-call response was lost). `false` when the call
/// already had one (or another call holds that id).
pub async fn learn_provider_id(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    provider_call_id: &str,
) -> Result<bool, DbError> {
    let updated = diesel::update(one(tenant, id).filter(calls::provider_call_id.is_null()))
        .set(calls::provider_call_id.eq(provider_call_id))
        .execute(conn)
        .await;
    match updated {
        Ok(n) => Ok(n > 0),
        Err(e) => {
            let e = DbError::from(e);
            if e.is_unique_violation() {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// [`finish_at`] for a call that is not finished yet (the reconciler's
/// write, which must never overwrite an outcome its owner recorded).
/// `None` when it was finished already.
pub async fn finish_unfinished(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CallId,
    outcome: &str,
    hangup_reason: &str,
    at: DateTime<Utc>,
) -> Result<Option<Call>, DbError> {
    finish_where(conn, tenant, id, outcome, Some(hangup_reason), at, true).await
}
