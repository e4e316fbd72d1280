//! `/api/v1/campaigns`: campaigns and their lifecycle.

use chrono::{DateTime, NaiveTime, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Deserializer, Serialize};
use talky_actors::campaign::{CampaignCommand, CampaignState};
use talky_actors::ids::{CampaignId, TenantId};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::api_keys::valid_name;
use super::problem::{ApiError, FieldError, Problem};
use super::{Ctx, PageOf, PageParams, auth, json_body, no_content, ok, query, respond, with_ctx};
use crate::analysis::settings::AnalysisSettings;
use crate::db;
use crate::db::campaigns::{Campaign, REPROMPT_AFTER_SECS, RING_TIMEOUT_SECS, TransitionError};
use crate::db::summary::CampaignSummary;
use crate::providers::telephony::Telephony;
use crate::redis::notices::What;

/// Voice used when a campaign names none.
pub const DEFAULT_VOICE: &str = "rachel";
/// Language used when a campaign names none.
pub const DEFAULT_LANGUAGE: &str = "en-US";
/// LLM used when a campaign names none.
pub const DEFAULT_LLM_MODEL: &str = "llama-3.3-70b-versatile";
/// Default calling window: 09:00 to 18:00 local time...
pub const DEFAULT_WINDOW: (&str, &str) = ("09:00", "18:00");
/// ...Monday to Friday.
pub const DEFAULT_WINDOW_DAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];
/// Default live calls per campaign.
pub const DEFAULT_MAX_CONCURRENT_CALLS: i32 = 10;
/// Default attempts per contact.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
/// Default base retry delay (one hour).
pub const DEFAULT_RETRY_BACKOFF_SECS: i32 = 3600;
/// Default longest call (ten minutes).
pub const DEFAULT_MAX_CALL_DURATION_SECS: i32 = 600;
/// Default ring time of a campaign's calls, seconds: the call's own.
pub const DEFAULT_RING_TIMEOUT_SECS: i32 =
    talky_actors::call::config::DEFAULT_RINGING_TIMEOUT.as_secs() as i32;
/// Default callee silence before a reprompt, seconds: the call's own.
pub const DEFAULT_REPROMPT_AFTER_SECS: i32 =
    talky_actors::call::config::DEFAULT_NO_INPUT_TIMEOUT.as_secs() as i32;

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn days_to_mask(days: &[Weekday]) -> i16 {
    days.iter()
        .map(|d| 1i16 << WEEK.iter().position(|w| w == d).unwrap_or(0))
        .fold(0, |a, b| a | b)
}

fn mask_to_days(mask: i16) -> Vec<Weekday> {
    WEEK.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, d)| *d)
        .collect()
}

/// What to do when a machine answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailAction {
    /// Leave `agent.voicemail_message`.
    LeaveMessage,
    /// Hang up.
    Hangup,
}

impl VoicemailAction {
    fn as_str(self) -> &'static str {
        match self {
            VoicemailAction::LeaveMessage => "leave_message",
            VoicemailAction::Hangup => "hangup",
        }
    }
}

/// The agent's settings, as sent. The document shows this type with the
/// fields a create requires (`CampaignInput.agent`); a PATCH takes any
/// subset (`AgentPatch`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    /// Instructions for the LLM (required on create), at most 20,000 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 20000)]
    pub system_prompt: Option<String>,
    /// First words of every answered call (required on create), at most 1,000.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1000)]
    pub greeting: Option<String>,
    /// Message for voicemail; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub voicemail_message: Option<Option<String>>,
    /// TTS voice id (default `rachel`).
    pub voice: Option<String>,
    /// BCP 47 language tag (default `en-US`).
    pub language: Option<String>,
    /// LLM model (default `llama-3.3-70b-versatile`).
    pub llm_model: Option<String>,
}

/// A cold transfer to a person, as sent: the LLM is offered a
/// `transfer_call` tool; when the callee asks for a person (or the script
/// says so) the agent says `announce` and the provider connects the
/// callee to `number`. The call then ends for us as `transferred`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    /// Where the callee is connected (E.164, or national in the default region).
    #[schema(value_type = String, required = true, min_length = 1, example = "+14155550199")]
    pub number: Option<String>,
    /// What the agent says before the handover, at most 1,000 characters
    /// (default: "Please hold while I connect you to a colleague.").
    #[schema(value_type = Option<String>, min_length = 1, max_length = 1000)]
    pub announce: Option<String>,
}

