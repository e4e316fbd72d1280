//! The real client against the emulator on loopback, in both modes.

use super::*;

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("aura", 5, Duration::from_secs(30)))
}

#[test]
fn bad_settings_are_build_errors() {
    let mut cfg = AuraConfig::new(Secret::new("k"));
    cfg.base_url = "wss://api.deepgram.com".into();
    assert!(matches!(
        AuraTts::new(cfg, breaker()),
        Err(BuildError::BadSetting {
            setting: "base_url",
            ..
        })
    ));
    assert!(matches!(
        AuraTts::new(AuraConfig::new(Secret::new("a\nb")), breaker()),
        Err(BuildError::BadKey { .. })
    ));
}
