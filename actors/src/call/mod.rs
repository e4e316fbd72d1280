//! One call: its lifecycle (this module) and, next, the CallActor that
//! runs the conversation through the ports.

pub mod lifecycle;
