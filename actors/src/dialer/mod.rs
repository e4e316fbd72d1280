//! The dialer: admission of new calls (this module's `admission`) and,
//! next, the DialerActor that owns the call actors.

pub mod admission;
