//! Post-call analysis through the real client (`OpenAiClient::complete`)
//! against the LLM emulator: the answer validated against the schema,
//! both `response_format`s, and the emulator's fault knobs (invalid JSON,
//! schema-violating JSON, slow) meeting talky's retry-once-then-error.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use talky::analysis::config::ResponseFormat;
use talky::analysis::prompt::MAX_TOKENS;
use talky::analysis::settings::AnalysisSettings;
use talky::analysis::worker::analyse;
use talky::config::Secret;
use talky::db::analyses::Outcome;
use talky::db::calls::CallTurn;
use talky::providers::breaker::CircuitBreaker;
use talky::providers::openai::{OpenAiClient, OpenAiConfig};

use crate::llm::{AnalysisFault, AnalysisFaultKind, LlmSim, LlmSimConfig, LlmSimHandle};

fn settings() -> AnalysisSettings {
    AnalysisSettings {
        summary_prompt: None,
        structured_data_schema: Some(json!({"type": "object",
            "properties": {"interested": {"type": "boolean"},
                           "best_time": {"type": "string"},
                           "plan": {"type": "string", "enum": ["basic", "premium"]}},
            "required": ["interested", "plan"]})),
        success_rubric: Some("pass/fail: the callee is interested".into()),
    }
}

fn turn(seq: i32, speaker: &str, text: &str) -> CallTurn {
    CallTurn {
        tenant_id: uuid::Uuid::nil(),
        call_id: uuid::Uuid::nil(),
        seq,
        speaker: speaker.into(),
        text: text.into(),
        heard_text: (speaker == "agent").then(|| text.to_string()),
        interrupted: false,
        started_at: Utc::now(),
        ended_at: None,
        stt_ms: None,
        llm_first_token_ms: None,
        tts_first_audio_ms: None,
        first_frame_ms: None,
        voice_to_voice_ms: None,
    }
}

fn conversation() -> Vec<CallTurn> {
    vec![
        turn(0, "agent", "Hello, this is Ada."),
        turn(1, "user", "Yes, I am interested in the basic plan."),
        turn(2, "agent", "Great. When suits you?"),
        turn(3, "user", "Any time after five."),
    ]
}

fn client(sim: &LlmSimHandle) -> OpenAiClient {
    OpenAiClient::new(
        OpenAiConfig::new("llm", sim.base_url(), Secret::new(sim.api_key())),
        Arc::new(CircuitBreaker::new("llm", 5, Duration::from_secs(30))),
    )
    .expect("client")
}

/// One analysis of [`conversation`] through `sim`, as a worker runs it
/// (a model that never answered is a test failure here).
async fn run(sim: &LlmSimHandle, format: ResponseFormat, timeout: Duration) -> Outcome {
    let c = client(sim);
    analyse(
        &[("llm".to_string(), format)],
        |_, body| {
            let c = c.clone();
            async move { c.complete(body, MAX_TOKENS, timeout).await }
        },
        "llama-3.3-70b-versatile",
        &settings(),
        &conversation(),
    )
    .await
    .unwrap_or_else(|e| panic!("no answer: {e}"))
}

fn analysis_requests(sim: &LlmSimHandle) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r.body.get("response_format").is_some())
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn both_formats_yield_data_valid_against_the_schema() {
    for format in [ResponseFormat::JsonSchema, ResponseFormat::JsonObject] {
        let sim = LlmSim::start(LlmSimConfig::default()).await.expect("sim");
        let outcome = run(&sim, format, Duration::from_secs(5)).await;
        let Outcome::Done {
            summary,
            structured_data,
            success,
            ..
        } = outcome
        else {
            panic!("{format:?}: {outcome:?}");
        };
        let data = structured_data.expect("data");
        let schema = settings().structured_data_schema.expect("schema");
        assert!(jsonschema::is_valid(&schema, &data), "{data}");
        assert_eq!(data["interested"], true, "{data}");
        assert_eq!(data["plan"], "basic", "{data}");
        assert_eq!(data["best_time"], "Any time after five.", "{data}");
        assert_eq!(success, Some(json!(true)));
        assert!(summary.contains("Yes, I am interested"), "{summary}");
        let sent = analysis_requests(&sim);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["stream"], false, "non-streaming");
        let expected = match format {
            ResponseFormat::JsonObject => "json_object",
            _ => "json_schema",
        };
        assert_eq!(sent[0]["response_format"]["type"], expected);
    }
}

#[tokio::test]
async fn invalid_output_is_retried_once_then_stored_as_an_error() {
    for kind in [
        AnalysisFaultKind::InvalidJson,
        AnalysisFaultKind::SchemaViolation,
    ] {
        let sim = LlmSim::start(LlmSimConfig {
            analysis_fault: Some(AnalysisFault {
                kind: kind.clone(),
                next: 2,
            }),
            ..LlmSimConfig::default()
        })
        .await
        .expect("sim");
        let outcome = run(&sim, ResponseFormat::JsonSchema, Duration::from_secs(5)).await;
        match outcome {
            Outcome::Error(e) => {
                let why = if kind == AnalysisFaultKind::InvalidJson {
                    "not JSON"
                } else {
                    "does not match"
                };
                assert!(e.contains(why), "{kind:?}: {e}");
            }
            other => panic!("{kind:?}: {other:?}"),
        }
        assert_eq!(analysis_requests(&sim).len(), 2, "{kind:?}: one retry");
        // One bad answer only: the retry's answer is stored.
        sim.update(|c| {
            c.analysis_fault = Some(AnalysisFault {
                kind: kind.clone(),
                next: 1,
            })
        });
        let outcome = run(&sim, ResponseFormat::JsonSchema, Duration::from_secs(5)).await;
        assert!(
            matches!(outcome, Outcome::Done { .. }),
            "{kind:?}: {outcome:?}"
        );
        assert_eq!(analysis_requests(&sim).len(), 4);
    }
}

#[tokio::test]
async fn a_slow_model_times_out_and_the_retry_answers() {
    let sim = LlmSim::start(LlmSimConfig {
        analysis_fault: Some(AnalysisFault {
            kind: AnalysisFaultKind::Slow(Duration::from_secs(30)),
            next: 1,
        }),
        ..LlmSimConfig::default()
    })
    .await
    .expect("sim");
    let outcome = run(&sim, ResponseFormat::JsonObject, Duration::from_millis(500)).await;
    assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    assert_eq!(analysis_requests(&sim).len(), 2);
}

#[tokio::test]
async fn an_unsupported_response_format_is_refused_like_openai() {
    let sim = LlmSim::start(LlmSimConfig::default()).await.expect("sim");
    let c = client(&sim);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "json please"}],
                      "response_format": {"type": "yaml"}});
    let err = c
        .complete(body, 64, Duration::from_secs(5))
        .await
        .expect_err("400");
    assert!(err.to_string().contains("yaml"), "{err}");
}
