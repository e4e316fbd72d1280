//! Chat completions (providers.md §7): request (§7.1), non-streamed
//! response (§7.2), SSE chunks and tool-call deltas (§7.3), error body
//! (§7.4).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use talky_actors::ports::{
    ChatMessage, ChatRequest, FinishReason, LlmEvent, LlmPort, PortError, Role, ToolCall, ToolSpec,
};

use super::{fixture, rename_key, same_shape, set_value};
use crate::llm::{FailRule, LlmSim, LlmSimConfig, ScriptedReply, ScriptedToolCall};
use talky::config::Secret;
use talky::providers::breaker::CircuitBreaker;
use talky::providers::openai::wire::{StreamState, completion_events, error_message, status_error};
use talky::providers::openai::{OpenAiClient, OpenAiConfig};

/// `data` of each SSE event, fed to the client's stream state.
fn feed(state: &mut StreamState, data: &[String]) -> Vec<LlmEvent> {
    let mut out = Vec::new();
    for d in data {
        state
            .on_data(d, &mut out)
            .unwrap_or_else(|e| panic!("the client rejects {d}: {e}"));
    }
    out
}

/// A spec delta inside the spec's content chunk envelope.
fn in_chunk(delta: Value, finish: Value) -> String {
    let mut c = fixture!("chat/chunk_content.json");
    c["choices"][0]["delta"] = delta;
    c["choices"][0]["finish_reason"] = finish;
    c.to_string()
}

#[test]
fn client_parses_the_stream_fixtures() {
    let mut s = StreamState::default();
    let events = feed(
        &mut s,
        &[
            fixture!("chat/chunk_first.json").to_string(),
            fixture!("chat/chunk_content.json").to_string(),
            fixture!("chat/chunk_final.json").to_string(),
            "[DONE]".into(),
        ],
    );
    assert_eq!(
        events,
        vec![
            LlmEvent::Text("This is".into()),
            LlmEvent::Finish(FinishReason::Stop)
        ]
    );
    assert!(s.is_done());
    // Tool calls: the spec's two deltas, one more piece, the final chunk.
    let mut s = StreamState::default();
    let events = feed(
        &mut s,
        &[
            fixture!("chat/chunk_first.json").to_string(),
            in_chunk(fixture!("chat/delta_tool_call_first.json"), Value::Null),
            in_chunk(fixture!("chat/delta_tool_call_arguments.json"), Value::Null),
            in_chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":"\"+447700900000\"}"}}]}),
                Value::Null,
            ),
            in_chunk(json!({}), json!("tool_calls")),
            "[DONE]".into(),
        ],
    );
    assert_eq!(
        events,
        vec![
            LlmEvent::ToolCall(ToolCall {
                id: "call_1".into(),
                name: "lookup_contact".into(),
                arguments: "{\"phone\":\"+447700900000\"}".into(),
            }),
            LlmEvent::Finish(FinishReason::ToolCalls)
        ]
    );
}

#[test]
fn client_parses_the_response_and_error_fixtures() {
    let body = fixture!("chat/response.json").to_string();
    assert_eq!(
        completion_events(body.as_bytes()),
        Ok(vec![
            LlmEvent::Text("This is Sam from Acme.".into()),
            LlmEvent::Finish(FinishReason::Stop)
        ])
    );
    let err = fixture!("chat/error.json").to_string();
    let (message, code) = error_message(err.as_bytes());
    assert_eq!(
        message,
        "Rate limit reached for model `llama-3.3-70b-versatile` ..."
    );
    assert_eq!(code.as_deref(), Some("rate_limit_exceeded"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("retry-after", "2".parse().expect("header"));
    assert_eq!(
        status_error(429, &headers, err.as_bytes(), SystemTime::now()),
        PortError::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        }
    );
    let mut quota = fixture!("chat/error.json");
    quota["error"]["code"] = json!("insufficient_quota");
    assert!(matches!(
        status_error(
            429,
            &headers,
            quota.to_string().as_bytes(),
            SystemTime::now()
        ),
        PortError::Rejected(_)
    ));
}

/// The history of the spec's request example, as our port has it.
fn spec_request() -> ChatRequest {
    let msg = |role, content: &str| ChatMessage {
        role,
        content: content.into(),
        tool_calls: vec![],
        tool_call_id: None,
    };
    ChatRequest {
        model: "llama-3.3-70b-versatile".into(),
        messages: vec![
            msg(Role::System, "You are a polite outbound caller."),
            msg(Role::User, "Who is this?"),
            ChatMessage {
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "lookup_contact".into(),
                    arguments: "{\"phone\":\"+447700900000\"}".into(),
                }],
                ..msg(Role::Assistant, "")
            },
            ChatMessage {
                tool_call_id: Some("call_1".into()),
                ..msg(Role::Tool, "{\"name\":\"Anna\"}")
            },
        ],
        tools: vec![ToolSpec {
            name: "lookup_contact".into(),
            description: "Find the contact by phone".into(),
            parameters_json:
                r#"{"type":"object","properties":{"phone":{"type":"string"}},"required":["phone"]}"#
                    .into(),
        }],
    }
}

