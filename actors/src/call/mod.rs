//! One call: its lifecycle, and the CallActor that runs the conversation
//! through the ports while supervising its STT, LLM and TTS children.

mod actor;
mod children;
pub mod config;
mod conversation;
mod leg;
pub mod lifecycle;
mod msg;
mod ports;
pub(crate) mod router;
mod state;
mod store_writer;
mod supervise;

#[cfg(test)]
pub(crate) mod tests;

pub use actor::{CallActor, CallArgs};
pub use config::{CallConfig, MachineAction, TransferConfig};
pub use conversation::{TRANSFER_TOOL, tools, tools_for};
pub use msg::{
    CallMsg, CallReport, CallSnapshot, ChildKind, ChildSnapshot, MediaInbound, MediaSession,
    ReportSink, TimerKind, campaign_outcome,
};
pub use ports::{CallPorts, Ports};
pub use router::{CallerAudio, SttChanges};
pub use state::CallState;
pub use store_writer::wait_for_record_writers;
