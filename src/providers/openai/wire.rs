//! The chat completions wire format (providers.md §7): the request body
//! from a [`ChatRequest`], the streamed chunks into [`LlmEvent`]s, error
//! bodies and rate-limit headers into [`PortError`]s.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use talky_actors::ports::{ChatRequest, FinishReason, LlmEvent, PortError, Role, ToolCall};

use crate::providers::retry::retry_after;

/// Body settings that come from the client's configuration.
#[derive(Clone, Debug)]
pub struct BodySettings<'a> {
    /// Replaces the request's model when set.
    pub model_override: Option<&'a str>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Output token cap.
    pub max_tokens: u32,
    /// Send `max_completion_tokens` (OpenAI) instead of `max_tokens`.
    pub use_max_completion_tokens: bool,
}

/// The JSON body of a streamed request. A tool whose `parameters_json` is
/// not JSON is our own bug: `Rejected`, never sent.
pub fn request_body(req: &ChatRequest, s: &BodySettings<'_>) -> Result<Value, PortError> {
    let messages: Vec<Value> = req.messages.iter().map(message).collect();
    let mut body = json!({
        "model": s.model_override.unwrap_or(&req.model),
        "stream": true,
        "temperature": s.temperature,
        "messages": messages,
    });
    let cap = if s.use_max_completion_tokens {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[cap] = json!(s.max_tokens);
    if !req.tools.is_empty() {
        let mut tools = Vec::with_capacity(req.tools.len());
        for t in &req.tools {
            let parameters: Value = if t.parameters_json.trim().is_empty() {
                json!({"type": "object", "properties": {}})
            } else {
                serde_json::from_str(&t.parameters_json).map_err(|e| {
                    PortError::Rejected(format!("tool {}: parameters are not JSON: {e}", t.name))
                })?
            };
            tools.push(json!({
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": parameters},
            }));
        }
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = json!("auto");
    }
    Ok(body)
}

fn message(m: &talky_actors::ports::ChatMessage) -> Value {
    match m.role {
        Role::System => json!({"role": "system", "content": m.content}),
        Role::User => json!({"role": "user", "content": m.content}),
        Role::Assistant if m.tool_calls.is_empty() => {
            json!({"role": "assistant", "content": m.content})
        }
        Role::Assistant => {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            let content = if m.content.is_empty() {
                Value::Null
            } else {
                json!(m.content)
            };
            json!({"role": "assistant", "content": content, "tool_calls": calls})
        }
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.as_deref().unwrap_or_default(),
            "content": m.content,
        }),
    }
}

// ----- streamed chunks -----------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    x_groq: Option<XGroq>,
}

#[derive(Debug, Default, Deserialize)]
struct XGroq {
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolDelta>>,
}

#[derive(Debug, Default, Deserialize)]
struct ToolDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Debug, Default, Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Default)]
struct PartialTool {
    id: String,
    name: String,
    arguments: String,
}

/// Cap on the accumulated arguments of one tool call.
const MAX_TOOL_ARGUMENTS: usize = 1 << 20;
/// Cap on the number of tool calls of one completion.
const MAX_TOOL_CALLS: usize = 64;

/// Everything one completion stream has said so far.
#[derive(Debug, Default)]
pub struct StreamState {
    tools: BTreeMap<u32, PartialTool>,
    finish: Option<FinishReason>,
    done: bool,
}

impl StreamState {
    /// Whether `[DONE]` arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Handles the data of one SSE event, appending the events it yields.
    /// Data after `[DONE]` is ignored.
    pub fn on_data(&mut self, data: &str, out: &mut Vec<LlmEvent>) -> Result<(), PortError> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            for (index, t) in std::mem::take(&mut self.tools) {
                if t.name.is_empty() {
                    return Err(PortError::Protocol(format!(
                        "tool call {index} without a name"
                    )));
                }
                let id = if t.id.is_empty() {
                    format!("call_{index}")
                } else {
                    t.id
                };
                out.push(LlmEvent::ToolCall(ToolCall {
                    id,
                    name: t.name,
                    arguments: t.arguments,
                }));
            }
            out.push(LlmEvent::Finish(self.finish.unwrap_or(FinishReason::Stop)));
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| PortError::Protocol(format!("bad chunk: {e}")))?;
        if let Some(err) = chunk.error.filter(|e| !e.is_null()) {
            return Err(stream_error(&err));
        }
        if let Some(err) = chunk.x_groq.and_then(|x| x.error).filter(|e| !e.is_null()) {
            return Err(stream_error(&err));
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push(LlmEvent::Text(text));
                }
                for (pos, td) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    let index = td.index.unwrap_or(pos as u32);
                    if !self.tools.contains_key(&index) && self.tools.len() >= MAX_TOOL_CALLS {
                        return Err(PortError::Protocol("too many tool calls".into()));
                    }
                    let t = self.tools.entry(index).or_default();
                    if let Some(id) = td.id.filter(|s| !s.is_empty()) {
                        t.id = id;
                    }
                    if let Some(f) = td.function {
                        if let Some(name) = f.name.filter(|s| !s.is_empty()) {
                            t.name = name;
                        }
                        if let Some(args) = f.arguments {
                            if t.arguments.len() + args.len() > MAX_TOOL_ARGUMENTS {
                                return Err(PortError::Protocol("tool arguments too long".into()));
                            }
                            t.arguments.push_str(&args);
                        }
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(finish_reason(&reason));
            }
        }
        Ok(())
    }
}

