//! The hand-kept diesel schema and the migrations agree, both ways: every
//! diesel column exists with the same nullability and every database
//! column is known to diesel.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use talky::db::schema::*;

use crate::support::TestDb;

#[derive(QueryableByName, Debug)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
}

fn diesel_columns(sql: String, table: &str) -> Vec<String> {
    let select = sql.split(" FROM ").next().expect("select");
    let mut cols: Vec<String> = select
        .trim_start_matches("SELECT ")
        .split(", ")
        .map(|c| {
            c.replace(&format!("\"{table}\"."), "")
                .trim_matches('"')
                .to_string()
        })
        .collect();
    cols.sort();
    cols
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diesel_schema_matches_the_migrations() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    macro_rules! check {
        ($($table:ident),*) => {$({
            let name = stringify!($table);
            let sql = diesel::debug_query::<Pg, _>(&$table::table.select($table::all_columns)).to_string();
            let expected = diesel_columns(sql, name);
            let mut actual: Vec<String> = diesel::sql_query(
                "SELECT column_name::text AS column_name FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1",
            )
            .bind::<diesel::sql_types::Text, _>(name)
            .load::<Column>(&mut conn)
            .await
            .expect("columns")
            .into_iter()
            .map(|c| c.column_name)
            .collect();
            actual.sort();
            assert_eq!(expected, actual, "table {name}");
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
        call_turns
    );
}
