//! A loopback chat completions emulator, wire-exact to providers.md §7:
//! `POST /chat/completions` (also under `/v1/` and Groq's `/openai/v1/`),
//! bearer auth, JSON validation with the providers' error bodies, SSE
//! streaming in the exact chunk shape (role chunk, content deltas,
//! tool-call deltas in pieces, final chunk with `finish_reason`, optional
//! usage chunk, `data: [DONE]`) and non-streaming replies.
//!
//! What it answers comes from an [`LlmScript`] (default: "You said:
//! <last user message>."); how it misbehaves from [`LlmSimConfig`] knobs,
//! changeable while it runs through [`LlmSimHandle::update`].

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use warp::Filter;
use warp::http::{HeaderValue, Response, StatusCode};

use crate::server::{Emulator, SimConfig, lock};

/// Which failure to inject, and when.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FailRule {
    /// HTTP status to answer with (429, 500, 503, 400, ...).
    pub status: u16,
    /// `retry-after` header value (seconds or HTTP-date) on the failure.
    pub retry_after: Option<String>,
    /// Fail this many of the next requests (decremented per failure).
    pub next: u32,
    /// Fail every request once this many requests have been served
    /// (counted over the whole log, failed ones included).
    pub after: Option<u64>,
}

impl FailRule {
    /// Whether the live knob `rule` fails a request that comes after
    /// `served` others: one of the `next` (counted down here) or any once
    /// `after` were served.
    pub(crate) fn fires(rule: &mut Option<FailRule>, served: u64) -> bool {
        let Some(rule) = rule.as_mut() else {
            return false;
        };
        if rule.next > 0 {
            rule.next -= 1;
            true
        } else {
            rule.after.is_some_and(|k| served > k)
        }
    }
}

/// The emulator's knobs.
#[derive(Clone, Debug)]
pub struct LlmSimConfig {
    /// The only bearer key accepted.
    pub api_key: String,
    /// Delay before the first chunk (after the headers).
    pub first_token_latency: Duration,
    /// Pace of content/tool chunks; 0 = as fast as possible.
    pub tokens_per_second: f64,
    /// Injected HTTP failures.
    pub fail: Option<FailRule>,
    /// Abort the connection after this many SSE chunks.
    pub drop_after_chunks: Option<usize>,
    /// Accept requests and never answer.
    pub half_open: bool,
    /// Send a malformed (non-JSON) chunk after this many chunks.
    pub malformed_after_chunks: Option<usize>,
    /// Always send the usage chunk (also sent when the request asks with
    /// `stream_options.include_usage`).
    pub include_usage: bool,
    /// Pieces tool-call arguments are split into, in characters.
    pub argument_piece_chars: usize,
    /// Answer `stream: true` requests with a non-streamed JSON body, as a
    /// server that ignores the flag would.
    pub ignore_stream: bool,
    /// Answer 503 to every request whose last user message contains this
    /// text: a provider that fails mid-call, at a chosen point of one
    /// conversation, while other calls go on.
    pub fail_when_user_says: Option<String>,
    /// Misanswer the next structured-output requests (those with a
    /// `response_format`, i.e. post-call analyses).
    pub analysis_fault: Option<AnalysisFault>,
}

/// How structured-output answers go wrong, for the next `next` of them.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisFault {
    /// What happens.
    pub kind: AnalysisFaultKind,
    /// How many of the next structured-output requests it hits.
    pub next: u32,
}

/// A structured-output fault.
#[derive(Clone, Debug, PartialEq)]
pub enum AnalysisFaultKind {
    /// Content that is not JSON (cut off mid-object).
    InvalidJson,
    /// JSON whose `structured_data` does not match the schema.
    SchemaViolation,
    /// Answer (correctly) only after this long: a slow or hanging model.
    Slow(Duration),
}

impl Default for LlmSimConfig {
    fn default() -> Self {
        Self {
            api_key: "sim-key".into(),
            first_token_latency: Duration::ZERO,
            tokens_per_second: 0.0,
            fail: None,
            drop_after_chunks: None,
            half_open: false,
            malformed_after_chunks: None,
            include_usage: false,
            argument_piece_chars: 5,
            ignore_stream: false,
            fail_when_user_says: None,
            analysis_fault: None,
        }
    }
}

