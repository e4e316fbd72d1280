//! Twilio: the second telephony provider (spec: providers.md §2), built to
//! Vonage's standard and mapped to the same ports, so the CallActor, STT
//! and TTS cannot tell which carried a call.
//!
//! - [`client`]: [`TwilioClient`], the
//!   [`TelephonyPort`](talky_actors::ports::TelephonyPort) over the REST
//!   API (create call, hang up, call status, call list), with its
//!   [`TwilioConfig`].
//! - [`twiml`]: the inline TwiML of a call (`<Connect><Stream>` to our
//!   media socket) and a small reader of it.
//! - [`callback`]: the status callback URL of a call and its per-call key.
//! - [`status`]: status and AMD callbacks parsed into [`TwilioCallback`]
//!   and mapped to [`TelephonyEvent`](talky_actors::ports::TelephonyEvent)s.
//! - [`signature`]: `X-Twilio-Signature` (HMAC-SHA1) signing and
//!   verification.
//! - [`socket`]: Media Streams messages, and the μ-law 8 kHz <-> PCM 16 kHz
//!   gateway ([`MediaBridge`]).
//!
//! Wired in: the routes (`crate::http::twilio`: `POST
//! /twilio/status/{call}/{key}`, `GET /twilio/media/{call}/{token}` over
//! the shared media path), and `talky serve`'s per-campaign choice of
//! provider with the Vonage -> Twilio failover
//! (`crate::providers::telephony_chain`). Not yet: the emulator.

pub mod callback;
pub mod client;
pub mod signature;
pub mod socket;
pub mod status;
pub mod twiml;

pub use client::{
    CallResource, DEFAULT_API_BASE_URL, TwilioClient, TwilioConfig, TwilioMachineDetection,
};
pub use signature::{RequestValidator, SignatureError};
pub use socket::{MediaBridge, Outbound, SocketError, StreamEvent};
pub use status::{AnsweredBy, CallbackError, TwilioCallback, TwilioStatus};
pub use twiml::TwimlError;
