//! The ports: everything the actor tree needs from the world, as traits.
//! `src/` implements them with real clients (Vonage, Deepgram, ElevenLabs,
//! OpenAI-compatible LLMs, PostgreSQL); tests implement them with fakes.
//!
//! Audio rides bounded channels with the capacities named here, never an
//! actor mailbox: a stalled consumer makes the producer drop or wait, it
//! never grows memory.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ids::{CallId, CampaignId, ContactId, TenantId};

/// Caller audio frames buffered between the media socket and the call
/// (50 x 20 ms = 1 s); when full, the oldest audio is the one lost.
pub const MEDIA_IN_CAPACITY: usize = 50;
/// Outbound items buffered towards the media socket (25 x 20 ms = 500 ms,
/// more than the playout lead, so pacing, not this buffer, bounds latency).
pub const MEDIA_OUT_CAPACITY: usize = 25;
/// Audio chunks buffered towards an STT session (100 x 20 ms = 2 s).
pub const STT_AUDIO_CAPACITY: usize = 100;
/// Events buffered from a provider session (STT, LLM).
pub const PROVIDER_EVENT_CAPACITY: usize = 64;
/// Events buffered from a TTS synthesis: few, because audio chunks are
/// large and a consumer that is ahead leaves the rest in the provider's
/// socket (back-pressure) rather than in memory.
pub const TTS_EVENT_CAPACITY: usize = 8;

/// Why a port call failed; actors decide on retries and fallbacks from
/// the kind alone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// No answer in time (connect, first byte or idle).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The provider asked us to slow down.
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited {
        /// The provider's Retry-After, when it gave one.
        retry_after: Option<Duration>,
    },
    /// The provider is down or its circuit breaker is open.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (4xx): retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The provider sent something we cannot understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The request was sent and whether it took effect is unknown (a
    /// time-out or a reset after it was written): it must be resolved,
    /// never simply repeated (a second create-call is a second call).
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

impl PortError {
    /// Whether the same request may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, PortError::Rejected(_) | PortError::Unknown(_))
    }
}

/// Result of a port call.
pub type PortResult<T> = Result<T, PortError>;

// ----- telephony -----------------------------------------------------------

/// The provider's id of a call (Vonage's `uuid`, Twilio's `CallSid`). An
/// implementation that routes between providers may qualify it with the
/// provider's name; the call only stores it and hands it back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProviderCallId(pub String);

/// Everything needed to place one call.
#[derive(Clone, Debug)]
pub struct PlaceCall {
    /// Our id; goes into the event URL so events find the call.
    pub call: CallId,
    /// Number to call, E.164.
    pub to: String,
    /// Caller id, E.164.
    pub from: String,
    /// Give up ringing after this.
    pub ringing_timeout: Duration,
    /// The provider hangs up after this much talk time.
    pub max_duration: Duration,
    /// Ask the provider to detect answering machines.
    pub machine_detection: bool,
    /// Single-use secret of the media socket URL.
    pub media_token: String,
}

/// Placing and ending calls.
pub trait TelephonyPort: Send + Sync + 'static {
    /// Asks the provider to dial; returns its call id once accepted.
    fn place_call(&self, req: PlaceCall)
    -> impl Future<Output = PortResult<ProviderCallId>> + Send;

    /// [`Self::place_call`] through a named telephony route: the
    /// campaign's choice of provider(s) (`CallConfig::telephony`), a name
    /// only the implementation interprets (empty: its default). An
    /// implementation with one provider ignores it. Whatever the route,
    /// the returned id must let [`Self::hang_up`] and [`Self::leg_state`]
    /// reach the provider that placed the leg.
    fn place_call_on(
        &self,
        telephony: &str,
        req: PlaceCall,
    ) -> impl Future<Output = PortResult<ProviderCallId>> + Send {
        let _ = telephony;
        self.place_call(req)
    }
    /// Hangs up; a call that is already gone counts as success.
    fn hang_up(&self, id: ProviderCallId) -> impl Future<Output = PortResult<()>> + Send;

    /// The provider's leg for our call `call`, placed to `to` since
    /// `since`, from its call list; `Ok(None)` when it has none (or the
    /// provider cannot be asked). How a create-call whose answer was lost
    /// is resolved.
    fn find_call(
        &self,
        _call: CallId,
        _to: &str,
        _since: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<Option<ProviderCallId>>> + Send {
        async { Ok(None) }
    }

    /// The leg's state as the provider reports it (Vonage `GET
    /// /v1/calls/{uuid}`), for reconciling a call whose process died;
    /// `None` when the provider does not know the leg. A provider that
    /// cannot be asked answers `None`.
    fn leg_state(
        &self,
        _id: ProviderCallId,
    ) -> impl Future<Output = PortResult<Option<LegState>>> + Send {
        async { Ok(None) }
    }

    /// Cold transfer: the provider connects leg `id` to `number` (E.164)
    /// showing `caller_id`, ending our media stream on it; the leg goes
    /// on without us. `Ok` once the provider accepted the request. The
    /// default refuses, so a port without transfers compiles and a
    /// transfer through it fails cleanly.
    fn transfer(
        &self,
        _id: ProviderCallId,
        _number: &str,
        _caller_id: &str,
    ) -> impl Future<Output = PortResult<()>> + Send {
        async { Err(PortError::Rejected("transfer is not supported".into())) }
    }
}

