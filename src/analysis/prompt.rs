//! What one analysis asks the LLM and how its answer is judged: the
//! transcript as the callee heard it, one request for all three results
//! (`summary`, `structured_data`, `success`), and the validation that
//! decides whether the answer may be stored.
//!
//! One request rather than three: the transcript (most of the tokens) is
//! sent once, the three answers come from one reading of the call (a
//! summary cannot contradict the extracted data), and the whole answer is
//! checked against one schema, so a retry repeats one request, not a
//! partial set.

use serde_json::{Value, json};

use super::config::ResponseFormat;
use super::settings::AnalysisSettings;
use crate::db::calls::CallTurn;

/// The `json_schema` name of the analysis' response format.
pub const SCHEMA_NAME: &str = "call_analysis";
/// Output token cap of one analysis.
pub const MAX_TOKENS: u32 = 1_024;
/// The line of the system prompt that precedes the structured data's
/// schema (the LLM emulator finds the schema there in JSON mode).
pub const SCHEMA_LINE: &str = "JSON Schema of structured_data:";
/// The line of the system prompt that precedes the success rubric.
pub const RUBRIC_LINE: &str = "Success rubric:";
/// The first line of the user message that carries the transcript.
pub const TRANSCRIPT_LINE: &str = "Transcript of the call, as the callee heard it:";

/// The transcript as the callee heard it: one line per turn, `Agent:` or
/// `Callee:`; an agent turn cut short shows only the words heard and is
/// marked `[interrupted]`.
pub fn transcript(turns: &[CallTurn]) -> String {
    let mut out = String::new();
    for t in turns {
        let (who, text) = if t.speaker == "user" {
            ("Callee", t.text.trim())
        } else {
            ("Agent", t.heard_text.as_deref().unwrap_or(&t.text).trim())
        };
        if text.is_empty() && !t.interrupted {
            continue;
        }
        out.push_str(who);
        out.push_str(": ");
        out.push_str(text);
        if t.interrupted {
            if !text.is_empty() {
                out.push(' ');
            }
            out.push_str("[interrupted]");
        }
        out.push('\n');
    }
    out
}

/// Whether a call had a conversation: at least one callee turn.
pub fn had_conversation(turns: &[CallTurn]) -> bool {
    turns.iter().any(|t| t.speaker == "user")
}

/// The schema the whole answer must follow: the campaign's structured
/// data schema (or any object) under `structured_data`.
pub fn answer_schema(settings: &AnalysisSettings) -> Value {
    let data = settings.structured_data_schema.clone().unwrap_or_else(
        || json!({"type": "object", "properties": {}, "additionalProperties": false}),
    );
    json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "structured_data": data,
            "success": {"type": ["boolean", "integer", "string", "null"]},
        },
        "required": ["summary", "structured_data", "success"],
        "additionalProperties": false,
    })
}

/// Whether OpenAI's strict mode accepts `schema` (unconfirmed beyond its
/// documented rules: every object lists all its properties as required
/// and has `additionalProperties: false`). A schema that does not qualify
/// is sent with `strict: false`; the answer is validated here either way.
pub fn strict_compatible(schema: &Value) -> bool {
    match schema {
        Value::Object(o) => {
            let is_object = o.get("type").is_some_and(|t| t == "object");
            if is_object {
                let props = o.get("properties").and_then(Value::as_object);
                let required: Vec<&str> = o
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let all_required =
                    props.is_none_or(|p| p.keys().all(|k| required.contains(&k.as_str())));
                if !all_required || o.get("additionalProperties") != Some(&Value::Bool(false)) {
                    return false;
                }
            }
            o.values().all(strict_compatible)
        }
        Value::Array(a) => a.iter().all(strict_compatible),
        _ => true,
    }
}

/// The `response_format` of an analysis request.
pub fn response_format(format: ResponseFormat, schema: &Value) -> Value {
    match format {
        ResponseFormat::JsonSchema | ResponseFormat::Auto => json!({
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": strict_compatible(schema)},
        }),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
    }
}