/// A tool call the script wants made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedToolCall {
    /// Function name.
    pub name: String,
    /// Arguments, JSON text.
    pub arguments: String,
}

/// What the script answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptedReply {
    /// Text (may be empty with tool calls).
    pub text: String,
    /// Tool calls.
    pub tool_calls: Vec<ScriptedToolCall>,
    /// `finish_reason`; default `tool_calls` with tool calls, else `stop`.
    pub finish_reason: Option<String>,
}

/// Decides the reply from the request body.
pub trait LlmScript: Send + Sync + 'static {
    /// The reply to this (valid) request.
    fn reply(&self, request: &Value) -> ScriptedReply;
}

impl<F> LlmScript for F
where
    F: Fn(&Value) -> ScriptedReply + Send + Sync + 'static,
{
    fn reply(&self, request: &Value) -> ScriptedReply {
        self(request)
    }
}

/// The default script: "You said: <last user message>."
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoScript;

impl LlmScript for EchoScript {
    fn reply(&self, request: &Value) -> ScriptedReply {
        ScriptedReply {
            text: format!("You said: {}.", last_user_message(request)),
            ..Default::default()
        }
    }
}

/// The content of the last user message of a request body ("" if none).
pub fn last_user_message(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|ms| ms.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// One request the emulator received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// URL path.
    pub path: String,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// The body as JSON (`Null` if it was not JSON).
    pub body: Value,
    /// The status answered (0 when never answered).
    pub status: u16,
}

/// What the LLM emulator keeps beside its knobs and log.
pub struct LlmExtra {
    script: Mutex<Arc<dyn LlmScript>>,
    seq: AtomicU64,
}

type Shared = crate::server::Shared<LlmSimConfig, RecordedRequest, LlmExtra>;

impl SimConfig for LlmSimConfig {
    fn api_key(&self) -> &str {
        &self.api_key
    }
}

/// The emulator.
pub struct LlmSim;

/// A running emulator; stops when dropped or
/// [`stop`](crate::server::Emulator::stop)ped.
pub type LlmSimHandle = Emulator<LlmSimConfig, RecordedRequest, LlmExtra>;

impl LlmSim {
    /// Binds 127.0.0.1:0 and serves until the handle goes.
    pub async fn start(cfg: LlmSimConfig) -> std::io::Result<LlmSimHandle> {
        Self::start_on(cfg, 0).await
    }

    /// Binds 127.0.0.1:`port` (0: any free port) and serves until the
    /// handle goes.
    pub async fn start_on(cfg: LlmSimConfig, port: u16) -> std::io::Result<LlmSimHandle> {
        Emulator::start(
            port,
            cfg,
            LlmExtra {
                script: Mutex::new(Arc::new(EchoScript)),
                seq: AtomicU64::new(1),
            },
            routes,
        )
        .await
    }
}

impl LlmSimHandle {
    /// Groq-style base URL: `http://127.0.0.1:<port>/openai/v1`.
    pub fn groq_base_url(&self) -> String {
        format!("http://{}/openai/v1", self.addr)
    }

    /// Replaces the script.
    pub fn set_script(&self, script: impl LlmScript) {
        *lock(&self.shared.extra.script) = Arc::new(script);
    }
}

type Reply = warp::reply::Response;

fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let path = warp::path!("chat" / "completions")
        .or(warp::path!("v1" / "chat" / "completions"))
        .unify()
        .or(warp::path!("openai" / "v1" / "chat" / "completions"))
        .unify();
    warp::post()
        .and(path)
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(move |full: warp::path::FullPath, headers, body| {
            handle(shared.clone(), full.as_str().to_string(), headers, body)
        })
}