/// The events of a non-streamed `chat.completion` body (a server that
/// ignored `stream: true`).
pub fn completion_events(body: &[u8]) -> Result<Vec<LlmEvent>, PortError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PortError::Protocol(format!("bad completion: {e}")))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(stream_error(err));
    }
    let choice = &v["choices"][0];
    let message = &choice["message"];
    if !message.is_object() {
        return Err(PortError::Protocol("completion without a message".into()));
    }
    let mut out = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        out.push(LlmEvent::Text(text.to_string()));
    }
    let calls = message["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, c) in calls.iter().enumerate() {
        let name = c["function"]["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            return Err(PortError::Protocol(format!("tool call {i} without a name")));
        }
        out.push(LlmEvent::ToolCall(ToolCall {
            id: c["id"]
                .as_str()
                .map_or_else(|| format!("call_{i}"), str::to_string),
            name: name.to_string(),
            arguments: c["function"]["arguments"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }));
    }
    let reason = choice["finish_reason"]
        .as_str()
        .map_or(FinishReason::Stop, finish_reason);
    out.push(LlmEvent::Finish(reason));
    Ok(out)
}

/// The first choice's `message.content` of a non-streamed
/// `chat.completion` body (an `error` object or a missing content is a
/// protocol failure).
pub fn completion_content(body: &[u8]) -> Result<String, PortError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PortError::Protocol(format!("bad completion: {e}")))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(stream_error(err));
    }
    v["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| PortError::Protocol("completion without content".into()))
}

/// Maps the provider's `finish_reason`.
pub fn finish_reason(s: &str) -> FinishReason {
    match s {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        _ => FinishReason::Other,
    }
}

fn stream_error(err: &Value) -> PortError {
    let (message, kind) = match err {
        Value::String(s) => (s.clone(), String::new()),
        other => (
            other["message"]
                .as_str()
                .unwrap_or("error in stream")
                .to_string(),
            format!(
                "{} {}",
                other["type"].as_str().unwrap_or_default(),
                other["code"].as_str().unwrap_or_default()
            ),
        ),
    };
    if kind.contains("rate_limit") {
        PortError::RateLimited { retry_after: None }
    } else {
        PortError::Unavailable(format!("error in stream: {message}"))
    }
}

// ----- HTTP errors -----------------------------------------------------------

/// The `error.message` (and `error.code`) of an error body, if it has one.
pub fn error_message(body: &[u8]) -> (String, Option<String>) {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let err = &v["error"];
            let message = err["message"]
                .as_str()
                .map(str::to_string)
                .or_else(|| err.as_str().map(str::to_string))
                .unwrap_or_else(|| truncate_lossy(body));
            let code = err["code"]
                .as_str()
                .or_else(|| err["type"].as_str())
                .map(str::to_string);
            (message, code)
        }
        Err(_) => (truncate_lossy(body), None),
    }
}

fn truncate_lossy(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.trim().to_string()
}

