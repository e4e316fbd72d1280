use super::*;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn body(stream: bool) -> Value {
    json!({"model": "llama-3.1-8b-instant", "stream": stream,
           "messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "hello there"}]})
}

async fn post(sim: &LlmSimHandle, path: &str, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", sim.base_url()))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn non_streaming_response_has_the_spec_shape() {
    let sim = LlmSim::start(LlmSimConfig::default()).await.unwrap();
    let resp = post(&sim, "/chat/completions", "sim-key", &body(false)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .contains_key("x-ratelimit-remaining-requests")
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "llama-3.1-8b-instant");
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "You said: hello there."
    );
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );

    sim.set_script(|_: &Value| ScriptedReply {
        tool_calls: vec![ScriptedToolCall {
            name: "lookup_contact".into(),
            arguments: "{\"phone\":\"+447700900000\"}".into(),
        }],
        ..Default::default()
    });
    let v: Value = post(&sim, "/openai/v1/chat/completions", "sim-key", &body(false))
        .await
        .json()
        .await
        .unwrap();
    let m = &v["choices"][0]["message"];
    assert!(m["content"].is_null());
    assert_eq!(m["tool_calls"][0]["type"], "function");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "lookup_contact");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(sim.request_count(), 2);
    assert_eq!(sim.requests()[1].path, "/openai/v1/chat/completions");
}

#[tokio::test]
async fn streaming_chunks_have_the_spec_shape() {
    let sim = LlmSim::start(LlmSimConfig::default()).await.unwrap();
    let mut b = body(true);
    b["stream_options"] = json!({"include_usage": true});
    let resp = post(&sim, "/v1/chat/completions", "sim-key", &b).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data line"))
        .collect();
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = &chunks[0]["id"];
    assert!(
        chunks
            .iter()
            .all(|c| &c["id"] == id && c["created"] == chunks[0]["created"])
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(chunks[0]["x_groq"]["id"].is_string());
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "You said: hello there.");
    let fin = &chunks[chunks.len() - 2];
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert_eq!(fin["choices"][0]["delta"], json!({}));
    assert!(fin["x_groq"]["usage"]["total_tokens"].is_u64());
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["completion_tokens"].is_u64());
}

#[tokio::test]
async fn auth_content_type_and_json_are_validated() {
    let sim = LlmSim::start(LlmSimConfig::default()).await.unwrap();
    let resp = post(&sim, "/chat/completions", "wrong", &body(true)).await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert_eq!(v["error"]["message"], "Invalid API Key");

    let resp = client()
        .post(format!("{}/chat/completions", sim.base_url()))
        .bearer_auth("sim-key")
        .header("content-type", "text/plain")
        .body(body(true).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = client()
        .post(format!("{}/chat/completions", sim.base_url()))
        .bearer_auth("sim-key")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    for bad in [
        json!({"messages": [{"role": "user", "content": "x"}]}),
        json!({"model": "m", "messages": []}),
    ] {
        let resp = post(&sim, "/chat/completions", "sim-key", &bad).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let log = sim.requests();
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].status, 401);
    assert_eq!(log[0].authorization.as_deref(), Some("Bearer wrong"));
    assert!(log.iter().all(|r| r.status == 400 || r.status == 401));
}

#[tokio::test]
async fn fail_rules_next_and_after() {
    let sim = LlmSim::start(LlmSimConfig {
        fail: Some(FailRule {
            status: 429,
            retry_after: Some("1".into()),
            next: 1,
            after: None,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let resp = post(&sim, "/chat/completions", "sim-key", &body(false)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "0");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        post(&sim, "/chat/completions", "sim-key", &body(false))
            .await
            .status(),
        200
    );
    sim.update(|c| {
        c.fail = Some(FailRule {
            status: 503,
            after: Some(3),
            ..Default::default()
        })
    });
    assert_eq!(
        post(&sim, "/chat/completions", "sim-key", &body(false))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&sim, "/chat/completions", "sim-key", &body(false))
            .await
            .status(),
        503
    );
    sim.stop().await;
}

#[test]
fn tokens_and_pieces() {
    assert_eq!(tokens("You said: hi."), vec!["You ", "said: ", "hi."]);
    assert_eq!(pieces("héllo!", 2), vec!["hé", "ll", "o!"]);
    assert_eq!(last_user_message(&body(true)), "hello there");
}

#[tokio::test]
async fn fails_only_the_conversation_that_says_the_trigger() {
    let sim = LlmSim::start(LlmSimConfig {
        fail_when_user_says: Some("the offer".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut failing = body(false);
    failing["messages"][1]["content"] = json!("Tell me about the offer.");
    let resp = post(&sim, "/chat/completions", "sim-key", &failing).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(
        post(&sim, "/chat/completions", "sim-key", &body(false))
            .await
            .status(),
        200,
        "other conversations are served"
    );
}
