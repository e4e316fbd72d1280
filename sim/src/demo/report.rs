//! The demo's closing table: one row per contact, from what the REST API
//! returns (contacts and call details), so the table shows exactly what
//! an operator would read.

use serde_json::Value;

/// One contact's line.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Contact name.
    pub name: String,
    /// The persona that answered.
    pub persona: String,
    /// The telephony provider(s) that carried its calls, as talky stored
    /// them (`calls.provider`), in the order first used, joined with `+`
    /// (`-` when it was never called).
    pub provider: String,
    /// The contact's last outcome (`-` while none).
    pub outcome: String,
    /// The contact's status (`completed`, `dnc`, `failed`, ...).
    pub status: String,
    /// Dial attempts.
    pub attempts: i64,
    /// Talk time over all its calls, seconds.
    pub duration_secs: i64,
    /// Turns over all its calls.
    pub turns: usize,
    /// Median voice-to-voice latency of its agent replies, ms.
    pub median_v2v_ms: Option<i64>,
    /// Its latest call, to read the transcript.
    pub last_call: Option<String>,
    /// The success verdict of its latest analysed call (`pass`/`fail`, a
    /// score or a label; `error` when the analysis failed; `-` for none).
    pub success: String,
}

/// The verdict of the newest call of `calls` that has an analysis.
fn success(calls: &[Value]) -> String {
    let Some(a) = calls
        .iter()
        .rev()
        .map(|c| &c["analysis"])
        .find(|a| a.is_object())
    else {
        return "-".into();
    };
    match (&a["state"], &a["success"]) {
        (s, _) if s == "error" => "error".into(),
        (_, Value::Bool(true)) => "pass".into(),
        (_, Value::Bool(false)) => "fail".into(),
        (_, Value::Number(n)) => n.to_string(),
        (_, Value::String(s)) => s.clone(),
        (s, _) => s.as_str().unwrap_or("-").to_string(),
    }
}

/// The median of `values` (the lower middle for an even count).
pub fn median(mut values: Vec<i64>) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[(values.len() - 1) / 2])
}

/// The distinct `provider` of `calls`, in order of first use, joined with
/// `+`; `-` for none.
fn providers(calls: &[Value]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for p in calls.iter().filter_map(|c| c["provider"].as_str()) {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    if seen.is_empty() {
        "-".into()
    } else {
        seen.join("+")
    }
}

/// A contact's row from its contact JSON and the details of its calls
/// (`GET /api/v1/calls/{id}`), oldest first.
pub fn row(contact: &Value, persona: &str, calls: &[Value]) -> Row {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let v2v = calls
        .iter()
        .flat_map(|c| c["turns"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["latency"]["voice_to_voice_ms"].as_i64())
        .collect();
    Row {
        name: text(&contact["name"]),
        persona: persona.to_string(),
        provider: providers(calls),
        outcome: text(&contact["last_outcome"]),
        status: text(&contact["status"]),
        attempts: contact["attempts"].as_i64().unwrap_or(0),
        duration_secs: calls
            .iter()
            .filter_map(|c| c["duration_secs"].as_i64())
            .sum(),
        turns: calls
            .iter()
            .map(|c| c["turns"].as_array().map_or(0, Vec::len))
            .sum(),
        median_v2v_ms: median(v2v),
        last_call: calls
            .last()
            .and_then(|c| c["id"].as_str())
            .map(String::from),
        success: success(calls),
    }
}

/// The rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "contact",
        "persona",
        "provider",
        "outcome",
        "status",
        "attempts",
        "talk s",
        "turns",
        "v2v p50 ms",
        "analysis",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.persona.clone(),
                r.provider.clone(),
                r.outcome.clone(),
                r.status.clone(),
                r.attempts.to_string(),
                r.duration_secs.to_string(),
                r.turns.to_string(),
                r.median_v2v_ms.map_or("-".into(), |v| v.to_string()),
                r.success.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: Vec<&str>| {
        cols.iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![
        line(header.to_vec()),
        line(
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        ),
    ];
    for row in &cells {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5, 1, 3]), Some(3));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
    }

    #[test]
    fn a_row_sums_calls_and_takes_the_median_of_agent_replies() {
        let contact =
            json!({"name": "Ann", "last_outcome": "busy", "status": "failed", "attempts": 2});
        let calls = [
            json!({"id": "c1", "provider": "twilio", "duration_secs": 0, "turns": []}),
            json!({"id": "c2", "provider": "twilio", "duration_secs": 12, "turns": [
                {"latency": {"voice_to_voice_ms": null}},
                {"latency": {"voice_to_voice_ms": 700}},
                {"latency": {"voice_to_voice_ms": 500}},
                {"latency": {"voice_to_voice_ms": 900}},
            ]}),
        ];
        let r = row(&contact, "busy", &calls);
        assert_eq!(r.attempts, 2);
        assert_eq!(r.duration_secs, 12);
        assert_eq!(r.turns, 4);
        assert_eq!(r.median_v2v_ms, Some(700));
        assert_eq!(r.last_call.as_deref(), Some("c2"));
        assert_eq!(r.outcome, "busy");
        assert_eq!(r.provider, "twilio", "one provider, named once");
        assert_eq!(r.success, "-", "no analysis");
    }

    #[test]
    fn the_analysis_column_reads_the_newest_analysed_call() {
        let contact = json!({"name": "Ann"});
        let verdict = |analyses: &[Value]| {
            let calls: Vec<Value> = analyses
                .iter()
                .map(|a| json!({"id": "c", "analysis": a}))
                .collect();
            row(&contact, "x", &calls).success
        };
        assert_eq!(
            verdict(&[json!({"state": "done", "success": true})]),
            "pass"
        );
        assert_eq!(
            verdict(&[
                json!({"state": "done", "success": true}),
                json!({"state": "done", "success": false}),
            ]),
            "fail"
        );
        assert_eq!(verdict(&[json!({"state": "done", "success": 8})]), "8");
        assert_eq!(
            verdict(&[json!({"state": "error", "success": null})]),
            "error"
        );
        assert_eq!(verdict(&[json!({"state": "queued"})]), "queued");
        assert_eq!(
            verdict(&[json!({"state": "done", "success": true}), Value::Null]),
            "pass",
            "a later call without analysis leaves the verdict"
        );
    }

    #[test]
    fn the_provider_names_every_provider_in_order_of_use() {
        let contact = json!({"name": "Ann"});
        assert_eq!(row(&contact, "busy", &[]).provider, "-");
        let calls = [
            json!({"id": "c1", "provider": "vonage"}),
            json!({"id": "c2", "provider": "twilio"}),
            json!({"id": "c3", "provider": "vonage"}),
        ];
        assert_eq!(row(&contact, "busy", &calls).provider, "vonage+twilio");
    }

    #[test]
    fn the_table_aligns_columns() {
        let rows = [
            row(&json!({"name": "Ann"}), "interested", &[]),
            row(
                &json!({"name": "Bartholomew"}),
                "busy",
                &[json!({"id": "c1", "provider": "twilio"})],
            ),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        let col = lines[0].find("persona").expect("header");
        assert_eq!(lines[2].find("interested"), Some(col));
        assert_eq!(lines[3].find("busy"), Some(col));
        let col = lines[0].find("provider").expect("provider column");
        assert_eq!(lines[2].find("-  "), Some(col));
        assert_eq!(lines[3].find("twilio"), Some(col));
        assert!(lines[1].starts_with("-----------  "));
    }
}