/// A provider leg's state (see [`TelephonyPort::leg_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegState {
    /// Still up (started, ringing, answered).
    Live {
        /// The callee picked up.
        answered: bool,
    },
    /// Over, with the provider's final status (`completed`, `busy`,
    /// `timeout`, `unanswered`, `rejected`, `failed`, `cancelled`).
    Ended(String),
}

/// Call progress reported by the provider (webhooks), already parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TelephonyEvent {
    /// The far end is ringing.
    Ringing,
    /// The far end picked up.
    Answered,
    /// Machine detection: an answering machine.
    Machine,
    /// Machine detection: a person.
    Human,
    /// The line was busy.
    Busy,
    /// Nobody answered before the ringing timeout.
    NoAnswer,
    /// The callee declined.
    Rejected,
    /// The provider could not place or keep the call.
    Failed(String),
    /// Cancelled before it was answered.
    Cancelled,
    /// The call ended after being answered.
    Completed,
}

/// Audio and signals from the callee's side of the media socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaIn {
    /// One frame of caller audio (PCM s16le at the call's rate).
    Audio(Vec<u8>),
    /// A keypad digit.
    Dtmf(char),
    /// The provider reached a mark we sent: audio before it was played.
    Mark(String),
}

/// What the call sends down the media socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaOut {
    /// One frame of agent audio.
    Audio(Vec<u8>),
    /// Drop whatever audio the provider still has queued (barge-in).
    Clear,
    /// Ask to be told (as [`MediaIn::Mark`]) when playback reaches here.
    Mark(String),
}

// ----- speech to text ------------------------------------------------------

/// How to open an STT session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SttConfig {
    /// BCP 47 language of the caller.
    pub language: String,
    /// Sample rate of the PCM sent.
    pub sample_rate: u32,
}

/// What an STT session reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SttEvent {
    /// The caller started speaking (provider VAD).
    SpeechStarted,
    /// A provisional transcript of the current utterance.
    Interim(String),
    /// A final transcript segment; `speech_final` when the provider's
    /// endpointer decided the caller finished speaking.
    Final {
        /// The text.
        text: String,
        /// End of the caller's turn by the provider's endpointing.
        speech_final: bool,
    },
    /// No speech for the utterance-end interval: the turn is over.
    UtteranceEnd,
    /// The session failed; it produces nothing more.
    Error(PortError),
}

/// An open STT session.
#[derive(Debug)]
pub struct SttSession {
    /// PCM in; capacity [`STT_AUDIO_CAPACITY`]. Dropping it finalises and
    /// closes the session.
    pub audio: mpsc::Sender<Vec<u8>>,
    /// Events out; capacity [`PROVIDER_EVENT_CAPACITY`].
    pub events: mpsc::Receiver<SttEvent>,
}

/// Streaming speech to text.
pub trait SttPort: Send + Sync + 'static {
    /// The provider as people name it (`deepgram`, `whisper`): the
    /// supervisor view shows which one of a chain a call is using.
    fn provider_name(&self) -> &str;
    /// Opens a session.
    fn open(&self, cfg: SttConfig) -> impl Future<Output = PortResult<SttSession>> + Send;
}

// ----- LLM -----------------------------------------------------------------

/// Who said a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The callee.
    User,
    /// The agent.
    Assistant,
    /// A tool's result.
    Tool,
}

/// A tool call the LLM made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The LLM's id of the call, echoed in the result.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as the JSON text the LLM produced.
    pub arguments: String,
}

/// One message of the conversation history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Speaker.
    pub role: Role,
    /// Text (for the agent: what the callee heard).
    pub content: String,
    /// Tool calls the assistant made in this message.
    pub tool_calls: Vec<ToolCall>,
    /// For tool results: the call answered.
    pub tool_call_id: Option<String>,
}

/// A tool offered to the LLM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolSpec {
    /// Name the LLM calls it by.
    pub name: String,
    /// When to use it.
    pub description: String,
    /// JSON Schema of its arguments, as text.
    pub parameters_json: String,
}

/// A streamed chat completion request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// History, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// Tools offered.
    pub tools: Vec<ToolSpec>,
}

/// Why a completion stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end.
    Stop,
    /// Token limit.
    Length,
    /// It called tools.
    ToolCalls,
    /// Anything else the provider said.
    Other,
}

/// What a completion stream yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LlmEvent {
    /// More text.
    Text(String),
    /// A complete tool call.
    ToolCall(ToolCall),
    /// The end.
    Finish(FinishReason),
    /// The stream failed.
    Error(PortError),
}