/// The announce line of a transfer that names none.
pub const DEFAULT_TRANSFER_ANNOUNCE: &str = "Please hold while I connect you to a colleague.";

/// A transfer, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    /// Where the callee is connected (E.164).
    pub number: String,
    /// What the agent says before the handover.
    pub announce: String,
}

/// A calling window, as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    /// Local start time, `HH:MM` (default 09:00).
    #[schema(example = "09:00", pattern = "^[0-2][0-9]:[0-5][0-9](:[0-5][0-9])?$")]
    pub start: Option<String>,
    /// Local end time, `HH:MM`, after `start` (default 18:00).
    #[schema(example = "18:00", pattern = "^[0-2][0-9]:[0-5][0-9](:[0-5][0-9])?$")]
    pub end: Option<String>,
    /// Days the window is open (default Monday to Friday).
    pub days: Option<Vec<Weekday>>,
}

/// A campaign as sent: every field for a create (`name`, `caller_id`,
/// `agent.system_prompt` and `agent.greeting` are required, as the
/// document says), any subset for a PATCH (documented as `CampaignPatch`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// Label, 1 to 200 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Number shown to the callee (E.164, or national in the default region).
    #[schema(value_type = String, required = true, min_length = 1, example = "+14155550100")]
    pub caller_id: Option<String>,
    /// The agent.
    #[schema(value_type = AgentInput, required = true)]
    pub agent: Option<AgentInput>,
    /// When contacts may be called, in their own time zone.
    pub calling_window: Option<WindowInput>,
    /// Live calls at once, 1 to 10,000 (default 10).
    #[schema(minimum = 1, maximum = 10000)]
    pub max_concurrent_calls: Option<i32>,
    /// Attempts per contact, 1 to 100 (default 3).
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i32>,
    /// Base retry delay in seconds, 0 to 2,592,000 (default 3600); doubles per attempt, jittered.
    #[schema(minimum = 0, maximum = 2592000)]
    pub retry_backoff_secs: Option<i32>,
    /// Longest call in seconds, 10 to 7200 (default 600).
    #[schema(minimum = 10, maximum = 7200)]
    pub max_call_duration_secs: Option<i32>,
    /// Seconds a call rings before it is given up as unanswered
    /// (`no_answer`), 15 to 120 (default 45); at least 15, as the US
    /// Telemarketing Sales Rule asks before abandoning a call.
    #[schema(minimum = 15, maximum = 120)]
    pub ring_timeout_secs: Option<i32>,
    /// Seconds of callee silence before the agent asks again ("Are you
    /// still there?"), 3 to 60 (default 8); after the second reprompt the
    /// agent says goodbye and the call ends `no_input`.
    #[schema(minimum = 3, maximum = 60)]
    pub reprompt_after_secs: Option<i32>,
    /// On a machine: leave a message or hang up (default `hangup`).
    pub voicemail_action: Option<VoicemailAction>,
    /// Record both sides of each call (default false).
    pub recording_enabled: Option<bool>,
    /// Days a finished recording is kept, 1 to 3650; afterwards it is
    /// deleted and the recording route answers 404. `null` (the default)
    /// keeps recordings as long as the campaign.
    #[serde(default, deserialize_with = "double_option_of")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 3650)]
    pub recording_retention_days: Option<Option<i32>>,
    /// Which provider places the calls: `vonage`, `twilio`, or
    /// `vonage_then_twilio` (Twilio for an attempt Vonage provably did not
    /// place; never both). Default: the server's `dialer.default_telephony`.
    /// A server that runs the dialer refuses (422) a choice whose
    /// provider it has not configured.
    pub telephony: Option<Telephony>,
    /// Post-call analysis of every conversation (summary, data extracted
    /// to a JSON Schema, success by a rubric); `null` or absent: none.
    #[serde(default, deserialize_with = "double_option_of")]
    #[schema(value_type = Option<AnalysisSettings>)]
    pub analysis: Option<Option<AnalysisSettings>>,
    /// Hand calls to a person on request (cold transfer); `null` (the
    /// default) offers no transfer. A PATCH replaces it whole.
    #[serde(default, deserialize_with = "double_option_of")]
    #[schema(value_type = Option<TransferInput>)]
    pub transfer: Option<Option<TransferInput>>,
}

