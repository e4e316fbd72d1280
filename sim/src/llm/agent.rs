//! [`AgentScript`]: the simulated world's agent brain. A rule-based stand-in
//! for a real model, just good enough that a simulated campaign behaves
//! like a real one: it answers questions, ends the call politely when the
//! callee is done, declines gracefully, and calls the tools talky offers
//! (`end_call`, `mark_do_not_call`, `schedule_callback`, `transfer_call`)
//! when the callee's words ask for them. It only ever looks at the last user message, so a
//! demo's transcript is predictable.

use serde_json::{Value, json};

use super::{LlmScript, ScriptedReply, ScriptedToolCall, last_user_message};
use talky_actors::call::TRANSFER_TOOL;

/// The rules, first match wins (on the lower-cased last user message).
#[derive(Clone, Copy, Debug, Default)]
pub struct AgentScript;

fn tool(name: &str, arguments: Value) -> ScriptedToolCall {
    ScriptedToolCall {
        name: name.into(),
        arguments: arguments.to_string(),
    }
}

fn offers(request: &Value, name: &str) -> bool {
    request["tools"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["function"]["name"] == name))
}

fn reply(text: &str, tools: Vec<ScriptedToolCall>) -> ScriptedReply {
    ScriptedReply {
        text: text.into(),
        tool_calls: tools,
        finish_reason: None,
    }
}

impl LlmScript for AgentScript {
    fn reply(&self, request: &Value) -> ScriptedReply {
        let said = last_user_message(request);
        let heard = said.to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| heard.contains(w));
        // A tool is only called when the request offers it, as a real
        // model would.
        let call = |name: &str, args: Value| {
            if offers(request, name) {
                vec![tool(name, args)]
            } else {
                Vec::new()
            }
        };
        if has(&["remove me", "do not call", "stop calling", "take me off"]) {
            return reply(
                "I am sorry to have bothered you. You will not be called again. Goodbye.",
                call("mark_do_not_call", json!({})),
            );
        }
        if has(&[
            "real person",
            "a person",
            "a human",
            "an agent",
            "someone real",
        ]) {
            return if offers(request, TRANSFER_TOOL) {
                reply("Of course.", call(TRANSFER_TOOL, json!({})))
            } else {
                reply(
                    "I am an automated assistant, but I can help you myself. What would you like to know?",
                    Vec::new(),
                )
            };
        }
        if has(&["not interested", "no thanks", "no, thanks"]) {
            return reply(
                "I understand. Thank you for your time. Goodbye.",
                call("end_call", json!({ "outcome": "not_interested" })),
            );
        }
        if has(&["call me back", "call back", "call later"]) {
            let at = chrono::Utc::now() + chrono::Duration::hours(24);
            return reply(
                "Of course. I will call you back tomorrow. Goodbye.",
                call(
                    "schedule_callback",
                    json!({ "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) }),
                ),
            );
        }
        if has(&["bye", "thank you", "thanks"]) {
            return reply(
                "Thank you. Have a nice day. Goodbye.",
                call("end_call", json!({ "outcome": "completed" })),
            );
        }
        if has(&["offer"]) {
            return reply(
                "This month you get twenty percent off your next visit. Would you like to book?",
                Vec::new(),
            );
        }
        if has(&["who is this", "who are you", "who's this"]) {
            return reply(
                "This is Ada, calling about your appointment. Is now a good time?",
                Vec::new(),
            );
        }
        if has(&["interested", "yes", "sure"]) {
            return reply(
                "Great. I will send you the details by message. Anything else?",
                Vec::new(),
            );
        }
        if said.is_empty() {
            return reply("Are you still there?", Vec::new());
        }
        reply(
            &format!("You said: {said}. Could you tell me more?"),
            Vec::new(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(user: &str) -> Value {
        json!({
            "model": "m",
            "messages": [
                { "role": "system", "content": "You are Ada." },
                { "role": "assistant", "content": "Hello." },
                { "role": "user", "content": user },
            ],
            "tools": [
                { "type": "function", "function": { "name": "end_call" } },
                { "type": "function", "function": { "name": "mark_do_not_call" } },
                { "type": "function", "function": { "name": "schedule_callback" } },
            ],
        })
    }

    fn tools_of(r: &ScriptedReply) -> Vec<(&str, Value)> {
        r.tool_calls
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    serde_json::from_str(&t.arguments).unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    #[test]
    fn a_removal_request_marks_do_not_call() {
        let r = AgentScript.reply(&request("Please remove me from your list."));
        assert_eq!(tools_of(&r), [("mark_do_not_call", json!({}))]);
        assert!(r.text.ends_with("Goodbye."), "{}", r.text);
    }

    #[test]
    fn a_no_ends_the_call_as_not_interested() {
        let r = AgentScript.reply(&request("No thanks, I am not interested."));
        assert_eq!(
            tools_of(&r),
            [("end_call", json!({ "outcome": "not_interested" }))]
        );
    }

    #[test]
    fn interest_gets_an_answer_and_goodbye_ends_the_call() {
        let r = AgentScript.reply(&request("Yes, I am interested."));
        assert!(r.tool_calls.is_empty());
        assert!(r.text.starts_with("Great."), "{}", r.text);
        let r = AgentScript.reply(&request("Great, thank you. Bye."));
        assert_eq!(
            tools_of(&r),
            [("end_call", json!({ "outcome": "completed" }))]
        );
    }

    #[test]
    fn a_callback_request_schedules_one_in_the_future() {
        let r = AgentScript.reply(&request("Can you call me back tomorrow?"));
        let tools = tools_of(&r);
        assert_eq!(tools[0].0, "schedule_callback");
        let at = tools[0].1["at"].as_str().unwrap_or("");
        let at = chrono::DateTime::parse_from_rfc3339(at).expect("rfc 3339");
        assert!(at > chrono::Utc::now());
    }

    #[test]
    fn tools_are_only_called_when_offered() {
        let mut req = request("Please remove me from your list.");
        req["tools"] = json!([]);
        let r = AgentScript.reply(&req);
        assert!(r.tool_calls.is_empty());
        assert!(!r.text.is_empty());
    }

    #[test]
    fn a_request_for_a_person_is_transferred_only_when_the_tool_is_offered() {
        let mut req = request("Can I speak to a real person, please?");
        let r = AgentScript.reply(&req);
        assert!(r.tool_calls.is_empty(), "not offered: {:?}", tools_of(&r));
        assert!(r.text.contains("help you myself"), "{}", r.text);
        if let Some(tools) = req["tools"].as_array_mut() {
            tools.push(json!({ "type": "function", "function": { "name": TRANSFER_TOOL } }));
        }
        let r = AgentScript.reply(&req);
        assert_eq!(tools_of(&r), [(TRANSFER_TOOL, json!({}))]);
    }

    #[test]
    fn anything_else_is_echoed_back() {
        let r = AgentScript.reply(&request("The weather is fine"));
        assert_eq!(
            r.text,
            "You said: The weather is fine. Could you tell me more?"
        );
    }
}