async fn sim() -> crate::llm::LlmSimHandle {
    LlmSim::start(LlmSimConfig::default()).await.expect("sim")
}

#[tokio::test]
async fn client_sends_the_spec_request_shape() {
    let sim = sim().await;
    let client = OpenAiClient::new(
        OpenAiConfig {
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            ..OpenAiConfig::new("sim", sim.base_url(), Secret::new(sim.api_key()))
        },
        Arc::new(CircuitBreaker::new("sim", 5, Duration::from_secs(30))),
    )
    .expect("client");
    let mut rx = client.stream(spec_request()).await.expect("stream");
    let drain = async {
        let mut last = None;
        while let Some(ev) = rx.recv().await {
            last = Some(ev);
        }
        last
    };
    let last = tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("ends");
    assert_eq!(last, Some(LlmEvent::Finish(FinishReason::Stop)));
    let body = &sim.requests()[0].body;
    let fix = fixture!("chat/request.json");
    assert_eq!(same_shape(&fix, body), Ok(()), "{body}");
    assert!(
        same_shape(
            &rename_key(&fix, "/tools/0/function/parameters", "schema"),
            body
        )
        .is_err()
    );
    assert!(same_shape(&set_value(&fix, "/stream", json!("true")), body).is_err());
}

async fn post(sim: &crate::llm::LlmSimHandle, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", sim.base_url()))
        .bearer_auth(sim.api_key())
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("POST")
}

/// The `data:` payloads of an SSE body.
async fn sse(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let text = resp.text().await.expect("body");
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn chunks(data: &[String]) -> Vec<Value> {
    data.iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect()
}

#[tokio::test]
async fn emulator_accepts_the_spec_request_and_streams_in_shape() {
    let sim = sim().await;
    let request = fixture!("chat/request.json");
    // Text.
    let data = sse(post(&sim, &request).await).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let c = chunks(&data);
    assert!(c.len() >= 3, "{c:?}");
    let first = fixture!("chat/chunk_first.json");
    assert_eq!(same_shape(&first, &c[0]), Ok(()), "{}", c[0]);
    let content = fixture!("chat/chunk_content.json");
    for mid in &c[1..c.len() - 1] {
        assert_eq!(same_shape(&content, mid), Ok(()), "{mid}");
    }
    let fin = fixture!("chat/chunk_final.json");
    assert_eq!(
        same_shape(&fin, &c[c.len() - 1]),
        Ok(()),
        "{}",
        c[c.len() - 1]
    );
    let mut s = StreamState::default();
    let events = feed(&mut s, &data);
    assert_eq!(events.last(), Some(&LlmEvent::Finish(FinishReason::Stop)));
    // The check can fail.
    assert!(same_shape(&rename_key(&first, "/choices/0/delta", "message"), &c[0]).is_err());
    assert!(
        same_shape(
            &set_value(&fin, "/created", json!("1731000000")),
            &c[c.len() - 1]
        )
        .is_err()
    );
    assert!(
        same_shape(
            &set_value(&content, "/choices/0/finish_reason", json!("stop")),
            &c[1]
        )
        .is_err()
    );

    // Tool calls, streamed in pieces.
    sim.set_script(|_: &Value| ScriptedReply {
        tool_calls: vec![ScriptedToolCall {
            name: "lookup_contact".into(),
            arguments: "{\"phone\":\"+447700900000\"}".into(),
        }],
        ..Default::default()
    });
    let data = sse(post(&sim, &request).await).await;
    let c = chunks(&data);
    let deltas: Vec<&Value> = c
        .iter()
        .map(|v| &v["choices"][0]["delta"])
        .filter(|d| d.get("tool_calls").is_some())
        .collect();
    assert!(deltas.len() >= 2, "{c:?}");
    assert_eq!(
        same_shape(&fixture!("chat/delta_tool_call_first.json"), deltas[0]),
        Ok(()),
        "{}",
        deltas[0]
    );
    let args = fixture!("chat/delta_tool_call_arguments.json");
    for d in &deltas[1..] {
        assert_eq!(same_shape(&args, d), Ok(()), "{d}");
    }
    assert_eq!(
        c.last().map(|v| v["choices"][0]["finish_reason"].clone()),
        Some(json!("tool_calls"))
    );
    let events = feed(&mut StreamState::default(), &data);
    assert!(matches!(&events[0], LlmEvent::ToolCall(t) if t.name == "lookup_contact"));

    // Not streamed.
    sim.set_script(crate::llm::EchoScript);
    let resp = post(&sim, &set_value(&request, "/stream", json!(false))).await;
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.expect("JSON");
    assert_eq!(
        same_shape(&fixture!("chat/response.json"), &v),
        Ok(()),
        "{v}"
    );

    // Rate limited.
    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 429,
            retry_after: Some("1".into()),
            next: 1,
            after: None,
        })
    });
    let resp = post(&sim, &request).await;
    assert_eq!(resp.status().as_u16(), 429);
    let v: Value = resp.json().await.expect("JSON");
    let fix = fixture!("chat/error.json");
    assert_eq!(same_shape(&fix, &v), Ok(()), "{v}");
    assert!(same_shape(&set_value(&fix, "/error/code", Value::Null), &v).is_err());
}

