//! The simulated world: emulators of the providers and the in-band audio
//! code ([`codec`]) through which their text travels.

pub mod codec;