/// The system prompt: the task, the answer's shape, the summary
/// instruction, the schema and the rubric (JSON mode sees the schema only
/// here).
pub fn system_prompt(settings: &AnalysisSettings) -> String {
    let mut s = String::from(
        "You analyse a finished phone call between an AI agent and a callee. \
         Answer with one JSON object with exactly the keys \"summary\", \"structured_data\" and \"success\".\n",
    );
    s.push_str("summary: ");
    s.push_str(settings.summary_prompt());
    s.push('\n');
    s.push_str(
        "structured_data: the facts the callee gave, as an object valid against the schema below; \
         leave out what the call did not tell.\n",
    );
    s.push_str(SCHEMA_LINE);
    s.push(' ');
    let schema = settings
        .structured_data_schema
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    s.push_str(&schema.to_string());
    s.push('\n');
    match settings.success_rubric.as_deref() {
        Some(rubric) => {
            s.push_str("success: judge the call by the rubric (true/false for pass/fail, an integer for a scale, else a short label).\n");
            s.push_str(RUBRIC_LINE);
            s.push(' ');
            s.push_str(rubric);
            s.push('\n');
        }
        None => s.push_str("success: null (no rubric).\n"),
    }
    s
}

/// The request body of one analysis (the client sets `stream`, the token
/// cap and any model override).
pub fn request_body(
    model: &str,
    settings: &AnalysisSettings,
    turns: &[CallTurn],
    format: ResponseFormat,
) -> Value {
    json!({
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": system_prompt(settings)},
            {"role": "user", "content": format!("{TRANSCRIPT_LINE}\n{}", transcript(turns))},
        ],
        "response_format": response_format(format, &answer_schema(settings)),
    })
}

/// An answer that may be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// The summary.
    pub summary: String,
    /// Data valid against the campaign's schema (`None` without one).
    pub structured_data: Option<Value>,
    /// The verdict by the rubric (`None` without one).
    pub success: Option<Value>,
}