/// The agent's settings in a PATCH: any subset (documentation of
/// [`AgentInput`] as a PATCH reads it).
#[derive(Debug, Default, ToSchema)]
#[allow(dead_code)]
pub struct AgentPatch {
    /// Instructions for the LLM, 1 to 20,000 characters.
    #[schema(min_length = 1, max_length = 20000)]
    pub system_prompt: Option<String>,
    /// First words of every answered call, 1 to 1,000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    pub greeting: Option<String>,
    /// Message for voicemail; `null` clears it.
    pub voicemail_message: Option<String>,
    /// TTS voice id.
    pub voice: Option<String>,
    /// BCP 47 language tag.
    pub language: Option<String>,
    /// LLM model.
    pub llm_model: Option<String>,
}

/// A PATCH of a campaign: any subset of [`CampaignInput`]'s fields; those
/// left out keep their value (documentation of [`CampaignInput`] as a
/// PATCH reads it).
#[derive(Debug, Default, ToSchema)]
#[allow(dead_code)]
pub struct CampaignPatch {
    /// Label, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Number shown to the callee (E.164, or national in the default region).
    #[schema(example = "+14155550100")]
    pub caller_id: Option<String>,
    /// The agent's settings to change.
    pub agent: Option<AgentPatch>,
    /// When contacts may be called, in their own time zone.
    pub calling_window: Option<WindowInput>,
    /// Live calls at once, 1 to 10,000.
    #[schema(minimum = 1, maximum = 10000)]
    pub max_concurrent_calls: Option<i32>,
    /// Attempts per contact, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i32>,
    /// Base retry delay in seconds, 0 to 2,592,000.
    #[schema(minimum = 0, maximum = 2592000)]
    pub retry_backoff_secs: Option<i32>,
    /// Longest call in seconds, 10 to 7200.
    #[schema(minimum = 10, maximum = 7200)]
    pub max_call_duration_secs: Option<i32>,
    /// Seconds a call rings before it is given up, 15 to 120 (from the
    /// next call).
    #[schema(minimum = 15, maximum = 120)]
    pub ring_timeout_secs: Option<i32>,
    /// Seconds of callee silence before the agent asks again, 3 to 60
    /// (from the next call).
    #[schema(minimum = 3, maximum = 60)]
    pub reprompt_after_secs: Option<i32>,
    /// On a machine: leave a message or hang up.
    pub voicemail_action: Option<VoicemailAction>,
    /// Record both sides of each call.
    pub recording_enabled: Option<bool>,
    /// Days a finished recording is kept, 1 to 3650; `null` clears it
    /// (kept as long as the campaign). Applies to recordings already made.
    #[schema(minimum = 1, maximum = 3650)]
    pub recording_retention_days: Option<i32>,
    /// Which provider places the calls (takes effect from the next call).
    pub telephony: Option<Telephony>,
    /// Post-call analysis settings, replaced whole (calls finished from
    /// now on); `null` turns analysis off.
    pub analysis: Option<AnalysisSettings>,
    /// Hand calls to a person on request, replaced whole; `null` removes
    /// it (takes effect from the next call).
    pub transfer: Option<TransferInput>,
}

impl CampaignInput {
    /// Whether this PATCH changes nothing but `recording_retention_days`.
    fn only_retention(&self) -> bool {
        let CampaignInput {
            name,
            caller_id,
            agent,
            calling_window,
            max_concurrent_calls,
            max_attempts,
            retry_backoff_secs,
            max_call_duration_secs,
            ring_timeout_secs,
            reprompt_after_secs,
            voicemail_action,
            recording_enabled,
            recording_retention_days,
            telephony,
            analysis,
            transfer,
        } = self;
        recording_retention_days.is_some()
            && name.is_none()
            && caller_id.is_none()
            && agent.is_none()
            && calling_window.is_none()
            && max_concurrent_calls.is_none()
            && max_attempts.is_none()
            && retry_backoff_secs.is_none()
            && max_call_duration_secs.is_none()
            && ring_timeout_secs.is_none()
            && reprompt_after_secs.is_none()
            && voicemail_action.is_none()
            && recording_enabled.is_none()
            && telephony.is_none()
            && analysis.is_none()
            && transfer.is_none()
    }
}

fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    double_option_of(d)
}

/// A field that may be absent (keep), `null` (clear) or a value.
fn double_option_of<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The agent, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// Instructions for the LLM.
    pub system_prompt: String,
    /// First words of every answered call.
    pub greeting: String,
    /// Message for voicemail.
    pub voicemail_message: Option<String>,
    /// TTS voice id.
    pub voice: String,
    /// BCP 47 language tag.
    pub language: String,
    /// LLM model.
    pub llm_model: String,
}

/// A calling window, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    /// Local start, `HH:MM`.
    pub start: String,
    /// Local end, `HH:MM`.
    pub end: String,
    /// Open days.
    pub days: Vec<Weekday>,
}

/// A campaign, as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    /// Campaign id.
    pub id: uuid::Uuid,
    /// Label.
    pub name: String,
    /// Lifecycle state.
    #[schema(value_type = String, example = "draft")]
    pub state: CampaignState,
    /// Number shown to the callee.
    pub caller_id: String,
    /// The agent.
    pub agent: AgentView,
    /// When contacts may be called.
    pub calling_window: WindowView,
    /// Live calls at once.
    pub max_concurrent_calls: i32,
    /// Attempts per contact.
    pub max_attempts: i32,
    /// Base retry delay, seconds.
    pub retry_backoff_secs: i32,
    /// Longest call, seconds.
    pub max_call_duration_secs: i32,
    /// Seconds a call rings before it is given up as unanswered.
    pub ring_timeout_secs: i32,
    /// Seconds of callee silence before the agent reprompts.
    pub reprompt_after_secs: i32,
    /// On a machine.
    pub voicemail_action: String,
    /// Calls are recorded.
    pub recording_enabled: bool,
    /// Days a finished recording is kept; `null`: as long as the campaign.
    pub recording_retention_days: Option<i32>,
    /// Which provider places the calls.
    pub telephony: Telephony,
    /// Post-call analysis settings; absent: calls are not analysed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSettings>,
    /// Hand calls to a person on request; absent: no transfer.
    pub transfer: Option<TransferView>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

impl From<Campaign> for CampaignView {
    fn from(c: Campaign) -> Self {
        Self {
            id: c.id,
            state: c.state(),
            telephony: c.telephony(),
            analysis: c.analysis(),
            transfer: c.transfer().map(|t| TransferView {
                number: t.number,
                announce: t.announce,
            }),
            name: c.name,
            caller_id: c.caller_id,
            agent: AgentView {
                system_prompt: c.system_prompt,
                greeting: c.greeting,
                voicemail_message: c.voicemail_message,
                voice: c.voice,
                language: c.language,
                llm_model: c.llm_model,
            },
            calling_window: WindowView {
                start: hhmm(c.window_start),
                end: hhmm(c.window_end),
                days: mask_to_days(c.window_days),
            },
            max_concurrent_calls: c.max_concurrent_calls,
            max_attempts: c.max_attempts,
            retry_backoff_secs: c.retry_backoff_secs,
            max_call_duration_secs: c.max_call_duration_secs,
            ring_timeout_secs: c.ring_timeout_secs,
            reprompt_after_secs: c.reprompt_after_secs,
            voicemail_action: c.voicemail_action,
            recording_enabled: c.recording_enabled,
            recording_retention_days: c.recording_retention_days,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A page of campaigns.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    /// The campaigns, oldest first.
    pub items: Vec<CampaignView>,
    /// Cursor of the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Filters of the campaign list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CampaignListParams {
    /// Only campaigns in this state.
    #[param(value_type = Option<String>)]
    pub state: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Collects every field error of one request.
#[derive(Default)]
struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let value = value.trim();
        if value.is_empty() {
            self.fail(field, "must not be empty");
        } else if value.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        }
        value.to_string()
    }

    fn range(&mut self, field: &str, value: i32, min: i32, max: i32) -> i32 {
        if !(min..=max).contains(&value) {
            self.fail(field, format!("must be between {min} and {max}"));
        }
        value
    }

