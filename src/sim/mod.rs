//! Wire-exact emulators of the providers, on loopback, for tests, the demo
//! and the load benchmark.

pub mod llm;