async fn handle(
    shared: Arc<Shared>,
    path: String,
    headers: warp::http::HeaderMap,
    body: Bytes,
) -> Reply {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (index, served) = {
        let mut log = lock(&shared.log);
        log.push(RecordedRequest {
            path,
            authorization: authorization.clone(),
            body: parsed.clone(),
            status: 0,
        });
        (log.len() - 1, log.len() as u64)
    };
    let cfg = lock(&shared.cfg).clone();
    if cfg.half_open {
        shared.shutdown.wait().await;
        return error_reply(503, "shutting down", "server_error", None);
    }
    let fault = if parsed.get("response_format").is_some() {
        take_analysis_fault(&shared)
    } else {
        None
    };
    if let Some(AnalysisFaultKind::Slow(d)) = &fault
        && !shared.shutdown.pause(*d).await
    {
        return error_reply(503, "shutting down", "server_error", None);
    }
    let reply = respond(
        &shared,
        &cfg,
        &headers,
        authorization,
        &body,
        parsed,
        served,
        fault,
    );
    lock(&shared.log)[index].status = reply.status().as_u16();
    reply
}

/// Counts one structured-output request against the fault knob: the
/// fault it gets, if any.
fn take_analysis_fault(shared: &Arc<Shared>) -> Option<AnalysisFaultKind> {
    let mut cfg = lock(&shared.cfg);
    let fault = cfg.analysis_fault.as_mut()?;
    if fault.next == 0 {
        return None;
    }
    fault.next -= 1;
    Some(fault.kind.clone())
}

#[allow(clippy::too_many_arguments)]
fn respond(
    shared: &Arc<Shared>,
    cfg: &LlmSimConfig,
    headers: &warp::http::HeaderMap,
    authorization: Option<String>,
    raw: &Bytes,
    body: Value,
    served: u64,
    fault: Option<AnalysisFaultKind>,
) -> Reply {
    if authorization.as_deref() != Some(&format!("Bearer {}", cfg.api_key)) {
        return error_reply(
            401,
            "Invalid API Key",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return error_reply(
            400,
            "Invalid Content-Type header, expected application/json",
            "invalid_request_error",
            None,
        );
    }
    if !body.is_object() {
        let msg = if raw.is_empty() || serde_json::from_slice::<Value>(raw).is_err() {
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)"
        } else {
            "The request body must be a JSON object"
        };
        return error_reply(400, msg, "invalid_request_error", None);
    }
    if !body["model"].is_string() {
        return error_reply(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
        );
    }
    let valid_messages = body["messages"]
        .as_array()
        .is_some_and(|ms| !ms.is_empty() && ms.iter().all(|m| m["role"].is_string()));
    if !valid_messages {
        return error_reply(
            400,
            "'messages' must be a non-empty array of messages with a 'role'",
            "invalid_request_error",
            None,
        );
    }
    if body.get("response_format").is_some()
        && let Some((message, param, code)) = analysis::check_format(&body)
    {
        return json_reply(
            400,
            &json!({"error": {"message": message, "type": "invalid_request_error",
                              "param": param, "code": code}}),
        );
    }
    if let Some(reply) = injected_failure(shared, cfg, served, &body) {
        return reply;
    }
    let structured = body["response_format"]["type"]
        .as_str()
        .is_some_and(|t| t != "text");
    let reply = if structured {
        let text = match fault {
            Some(AnalysisFaultKind::InvalidJson) => "{\"summary\": \"The callee said".to_string(),
            Some(AnalysisFaultKind::SchemaViolation) => analysis::answer(&body, true).to_string(),
            _ => analysis::answer(&body, false).to_string(),
        };
        ScriptedReply {
            text,
            ..Default::default()
        }
    } else {
        let script = lock(&shared.extra.script).clone();
        script.reply(&body)
    };
    let seq = shared.extra.seq.fetch_add(1, Ordering::Relaxed);
    let stream = body["stream"].as_bool().unwrap_or(false) && !cfg.ignore_stream;
    let resp = if stream {
        let usage = cfg.include_usage || body["stream_options"]["include_usage"] == true;
        let chunks = sse_chunks(&body, &reply, seq, usage, cfg.argument_piece_chars);
        stream_reply(shared, cfg, chunks)
    } else {
        json_reply(200, &completion(&body, &reply, seq))
    };
    with_rate_headers(resp, false)
}

