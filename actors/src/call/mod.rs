//! One call: its lifecycle, and the CallActor that runs the conversation
//! through the ports while supervising its STT, LLM and TTS children.

mod actor;
mod agent;
mod children;
pub mod config;
pub mod lifecycle;
mod msg;
mod router;
mod store_writer;

#[cfg(test)]
pub(crate) mod tests;

pub use actor::{CallActor, CallState};
pub use agent::tools;
pub use config::{CallConfig, MachineAction};
pub use msg::{
    CallArgs, CallMsg, CallPorts, CallReport, CallSnapshot, ChildKind, ChildSnapshot, Ports,
    ReportSink, TimerKind, campaign_outcome,
};
pub use router::{CallerAudio, SttChanges};
