//! What a call needs to know, fixed when it is spawned.

use std::time::Duration;

use crate::supervision::RestartPolicy;

/// Default: give up ringing after this.
pub const DEFAULT_RINGING_TIMEOUT: Duration = Duration::from_secs(45);
/// Default: reprompt after this much silence from the callee.
pub const DEFAULT_NO_INPUT_TIMEOUT: Duration = Duration::from_secs(8);
/// Default: reprompts before a polite hang-up.
pub const DEFAULT_MAX_REPROMPTS: u32 = 2;
/// Default: caller speech shorter than this while the agent talks is a
/// backchannel ("mm-hm"), not a barge-in.
pub const DEFAULT_BARGE_IN_MIN_SPEECH: Duration = Duration::from_millis(300);
/// Default: a final transcript of at most this many words, heard while the
/// agent talks without a barge-in, is a backchannel.
pub const DEFAULT_BACKCHANNEL_MAX_WORDS: usize = 2;
/// Default: failures of a provider in use before its fallback takes over.
pub const DEFAULT_SWITCH_AFTER: u32 = 2;
/// Default: timeout of one port call (open a session, start a stream).
pub const DEFAULT_PORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default: timeout of the create-call request (see
/// [`CallConfig::place_timeout`]).
pub const DEFAULT_PLACE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default: how long a call whose create-call ended unknown waits for an
/// event to tell the provider's id before asking the provider's call list.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default: how long the apology may play before the hang-up.
pub const DEFAULT_APOLOGY_GRACE: Duration = Duration::from_secs(4);
/// Longest wait for a do-not-call to be stored before the call ends
/// anyway. The agent's acknowledgement ("you will not be called again") is
/// held until the write lands; past this the call is hung up without it,
/// and the record writer keeps retrying in the background (the report
/// carries `do_not_call` meanwhile).
pub const DNC_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the shutdown line may play before the hang-up: the default
/// line is about five seconds of speech; the node is draining, so this
/// bounds how long a call holds it up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
/// Default: said when the node stops under a live call.
pub const DEFAULT_SHUTDOWN_TEXT: &str =
    "I'm sorry, I have to end our call now. We will call you back. Goodbye.";

/// What to do when a machine answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineAction {
    /// Speak the voicemail message, then hang up.
    LeaveMessage,
    /// Hang up at once.
    Hangup,
}

/// The fixed settings of one call.
#[derive(Clone, Debug)]
pub struct CallConfig {
    /// Number to call (E.164).
    pub to: String,
    /// The campaign's name, as the supervisor view shows the call (given
    /// with the settings: a snapshot never waits on a look-up).
    pub campaign_name: String,
    /// Caller id (E.164).
    pub from: String,
    /// Instructions for the LLM.
    pub system_prompt: String,
    /// First words once media is up.
    pub greeting: String,
    /// Spoken on a machine when `machine_action` is `LeaveMessage`.
    pub voicemail_message: Option<String>,
    /// What to do on a machine.
    pub machine_action: MachineAction,
    /// Ask the provider to detect machines.
    pub machine_detection: bool,
    /// TTS voice.
    pub voice: String,
    /// BCP 47 language.
    pub language: String,
    /// LLM model.
    pub llm_model: String,
    /// PCM sample rate of the media path.
    pub sample_rate: u32,
    /// Hard limit on talk time (also sent to the provider).
    pub max_duration: Duration,
    /// Give up ringing after this.
    pub ringing_timeout: Duration,
    /// Silence from the callee before a reprompt.
    pub no_input_timeout: Duration,
    /// Reprompts before hanging up.
    pub max_reprompts: u32,
    /// Said on silence.
    pub reprompt_text: String,
    /// Said before hanging up on silence or at max duration.
    pub goodbye_text: String,
    /// Said when a provider fails beyond its restarts.
    pub apology_text: String,
    /// Said when this node shuts down under the call (`CallMsg::Shutdown`).
    pub shutdown_text: String,
    /// Minimum caller speech that cuts the agent.
    pub barge_in_min_speech: Duration,
    /// Quiet audio after which the VAD calls the callee's speech over.
    pub vad_hangover: Duration,
    /// Longest final transcript treated as a backchannel.
    pub backchannel_max_words: usize,
    /// Restart intensity of each child.
    pub restart: RestartPolicy,
    /// Failures of a provider before its fallback.
    pub switch_after: u32,
    /// Timeout of one port call.
    pub port_timeout: Duration,
    /// Timeout of `place_call`. Must exceed the telephony client's own
    /// request timeout, so the client's timeout fires first (and says
    /// whether the request was sent); if this one fires anyway, whether
    /// the call was placed is unknown (`PortError::Unknown`).
    pub place_timeout: Duration,
    /// After a create-call of unknown outcome, wait this long for an event
    /// carrying the provider's id (`CallMsg::ProviderId`) before asking
    /// `TelephonyPort::find_call`.
    pub resolve_timeout: Duration,
    /// Single-use token of the media socket URL.
    pub media_token: String,
    /// The telephony route the call is placed through
    /// ([`TelephonyPort::place_call_on`](crate::ports::TelephonyPort::place_call_on)):
    /// the campaign's choice, empty for the port's default.
    pub telephony: String,
    /// Where a person takes over the call (the campaign's `transfer`
    /// setting); `None`: the `transfer_call` tool is not offered.
    pub transfer: Option<TransferConfig>,
    /// Said when a transfer request failed; the call goes on with the
    /// agent (the tool is withdrawn).
    pub transfer_failed_text: String,
}

