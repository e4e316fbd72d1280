//! The hand-kept diesel schema and the migrations agree, both ways: every
//! diesel column exists with the same SQL type and nullability, and every
//! database column is known to diesel.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use talky::db::schema::*;

use crate::support::TestDb;

#[derive(QueryableByName, Debug)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    data_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    is_nullable: String,
}

/// The name of an expression's SQL type (for a table's columns, the tuple
/// of their types, as diesel knows them).
fn sql_type_name<E: diesel::Expression>(_: &E) -> &'static str {
    std::any::type_name::<E::SqlType>()
}

/// Splits a tuple's type name at its top-level commas:
/// `(A, B<C, D>)` -> `["A", "B<C, D>"]`.
fn tuple_items(name: &str) -> Vec<String> {
    let inner = name
        .strip_prefix('(')
        .and_then(|n| n.strip_suffix(')'))
        .unwrap_or(name);
    let (mut items, mut depth, mut cur) = (Vec::new(), 0usize, String::new());
    for c in inner.chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        items.push(cur.trim().to_string());
    }
    items
}

/// A diesel SQL type's name as PostgreSQL's `information_schema` spells
/// the column's `data_type`, and whether it is nullable.
fn pg_type(diesel: &str) -> (String, bool) {
    let short = |t: &str| t.rsplit("::").next().unwrap_or(t).to_string();
    let (inner, nullable) = match diesel
        .strip_prefix("diesel::sql_types::Nullable<")
        .and_then(|t| t.strip_suffix('>'))
    {
        Some(inner) => (short(inner), true),
        None => (short(diesel), false),
    };
    let pg = match inner.as_str() {
        "Uuid" => "uuid",
        "Text" | "VarChar" => "text",
        "Bool" => "boolean",
        "Bytea" | "Binary" => "bytea",
        "Integer" | "Int4" => "integer",
        "BigInt" | "Int8" => "bigint",
        "SmallInt" | "Int2" => "smallint",
        "Jsonb" => "jsonb",
        "Timestamptz" => "timestamp with time zone",
        "Timestamp" => "timestamp without time zone",
        "Time" => "time without time zone",
        "Date" => "date",
        "Double" | "Float8" => "double precision",
        "Float" | "Float4" => "real",
        other => panic!("no PostgreSQL name for diesel type {other}: add it here"),
    };
    (pg.to_string(), nullable)
}

/// The columns of diesel's `SELECT` for `table`, in diesel's order.
fn diesel_columns_in_order(sql: &str, table: &str) -> Vec<String> {
    let select = sql.split(" FROM ").next().expect("select");
    select
        .trim_start_matches("SELECT ")
        .split(", ")
        .map(|c| {
            c.replace(&format!("\"{table}\"."), "")
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diesel_schema_matches_the_migrations() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    macro_rules! check {
        ($($table:ident),*) => {$({
            let name = stringify!($table);
            let sql = diesel::debug_query::<Pg, _>(&$table::table.select($table::all_columns)).to_string();
            let names = diesel_columns_in_order(&sql, name);
            let types = tuple_items(sql_type_name(&$table::all_columns));
            assert_eq!(names.len(), types.len(), "table {name}: {types:?}");
            let mut expected: Vec<(String, String, bool)> = names
                .into_iter()
                .zip(types.iter().map(|t| pg_type(t)))
                .map(|(n, (t, null))| (n, t, null))
                .collect();
            expected.sort();
            let mut actual: Vec<(String, String, bool)> = diesel::sql_query(
                "SELECT column_name::text AS column_name, data_type::text AS data_type, \
                 is_nullable::text AS is_nullable FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1",
            )
            .bind::<diesel::sql_types::Text, _>(name)
            .load::<Column>(&mut conn)
            .await
            .expect("columns")
            .into_iter()
            .map(|c| (c.column_name, c.data_type, c.is_nullable == "YES"))
            .collect();
            actual.sort();
            assert_eq!(expected, actual, "table {name}: (column, type, nullable)");
            // And the query diesel builds runs.
            $table::table.select($table::all_columns).limit(0).execute(&mut conn).await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        })*};
    }
    check!(
        tenants,
        api_keys,
        campaigns,
        contacts,
        dnc_numbers,
        calls,
        call_events,
        call_turns,
        webhook_endpoints,
        webhook_events,
        webhook_deliveries,
        webhook_attempts,
        recording_deletions
    );
}

#[derive(QueryableByName, Debug)]
struct Check {
    #[diesel(sql_type = diesel::sql_types::Text)]
    def: String,
}

/// The values the migrations' `CHECK (column IN (...))` constraint on
/// `table.column` allows, read back from the migrated database.
async fn allowed_values(
    conn: &mut diesel_async::AsyncPgConnection,
    table: &str,
    column: &str,
) -> Vec<String> {
    let defs: Vec<String> = diesel::sql_query(
        "SELECT pg_get_constraintdef(c.oid) AS def FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid \
         WHERE t.relname = $1 AND c.contype = 'c'",
    )
    .bind::<diesel::sql_types::Text, _>(table)
    .load::<Check>(conn)
    .await
    .expect("constraints")
    .into_iter()
    .map(|c| c.def)
    .collect();
    // PostgreSQL shows `IN (...)` as `((col = ANY (ARRAY['a'::text, ...])))`.
    let def = defs
        .iter()
        .find(|d| d.contains(&format!("({column} = ANY")))
        .unwrap_or_else(|| panic!("no IN check on {table}.{column}: {defs:?}"));
    def.split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_names_match_the_migrations_check_constraints() {
    use talky_actors::campaign::CampaignState;
    use talky_actors::schedule::retry::ContactStatus;
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let contact: Vec<String> = ContactStatus::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(
        allowed_values(&mut conn, "contacts", "status").await,
        contact
    );
    let campaign: Vec<String> = CampaignState::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(
        allowed_values(&mut conn, "campaigns", "state").await,
        campaign
    );
    let call: Vec<String> = talky_actors::call::lifecycle::CallStatus::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(allowed_values(&mut conn, "calls", "status").await, call);
    assert_eq!(
        allowed_values(&mut conn, "calls", "recording_status").await,
        talky::db::recordings::STATUSES
    );
    use talky::providers::telephony::{Telephony, TelephonyProvider};
    assert_eq!(
        allowed_values(&mut conn, "campaigns", "telephony").await,
        Telephony::ALL.map(|t| t.as_str().to_string())
    );
    let providers = TelephonyProvider::ALL.map(|p| p.as_str().to_string());
    assert_eq!(
        allowed_values(&mut conn, "calls", "provider").await,
        providers
    );
    assert_eq!(
        allowed_values(&mut conn, "call_events", "provider").await,
        providers
    );
}