    fn time(&mut self, field: &str, value: &str) -> Option<NaiveTime> {
        let parsed = NaiveTime::parse_from_str(value.trim(), "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(value.trim(), "%H:%M:%S"));
        match parsed {
            Ok(t) => Some(t),
            Err(_) => {
                self.fail(field, "must be a time like 09:00");
                None
            }
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let detail = self
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Err(ApiError::Validation {
            detail,
            errors: self.errors,
        })
    }
}

fn valid_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Applies input onto a campaign (a fresh one for create, the stored one
/// for PATCH) and validates the result as a whole.
fn apply(ctx: &Ctx, input: CampaignInput, c: &mut Campaign) -> Result<(), ApiError> {
    let mut check = Check::default();
    if let Some(name) = input.name {
        match valid_name("name", &name) {
            Ok(n) => c.name = n,
            Err(ApiError::Validation { errors, .. }) => check.errors.extend(errors),
            Err(e) => return Err(e),
        }
    }
    if let Some(caller_id) = input.caller_id {
        match crate::phone::normalize(&caller_id, ctx.import.default_region) {
            Ok(n) => c.caller_id = n,
            Err(e) => check.fail("caller_id", e.to_string()),
        }
    }
    if let Some(agent) = input.agent {
        if let Some(v) = agent.system_prompt {
            c.system_prompt = check.text("agent.system_prompt", &v, 20_000);
        }
        if let Some(v) = agent.greeting {
            c.greeting = check.text("agent.greeting", &v, 1_000);
        }
        if let Some(v) = agent.voicemail_message {
            c.voicemail_message = v.map(|m| check.text("agent.voicemail_message", &m, 1_000));
        }
        if let Some(v) = agent.voice {
            c.voice = check.text("agent.voice", &v, 100);
        }
        if let Some(v) = agent.language {
            c.language = check.text("agent.language", &v, 35);
            if !valid_language(&c.language) {
                check.fail("agent.language", "must be a BCP 47 tag like en-US");
            }
        }
        if let Some(v) = agent.llm_model {
            c.llm_model = check.text("agent.llm_model", &v, 100);
        }
    }
    if let Some(window) = input.calling_window {
        if let Some(t) = window
            .start
            .and_then(|s| check.time("calling_window.start", &s))
        {
            c.window_start = t;
        }
        if let Some(t) = window
            .end
            .and_then(|s| check.time("calling_window.end", &s))
        {
            c.window_end = t;
        }
        if let Some(days) = window.days {
            if days.is_empty() {
                check.fail("calling_window.days", "must name at least one day");
            }
            c.window_days = days_to_mask(&days);
        }
    }
    if let Some(v) = input.max_concurrent_calls {
        c.max_concurrent_calls = check.range("max_concurrent_calls", v, 1, 10_000);
    }
    if let Some(v) = input.max_attempts {
        c.max_attempts = check.range("max_attempts", v, 1, 100);
    }
    if let Some(v) = input.retry_backoff_secs {
        c.retry_backoff_secs = check.range("retry_backoff_secs", v, 0, 2_592_000);
    }
    if let Some(v) = input.max_call_duration_secs {
        c.max_call_duration_secs = check.range("max_call_duration_secs", v, 10, 7_200);
    }
    if let Some(v) = input.ring_timeout_secs {
        let (lo, hi) = RING_TIMEOUT_SECS;
        c.ring_timeout_secs = check.range("ring_timeout_secs", v, lo, hi);
    }
    if let Some(v) = input.reprompt_after_secs {
        let (lo, hi) = REPROMPT_AFTER_SECS;
        c.reprompt_after_secs = check.range("reprompt_after_secs", v, lo, hi);
    }
    if let Some(v) = input.voicemail_action {
        c.voicemail_action = v.as_str().into();
    }
    if let Some(v) = input.recording_enabled {
        c.recording_enabled = v;
    }
    if let Some(v) = input.recording_retention_days {
        c.recording_retention_days =
            v.map(|d| check.range("recording_retention_days", d, 1, 3_650));
    }
    if let Some(t) = input.telephony {
        c.telephony = t.as_str().into();
        // A server that runs the dialer places the calls itself: a choice
        // it cannot place is refused now, not found out call by call. One
        // that only stores campaigns cannot tell, and takes any.
        let providers = &ctx.config.providers;
        if providers.enabled
            && let Some(missing) = t.providers().iter().find(|p| !providers.has_telephony(**p))
        {
            check.fail(
                "telephony",
                format!("{t} needs {missing}, which is not configured on this server ([providers.{missing}])"),
            );
        }
    }
    if let Some(analysis) = input.analysis {
        let errors = analysis.as_ref().map(|a| a.check()).unwrap_or_default();
        for e in &errors {
            check.fail(e.field, e.message.clone());
        }
        if errors.is_empty() {
            c.analysis = analysis.and_then(|a| serde_json::to_value(a).ok());
        }
    }
    if let Some(transfer) = input.transfer {
        apply_transfer(ctx, &mut check, transfer, c);
    }
    // Whole-campaign rules.
    if c.system_prompt.is_empty()
        && !check
            .errors
            .iter()
            .any(|e| e.field == "agent.system_prompt")
    {
        check.fail("agent.system_prompt", "is required");
    }
    if c.greeting.is_empty() && !check.errors.iter().any(|e| e.field == "agent.greeting") {
        check.fail("agent.greeting", "is required");
    }
    if c.caller_id.is_empty() && !check.errors.iter().any(|e| e.field == "caller_id") {
        check.fail("caller_id", "is required");
    }
    if c.name.is_empty() && !check.errors.iter().any(|e| e.field == "name") {
        check.fail("name", "is required");
    }
    if c.window_start >= c.window_end {
        check.fail(
            "calling_window",
            "end must be after start (windows cannot span midnight)",
        );
    }
    if c.voicemail_action == "leave_message" && c.voicemail_message.is_none() {
        check.fail(
            "agent.voicemail_message",
            "is required when voicemail_action is leave_message",
        );
    }
    check.finish()
}

/// Takes a campaign's `transfer` (a whole object, or `null` to remove it).
fn apply_transfer(ctx: &Ctx, check: &mut Check, transfer: Option<TransferInput>, c: &mut Campaign) {
    let Some(t) = transfer else {
        c.transfer_number = None;
        c.transfer_announce = None;
        return;
    };
    match t.number.as_deref().map(str::trim) {
        None | Some("") => check.fail("transfer.number", "is required"),
        Some(n) => match crate::phone::normalize(n, ctx.import.default_region) {
            Ok(n) => c.transfer_number = Some(n),
            Err(e) => check.fail("transfer.number", e.to_string()),
        },
    }
    c.transfer_announce = Some(match t.announce {
        Some(a) => check.text("transfer.announce", &a, 1_000),
        None => DEFAULT_TRANSFER_ANNOUNCE.into(),
    });
}

fn blank_campaign(tenant: TenantId, telephony: Telephony) -> Campaign {
    let now = Utc::now();
    let time = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").unwrap_or(NaiveTime::MIN);
    Campaign {
        id: CampaignId::new().0,
        tenant_id: tenant.0,
        name: String::new(),
        state: CampaignState::Draft.as_str().into(),
        system_prompt: String::new(),
        greeting: String::new(),
        voicemail_message: None,
        voicemail_action: VoicemailAction::Hangup.as_str().into(),
        voice: DEFAULT_VOICE.into(),
        language: DEFAULT_LANGUAGE.into(),
        llm_model: DEFAULT_LLM_MODEL.into(),
        caller_id: String::new(),
        window_start: time(DEFAULT_WINDOW.0),
        window_end: time(DEFAULT_WINDOW.1),
        window_days: days_to_mask(&DEFAULT_WINDOW_DAYS),
        max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        retry_backoff_secs: DEFAULT_RETRY_BACKOFF_SECS,
        max_call_duration_secs: DEFAULT_MAX_CALL_DURATION_SECS,
        ring_timeout_secs: DEFAULT_RING_TIMEOUT_SECS,
        reprompt_after_secs: DEFAULT_REPROMPT_AFTER_SECS,
        recording_enabled: false,
        created_at: now,
        updated_at: now,
        telephony: telephony.as_str().into(),
        analysis: None,
        recording_retention_days: None,
        transfer_number: None,
        transfer_announce: None,
    }
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let limit = ctx.config.server.max_json_body_bytes;
    let read_timeout = ctx.body_read_timeout();
    let list = warp::path!("api" / "v1" / "campaigns")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(query::<CampaignListParams>())
        .and_then(|tenant, ctx: Ctx, q| respond(ctx.clone(), list_campaigns(ctx, tenant, q)));
    let create = warp::path!("api" / "v1" / "campaigns")
        .and(warp::post())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(json_body::<CampaignInput>(limit, read_timeout))
        .and_then(|tenant, ctx: Ctx, body| {
            respond(ctx.clone(), create_campaign(ctx, tenant, body))
        });
    let get = warp::path!("api" / "v1" / "campaigns" / CampaignId)
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), get_campaign(ctx, tenant, id)));
    let patch = warp::path!("api" / "v1" / "campaigns" / CampaignId)
        .and(warp::patch())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and(json_body::<CampaignInput>(limit, read_timeout))
        .and_then(|id, tenant, ctx: Ctx, body| {
            respond(ctx.clone(), update_campaign(ctx, tenant, id, body))
        });
    let delete = warp::path!("api" / "v1" / "campaigns" / CampaignId)
        .and(warp::delete())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|id, tenant, ctx: Ctx| respond(ctx.clone(), delete_campaign(ctx, tenant, id)));
    // The id as text, parsed in the handler: a malformed one is a 400
    // problem rather than warp's 404 for a path that does not match.
    let summary = warp::path!("api" / "v1" / "campaigns" / String / "summary")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|id: String, tenant, ctx: Ctx| {
            respond(ctx.clone(), campaign_summary(ctx, tenant, id))
        });
    let command = warp::path!("api" / "v1" / "campaigns" / CampaignId / CampaignCommand)
        .and(warp::post())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|id, command, tenant, ctx: Ctx| {
            respond(ctx.clone(), command_campaign(ctx, tenant, id, command))
        });
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .or(summary)
        .unify()
        .or(command)
        .unify()
        .boxed()
}

