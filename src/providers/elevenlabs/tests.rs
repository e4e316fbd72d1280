//! The real client against the emulator on loopback.

use super::*;

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        "elevenlabs",
        5,
        Duration::from_secs(30),
    ))
}

#[test]
fn bad_configs_are_refused() {
    let mut cfg = ElevenLabsConfig::new(Secret::new("k"));
    cfg.base_url = "ftp://x".into();
    assert!(ElevenLabs::new(cfg, breaker()).is_err());
    let mut cfg = ElevenLabsConfig::new(Secret::new("k"));
    cfg.ws_base_url = "https://x".into();
    assert!(ElevenLabs::new(cfg, breaker()).is_err());
    let mut cfg = ElevenLabsConfig::new(Secret::new("k"));
    cfg.output_format = "mp3_44100_128".into();
    assert!(ElevenLabs::new(cfg, breaker()).is_err());
    assert!(ElevenLabs::new(ElevenLabsConfig::new(Secret::new("k")), breaker()).is_ok());
}

#[test]
fn assembler_carries_odd_bytes() {
    let mut a = Assembler::new(16_000);
    let mut out = Vec::new();
    a.audio(&[1], &mut out);
    assert!(out.is_empty());
    a.audio(&[2, 3, 4], &mut out);
    a.audio(&[5], &mut out);
    assert_eq!(out, vec![TtsEvent::Audio(vec![1, 2, 3, 4])]);
    // 3200 bytes = 100 ms at 16 kHz.
    assert_eq!(a.alignment(3200, &[0.0, 70.0]), vec![(0, 100), (1, 170)]);
    assert_eq!(a.alignment(6400, &[10.0]), vec![(2, 210)]);
}

#[test]
fn server_messages_never_panic_and_map() {
    let mut a = Assembler::new(16_000);
    let mut out = Vec::new();
    for bad in [
        "",
        "null",
        "[1]",
        "{\"audio\": 5}",
        "{\"audio\": \"***\"}",
        "{\"audio\": \"AAAA\", \"alignment\": {\"chars\": [\"a\"], \"charStartTimesMs\": [\"x\"]}}",
    ] {
        assert!(
            matches!(
                wire::ws_message(bad, &mut a, &mut out),
                Err(PortError::Protocol(_))
            ),
            "{bad}"
        );
    }
    let quota = r#"{"message":"Too many concurrent requests","error":"too_many_concurrent_requests","code":1008}"#;
    assert!(matches!(
        wire::ws_message(quota, &mut a, &mut out),
        Err(PortError::RateLimited { .. })
    ));
    assert_eq!(
        wire::ws_message(r#"{"isFinal":true}"#, &mut a, &mut out),
        Ok(true)
    );
    assert_eq!(
        wire::ws_message(r#"{"audio":null,"isFinal":null}"#, &mut a, &mut out),
        Ok(false)
    );
    assert!(matches!(
        wire::close_result(1008, "invalid_api_key"),
        Err(PortError::Rejected(_))
    ));
    assert!(matches!(
        wire::close_result(1011, "boom"),
        Err(PortError::Unavailable(_))
    ));
    assert_eq!(wire::close_result(1000, ""), Ok(true));
}
