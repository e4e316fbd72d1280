//! The call's restartable children. Each holds one provider session (never
//! conversation state) and reports to the CallActor; a failure makes the
//! child fail, and the CallActor's `handle_supervisor_evt` decides on a
//! restart (intensity, backoff, provider fallback).

pub(crate) mod llm;
pub(crate) mod stt;
pub(crate) mod tts;

use std::future::Future;
use std::time::Duration;

use crate::ports::{PortError, PortResult};

/// A port call under a timeout.
pub(crate) async fn timed<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = PortResult<T>>,
) -> PortResult<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(PortError::Timeout(format!("{what} after {timeout:?}"))),
    }
}
