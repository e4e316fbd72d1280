//! The real client against the emulator on loopback.

use super::*;

fn breaker(threshold: u32, open_for: Duration) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("whisper", threshold, open_for))
}

#[test]
fn bad_settings_are_build_errors() {
    let b = breaker(1, Duration::from_secs(1));
    assert!(matches!(
        WhisperStt::new(
            WhisperConfig::with_base_url("ws://x", Secret::new("k")),
            b.clone()
        ),
        Err(BuildError::BadSetting {
            setting: "base_url",
            ..
        })
    ));
    assert!(matches!(
        WhisperStt::new(WhisperConfig::new(Secret::new("a\nb")), b),
        Err(BuildError::BadKey { .. })
    ));
}
