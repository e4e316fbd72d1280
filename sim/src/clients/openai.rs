//! The real client against the real emulator on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use talky::config::Secret;
use talky::providers::breaker::CircuitBreaker;
use talky_actors::ports::{ChatRequest, LlmEvent, LlmPort, PortError};
use tokio::sync::mpsc;

use crate::llm::{FailRule, LlmSim, LlmSimConfig, LlmSimHandle, ScriptedReply, ScriptedToolCall};
use serde_json::Value;
use talky::providers::breaker::BreakerState;
use talky::providers::openai::*;
use talky_actors::ports::{ChatMessage, FinishReason, Role, ToolCall, ToolSpec};

fn cfg(sim: &LlmSimHandle) -> OpenAiConfig {
    OpenAiConfig {
        connect_timeout: Duration::from_secs(1),
        first_byte_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(10),
        max_retry_wait: Duration::from_secs(1),
        ..OpenAiConfig::new("sim", sim.base_url(), Secret::new("sim-key"))
    }
}

/// An emulator whose requests fail by `rule`.
async fn failing(rule: FailRule) -> LlmSimHandle {
    LlmSim::start(LlmSimConfig {
        fail: Some(rule),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A client of `sim` with `max_retries`, sharing breaker `b`.
fn client_with(sim: &LlmSimHandle, b: &Arc<CircuitBreaker>, max_retries: u32) -> OpenAiClient {
    OpenAiClient::new(
        OpenAiConfig {
            max_retries,
            ..cfg(sim)
        },
        b.clone(),
    )
    .unwrap()
}

fn breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new("sim", 5, Duration::from_secs(30)))
}

fn client(cfg: OpenAiConfig) -> OpenAiClient {
    OpenAiClient::new(cfg, breaker()).unwrap()
}

fn req(text: &str) -> ChatRequest {
    ChatRequest {
        model: "llama-3.1-8b-instant".into(),
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: "Be brief.".into(),
                tool_calls: vec![],
                tool_call_id: None,
            },
            ChatMessage {
                role: Role::User,
                content: text.into(),
                tool_calls: vec![],
                tool_call_id: None,
            },
        ],
        tools: vec![],
    }
}

async fn collect(mut rx: mpsc::Receiver<LlmEvent>) -> Vec<LlmEvent> {
    let mut out = Vec::new();
    while let Some(e) = rx.recv().await {
        out.push(e);
    }
    out
}

fn text_of(events: &[LlmEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            LlmEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn happy_path_streams_text_deltas_then_stop() {
    let sim = LlmSim::start(LlmSimConfig::default()).await.unwrap();
    let c = client(cfg(&sim));
    let events = collect(c.stream(req("hello there")).await.unwrap()).await;
    assert_eq!(text_of(&events), "You said: hello there.");
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, LlmEvent::Text(_)))
            .count()
            >= 3
    );
    assert_eq!(events.last(), Some(&LlmEvent::Finish(FinishReason::Stop)));
    let log = sim.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].path, "/chat/completions");
    assert_eq!(log[0].authorization.as_deref(), Some("Bearer sim-key"));
    let b = &log[0].body;
    assert_eq!(b["stream"], true);
    assert_eq!(b["model"], "llama-3.1-8b-instant");
    assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(
        b["messages"][1],
        serde_json::json!({"role": "user", "content": "hello there"})
    );
    assert_eq!(c.breaker().state(), BreakerState::Closed);
}

#[tokio::test]
async fn groq_path_and_model_override() {
    let sim = LlmSim::start(LlmSimConfig::default()).await.unwrap();
    let c = client(OpenAiConfig {
        base_url: format!("{}/", sim.groq_base_url()),
        model_override: Some("openai/gpt-oss-20b".into()),
        use_max_completion_tokens: true,
        ..cfg(&sim)
    });
    let events = collect(c.stream(req("hi")).await.unwrap()).await;
    assert_eq!(text_of(&events), "You said: hi.");
    let log = sim.requests();
    assert_eq!(log[0].path, "/openai/v1/chat/completions");
    assert_eq!(log[0].body["model"], "openai/gpt-oss-20b");
    assert_eq!(log[0].body["max_completion_tokens"], DEFAULT_MAX_TOKENS);
}