/// A cold transfer to a person: the agent says `announce`, then the
/// provider connects the callee to `number` and the call is ours no more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferConfig {
    /// E.164, with its `+`.
    pub number: String,
    /// The line the agent says before handing over.
    pub announce: String,
}

/// Said when the provider refused or did not answer a transfer request.
pub const DEFAULT_TRANSFER_FAILED_TEXT: &str =
    "I'm sorry, I couldn't connect you to a colleague right now. Let me help you myself.";

impl CallConfig {
    /// Settings with the defaults for everything but the numbers and the agent.
    pub fn new(to: &str, from: &str, system_prompt: &str, greeting: &str) -> Self {
        Self {
            to: to.into(),
            campaign_name: String::new(),
            from: from.into(),
            system_prompt: system_prompt.into(),
            greeting: greeting.into(),
            voicemail_message: None,
            machine_action: MachineAction::Hangup,
            machine_detection: true,
            voice: "rachel".into(),
            language: "en-US".into(),
            llm_model: "llama-3.3-70b-versatile".into(),
            sample_rate: 16_000,
            max_duration: Duration::from_secs(600),
            ringing_timeout: DEFAULT_RINGING_TIMEOUT,
            no_input_timeout: DEFAULT_NO_INPUT_TIMEOUT,
            max_reprompts: DEFAULT_MAX_REPROMPTS,
            reprompt_text: "Are you still there?".into(),
            goodbye_text: "Thank you for your time. Goodbye.".into(),
            apology_text:
                "I'm sorry, we're having technical difficulties. We'll call you back. Goodbye."
                    .into(),
            shutdown_text: DEFAULT_SHUTDOWN_TEXT.into(),
            barge_in_min_speech: DEFAULT_BARGE_IN_MIN_SPEECH,
            vad_hangover: crate::media::vad::DEFAULT_HANGOVER,
            backchannel_max_words: DEFAULT_BACKCHANNEL_MAX_WORDS,
            restart: RestartPolicy::default(),
            switch_after: DEFAULT_SWITCH_AFTER,
            port_timeout: DEFAULT_PORT_TIMEOUT,
            place_timeout: DEFAULT_PLACE_TIMEOUT,
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
            media_token: String::new(),
            telephony: String::new(),
            transfer: None,
            transfer_failed_text: DEFAULT_TRANSFER_FAILED_TEXT.into(),
        }
    }
}
