//! Vonage Voice API: the primary telephony provider (spec: providers.md §1).
//!
//! - [`jwt`]: the application JWT (RS256) every REST request carries, cached.
//! - [`ncco`]: NCCO actions and the create-call body, built from a
//!   [`PlaceCall`](talky_actors::ports::PlaceCall).
//! - [`answer`]: answer_url mode (the create-call body names our answer
//!   webhook instead of carrying the NCCO).
//! - [`client`]: [`VonageClient`], the [`TelephonyPort`](talky_actors::ports::TelephonyPort)
//!   over `POST /v1/calls` and `PUT /v1/calls/{uuid}`.
//! - [`events`]: the event webhook parsed into [`VonageEvent`] and mapped to
//!   [`TelephonyEvent`](talky_actors::ports::TelephonyEvent).
//! - [`signature`]: verification of signed webhooks (HS256 + payload hash).
//! - [`callback`]: the per-call key in every callback URL we give Vonage.
//! - [`socket`]: the media WebSocket's wire format (§1.6): frames, events,
//!   commands, close codes; the route that serves it is `http::media`.

pub mod answer;
pub mod callback;
pub mod client;
pub mod events;
pub mod jwt;
pub mod ncco;
pub mod signature;
pub mod socket;

pub use answer::AnswerMode;
pub use callback::CallbackKey;
pub use client::{DEFAULT_API_BASE_URL, VonageClient, VonageConfig};
pub use events::{EventError, VonageEvent, VonageStatus};
pub use jwt::{AppJwt, JwtError};
pub use ncco::{CreateCall, MachineDetection, NccoAction};
pub use signature::{SignatureError, SignatureVerifier, VerifiedClaims};
