//! The run's own database, and what talky stored in it: call outcomes, the
//! provider that carried each call, and the per-turn latency split
//! (`call_turns`).

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::LoadError;

fn db_err(e: impl std::fmt::Display) -> LoadError {
    LoadError::Step(format!("database: {e}"))
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let head = match base.rfind('/') {
        Some(i) if i > base.find("//").map(|j| j + 1).unwrap_or(0) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{head}/{name}?{q}"),
        None => format!("{head}/{name}"),
    }
}

/// Creates (`create`) or drops database `name` through `admin_url`.
pub async fn database(admin_url: &str, name: &str, create: bool) -> Result<(), LoadError> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(LoadError::Step(format!("bad database name {name:?}")));
    }
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        AsyncPgConnection::establish(admin_url),
    )
    .await
    .map_err(|_| db_err("connect timed out"))?
    .map_err(db_err)?;
    let sql = if create {
        format!("CREATE DATABASE \"{name}\"")
    } else {
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
    };
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[derive(QueryableByName)]
struct OutcomeRow {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    outcome: Option<String>,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct ProviderRow {
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// One agent turn's latency split, ms.
#[derive(QueryableByName, Clone, Debug, Default)]
pub struct TurnRow {
    /// Speech end -> STT final.
    #[diesel(sql_type = Nullable<Integer>)]
    pub stt_ms: Option<i32>,
    /// STT final -> first LLM token.
    #[diesel(sql_type = Nullable<Integer>)]
    pub llm_first_token_ms: Option<i32>,
    /// First token -> first TTS audio.
    #[diesel(sql_type = Nullable<Integer>)]
    pub tts_first_audio_ms: Option<i32>,
    /// First audio -> first frame sent.
    #[diesel(sql_type = Nullable<Integer>)]
    pub first_frame_ms: Option<i32>,
    /// Speech end -> first frame sent.
    #[diesel(sql_type = Nullable<Integer>)]
    pub voice_to_voice_ms: Option<i32>,
}

/// What talky stored about the run's calls.
pub struct Stored {
    /// (status, outcome, count).
    pub outcomes: Vec<(String, Option<String>, u64)>,
    /// (`calls.provider`, count): which telephony carried the calls.
    pub providers: Vec<(String, u64)>,
    /// Every agent turn's split.
    pub turns: Vec<TurnRow>,
}

/// Reads the calls and agent turns of every tenant in the run's database.
pub async fn stored(url: &str) -> Result<Stored, LoadError> {
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        AsyncPgConnection::establish(url),
    )
    .await
    .map_err(|_| db_err("connect timed out"))?
    .map_err(db_err)?;
    let rows: Vec<OutcomeRow> = diesel::sql_query(
        "SELECT status, outcome, count(*) AS n FROM calls GROUP BY status, outcome ORDER BY n DESC",
    )
    .load(&mut conn)
    .await
    .map_err(db_err)?;
    let providers: Vec<ProviderRow> = diesel::sql_query(
        "SELECT provider, count(*) AS n FROM calls GROUP BY provider ORDER BY provider",
    )
    .load(&mut conn)
    .await
    .map_err(db_err)?;
    let turns: Vec<TurnRow> = diesel::sql_query(
        "SELECT stt_ms, llm_first_token_ms, tts_first_audio_ms, first_frame_ms, voice_to_voice_ms \
         FROM call_turns WHERE speaker = 'agent'",
    )
    .load(&mut conn)
    .await
    .map_err(db_err)?;
    Ok(Stored {
        outcomes: rows
            .into_iter()
            .map(|r| (r.status, r.outcome, r.n.max(0) as u64))
            .collect(),
        providers: providers
            .into_iter()
            .map(|r| (r.provider, r.n.max(0) as u64))
            .collect(),
        turns,
    })
}

/// Live calls talky has stored as not finished.
pub async fn unfinished(url: &str) -> Result<u64, LoadError> {
    let s = stored(url).await?;
    Ok(s.outcomes
        .iter()
        .filter(|(status, _, _)| status != "finished")
        .map(|(_, _, n)| n)
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/talky", "x"),
            "postgres://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/talky?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
