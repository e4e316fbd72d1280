//! `GET /api/v1/campaigns/{id}/results`: one row per contact with its
//! latest analysed call (summary, success, each top-level property of the
//! campaign's structured-data schema as a column), as CSV or JSON.
//!
//! Streamed: contacts are read a page at a time (by id, a pooled
//! connection held only for the page's two queries) and written to a
//! small bounded channel the response body drains, so memory is a page
//! whatever the campaign's size, and a slow client holds no connection.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};
use talky_actors::ids::{CampaignId, TenantId};
use tokio::sync::mpsc;
use utoipa::IntoParams;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::problem::{ApiError, Problem};
use super::{Ctx, auth, query, respond, with_ctx};
use crate::db;
use crate::db::analyses::CallAnalysis;
use crate::db::contacts::Contact;

/// Contacts read per page.
const PAGE: i64 = 500;
/// Pages' worth of encoded rows waiting for the client.
const CHANNEL: usize = 4;
/// One page's reads.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The columns every export has, before the schema's.
pub const FIXED_COLUMNS: [&str; 8] = [
    "phone",
    "name",
    "status",
    "attempts",
    "last_outcome",
    "summary",
    "success",
    "analysis_error",
];

/// The export's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/csv`: a header row, then one row per contact.
    Csv,
    /// `application/json`: `{"columns": [...], "items": [{...}, ...]}`.
    Json,
}

/// Query of the export.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResultsParams {
    /// `csv` or `json`; without it, `Accept: text/csv` asks for CSV and
    /// anything else gets JSON.
    #[param(pattern = "^(csv|json)?$")]
    pub format: Option<String>,
}

/// The format asked for: `?format=` first, then the Accept header.
pub fn negotiate(format: Option<&str>, accept: Option<&str>) -> Result<Format, ApiError> {
    match format.map(str::trim) {
        Some("csv") => Ok(Format::Csv),
        Some("json") => Ok(Format::Json),
        Some("") | None => Ok(
            if accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/csv")) {
                Format::Csv
            } else {
                Format::Json
            },
        ),
        Some(_) => Err(ApiError::invalid("format", "must be csv or json")),
    }
}

/// The export's columns: the fixed ones, then the schema's properties (a
/// property named like a fixed column is `data.<name>`).
pub fn columns(schema_columns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = FIXED_COLUMNS.iter().map(|c| c.to_string()).collect();
    for c in schema_columns {
        if FIXED_COLUMNS.contains(&c.as_str()) {
            out.push(format!("data.{c}"));
        } else {
            out.push(c.clone());
        }
    }
    out
}

/// One contact's values, in the order of [`columns`] (`schema_columns`
/// the schema's property names).
pub fn row(
    contact: &Contact,
    analysis: Option<&CallAnalysis>,
    schema_columns: &[String],
) -> Vec<Value> {
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    let mut out = vec![
        Value::String(contact.phone.clone()),
        text(&contact.name),
        Value::String(contact.status.clone()),
        Value::from(contact.attempts),
        text(&contact.last_outcome),
        analysis.map_or(Value::Null, |a| text(&a.summary)),
        analysis
            .and_then(|a| a.success.clone())
            .unwrap_or(Value::Null),
        analysis.map_or(Value::Null, |a| text(&a.error)),
    ];
    let data = analysis.and_then(|a| a.structured_data.as_ref());
    for c in schema_columns {
        out.push(data.and_then(|d| d.get(c)).cloned().unwrap_or(Value::Null));
    }
    out
}

/// A value as CSV cell text: nothing for null, strings as they are
/// (but [`neutral`]), numbers and booleans as JSON writes them, objects
/// and arrays as JSON text.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => neutral(s),
        other => other.to_string(),
    }
}

