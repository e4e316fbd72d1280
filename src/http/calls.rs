//! `/api/v1/calls`: call records with their turns and provider events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use talky_actors::ids::{CallId, CampaignId, TenantId};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{ApiError, Problem};
use super::{Ctx, PageOf, PageParams, auth, ok, query, respond, with_ctx};
use crate::db;
use crate::db::analyses::{CallAnalysis, Rerun};
use crate::db::calls::{Call, CallEvent, CallFilter, CallTurn};

/// A call as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    /// Call id.
    pub id: uuid::Uuid,
    /// Campaign that placed it.
    pub campaign_id: uuid::Uuid,
    /// Contact called.
    pub contact_id: uuid::Uuid,
    /// Attempt number of the contact (from 1).
    pub attempt: i32,
    /// Number dialled.
    pub phone: String,
    /// Telephony provider.
    pub provider: String,
    /// Provider's call id.
    pub provider_call_id: Option<String>,
    /// queued, dialing, ringing, answered, machine, conversation, ending, finished.
    pub status: String,
    /// How it ended.
    pub outcome: Option<String>,
    /// Why it was hung up.
    pub hangup_reason: Option<String>,
    /// Intent written.
    pub created_at: DateTime<Utc>,
    /// Dialled.
    pub dialed_at: Option<DateTime<Utc>>,
    /// Answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Seconds from answer to end.
    pub duration_secs: Option<i32>,
}

impl From<Call> for CallView {
    fn from(c: Call) -> Self {
        Self {
            id: c.id,
            campaign_id: c.campaign_id,
            contact_id: c.contact_id,
            attempt: c.attempt,
            phone: c.phone,
            provider: c.provider,
            provider_call_id: c.provider_call_id,
            status: c.status,
            outcome: c.outcome,
            hangup_reason: c.hangup_reason,
            created_at: c.created_at,
            dialed_at: c.dialed_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            duration_secs: c.duration_secs,
        }
    }
}

/// The latency split of an agent turn, milliseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyView {
    /// End of user speech -> STT final.
    pub stt_ms: Option<i32>,
    /// STT final -> LLM first token.
    pub llm_first_token_ms: Option<i32>,
    /// LLM first token -> first TTS audio.
    pub tts_first_audio_ms: Option<i32>,
    /// First TTS audio -> first frame sent.
    pub first_frame_ms: Option<i32>,
    /// End of user speech -> first frame sent.
    pub voice_to_voice_ms: Option<i32>,
}

/// One turn.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnView {
    /// Order in the call.
    pub seq: i32,
    /// agent or user.
    pub speaker: String,
    /// What was said or generated.
    pub text: String,
    /// Agent turns: what the callee heard.
    pub heard_text: Option<String>,
    /// Cut short.
    pub interrupted: bool,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
    /// Latency split.
    pub latency: LatencyView,
}

impl From<CallTurn> for TurnView {
    fn from(t: CallTurn) -> Self {
        Self {
            seq: t.seq,
            speaker: t.speaker,
            text: t.text,
            heard_text: t.heard_text,
            interrupted: t.interrupted,
            started_at: t.started_at,
            ended_at: t.ended_at,
            latency: LatencyView {
                stt_ms: t.stt_ms,
                llm_first_token_ms: t.llm_first_token_ms,
                tts_first_audio_ms: t.tts_first_audio_ms,
                first_frame_ms: t.first_frame_ms,
                voice_to_voice_ms: t.voice_to_voice_ms,
            },
        }
    }
}

/// A raw provider event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Provider's status name.
    pub status: String,
    /// Provider's timestamp.
    pub provider_timestamp: DateTime<Utc>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The event as received.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<CallEvent> for EventView {
    fn from(e: CallEvent) -> Self {
        Self {
            status: e.status,
            provider_timestamp: e.provider_timestamp,
            received_at: e.received_at,
            payload: e.payload,
        }
    }
}

/// A call's post-call analysis.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysisView {
    /// `pending` (queued), `running`, `done` or `error`.
    pub state: String,
    /// The summary (`done`; kept while a re-run is pending).
    pub summary: Option<String>,
    /// Data extracted to the campaign's schema, validated against it.
    #[schema(value_type = Option<Object>)]
    pub structured_data: Option<serde_json::Value>,
    /// The verdict by the campaign's rubric: a boolean (pass/fail), an
    /// integer (a scale) or a label.
    #[schema(value_type = Option<Object>)]
    pub success: Option<serde_json::Value>,
    /// Why there are no results (`error`): the LLM's answer was not valid
    /// twice, or no provider answered.
    pub error: Option<String>,
    /// The LLM provider that answered (`llm` or `llm_fallback`).
    pub provider: Option<String>,
    /// Queued.
    pub requested_at: DateTime<Utc>,
    /// Stored.
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<CallAnalysis> for AnalysisView {
    fn from(a: CallAnalysis) -> Self {
        Self {
            state: a.state,
            summary: a.summary,
            structured_data: a.structured_data,
            success: a.success,
            error: a.error,
            provider: a.provider,
            requested_at: a.requested_at,
            completed_at: a.completed_at,
        }
    }
}