/// Judges an answer: JSON (a Markdown code fence around it tolerated), an
/// object with a non-empty `summary`, `structured_data` valid against the
/// campaign's schema, `success` a scalar. `Err` says why it is not
/// stored (and so is retried, then stored as the error).
pub fn parse_answer(content: &str, settings: &AnalysisSettings) -> Result<Analysis, String> {
    let text = content.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text)
        .trim();
    let v: Value = serde_json::from_str(text).map_err(|e| format!("answer is not JSON: {e}"))?;
    let Value::Object(mut o) = v else {
        return Err("answer is not a JSON object".into());
    };
    let summary = match o.remove("summary") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err("answer has no summary".into()),
    };
    let structured_data = match &settings.structured_data_schema {
        Some(schema) => {
            let data = o
                .remove("structured_data")
                .ok_or("answer has no structured_data")?;
            let validator = jsonschema::validator_for(schema)
                .map_err(|e| format!("the campaign's schema cannot be used: {e}"))?;
            if let Some(e) = validator.iter_errors(&data).next() {
                let at = e.instance_path().to_string();
                return Err(format!(
                    "structured_data does not match the schema at '{at}': {e}"
                ));
            }
            Some(data)
        }
        None => None,
    };
    let success = match o.remove("success") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => Some(v),
        Some(_) => return Err("success is not a boolean, number or string".into()),
    };
    if settings.success_rubric.is_some() && success.is_none() {
        return Err("answer has no success verdict".into());
    }
    Ok(Analysis {
        summary,
        structured_data,
        success,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn turn(
        seq: i32,
        speaker: &str,
        text: &str,
        heard: Option<&str>,
        interrupted: bool,
    ) -> CallTurn {
        CallTurn {
            tenant_id: uuid::Uuid::nil(),
            call_id: uuid::Uuid::nil(),
            seq,
            speaker: speaker.into(),
            text: text.into(),
            heard_text: heard.map(str::to_string),
            interrupted,
            started_at: Utc::now(),
            ended_at: None,
            stt_ms: None,
            llm_first_token_ms: None,
            tts_first_audio_ms: None,
            first_frame_ms: None,
            voice_to_voice_ms: None,
        }
    }

    fn settings() -> AnalysisSettings {
        AnalysisSettings {
            summary_prompt: None,
            structured_data_schema: Some(json!({"type": "object",
                "properties": {"interested": {"type": "boolean"}, "best_time": {"type": "string"}},
                "required": ["interested"]})),
            success_rubric: Some("pass/fail: the callee is interested".into()),
        }
    }

    #[test]
    fn the_transcript_is_what_the_callee_heard() {
        let turns = [
            turn(
                0,
                "agent",
                "Hello, this is Ada.",
                Some("Hello, this is Ada."),
                false,
            ),
            turn(1, "user", "Hi.", None, false),
            turn(
                2,
                "agent",
                "We have a great offer for you today.",
                Some("We have a"),
                true,
            ),
            turn(3, "user", "Not now, call me at five.", None, false),
            turn(4, "agent", "Sorry", Some(""), true),
        ];
        assert_eq!(
            transcript(&turns),
            "Agent: Hello, this is Ada.\nCallee: Hi.\nAgent: We have a [interrupted]\n\
             Callee: Not now, call me at five.\nAgent: [interrupted]\n"
        );
        assert!(had_conversation(&turns));
        assert!(!had_conversation(&turns[..1]));
    }

    #[test]
    fn the_request_carries_the_schema_the_rubric_and_the_transcript() {
        let turns = [turn(0, "user", "Yes please.", None, false)];
        let body = request_body("m", &settings(), &turns, ResponseFormat::JsonSchema);
        let rf = &body["response_format"];
        assert_eq!(rf["type"], "json_schema");
        assert_eq!(rf["json_schema"]["name"], SCHEMA_NAME);
        assert_eq!(
            rf["json_schema"]["schema"]["properties"]["structured_data"]["properties"]["interested"]
                ["type"],
            "boolean"
        );
        // best_time is optional: OpenAI's strict mode would refuse it.
        assert_eq!(rf["json_schema"]["strict"], false);
        let system = body["messages"][0]["content"].as_str().unwrap_or_default();
        assert!(
            system.contains(RUBRIC_LINE) && system.contains("pass/fail"),
            "{system}"
        );
        assert!(
            system.contains(SCHEMA_LINE) && system.contains("best_time"),
            "{system}"
        );
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        assert_eq!(user, format!("{TRANSCRIPT_LINE}\nCallee: Yes please.\n"));
        let object = request_body("m", &settings(), &turns, ResponseFormat::JsonObject);
        assert_eq!(object["response_format"], json!({"type": "json_object"}));
    }

    #[test]
    fn strictness_follows_openai_rules() {
        let strict = json!({"type": "object", "properties": {"a": {"type": "string"}},
                            "required": ["a"], "additionalProperties": false});
        assert!(strict_compatible(&strict));
        let loose = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert!(!strict_compatible(&loose));
        let wrapped = answer_schema(&AnalysisSettings {
            structured_data_schema: Some(strict),
            ..AnalysisSettings::default()
        });
        assert!(strict_compatible(&wrapped));
    }

    #[test]
    fn answers_are_validated_before_they_may_be_stored() {
        let s = settings();
        let good = r#"{"summary":"Callee agreed.","structured_data":{"interested":true,"best_time":"five"},"success":true}"#;
        let a = parse_answer(good, &s).expect("valid");
        assert_eq!(
            a.structured_data,
            Some(json!({"interested": true, "best_time": "five"}))
        );
        assert_eq!(a.success, Some(json!(true)));
        let fenced = format!("```json\n{good}\n```");
        assert_eq!(parse_answer(&fenced, &s), Ok(a));
        for (bad, why) in [
            ("{not json", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (
                r#"{"structured_data":{"interested":true},"success":true}"#,
                "no summary",
            ),
            (r#"{"summary":"x","success":true}"#, "no structured_data"),
            (
                r#"{"summary":"x","structured_data":{"interested":"yes"},"success":true}"#,
                "does not match",
            ),
            (
                r#"{"summary":"x","structured_data":{},"success":true}"#,
                "does not match",
            ),
            (
                r#"{"summary":"x","structured_data":{"interested":true},"success":{"a":1}}"#,
                "success",
            ),
            (
                r#"{"summary":"x","structured_data":{"interested":true}}"#,
                "no success",
            ),
        ] {
            let err = parse_answer(bad, &s).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