#[tokio::test]
async fn tool_calls_streamed_in_pieces_are_reassembled_exactly() {
    let sim = LlmSim::start(LlmSimConfig {
        argument_piece_chars: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let args0 = r#"{"phone":"+447700900000","note":"naïve \"quoted\" ✓"}"#;
    let args1 = r#"{"reason":"callback","at":"2026-11-25T18:00:00Z"}"#;
    sim.set_script(move |_: &Value| ScriptedReply {
        text: "One moment.".into(),
        tool_calls: vec![
            ScriptedToolCall {
                name: "lookup_contact".into(),
                arguments: args0.into(),
            },
            ScriptedToolCall {
                name: "schedule_callback".into(),
                arguments: args1.into(),
            },
        ],
        finish_reason: None,
    });
    let mut r = req("who is this?");
    r.tools = vec![ToolSpec {
        name: "lookup_contact".into(),
        description: "Find the contact by phone".into(),
        parameters_json: r#"{"type":"object","properties":{"phone":{"type":"string"}}}"#.into(),
    }];
    r.messages.push(ChatMessage {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: vec![ToolCall {
            id: "call_0".into(),
            name: "lookup_contact".into(),
            arguments: "{}".into(),
        }],
        tool_call_id: None,
    });
    r.messages.push(ChatMessage {
        role: Role::Tool,
        content: "{\"name\":\"Anna\"}".into(),
        tool_calls: vec![],
        tool_call_id: Some("call_0".into()),
    });
    let c = client(cfg(&sim));
    let events = collect(c.stream(r).await.unwrap()).await;
    assert_eq!(text_of(&events), "One moment.");
    let calls: Vec<&ToolCall> = events
        .iter()
        .filter_map(|e| match e {
            LlmEvent::ToolCall(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].name, "lookup_contact");
    assert_eq!(calls[0].arguments, args0);
    assert_eq!(calls[1].name, "schedule_callback");
    assert_eq!(calls[1].arguments, args1);
    assert!(calls[0].id.starts_with("call_") && calls[0].id != calls[1].id);
    assert_eq!(
        events.last(),
        Some(&LlmEvent::Finish(FinishReason::ToolCalls))
    );
    let b = &sim.requests()[0].body;
    assert_eq!(b["tool_choice"], "auto");
    assert_eq!(b["tools"][0]["type"], "function");
    assert_eq!(b["tools"][0]["function"]["parameters"]["type"], "object");
    assert!(b["messages"][2]["content"].is_null());
    assert_eq!(b["messages"][2]["tool_calls"][0]["type"], "function");
    assert_eq!(b["messages"][3]["tool_call_id"], "call_0");
}

#[tokio::test]
async fn bad_key_is_rejected_without_retry() {
    let sim = LlmSim::start(LlmSimConfig::default()).await.unwrap();
    let c = client(OpenAiConfig {
        api_key: Secret::new("wrong"),
        ..cfg(&sim)
    });
    let err = c.stream(req("hi")).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Rejected(m) if m.contains("Invalid API Key")),
        "{err:?}"
    );
    assert_eq!(sim.request_count(), 1);
    assert!(
        !format!("{:?}", cfg(&sim)).contains("sim-key"),
        "key redacted in Debug"
    );
}

#[tokio::test]
async fn rate_limited_once_is_retried_after_retry_after() {
    let sim = failing(FailRule {
        status: 429,
        retry_after: Some("1".into()),
        next: 1,
        after: None,
    })
    .await;
    let c = client(cfg(&sim));
    let t0 = std::time::Instant::now();
    let events = collect(c.stream(req("hi")).await.unwrap()).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(990),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(text_of(&events), "You said: hi.");
    let log = sim.requests();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 200]
    );
}

#[tokio::test]
async fn rate_limited_repeatedly_gives_rate_limited_with_retry_after() {
    let sim = failing(FailRule {
        status: 429,
        retry_after: Some("0".into()),
        next: 100,
        after: None,
    })
    .await;
    let c = client(cfg(&sim));
    let err = c.stream(req("hi")).await.unwrap_err();
    assert_eq!(
        err,
        PortError::RateLimited {
            retry_after: Some(Duration::ZERO)
        }
    );
    assert_eq!(sim.request_count(), 1 + DEFAULT_MAX_RETRIES as usize);

    // A Retry-After beyond the cap ends the retries at once.
    sim.update(|c| c.fail.as_mut().unwrap().retry_after = Some("30".into()));
    let err = c.stream(req("hi")).await.unwrap_err();
    assert_eq!(
        err,
        PortError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(sim.request_count(), 2 + DEFAULT_MAX_RETRIES as usize);
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let sim = failing(FailRule {
        status: 500,
        next: 1,
        ..Default::default()
    })
    .await;
    let c = client(cfg(&sim));
    let events = collect(c.stream(req("hi")).await.unwrap()).await;
    assert_eq!(text_of(&events), "You said: hi.");
    assert_eq!(sim.request_count(), 2);

    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 500,
            next: 100,
            ..Default::default()
        })
    });
    let err = c.stream(req("hi")).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Unavailable(m) if m.contains("500")),
        "{err:?}"
    );
    assert_eq!(sim.request_count(), 2 + 1 + DEFAULT_MAX_RETRIES as usize);
}