/// Streaming chat completions. Dropping the receiver cancels the stream.
pub trait LlmPort: Send + Sync + 'static {
    /// The provider as people name it (`groq`, `openai`): the supervisor
    /// view shows which one of a chain a call is using.
    fn provider_name(&self) -> &str;
    /// Starts a completion.
    fn stream(
        &self,
        req: ChatRequest,
    ) -> impl Future<Output = PortResult<mpsc::Receiver<LlmEvent>>> + Send;
}

// ----- text to speech ------------------------------------------------------

/// One sentence to speak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtsRequest {
    /// The text.
    pub text: String,
    /// Voice id.
    pub voice: String,
    /// BCP 47 language.
    pub language: String,
    /// PCM rate wanted (the call's rate).
    pub sample_rate: u32,
}

/// What a synthesis yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TtsEvent {
    /// PCM s16le at the requested rate.
    Audio(Vec<u8>),
    /// Character timings, when the provider gives them: (char index, ms).
    Alignment(Vec<(usize, u32)>),
    /// All audio of the request was sent.
    Done,
    /// It failed.
    Error(PortError),
}

/// Streaming text to speech. Dropping the receiver cancels synthesis.
pub trait TtsPort: Send + Sync + 'static {
    /// The provider as people name it (`elevenlabs`, `aura`): the
    /// supervisor view shows which one of a chain a call is using.
    fn provider_name(&self) -> &str;
    /// Starts synthesising one request.
    fn synthesize(
        &self,
        req: TtsRequest,
    ) -> impl Future<Output = PortResult<mpsc::Receiver<TtsEvent>>> + Send;
}

// ----- storage and time ----------------------------------------------------

/// The text of a turn still being spoken, for whoever watches the call
/// live ([`CallStore::live_text`]). Never stored: the finished turn is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveText {
    /// Who speaks.
    pub speaker: Role,
    /// The turn's whole text so far (agent: the sentences handed to
    /// speech; callee: the final transcripts plus the latest interim).
    pub text: String,
    /// When the turn began: it names the turn, so a late finished turn
    /// never hides a newer one's text.
    pub started_at: DateTime<Utc>,
}

/// A finished turn, as the call store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnRecord {
    /// Order in the call, from 0.
    pub seq: i32,
    /// Who spoke.
    pub speaker: Role,
    /// What was said or generated.
    pub text: String,
    /// Agent turns: what the callee heard.
    pub heard_text: Option<String>,
    /// Cut short by barge-in or hang-up.
    pub interrupted: bool,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub ended_at: DateTime<Utc>,
    /// Latency split (agent turns).
    pub latency: LatencySplit,
}

/// Where the time of one agent reply went, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySplit {
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

/// Who a call belongs to, for the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CallKey {
    /// Owner.
    pub tenant: TenantId,
    /// Campaign.
    pub campaign: CampaignId,
    /// Contact.
    pub contact: ContactId,
    /// The call.
    pub call: CallId,
    /// Which attempt of the contact it is (from 1).
    pub attempt: u32,
}

/// Something the callee asked for during the call; stored at once, so it
/// survives whatever happens before the campaign records the outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalleeRequest {
    /// Never call this number again (goes on the tenant's list at once).
    DoNotCall,
    /// Call back at this time.
    Callback(DateTime<Utc>),
}

/// Persistence of a call's life.
pub trait CallStore: Send + Sync + 'static {
    /// A status transition (`dialing`, `ringing`, `answered`, ...).
    fn status(
        &self,
        key: CallKey,
        status: &'static str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// The provider accepted the call.
    fn provider_id(
        &self,
        key: CallKey,
        id: ProviderCallId,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// A finished turn.
    fn turn(&self, key: CallKey, turn: TurnRecord) -> impl Future<Output = PortResult<()>> + Send;
    /// The callee asked for something.
    fn requested(
        &self,
        key: CallKey,
        request: CalleeRequest,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// A transfer to a person is about to be asked of the provider. Stored
    /// before the request goes out, so that after a crash the reconciler
    /// leaves the leg (now the person's) up and records `transferred`.
    fn transfer_requested(
        &self,
        key: CallKey,
        at: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// The outcome; the call is over.
    fn finish(
        &self,
        key: CallKey,
        outcome: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// A turn's text as it is spoken, for live watchers only: not a
    /// record (the finished turn is). Called on the CallActor's own task,
    /// so it must not block or wait: an implementation hands it on or
    /// drops it. Nothing by default.
    fn live_text(&self, key: CallKey, text: LiveText) {
        let _ = (key, text);
    }
}

/// Time, injected: monotonic for timing, wall clock for records. Under
/// tokio's paused clock the monotonic side is virtual.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock now.
    fn utc(&self) -> DateTime<Utc>;
}

/// The clock of production and of paused-time tests: tokio's monotonic
/// time (virtual when paused) and the system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rejections_are_final() {
        assert!(!PortError::Rejected("400".into()).is_retryable());
        for e in [
            PortError::Timeout("connect".into()),
            PortError::RateLimited { retry_after: None },
            PortError::Unavailable("breaker open".into()),
            PortError::Protocol("bad json".into()),
        ] {
            assert!(e.is_retryable(), "{e}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock;
        let t0 = clock.now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(clock.now() - t0, Duration::from_secs(5));
    }
}