/// List the tenant's campaigns.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns",
    security(("bearer" = [])),
    params(CampaignListParams),
    responses(
        (status = 200, description = "A page of campaigns", body = CampaignPage),
        (status = 400, description = "Bad query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad filter or page", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_campaigns(
    ctx: Ctx,
    tenant: TenantId,
    q: CampaignListParams,
) -> Result<Response, ApiError> {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<CampaignState>()
                .map_err(|e| ApiError::invalid("state", e))?,
        ),
    };
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let db_page = page.id_page()?;
    let mut conn = ctx.conn().await?;
    let rows = db::campaigns::list(&mut conn, tenant, state, db_page).await?;
    let views: Vec<CampaignView> = rows.into_iter().map(Into::into).collect();
    ok(
        StatusCode::OK,
        &PageOf::new(views, db_page.limit, |c| c.id.to_string()),
    )
}

/// Create a campaign (in `draft`).
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns",
    security(("bearer" = [])),
    request_body = CampaignInput,
    responses(
        (status = 201, description = "The campaign", body = CampaignView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_campaign(
    ctx: Ctx,
    tenant: TenantId,
    input: CampaignInput,
) -> Result<Response, ApiError> {
    let mut campaign = blank_campaign(tenant, ctx.config.dialer.default_telephony);
    apply(&ctx, input, &mut campaign)?;
    let mut conn = ctx.conn().await?;
    let stored = db::campaigns::insert(&mut conn, &campaign).await?;
    ok(StatusCode::CREATED, &CampaignView::from(stored))
}

fn not_found(id: CampaignId) -> ApiError {
    ApiError::NotFound(format!("no campaign {id}"))
}

/// Get one campaign.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_campaign(
    ctx: Ctx,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    let campaign = db::campaigns::get(&mut conn, tenant, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    ok(StatusCode::OK, &CampaignView::from(campaign))
}

/// Change a campaign's settings (not in `stopping`, `completed`, `cancelled`).
#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Campaign id")),
    request_body = CampaignPatch,
    responses(
        (status = 200, description = "The changed campaign", body = CampaignView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not editable in its state (only `recording_retention_days` may change in any state)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_campaign(
    ctx: Ctx,
    tenant: TenantId,
    id: CampaignId,
    input: CampaignInput,
) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    let ctx2 = ctx.clone();
    let saved = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let mut campaign = db::campaigns::lock(conn, tenant, id)
                .await?
                .ok_or_else(|| not_found(id))?;
            let state = campaign.state();
            // How long recordings are kept is about data, not dialling: it
            // may change in any state (a completed campaign's recordings
            // too).
            if !state.is_editable() && !input.only_retention() {
                return Err(ApiError::Conflict(format!(
                    "a campaign that is {state} cannot be changed"
                )));
            }
            apply(&ctx2, input, &mut campaign)?;
            db::campaigns::save(conn, &campaign)
                .await?
                .ok_or_else(|| not_found(id))
        })
        .await?;
    drop(conn);
    if crate::runtime::is_live(saved.state()) {
        // Every node's dialer and actor for it read the settings again:
        // this one's directly, the others' through a notice.
        if let Some(runtime) = ctx.runtime.get()
            && let Err(e) = runtime.changed(tenant, id).await
        {
            tracing::warn!(campaign.id = %id, error = %e, "live campaign not reloaded");
        }
        ctx.tell_other_nodes(tenant, id, What::Changed).await;
    }
    ok(StatusCode::OK, &CampaignView::from(saved))
}

/// Delete a campaign with its contacts and calls (only `draft`,
/// `completed` or `cancelled`: stop a live one first).
#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Campaign id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Still live", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_campaign(
    ctx: Ctx,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let campaign = db::campaigns::lock(conn, tenant, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let state = campaign.state();
        if !state.is_deletable() {
            return Err(ApiError::Conflict(format!(
                "a campaign that is {state} cannot be deleted; stop it first"
            )));
        }
        db::campaigns::delete(conn, tenant, id).await?;
        Ok(())
    })
    .await?;
    no_content()
}