/// A non-2xx answer as a port error.
pub fn status_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    now: std::time::SystemTime,
) -> PortError {
    let (message, code) = error_message(body);
    let text = format!("HTTP {status}: {message}");
    match status {
        429 if code.as_deref() == Some("insufficient_quota") => PortError::Rejected(text),
        429 => PortError::RateLimited {
            retry_after: retry_after(headers, now),
        },
        408 => PortError::Timeout(text),
        409 | 498 | 499 | 500..=599 => PortError::Unavailable(text),
        _ => PortError::Rejected(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::retry::parse_go_duration;
    use reqwest::header::{HeaderMap, HeaderValue};
    use std::time::Duration;
    use std::time::SystemTime;
    use talky_actors::ports::{ChatMessage, ToolSpec};

    fn settings() -> BodySettings<'static> {
        BodySettings {
            model_override: None,
            temperature: 0.4,
            max_tokens: 256,
            use_max_completion_tokens: false,
        }
    }

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: vec![],
            tool_call_id: None,
        }
    }

    #[test]
    fn body_matches_the_spec_example() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "lookup_contact".into(),
            arguments: "{\"phone\":\"+447700900000\"}".into(),
        };
        let req = ChatRequest {
            model: "llama-3.3-70b-versatile".into(),
            messages: vec![
                msg(Role::System, "You are a polite outbound caller."),
                msg(Role::User, "Who is this?"),
                ChatMessage {
                    tool_calls: vec![call],
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
                parameters_json: r#"{"type":"object","properties":{"phone":{"type":"string"}},"required":["phone"]}"#.into(),
            }],
        };
        let body = request_body(&req, &settings()).unwrap();
        let expected: Value = serde_json::from_str(
            r#"{"model":"llama-3.3-70b-versatile","stream":true,"temperature":0.4,"max_tokens":256,
 "messages":[{"role":"system","content":"You are a polite outbound caller."},
   {"role":"user","content":"Who is this?"},
   {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
     "function":{"name":"lookup_contact","arguments":"{\"phone\":\"+447700900000\"}"}}]},
   {"role":"tool","tool_call_id":"call_1","content":"{\"name\":\"Anna\"}"}],
 "tools":[{"type":"function","function":{"name":"lookup_contact","description":"Find the contact by phone",
   "parameters":{"type":"object","properties":{"phone":{"type":"string"}},"required":["phone"]}}}],
 "tool_choice":"auto"}"#,
        )
        .unwrap();
        // f32 0.4 widens to 0.4000000059604645 in JSON; compare it apart.
        let mut body = body;
        assert!((body["temperature"].as_f64().unwrap() - 0.4).abs() < 1e-6);
        body["temperature"] = json!(0.4);
        assert_eq!(body, expected);
    }

    #[test]
    fn model_override_max_completion_tokens_and_bad_tool_schema() {
        let req = ChatRequest {
            model: "a".into(),
            messages: vec![msg(Role::User, "hi")],
            tools: vec![],
        };
        let s = BodySettings {
            model_override: Some("gpt-4o-mini"),
            use_max_completion_tokens: true,
            ..settings()
        };
        let body = request_body(&req, &s).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["max_completion_tokens"], 256);
        assert!(body.get("max_tokens").is_none());
        assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
        let bad = ChatRequest {
            tools: vec![ToolSpec {
                name: "t".into(),
                description: String::new(),
                parameters_json: "{nope".into(),
            }],
            ..req
        };
        assert!(matches!(
            request_body(&bad, &s),
            Err(PortError::Rejected(_))
        ));
    }

    #[test]
    fn chunks_to_events() {
        let mut st = StreamState::default();
        let mut out = Vec::new();
        for d in [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"x_groq":{"id":"r"}}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"unknown":[1,2]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            "[DONE]",
            "garbage after done is ignored",
        ] {
            st.on_data(d, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![
                LlmEvent::Text("Hi".into()),
                LlmEvent::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    arguments: "{\"a\":1}".into()
                }),
                LlmEvent::Finish(FinishReason::ToolCalls),
            ]
        );
        assert!(st.is_done());
    }

    #[test]
    fn non_streamed_completion_to_events() {
        let body = br#"{"id":"chatcmpl-123","object":"chat.completion","choices":[{"index":0,
            "finish_reason":"tool_calls","message":{"role":"assistant","content":null,
            "tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}"#;
        assert_eq!(
            completion_events(body).unwrap(),
            vec![
                LlmEvent::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    arguments: "{}".into()
                }),
                LlmEvent::Finish(FinishReason::ToolCalls)
            ]
        );
        let body = br#"{"choices":[{"finish_reason":"stop","message":{"content":"Hi."}}]}"#;
        assert_eq!(
            completion_events(body).unwrap(),
            vec![
                LlmEvent::Text("Hi.".into()),
                LlmEvent::Finish(FinishReason::Stop)
            ]
        );
        assert!(matches!(
            completion_events(b"{}"),
            Err(PortError::Protocol(_))
        ));
        assert!(matches!(
            completion_events(b"nope"),
            Err(PortError::Protocol(_))
        ));
    }

    #[test]
    fn errors_in_stream_and_malformed_chunks() {
        let mut out = Vec::new();
        let e = StreamState::default()
            .on_data(
                r#"{"error":{"message":"boom","type":"server_error"}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(e, PortError::Unavailable(m) if m.contains("boom")));
        let e = StreamState::default()
            .on_data(
                r#"{"choices":[],"x_groq":{"error":"over capacity"}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(e, PortError::Unavailable(_)));
        for bad in ["{", "[1]", r#"{"choices":[{"delta":{"content":5}}]}"#] {
            let e = StreamState::default().on_data(bad, &mut out).unwrap_err();
            assert!(matches!(e, PortError::Protocol(_)), "{bad}");
        }
        assert!(out.is_empty());
        assert_eq!(finish_reason("length"), FinishReason::Length);
        assert_eq!(finish_reason("content_filter"), FinishReason::Other);
    }

    #[test]
    fn status_errors_and_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(
            status_error(429, &h, b"{}", now),
            PortError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:47 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(10)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        h.insert(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from_static("0"),
        );
        h.insert(
            "x-ratelimit-reset-tokens",
            HeaderValue::from_static("7.66s"),
        );
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("3"),
        );
        h.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_static("2m59.56s"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(7660)));
        let quota = br#"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(matches!(
            status_error(429, &h, quota, now),
            PortError::Rejected(_)
        ));
        let e = status_error(401, &h, br#"{"error":{"message":"Invalid API Key"}}"#, now);
        assert_eq!(e, PortError::Rejected("HTTP 401: Invalid API Key".into()));
        assert!(matches!(
            status_error(503, &h, b"<html>", now),
            PortError::Unavailable(_)
        ));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("120ms"), Some(Duration::from_millis(120)));
        assert_eq!(parse_go_duration("1x"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