#[tokio::test]
async fn half_open_server_times_out_on_first_byte() {
    let sim = LlmSim::start(LlmSimConfig {
        half_open: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client(OpenAiConfig {
        first_byte_timeout: Duration::from_millis(300),
        max_retries: 1,
        ..cfg(&sim)
    });
    let t0 = std::time::Instant::now();
    let err = c.stream(req("hi")).await.unwrap_err();
    assert!(matches!(err, PortError::Timeout(_)), "{err:?}");
    assert!(t0.elapsed() >= Duration::from_millis(600));
    assert_eq!(sim.request_count(), 2);
    sim.stop().await;
}

#[tokio::test]
async fn slow_first_token_and_idle_gaps_time_out() {
    let sim = LlmSim::start(LlmSimConfig {
        first_token_latency: Duration::from_millis(800),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client(OpenAiConfig {
        first_byte_timeout: Duration::from_millis(200),
        max_retries: 0,
        ..cfg(&sim)
    });
    assert!(matches!(
        c.stream(req("hi")).await,
        Err(PortError::Timeout(_))
    ));

    sim.update(|c| {
        c.first_token_latency = Duration::ZERO;
        c.tokens_per_second = 2.0;
    });
    let c = client(OpenAiConfig {
        idle_timeout: Duration::from_millis(150),
        max_retries: 0,
        ..cfg(&sim)
    });
    let events = collect(c.stream(req("one two three")).await.unwrap()).await;
    assert_eq!(events[0], LlmEvent::Text("You ".into()));
    assert!(
        matches!(events.last(), Some(LlmEvent::Error(PortError::Timeout(_)))),
        "{events:?}"
    );
}

#[tokio::test]
async fn dropped_mid_stream_is_an_error_event_without_retry() {
    let sim = LlmSim::start(LlmSimConfig {
        drop_after_chunks: Some(3),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client(cfg(&sim));
    let events = collect(c.stream(req("hello there")).await.unwrap()).await;
    assert_eq!(
        &events[..2],
        &[
            LlmEvent::Text("You ".into()),
            LlmEvent::Text("said: ".into())
        ]
    );
    assert!(
        matches!(events[2], LlmEvent::Error(PortError::Unavailable(_))),
        "{events:?}"
    );
    assert_eq!(events.len(), 3);
    assert_eq!(sim.request_count(), 1);

    // Dropped before any output (after the role chunk only): retried.
    sim.update(|c| c.drop_after_chunks = Some(1));
    let err = c.stream(req("hi")).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    assert_eq!(sim.request_count(), 1 + 1 + DEFAULT_MAX_RETRIES as usize);
}

#[tokio::test]
async fn malformed_chunk_is_a_protocol_error_event() {
    let sim = LlmSim::start(LlmSimConfig {
        malformed_after_chunks: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client(cfg(&sim));
    let events = collect(c.stream(req("hello there")).await.unwrap()).await;
    assert_eq!(events[0], LlmEvent::Text("You ".into()));
    assert!(
        matches!(events[1], LlmEvent::Error(PortError::Protocol(_))),
        "{events:?}"
    );
    assert_eq!(events.len(), 2);
    assert_eq!(sim.request_count(), 1);
}

#[tokio::test]
async fn breaker_opens_fails_fast_and_a_probe_closes_it() {
    let sim = failing(FailRule {
        status: 503,
        next: 100,
        ..Default::default()
    })
    .await;
    let b = Arc::new(CircuitBreaker::new("sim", 2, Duration::from_millis(300)));
    let c = client_with(&sim, &b, 0);
    for _ in 0..2 {
        assert!(matches!(
            c.stream(req("hi")).await,
            Err(PortError::Unavailable(_))
        ));
    }
    assert_eq!(b.state(), BreakerState::Open);
    let t0 = std::time::Instant::now();
    let err = c.stream(req("hi")).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Unavailable(m) if m.contains("circuit open")),
        "{err:?}"
    );
    assert!(t0.elapsed() < Duration::from_millis(50));
    assert_eq!(
        sim.request_count(),
        2,
        "the open breaker kept the call off the wire"
    );

    sim.update(|c| c.fail = None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let events = collect(c.stream(req("hi")).await.unwrap()).await;
    assert_eq!(events.last(), Some(&LlmEvent::Finish(FinishReason::Stop)));
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(sim.request_count(), 3);
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let sim = LlmSim::start(LlmSimConfig::default()).await.unwrap();
    let cfg = OpenAiConfig {
        max_retries: 1,
        ..cfg(&sim)
    };
    sim.stop().await;
    let c = client(cfg);
    assert!(matches!(
        c.stream(req("hi")).await,
        Err(PortError::Unavailable(_))
    ));
    assert!(
        OpenAiClient::new(
            OpenAiConfig::new("x", "ftp://nope", Secret::new("k")),
            breaker()
        )
        .is_err()
    );
}

#[tokio::test]
async fn a_server_ignoring_stream_true_still_works() {
    let sim = LlmSim::start(LlmSimConfig {
        ignore_stream: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client(cfg(&sim));
    let events = collect(c.stream(req("hi")).await.unwrap()).await;
    assert_eq!(
        events,
        vec![
            LlmEvent::Text("You said: hi.".into()),
            LlmEvent::Finish(FinishReason::Stop)
        ]
    );
}

#[tokio::test]
async fn breaker_opening_between_retries_ends_with_the_real_error() {
    let sim = failing(FailRule {
        status: 503,
        next: 100,
        ..Default::default()
    })
    .await;
    let b = Arc::new(CircuitBreaker::new("sim", 2, Duration::from_secs(30)));
    let c = client_with(&sim, &b, 5);
    let err = c.stream(req("hi")).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Unavailable(m) if m.contains("503")),
        "{err:?}"
    );
    assert_eq!(sim.request_count(), 2);
    assert_eq!(b.state(), BreakerState::Open);
}