fn injected_failure(
    shared: &Arc<Shared>,
    cfg: &LlmSimConfig,
    served: u64,
    body: &Value,
) -> Option<Reply> {
    if let Some(trigger) = &cfg.fail_when_user_says
        && last_user_message(body).contains(trigger.as_str())
    {
        let reply = error_reply(503, "Service Unavailable", "server_error", None);
        return Some(with_rate_headers(reply, false));
    }
    let rule = cfg.fail.as_ref()?;
    if !FailRule::fires(&mut lock(&shared.cfg).fail, served) {
        return None;
    }
    let mut reply = match rule.status {
        429 => error_reply(
            429,
            "Rate limit reached for model `sim` on tokens per minute (TPM): Limit 6000, Used 6000, Requested 100. Please try again later.",
            "tokens",
            Some("rate_limit_exceeded"),
        ),
        500 => error_reply(500, "Internal Server Error", "internal_server_error", None),
        502 => error_reply(502, "Bad Gateway", "server_error", None),
        503 => error_reply(503, "Service Unavailable", "server_error", None),
        s => error_reply(s, "Injected failure", "invalid_request_error", None),
    };
    if let Some(ra) = &rule.retry_after
        && let Ok(v) = HeaderValue::from_str(ra)
    {
        reply.headers_mut().insert("retry-after", v);
    }
    Some(with_rate_headers(reply, rule.status == 429))
}

fn error_reply(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
    json_reply(
        status,
        &json!({"error": {"message": message, "type": kind, "code": code, "param": null}}),
    )
}

fn json_reply(status: u16, body: &Value) -> Reply {
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

fn with_rate_headers(mut resp: Reply, exhausted: bool) -> Reply {
    let h = resp.headers_mut();
    h.insert(
        "x-ratelimit-limit-requests",
        HeaderValue::from_static("14400"),
    );
    h.insert("x-ratelimit-limit-tokens", HeaderValue::from_static("6000"));
    h.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static(if exhausted { "0" } else { "14399" }),
    );
    h.insert(
        "x-ratelimit-remaining-tokens",
        HeaderValue::from_static(if exhausted { "0" } else { "5900" }),
    );
    h.insert("x-ratelimit-reset-requests", HeaderValue::from_static("6s"));
    h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("1s"));
    resp
}

fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The reply text as the tokens it streams in: words with their spaces.
pub fn tokens(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_string).collect()
}

fn pieces(s: &str, chars: usize) -> Vec<String> {
    let chars = chars.max(1);
    let cs: Vec<char> = s.chars().collect();
    cs.chunks(chars).map(|c| c.iter().collect()).collect()
}

fn finish_of(reply: &ScriptedReply) -> String {
    reply.finish_reason.clone().unwrap_or_else(|| {
        if reply.tool_calls.is_empty() {
            "stop".into()
        } else {
            "tool_calls".into()
        }
    })
}

fn usage(request: &Value, completion_tokens: usize) -> Value {
    let prompt: usize = request["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    m["content"]
                        .as_str()
                        .unwrap_or_default()
                        .split_whitespace()
                        .count()
                        + 4
                })
                .sum()
        })
        .unwrap_or(0);
    json!({"prompt_tokens": prompt, "completion_tokens": completion_tokens,
           "total_tokens": prompt + completion_tokens})
}

fn tool_call_id(seq: u64, i: usize) -> String {
    format!("call_{seq}_{i}")
}

/// The non-streaming `chat.completion` body.
fn completion(request: &Value, reply: &ScriptedReply, seq: u64) -> Value {
    let mut message = json!({"role": "assistant", "content": reply.text});
    if !reply.tool_calls.is_empty() {
        if reply.text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = reply
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({"id": tool_call_id(seq, i), "type": "function",
                       "function": {"name": t.name, "arguments": t.arguments}})
            })
            .collect();
    }
    json!({
        "id": format!("chatcmpl-sim{seq}"), "object": "chat.completion", "created": created(),
        "model": request["model"], "system_fingerprint": "fp_sim",
        "choices": [{"index": 0, "finish_reason": finish_of(reply), "logprobs": null,
                     "message": message}],
        "usage": usage(request, tokens(&reply.text).len()),
        "x_groq": {"id": format!("req_sim{seq}")},
    })
}

/// One streamed chunk, and whether it is paced as a token.
struct SseChunk {
    data: String,
    token: bool,
}