/// A post-call analysis: talky's request has the shape of
/// `request_json_schema.json`; the emulator answers that request in the
/// shape of `response_json_schema.json`, and the client reads its
/// content.
#[tokio::test]
async fn structured_output_request_and_response_match_the_fixtures() {
    use talky::analysis::config::ResponseFormat;
    use talky::analysis::settings::AnalysisSettings;

    let sim = sim().await;
    let client = OpenAiClient::new(
        OpenAiConfig {
            use_max_completion_tokens: true,
            ..OpenAiConfig::new("sim", sim.base_url(), Secret::new(sim.api_key()))
        },
        Arc::new(CircuitBreaker::new("sim", 5, Duration::from_secs(30))),
    )
    .expect("client");
    let settings = AnalysisSettings {
        structured_data_schema: Some(
            json!({"type": "object", "properties": {"interested": {"type": "boolean"}}}),
        ),
        ..AnalysisSettings::default()
    };
    let body = talky::analysis::prompt::request_body(
        "gpt-4o-mini",
        &settings,
        &[],
        ResponseFormat::JsonSchema,
    );
    let content = client
        .complete(body, 1024, Duration::from_secs(5))
        .await
        .expect("answer");
    let sent = &sim.requests()[0].body;
    let fix = fixture!("chat/request_json_schema.json");
    assert_eq!(same_shape(&fix, sent), Ok(()), "{sent}");
    assert!(same_shape(&set_value(&fix, "/stream", json!("false")), sent).is_err());
    assert!(
        same_shape(
            &rename_key(&fix, "/response_format/json_schema/schema", "parameters"),
            sent
        )
        .is_err()
    );
    let answer: Value = serde_json::from_str(&content).expect("JSON content");
    assert!(
        answer["summary"].is_string() && answer["structured_data"].is_object(),
        "{answer}"
    );

    // The emulator, asked with the fixture itself.
    let resp = post(&sim, &fix).await;
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.expect("JSON");
    let expected = fixture!("chat/response_json_schema.json");
    assert_eq!(same_shape(&expected, &v), Ok(()), "{v}");
    let content: Value = serde_json::from_str(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("content is JSON");
    let fixture_content: Value = serde_json::from_str(
        expected["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("fixture content is JSON");
    // The fixture's request names no rubric: `success` is null.
    let fixture_content = set_value(&fixture_content, "/success", Value::Null);
    assert_eq!(same_shape(&fixture_content, &content), Ok(()), "{content}");
    assert_eq!(content["structured_data"]["interested"], true);
}
