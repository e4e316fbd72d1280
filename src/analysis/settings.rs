//! A campaign's `analysis` settings: what to ask about each conversation
//! once it has ended. Validated when a campaign is created or changed, so
//! a worker never meets a schema it cannot compile.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The summary asked for when a campaign names no `summary_prompt`.
pub const DEFAULT_SUMMARY_PROMPT: &str = "Summarise the call in 2 to 3 sentences: who was reached, what they said and how the call ended.";
/// Longest `summary_prompt` and `success_rubric`, in characters.
pub const MAX_PROMPT_CHARS: usize = 5_000;
/// Largest `structured_data_schema`, serialised.
pub const MAX_SCHEMA_BYTES: usize = 32 * 1024;
/// Most top-level properties of the schema (each is a results column).
pub const MAX_PROPERTIES: usize = 100;

/// Post-call analysis of a campaign's conversations. Every field is
/// optional; an empty object asks for the default summary alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSettings {
    /// What the summary should say (default: a 2-3 sentence summary), at
    /// most 5,000 characters.
    #[schema(max_length = 5000)]
    pub summary_prompt: Option<String>,
    /// A JSON Schema (`"type": "object"`) the data extracted from each
    /// conversation must validate against; each top-level property is a
    /// column of the campaign's results. No remote `$ref`s.
    #[schema(value_type = Option<Object>)]
    pub structured_data_schema: Option<Value>,
    /// How to judge success, in words: e.g. `pass/fail: the callee agreed
    /// to a demo` or `1-10: how interested the callee was`; at most 5,000
    /// characters.
    #[schema(max_length = 5000)]
    pub success_rubric: Option<String>,
}

/// A field of the settings that is not acceptable, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError {
    /// The field, under `analysis.`.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

impl AnalysisSettings {
    /// The summary instruction in use.
    pub fn summary_prompt(&self) -> &str {
        self.summary_prompt
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or(DEFAULT_SUMMARY_PROMPT)
    }

    /// The schema's top-level property names in alphabetical order: the
    /// structured columns of the results export.
    pub fn columns(&self) -> Vec<String> {
        self.structured_data_schema
            .as_ref()
            .and_then(|s| s["properties"].as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every problem of the settings (empty: valid), fields named as the
    /// API shows them.
    pub fn check(&self) -> Vec<SettingsError> {
        let mut errors = Vec::new();
        let mut fail =
            |field: &'static str, message: String| errors.push(SettingsError { field, message });
        for (field, value) in [
            ("analysis.summary_prompt", &self.summary_prompt),
            ("analysis.success_rubric", &self.success_rubric),
        ] {
            if let Some(v) = value {
                if v.trim().is_empty() {
                    fail(
                        field,
                        "must not be empty (leave it out for the default)".into(),
                    );
                } else if v.chars().count() > MAX_PROMPT_CHARS {
                    fail(
                        field,
                        format!("must be at most {MAX_PROMPT_CHARS} characters"),
                    );
                }
            }
        }
        if let Some(schema) = &self.structured_data_schema
            && let Err(message) = check_schema(schema)
        {
            fail("analysis.structured_data_schema", message);
        }
        errors
    }
}

/// Whether `schema` is a JSON Schema this server can hold data to: valid
/// against its meta-schema, compilable without fetching anything, an
/// object schema with at most [`MAX_PROPERTIES`] properties.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    if !schema.is_object() {
        return Err("must be a JSON Schema object".into());
    }
    if schema.to_string().len() > MAX_SCHEMA_BYTES {
        return Err(format!("must be at most {MAX_SCHEMA_BYTES} bytes"));
    }
    if schema["type"] != "object" {
        return Err("must describe an object (\"type\": \"object\")".into());
    }
    let properties = schema.get("properties");
    if properties.is_some_and(|p| !p.is_object()) {
        return Err("properties must be an object".into());
    }
    if properties
        .and_then(Value::as_object)
        .is_some_and(|p| p.len() > MAX_PROPERTIES)
    {
        return Err(format!("may have at most {MAX_PROPERTIES} properties"));
    }
    jsonschema::meta::validate(schema).map_err(|e| format!("is not a valid JSON Schema: {e}"))?;
    // Compiling also resolves every `$ref`: with no retriever built in, a
    // remote one fails here rather than being fetched.
    jsonschema::validator_for(schema).map_err(|e| format!("cannot be used: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_schema(schema: Value) -> AnalysisSettings {
        AnalysisSettings {
            structured_data_schema: Some(schema),
            ..AnalysisSettings::default()
        }
    }

    #[test]
    fn a_simple_object_schema_is_accepted_and_gives_its_columns() {
        let s = with_schema(json!({"type": "object", "properties": {
            "interested": {"type": "boolean"}, "best_time": {"type": "string"}}}));
        assert!(s.check().is_empty(), "{:?}", s.check());
        assert_eq!(s.columns(), ["best_time", "interested"]);
        assert_eq!(s.summary_prompt(), DEFAULT_SUMMARY_PROMPT);
    }

    #[test]
    fn invalid_schemas_are_refused_naming_the_field() {
        for bad in [
            json!("string"),
            json!({"type": "array"}),
            json!({"type": "object", "properties": {"a": {"type": "nonsense"}}}),
            json!({"type": "object", "properties": {"a": {"minimum": "zero"}}}),
            json!({"type": "object", "properties": []}),
            json!({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}),
        ] {
            let errors = with_schema(bad.clone()).check();
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(errors[0].field, "analysis.structured_data_schema", "{bad}");
        }
    }

    #[test]
    fn empty_or_long_texts_are_refused() {
        let s = AnalysisSettings {
            summary_prompt: Some("  ".into()),
            success_rubric: Some("x".repeat(MAX_PROMPT_CHARS + 1)),
            structured_data_schema: None,
        };
        let fields: Vec<_> = s.check().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["analysis.summary_prompt", "analysis.success_rubric"]
        );
    }
}
