//! The LLM emulator's answers to structured-output requests (a request
//! with `response_format`): checked like OpenAI checks them, answered
//! from the transcript in the request by rules a test can predict.
//!
//! The answer is `{"summary", "structured_data", "success"}`: a summary
//! built from the conversation, the structured data filled to the schema
//! from what the callee said (booleans from the callee's words: interest,
//! or a removal request for a property about calling/removal; strings
//! from the callee's utterances; integers from the turn count; enums by
//! the value the callee named, else the first for an interested callee and
//! the last otherwise), and `success` per the rubric (pass/fail:
//! interest; a 1-10 scale: 8 or 2; anything else a label). The schema is
//! read from `response_format.json_schema.schema.properties.structured_data`
//! or, in JSON mode, from the system prompt's `JSON Schema of
//! structured_data:` line; the rubric from its `Success rubric:` line;
//! the transcript from `Callee:` / `Agent:` lines. This parses the text
//! itself and shares no type with talky.

use serde_json::{Map, Value, json};

/// Words that mark an interested callee.
const YES: [&str; 8] = [
    "yes",
    "interested",
    "sure",
    "sounds good",
    "tell me more",
    "great",
    "okay",
    "please do",
];
/// Words that mark a callee who is not interested (checked first).
const NO: [&str; 6] = [
    "not interested",
    "no thanks",
    "no thank",
    "remove",
    "don't call",
    "stop calling",
];
/// Words of a removal request.
const REMOVE: [&str; 4] = ["remove", "don't call", "stop calling", "do not call"];