/// A campaign's figures, counted by the database in one transaction:
/// contacts by status and dialled, calls live and by outcome, contacts
/// answered and in conversation, and the voice-to-voice latency of its
/// agent replies (percentiles and a histogram in fixed buckets). What the
/// console's progress bars, funnel and latency histogram draw, at any
/// campaign size.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/summary", tag = "campaigns",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign's figures", body = CampaignSummary),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn campaign_summary(
    ctx: Ctx,
    tenant: TenantId,
    id: String,
) -> Result<Response, ApiError> {
    let id: CampaignId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("campaign id {id:?} is not a UUID")))?;
    let mut conn = ctx.conn().await?;
    let summary = db::summary::campaign(&mut conn, tenant, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    ok(StatusCode::OK, &summary)
}

/// Start, pause, resume or stop a campaign.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/{command}", tag = "campaigns",
    security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Campaign id"),
        ("command" = String, Path, description = "start | pause | resume | stop"),
    ),
    responses(
        (status = 200, description = "The campaign in its new state", body = CampaignView),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign or command", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not allowed in the current state", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn command_campaign(
    ctx: Ctx,
    tenant: TenantId,
    id: CampaignId,
    command: CampaignCommand,
) -> Result<Response, ApiError> {
    let mut conn = ctx.conn().await?;
    match db::campaigns::transition(&mut conn, tenant, id, command).await {
        Ok(campaign) => {
            drop(conn);
            // Stored: now every node's actor for the campaign must hear of
            // it, above all the lease holder's, which may run elsewhere.
            // This node's directly (a cast: at once, even with Redis
            // down), then the others' through a notice. Whatever is lost
            // on the way, the holder reads the stored state every tick.
            if let Some(runtime) = ctx.runtime.get()
                && let Err(e) = runtime.command(tenant, id, command).await
            {
                // The state is stored; a restart of the server (or a
                // resume) brings the actor back. Say so in the log.
                tracing::error!(campaign.id = %id, %command, error = %e, "the runtime did not act on a lifecycle command");
            }
            ctx.tell_other_nodes(tenant, id, command.into()).await;
            ok(StatusCode::OK, &CampaignView::from(campaign))
        }
        Err(TransitionError::NotFound) => Err(not_found(id)),
        Err(TransitionError::Illegal(e)) => Err(ApiError::Conflict(e.to_string())),
        Err(TransitionError::Db(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_masks_round_trip() {
        assert_eq!(days_to_mask(&DEFAULT_WINDOW_DAYS), 0b0011111);
        assert_eq!(mask_to_days(0b1100000), vec![Weekday::Sat, Weekday::Sun]);
        assert_eq!(mask_to_days(days_to_mask(&WEEK)), WEEK.to_vec());
    }

    #[test]
    fn language_tags() {
        for ok in ["en", "en-US", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert!(valid_language(ok), "{ok}");
        }
        for bad in ["", "e", "english!", "en_US", "en--US", "toolongprimary"] {
            assert!(!valid_language(bad), "{bad}");
        }
    }
}