/// `text` made safe to open in a spreadsheet (CSV injection, OWASP): a
/// cell that starts with `=`, `+`, `-`, `@`, a tab or a CR would be read
/// as a formula, so it gets a leading `'`, which spreadsheets show as
/// text. Summaries and structured strings come from an LLM told what a
/// callee said, so a callee could otherwise plant a formula in the
/// operator's sheet. A plain number (`+442079460100`, `-3.5`) cannot run
/// anything and stays as it is, so phone numbers keep their E.164 form.
pub fn neutral(text: &str) -> String {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let number = |t: &str| {
        let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
        !digits.is_empty()
            && digits.starts_with(|c: char| c.is_ascii_digit())
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    if risky && !number(text) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// One CSV line (RFC 4180): a field with a comma, quote, CR or LF is
/// quoted, its quotes doubled; lines end in CRLF.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let f = f.as_ref();
        if f.contains([',', '"', '\r', '\n']) {
            line.push('"');
            line.push_str(&f.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(f);
        }
    }
    line.push_str("\r\n");
    line
}

/// One row in the export's format (JSON rows after the first get their
/// leading comma here).
fn encode(format: Format, columns: &[String], values: &[Value], first: bool) -> String {
    match format {
        Format::Csv => csv_line(&values.iter().map(cell).collect::<Vec<_>>()),
        Format::Json => {
            let object: Map<String, Value> = columns
                .iter()
                .cloned()
                .zip(values.iter().cloned())
                .collect();
            let sep = if first { "" } else { "," };
            format!("{sep}{}", Value::Object(object))
        }
    }
}

/// The body: what the page reader sends, in order.
struct Rows(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_util::Stream for Rows {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "v1" / "campaigns" / CampaignId / "results")
        .and(warp::get())
        .and(auth::tenant(ctx.clone()))
        .and(with_ctx(ctx))
        .and(query::<ResultsParams>())
        .and(warp::header::optional::<String>("accept"))
        .and_then(
            |id, tenant, ctx: Ctx, q: ResultsParams, accept: Option<String>| {
                respond(ctx.clone(), export(ctx, tenant, id, q, accept))
            },
        )
        .boxed()
}

/// Export a campaign's results: one row per contact (phone, name,
/// status, attempts, last outcome, and its latest analysed call's
/// summary, success, error and each top-level property of the campaign's
/// structured-data schema, nested values as JSON text in CSV), streamed.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/results", tag = "campaigns",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Campaign id"), ResultsParams),
    responses(
        (status = 200, description = "The results: JSON `{columns, items}` (default) or CSV with a header row", content(
            (Object = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "Bad query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown format", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export(
    ctx: Ctx,
    tenant: TenantId,
    id: CampaignId,
    q: ResultsParams,
    accept: Option<String>,
) -> Result<Response, ApiError> {
    let format = negotiate(q.format.as_deref(), accept.as_deref())?;
    let campaign = {
        let mut conn = ctx.conn().await?;
        db::campaigns::get(&mut conn, tenant, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no campaign {id}")))?
    };
    let schema_columns = campaign.analysis().map(|a| a.columns()).unwrap_or_default();
    let columns = columns(&schema_columns);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL);
    let head = match format {
        Format::Csv => csv_line(&columns.iter().map(|c| neutral(c)).collect::<Vec<_>>()),
        Format::Json => format!("{{\"columns\":{},\"items\":[", Value::from(columns.clone())),
    };
    let pool = ctx.db.clone();
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        let mut after = None;
        let mut first = true;
        loop {
            let page = tokio::time::timeout(PAGE_TIMEOUT, async {
                let mut conn = pool.get().await.map_err(db::DbError::from)?;
                let contacts = db::contacts::list(
                    &mut conn,
                    tenant,
                    id,
                    None,
                    db::Page { limit: PAGE, after },
                )
                .await?;
                let ids: Vec<uuid::Uuid> = contacts.iter().map(|c| c.id).collect();
                let analyses = db::analyses::latest_for_contacts(&mut conn, tenant, &ids).await?;
                Ok::<_, db::DbError>((contacts, analyses))
            })
            .await;
            let (contacts, analyses) = match page {
                Ok(Ok(p)) => p,
                failed => {
                    // The status is sent: cut the body so the client sees
                    // an incomplete export, never a short one that looks whole.
                    let why = match failed {
                        Err(_) => "timed out".to_string(),
                        Ok(Err(e)) => e.to_string(),
                        Ok(Ok(_)) => String::new(),
                    };
                    tracing::warn!(campaign.id = %id, error = %why, "results export cut short");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            };
            let by_contact: std::collections::HashMap<uuid::Uuid, CallAnalysis> =
                analyses.into_iter().collect();
            let mut chunk = String::new();
            for c in &contacts {
                let values = row(c, by_contact.get(&c.id), &schema_columns);
                chunk.push_str(&encode(format, &columns, &values, first));
                first = false;
            }
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
            if (contacts.len() as i64) < PAGE {
                break;
            }
            after = contacts.last().map(|c| c.id);
        }
        if format == Format::Json {
            let _ = tx.send(Ok(Bytes::from_static(b"]}"))).await;
        }
    });
    let mut response = warp::reply::stream(Rows(rx)).into_response();
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    match format {
        Format::Csv => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!(
                "attachment; filename=\"campaign-{id}-results.csv\""
            )) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
        }
        Format::Json => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn contact() -> Contact {
        Contact {
            id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            campaign_id: uuid::Uuid::nil(),
            phone: "+442079460000".into(),
            name: Some("Smith, \"Jo\"".into()),
            timezone: None,
            metadata: json!({}),
            status: "completed".into(),
            attempts: 2,
            next_attempt_at: None,
            last_outcome: Some("completed".into()),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn analysis(data: Value) -> CallAnalysis {
        CallAnalysis {
            tenant_id: uuid::Uuid::nil(),
            call_id: uuid::Uuid::nil(),
            campaign_id: uuid::Uuid::nil(),
            state: "done".into(),
            claims: 1,
            lease_owner: None,
            lease_until: None,
            summary: Some("Line one.\nLine two, with a comma.".into()),
            structured_data: Some(data),
            success: Some(json!(true)),
            error: None,
            provider: Some("llm".into()),
            requested_at: Utc::now(),
            started_at: None,
            completed_at: None,
        }
    }

    #[test]
    fn csv_fields_are_escaped() {
        assert_eq!(csv_line(&["a", "b c", ""]), "a,b c,\r\n");
        assert_eq!(
            csv_line(&["x,y", "say \"hi\"", "l1\nl2", "cr\r"]),
            "\"x,y\",\"say \"\"hi\"\"\",\"l1\nl2\",\"cr\r\"\r\n"
        );
    }

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        for risky in [
            "=HYPERLINK(\"http://x\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "+",
            "-",
        ] {
            assert_eq!(neutral(risky), format!("'{risky}"), "{risky:?}");
            assert_eq!(cell(&Value::String(risky.into())), format!("'{risky}"));
        }
        for safe in ["+442079460100", "-3.5", "42", "Hello = hi", "", "a+b"] {
            assert_eq!(neutral(safe), safe, "{safe:?}");
        }
        assert_eq!(cell(&serde_json::json!(-3)), "-3");
    }

    #[test]
    fn schema_properties_become_columns_and_nested_values_json_text() {
        let schema_cols: Vec<String> = ["interested", "phone", "slots"].map(String::from).to_vec();
        let cols = columns(&schema_cols);
        assert_eq!(&cols[..8], FIXED_COLUMNS);
        assert_eq!(&cols[8..], ["interested", "data.phone", "slots"]);
        let a = analysis(json!({"interested": false, "slots": [1, {"at": "5pm"}]}));
        let values = row(&contact(), Some(&a), &schema_cols);
        assert_eq!(values.len(), cols.len());
        let line = encode(Format::Csv, &cols, &values, true);
        assert_eq!(
            line,
            "+442079460000,\"Smith, \"\"Jo\"\"\",completed,2,completed,\"Line one.\nLine two, with a comma.\",true,,false,,\"[1,{\"\"at\"\":\"\"5pm\"\"}]\"\r\n"
        );
        let json_row: Value =
            serde_json::from_str(&encode(Format::Json, &cols, &values, true)).expect("json");
        assert_eq!(json_row["slots"], json!([1, {"at": "5pm"}]));
        assert_eq!(json_row["data.phone"], Value::Null);
        assert_eq!(json_row["name"], "Smith, \"Jo\"");
        // A contact never analysed: its own fields, nulls for the rest.
        let none = row(&contact(), None, &schema_cols);
        assert!(none[5..].iter().all(Value::is_null), "{none:?}");
    }

    #[test]
    fn the_format_is_negotiated() {
        assert_eq!(negotiate(None, None).ok(), Some(Format::Json));
        assert_eq!(negotiate(None, Some("text/csv")).ok(), Some(Format::Csv));
        assert_eq!(
            negotiate(Some("json"), Some("text/csv")).ok(),
            Some(Format::Json)
        );
        assert_eq!(negotiate(Some("csv"), None).ok(), Some(Format::Csv));
        assert!(negotiate(Some("xml"), None).is_err());
    }
}