/// A `response_format` OpenAI would refuse, as its 400 error body's
/// (message, param, code); `None` when it is acceptable.
pub fn check_format(request: &Value) -> Option<(String, &'static str, &'static str)> {
    let rf = &request["response_format"];
    let kind = rf["type"].as_str().unwrap_or_default();
    match kind {
        "text" => None,
        "json_object" => {
            let says_json = request["messages"].as_array().is_some_and(|ms| {
                ms.iter().any(|m| {
                    m["content"]
                        .as_str()
                        .is_some_and(|c| c.to_ascii_lowercase().contains("json"))
                })
            });
            (!says_json).then(|| {
                (
                    "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.".into(),
                    "messages",
                    "invalid_value",
                )
            })
        }
        "json_schema" => {
            let js = &rf["json_schema"];
            let name_ok = js["name"].as_str().is_some_and(|n| {
                !n.is_empty()
                    && n.len() <= 64
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
            if !name_ok {
                return Some((
                    "Missing or invalid 'response_format.json_schema.name'.".into(),
                    "response_format.json_schema.name",
                    "invalid_value",
                ));
            }
            if !js["schema"].is_object() {
                return Some((
                    "Missing required parameter: 'response_format.json_schema.schema'.".into(),
                    "response_format.json_schema.schema",
                    "missing_required_parameter",
                ));
            }
            if js["strict"] == true
                && let Some(problem) = strict_problem(&js["schema"], "()")
            {
                return Some((
                    format!(
                        "Invalid schema for response_format '{}': {problem}",
                        js["name"].as_str().unwrap_or_default()
                    ),
                    "response_format",
                    "invalid_value",
                ));
            }
            None
        }
        other => Some((
            format!(
                "Invalid value: '{other}'. Supported values are: 'json_object', 'json_schema', and 'text'."
            ),
            "response_format.type",
            "invalid_value",
        )),
    }
}

/// Strict mode's rule: every object schema lists all its properties in
/// `required` and forbids others.
fn strict_problem(schema: &Value, context: &str) -> Option<String> {
    let o = schema.as_object()?;
    if o.get("type") == Some(&json!("object")) {
        if o.get("additionalProperties") != Some(&json!(false)) {
            return Some(format!(
                "In context={context}, 'additionalProperties' is required to be supplied and to be false."
            ));
        }
        let required: Vec<&str> = o
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            if let Some(missing) = props.keys().find(|k| !required.contains(&k.as_str())) {
                return Some(format!(
                    "In context={context}, 'required' is required to be supplied and to be an array including every key in properties. Missing '{missing}'."
                ));
            }
            for (k, v) in props {
                if let Some(p) = strict_problem(v, &format!("('properties', '{k}')")) {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// What the request says about the call.
struct Call {
    callee: Vec<String>,
    turns: usize,
    interested: bool,
    remove: bool,
}

fn messages_text(request: &Value, role: &str) -> String {
    request["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["role"] == role)
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn read_call(request: &Value) -> Call {
    let user = messages_text(request, "user");
    let mut callee = Vec::new();
    let mut turns = 0;
    for line in user.lines() {
        if let Some(said) = line.strip_prefix("Callee:") {
            callee.push(said.trim().to_string());
            turns += 1;
        } else if line.starts_with("Agent:") {
            turns += 1;
        }
    }
    let words = callee.join(" ").to_lowercase();
    let negative = NO.iter().any(|w| words.contains(w));
    let interested = !negative && YES.iter().any(|w| words.contains(w));
    let remove = REMOVE.iter().any(|w| words.contains(w));
    Call {
        callee,
        turns,
        interested,
        remove,
    }
}

/// The structured data's schema the request asks for.
fn data_schema(request: &Value) -> Value {
    let rf = &request["response_format"];
    if rf["type"] == "json_schema" {
        return rf["json_schema"]["schema"]["properties"]["structured_data"].clone();
    }
    let system = messages_text(request, "system");
    system
        .lines()
        .find_map(|l| l.strip_prefix("JSON Schema of structured_data:"))
        .and_then(|s| serde_json::from_str(s.trim()).ok())
        .unwrap_or_else(|| json!({"type": "object"}))
}

fn rubric(request: &Value) -> Option<String> {
    messages_text(request, "system")
        .lines()
        .find_map(|l| l.strip_prefix("Success rubric:"))
        .map(|r| r.trim().to_lowercase())
}

/// A value for `schema` (named `name`) from the call.
fn fill(name: &str, schema: &Value, call: &Call) -> Value {
    let name_l = name.to_lowercase();
    if let Some(options) = schema["enum"].as_array().filter(|o| !o.is_empty()) {
        let said = call.callee.join(" ").to_lowercase();
        return options
            .iter()
            .find(|o| o.as_str().is_some_and(|s| said.contains(&s.to_lowercase())))
            .or(if call.interested {
                options.first()
            } else {
                options.last()
            })
            .cloned()
            .unwrap_or(Value::Null);
    }
    let kind = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null")
            .to_string(),
        t => t.as_str().unwrap_or("string").to_string(),
    };
    match kind.as_str() {
        "boolean" => {
            let about_removal = ["call", "remove", "dnc", "contact"]
                .iter()
                .any(|w| name_l.contains(w));
            Value::Bool(if about_removal {
                call.remove
            } else {
                call.interested
            })
        }
        "integer" | "number" => {
            let min = schema["minimum"].as_i64().unwrap_or(i64::MIN);
            let max = schema["maximum"].as_i64().unwrap_or(i64::MAX);
            json!((call.turns as i64).clamp(min, max))
        }
        "object" => {
            let mut o = Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in props {
                    o.insert(k.clone(), fill(k, v, call));
                }
            }
            Value::Object(o)
        }
        "array" => json!([]),
        "null" => Value::Null,
        _ => {
            // A string: the callee's utterance that names the property
            // (any word of its name), else what they said last.
            let words: Vec<&str> = name_l
                .split(['_', '-', ' '])
                .filter(|w| w.len() > 2)
                .collect();
            let text = call
                .callee
                .iter()
                .find(|u| {
                    let u = u.to_lowercase();
                    words.iter().any(|w| u.contains(w))
                })
                .or(call.callee.last())
                .cloned()
                .unwrap_or_default();
            let max = schema["maxLength"].as_u64().unwrap_or(u64::MAX) as usize;
            Value::String(text.chars().take(max).collect())
        }
    }
}

/// What the request's data would be filled with, wrongly typed: each
/// property gets a value of another type (the schema-violation knob).
fn violate(schema: &Value) -> Value {
    match schema["properties"].as_object() {
        Some(props) if !props.is_empty() => Value::Object(
            props
                .iter()
                .map(|(k, v)| {
                    let wrong = if v["type"] == "string" {
                        json!(42)
                    } else {
                        json!("not-a-match")
                    };
                    (k.clone(), wrong)
                })
                .collect(),
        ),
        _ => json!("not an object"),
    }
}

/// The answer to a structured-output request; `violating`: structured
/// data that does not match the schema.
pub fn answer(request: &Value, violating: bool) -> Value {
    let call = read_call(request);
    let schema = data_schema(request);
    let data = if violating {
        violate(&schema)
    } else {
        fill("structured_data", &schema, &call)
    };
    let mood = if call.remove {
        "asked to be removed from the list"
    } else if call.interested {
        "was interested"
    } else {
        "was not interested"
    };
    let first = call.callee.first().cloned().unwrap_or_default();
    let summary = format!(
        "The agent called and the callee answered: \"{first}\". Over {} turns the callee {mood}.",
        call.turns
    );
    let success = match rubric(request) {
        None => Value::Null,
        Some(r) if r.contains("pass") || r.contains("fail") => Value::Bool(call.interested),
        Some(r) if r.contains("1-10") || r.contains("1 to 10") || r.contains("scale") => {
            json!(if call.interested { 8 } else { 2 })
        }
        Some(_) => json!(if call.interested {
            "interested"
        } else {
            "not interested"
        }),
    };
    json!({"summary": summary, "structured_data": data, "success": success})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(format: Value, transcript: &str, system: &str) -> Value {
        json!({"model": "m", "response_format": format, "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": format!("Transcript of the call:\n{transcript}")},
        ]})
    }

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "interested": {"type": "boolean"},
            "wants_no_calls": {"type": "boolean"},
            "best_time": {"type": "string"},
            "turns": {"type": "integer", "minimum": 0, "maximum": 3},
            "plan": {"type": "string", "enum": ["basic", "premium"]}}})
    }

    fn json_schema_format() -> Value {
        json!({"type": "json_schema", "json_schema": {"name": "call_analysis", "schema": {
            "type": "object", "properties": {"structured_data": schema()}}}})
    }

    #[test]
    fn data_follows_what_the_callee_said() {
        let r = request(
            json_schema_format(),
            "Agent: Hello.\nCallee: Yes, tell me more about premium.\nAgent: Sure.\nCallee: Call me any time after five.\nAgent: Bye.",
            "Answer in JSON.\nSuccess rubric: pass/fail: interested",
        );
        assert_eq!(check_format(&r), None);
        let a = answer(&r, false);
        assert_eq!(
            a["structured_data"],
            json!({"interested": true, "wants_no_calls": false,
                   "best_time": "Call me any time after five.", "turns": 3, "plan": "premium"})
        );
        assert_eq!(a["success"], true);
        assert!(
            a["summary"]
                .as_str()
                .is_some_and(|s| s.contains("Yes, tell me more")),
            "{a}"
        );
        let bad = answer(&r, true);
        assert_eq!(bad["structured_data"]["interested"], "not-a-match");
        assert_eq!(bad["structured_data"]["best_time"], 42);
    }

    #[test]
    fn json_mode_reads_the_schema_from_the_prompt() {
        let system = format!(
            "Answer in JSON.\nJSON Schema of structured_data: {}\nSuccess rubric: 1-10 how keen",
            schema()
        );
        let r = request(
            json!({"type": "json_object"}),
            "Agent: Hi.\nCallee: No thanks, please remove me.",
            &system,
        );
        assert_eq!(check_format(&r), None);
        let a = answer(&r, false);
        assert_eq!(a["structured_data"]["interested"], false);
        assert_eq!(a["structured_data"]["wants_no_calls"], true);
        assert_eq!(a["structured_data"]["plan"], "premium");
        assert_eq!(a["success"], 2);
    }

    #[test]
    fn formats_openai_refuses_are_refused() {
        let r = |format: Value, system: &str| request(format, "Callee: hi", system);
        let unknown = check_format(&r(json!({"type": "xml"}), "json"));
        assert_eq!(unknown.map(|e| e.1), Some("response_format.type"));
        let no_json_word = check_format(&r(json!({"type": "json_object"}), "Answer."));
        assert_eq!(no_json_word.map(|e| e.1), Some("messages"));
        let bad_name = json!({"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}});
        assert!(check_format(&r(bad_name, "json")).is_some());
        let loose = json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}});
        let e = check_format(&r(loose, "json"))
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(e.contains("additionalProperties"), "{e}");
        let strict = json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "string"}},
                       "required": ["a"], "additionalProperties": false}}});
        assert_eq!(check_format(&r(strict, "json")), None);
    }
}