/// A call with its turns and events.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    /// The call.
    #[serde(flatten)]
    pub call: CallView,
    /// Its post-call analysis; absent when none was queued (no
    /// conversation, or a campaign without `analysis`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisView>,
    /// Its turns in order.
    pub turns: Vec<TurnView>,
    /// Its provider events in provider time order.
    pub events: Vec<EventView>,
}

/// A page of calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallPage {
    /// Calls, oldest first.
    pub items: Vec<CallView>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Filters of the call list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CallListParams {
    /// Only this campaign's calls.
    pub campaign_id: Option<String>,
    /// Only calls in this status.
    pub status: Option<String>,
    /// Only calls with this outcome.
    pub outcome: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let list = warp::path!("api" / "v1" / "calls")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(query::<CallListParams>())
        .and_then(|tenant, ctx: Ctx, q| respond(ctx.clone(), list_calls(ctx, tenant, q)));
    let get = warp::path!("api" / "v1" / "calls" / CallId)
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), get_call(ctx, tenant, id)));
    let analyze = warp::path!("api" / "v1" / "calls" / CallId / "analyze")
        .and(warp::post())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), analyze_call(ctx, tenant, id)));
    list.or(get).unify().or(analyze).unify().boxed()
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// List the tenant's calls.
#[utoipa::path(get, path = "/api/v1/calls", tag = "calls",
    security(("bearer" = [])),
    params(CallListParams),
    responses(
        (status = 200, description = "A page of calls", body = CallPage),
        (status = 400, description = "Bad query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad filter or page", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_calls(
    ctx: Ctx,
    tenant: TenantId,
    q: CallListParams,
) -> Result<Response, ApiError> {
    let campaign = match non_empty(q.campaign_id) {
        None => None,
        Some(c) => Some(
            c.parse::<CampaignId>()
                .map_err(|_| ApiError::invalid("campaign_id", "not a campaign id"))?,
        ),
    };
    let filter = CallFilter {
        campaign,
        status: non_empty(q.status),
        outcome: non_empty(q.outcome),
    };
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .id_page()?;
    let mut conn = ctx.conn().await?;
    let rows = db::calls::list(&mut conn, tenant, &filter, page).await?;
    let views: Vec<CallView> = rows.into_iter().map(Into::into).collect();
    ok(
        StatusCode::OK,
        &PageOf::new(views, page.limit, |c| c.id.to_string()),
    )
}

/// Get a call with its turns (text, text as heard, latency split) and
/// raw provider events.
#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "calls",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Call id")),
    responses(
        (status = 200, description = "The call", body = CallDetail),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_call(ctx: Ctx, tenant: TenantId, id: CallId) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    let call = db::calls::get(&mut conn, tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no call {id}")))?;
    let turns = db::calls::turns(&mut conn, tenant, id).await?;
    let events = db::calls::events(&mut conn, tenant, id).await?;
    let analysis = db::analyses::get(&mut conn, tenant, id).await?;
    ok(
        StatusCode::OK,
        &CallDetail {
            call: call.into(),
            analysis: analysis.map(Into::into),
            turns: turns.into_iter().map(Into::into).collect(),
            events: events.into_iter().map(Into::into).collect(),
        },
    )
}

/// Queued for analysis.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyzeAccepted {
    /// The call.
    pub call_id: uuid::Uuid,
    /// `pending`: a worker will take it; read the result with
    /// `GET /api/v1/calls/{id}`.
    pub state: String,
}

/// Run the call's post-call analysis again (e.g. after the campaign's
/// analysis settings changed): queued, answered at once.
#[utoipa::path(post, path = "/api/v1/calls/{id}/analyze", tag = "calls",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Call id")),
    responses(
        (status = 202, description = "Queued", body = AnalyzeAccepted),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not finished, no conversation, or the campaign has no analysis settings", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn analyze_call(ctx: Ctx, tenant: TenantId, id: CallId) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    match db::analyses::rerun(&mut conn, tenant, id, Utc::now()).await? {
        Rerun::Queued => ok(
            StatusCode::ACCEPTED,
            &AnalyzeAccepted {
                call_id: id.0,
                state: "pending".into(),
            },
        ),
        Rerun::NotFound => Err(ApiError::NotFound(format!("no call {id}"))),
        Rerun::NotFinished => Err(ApiError::Conflict("the call is not finished yet".into())),
        Rerun::NoConversation => Err(ApiError::Conflict(
            "the call had no conversation to analyse".into(),
        )),
        Rerun::NotConfigured => Err(ApiError::Conflict(
            "the call's campaign has no analysis settings".into(),
        )),
    }
}