/// The SSE data payloads of a streamed reply, `[DONE]` included.
fn sse_chunks(
    request: &Value,
    reply: &ScriptedReply,
    seq: u64,
    include_usage: bool,
    piece_chars: usize,
) -> Vec<SseChunk> {
    let id = format!("chatcmpl-sim{seq}");
    let created = created();
    let model = request["model"].clone();
    let chunk = |choices: Value, extra: Option<(&str, Value)>| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": "fp_sim", "choices": choices});
        if let Some((k, v)) = extra {
            c[k] = v;
        }
        c.to_string()
    };
    let delta =
        |d: Value| json!([{"index": 0, "delta": d, "logprobs": null, "finish_reason": null}]);
    let mut out = Vec::new();
    let role_content = if reply.text.is_empty() && !reply.tool_calls.is_empty() {
        Value::Null
    } else {
        json!("")
    };
    out.push(SseChunk {
        data: chunk(
            delta(json!({"role": "assistant", "content": role_content})),
            Some(("x_groq", json!({"id": format!("req_sim{seq}")}))),
        ),
        token: false,
    });
    let toks = tokens(&reply.text);
    let mut completion_tokens = toks.len();
    for t in toks {
        out.push(SseChunk {
            data: chunk(delta(json!({"content": t})), None),
            token: true,
        });
    }
    for (i, call) in reply.tool_calls.iter().enumerate() {
        out.push(SseChunk {
            data: chunk(
                delta(json!({"tool_calls": [{"index": i, "id": tool_call_id(seq, i), "type": "function",
                    "function": {"name": call.name, "arguments": ""}}]})),
                None,
            ),
            token: true,
        });
        for p in pieces(&call.arguments, piece_chars) {
            completion_tokens += 1;
            out.push(SseChunk {
                data: chunk(
                    delta(json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]})),
                    None,
                ),
                token: true,
            });
        }
    }
    let usage = usage(request, completion_tokens);
    out.push(SseChunk {
        data: chunk(
            json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish_of(reply)}]),
            Some((
                "x_groq",
                json!({"id": format!("req_sim{seq}"), "usage": usage}),
            )),
        ),
        token: false,
    });
    if include_usage {
        out.push(SseChunk {
            data: chunk(json!([]), Some(("usage", usage))),
            token: false,
        });
    }
    out.push(SseChunk {
        data: "[DONE]".into(),
        token: false,
    });
    out
}

/// A body stream fed by a channel (Send + Sync, as warp wants).
struct ChanStream(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_util::Stream for ChanStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn stream_reply(shared: &Arc<Shared>, cfg: &LlmSimConfig, chunks: Vec<SseChunk>) -> Reply {
    use warp::Reply as _;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let shutdown = shared.shutdown.clone();
    let cfg = cfg.clone();
    tokio::spawn(async move {
        let token_gap = if cfg.tokens_per_second > 0.0 {
            Duration::from_secs_f64((1.0 / cfg.tokens_per_second).min(60.0))
        } else {
            Duration::ZERO
        };
        let pause = |d: Duration| {
            let sd = shutdown.clone();
            async move { sd.pause(d).await }
        };
        // Tokens keep to a schedule (first at the latency, then one per
        // gap): pausing a gap after each would add every timer's lateness
        // to the next token.
        let mut due = tokio::time::Instant::now() + cfg.first_token_latency;
        let until =
            |due: tokio::time::Instant| due.saturating_duration_since(tokio::time::Instant::now());
        if !pause(until(due)).await {
            return;
        }
        for (n, c) in chunks.into_iter().enumerate() {
            if cfg.drop_after_chunks == Some(n) {
                // Let the chunks already sent reach the wire first, as
                // they would from a real server dying mid-stream.
                if !pause(Duration::from_millis(50)).await {
                    return;
                }
                let _ = tx
                    .send(Err(std::io::Error::other("sim: connection dropped")))
                    .await;
                return;
            }
            if cfg.malformed_after_chunks == Some(n) {
                let bad = "data: {\"id\":\"chatcmpl-sim\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\n\n";
                if tx
                    .send(Ok(Bytes::from_static(bad.as_bytes())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if c.token && n > 1 {
                due += token_gap;
                if !pause(until(due)).await {
                    return;
                }
            }
            let frame = Bytes::from(format!("data: {}\n\n", c.data));
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    let mut resp = warp::reply::stream(ChanStream(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

pub mod agent;
pub mod analysis;

#[cfg(test)]
mod tests;
