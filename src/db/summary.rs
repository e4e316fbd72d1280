//! A campaign's figures (progress, outcomes, voice-to-voice latency) as
//! SQL aggregates: what `GET /api/v1/campaigns/{id}/summary` answers and
//! the console draws, so no client pages through 100,000 contacts or
//! fetches calls one by one to count them.
//!
//! Every query is scoped by `(tenant_id, campaign_id)` and so runs on the
//! indexes that lead with them: `contacts_tenant_due_idx` (tenant,
//! campaign, status, ...) for the contacts, `calls_tenant_campaign_idx`
//! for the calls, and for the turns the calls' index joined to
//! `call_turns`' unique (tenant, call, seq) index.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Int4, Nullable, Text, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use talky_actors::ids::{CampaignId, TenantId};
use utoipa::ToSchema;

use super::DbError;
use super::contacts::STATUSES;

/// Upper bounds (inclusive, ms) of the voice-to-voice histogram's
/// buckets; one more bucket, `le: null`, holds everything above the last.
/// Fixed, so histograms of two campaigns (or two moments) compare.
pub const HISTOGRAM_BOUNDS_MS: [i32; 8] = [250, 500, 750, 1000, 1500, 2000, 3000, 5000];

/// A campaign's figures at one moment.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CampaignSummary {
    /// The campaign's lifecycle state.
    #[schema(example = "running")]
    pub state: String,
    /// When the figures were read (the database's clock, the start of
    /// the transaction that read them all).
    pub at: DateTime<Utc>,
    /// Its contacts.
    pub contacts: ContactFigures,
    /// Its calls.
    pub calls: CallFigures,
    /// Voice-to-voice latency of its agent replies.
    pub latency: LatencyFigures,
}

/// A campaign's contacts.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ContactFigures {
    /// Contacts in the campaign.
    pub total: i64,
    /// Contacts per status: every status (`pending`, `in_progress`,
    /// `retry`, `completed`, `failed`, `dnc`), zeros included.
    pub by_status: BTreeMap<String, i64>,
    /// Contacts with at least one call (an attempt placed or being
    /// placed, finished or not).
    pub dialled: i64,
}

/// A campaign's calls (every attempt is one call).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CallFigures {
    /// Calls, finished or not.
    pub total: i64,
    /// Calls not finished yet (dial intents, ringing, in conversation).
    pub live: i64,
    /// Finished calls per outcome (`completed`, `busy`, `no_answer`,
    /// `machine`, ...); only outcomes that occur are listed. A call
    /// finished a moment before its outcome is written counts in `total`
    /// only.
    pub by_outcome: BTreeMap<String, i64>,
    /// Distinct contacts with an answered call (by a person or a machine).
    pub answered_contacts: i64,
    /// Distinct contacts with an answered call that was not a machine.
    pub conversation_contacts: i64,
}

/// Voice-to-voice latency (end of the callee's speech to the agent's first
/// audio frame) of the agent turns of a campaign's calls that measured it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LatencyFigures {
    /// Agent turns with a measured latency.
    pub count: i64,
    /// Median, ms (`percentile_disc`: a measured value); `null` without data.
    pub p50_ms: Option<i32>,
    /// 95th percentile, ms; `null` without data.
    pub p95_ms: Option<i32>,
    /// 99th percentile, ms; `null` without data.
    pub p99_ms: Option<i32>,
    /// Fixed buckets, in order: 250, 500, 750, 1000, 1500, 2000, 3000,
    /// 5000 ms and `null` (above 5000). Counts are per bucket, not
    /// cumulative: a value is in the first bucket whose `le` it does not
    /// exceed. The counts add up to `count`.
    pub histogram_ms: Vec<Bucket>,
}

/// One histogram bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Bucket {
    /// Upper bound, inclusive, ms; `null`: no upper bound (+Inf).
    pub le: Option<i32>,
    /// Values above the previous bucket's bound and at most `le`.
    pub count: i64,
}

#[derive(QueryableByName)]
struct Head {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct ContactRow {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct CallRow {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    live: i64,
    #[diesel(sql_type = BigInt)]
    dialled: i64,
    #[diesel(sql_type = BigInt)]
    answered_contacts: i64,
    #[diesel(sql_type = BigInt)]
    conversation_contacts: i64,
}

#[derive(QueryableByName)]
struct OutcomeRow {
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct PercentileRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Int4>)]
    p50: Option<i32>,
    #[diesel(sql_type = Nullable<Int4>)]
    p95: Option<i32>,
    #[diesel(sql_type = Nullable<Int4>)]
    p99: Option<i32>,
}

#[derive(QueryableByName)]
struct BucketRow {
    #[diesel(sql_type = Int4)]
    bucket: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The agent turns of the campaign's calls with a measured latency
/// (`$1` tenant, `$2` campaign), as `t`.
const AGENT_TURNS: &str = "FROM calls c
     JOIN call_turns t ON t.tenant_id = c.tenant_id AND t.call_id = c.id
     WHERE c.tenant_id = $1 AND c.campaign_id = $2
       AND t.speaker = 'agent' AND t.voice_to_voice_ms IS NOT NULL";

/// The figures of one campaign of a tenant; `None`: no such campaign (or
/// another tenant's). Read in one read-only REPEATABLE READ transaction,
/// so every figure is of the same moment (a call finishing meanwhile is
/// either live or counted in its outcome, never both or neither).
pub async fn campaign(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Option<CampaignSummary>, DbError> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run::<_, DbError, _>(async move |conn| read(conn, tenant, id).await)
        .await
}

async fn read(
    conn: &mut AsyncPgConnection,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Option<CampaignSummary>, DbError> {
    let bind = |sql: &'static str| {
        sql_query(sql)
            .bind::<SqlUuid, _>(tenant.0)
            .bind::<SqlUuid, _>(id.0)
    };
    // `now()` is the transaction's start: the moment every figure is of.
    let head: Option<Head> =
        bind("SELECT state, now() AS at FROM campaigns WHERE tenant_id = $1 AND id = $2")
            .get_result(conn)
            .await
            .optional()?;
    let Some(head) = head else {
        return Ok(None);
    };

    let rows: Vec<ContactRow> = bind(
        "SELECT status, count(*) AS n
         FROM contacts WHERE tenant_id = $1 AND campaign_id = $2
         GROUP BY status",
    )
    .load(conn)
    .await?;
    let mut by_status: BTreeMap<String, i64> =
        STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
    for r in &rows {
        *by_status.entry(r.status.clone()).or_default() += r.n;
    }

    // Dialled: contacts with a call, live or finished (a contact's
    // `attempts` counts finished attempts only, so a contact on its first
    // call would be answered before it was dialled). A machine is known by
    // the status the call reached (`machine`) or by its outcome (a machine
    // recognised after a person-like answer).
    let call: CallRow = bind(
        "SELECT count(*) AS total,
                count(*) FILTER (WHERE status <> 'finished') AS live,
                count(DISTINCT contact_id) AS dialled,
                count(DISTINCT contact_id) FILTER (WHERE answered_at IS NOT NULL)
                    AS answered_contacts,
                count(DISTINCT contact_id) FILTER (WHERE answered_at IS NOT NULL
                    AND status <> 'machine' AND outcome IS DISTINCT FROM 'machine')
                    AS conversation_contacts
         FROM calls WHERE tenant_id = $1 AND campaign_id = $2",
    )
    .get_result(conn)
    .await?;
    let outcomes: Vec<OutcomeRow> = bind(
        "SELECT outcome, count(*) AS n
         FROM calls WHERE tenant_id = $1 AND campaign_id = $2
           AND status = 'finished' AND outcome IS NOT NULL
         GROUP BY outcome",
    )
    .load(conn)
    .await?;
    let contacts = ContactFigures {
        total: rows.iter().map(|r| r.n).sum(),
        by_status,
        dialled: call.dialled,
    };
    let calls = CallFigures {
        total: call.total,
        live: call.live,
        by_outcome: outcomes.into_iter().map(|r| (r.outcome, r.n)).collect(),
        answered_contacts: call.answered_contacts,
        conversation_contacts: call.conversation_contacts,
    };

    let pct: PercentileRow = sql_query(format!(
        "SELECT count(*) AS n,
                percentile_disc(0.5) WITHIN GROUP (ORDER BY t.voice_to_voice_ms) AS p50,
                percentile_disc(0.95) WITHIN GROUP (ORDER BY t.voice_to_voice_ms) AS p95,
                percentile_disc(0.99) WITHIN GROUP (ORDER BY t.voice_to_voice_ms) AS p99
         {AGENT_TURNS}"
    ))
    .bind::<SqlUuid, _>(tenant.0)
    .bind::<SqlUuid, _>(id.0)
    .get_result(conn)
    .await?;
    // width_bucket(v, bounds) is the number of bounds <= v; of v - 1 (whole
    // milliseconds) the number of bounds < v, i.e. the index of the first
    // bucket whose inclusive bound `le` v does not exceed (the bounds'
    // length: above them all).
    let buckets: Vec<BucketRow> = sql_query(format!(
        "SELECT width_bucket(t.voice_to_voice_ms - 1, $3) AS bucket, count(*) AS n
         {AGENT_TURNS}
         GROUP BY 1"
    ))
    .bind::<SqlUuid, _>(tenant.0)
    .bind::<SqlUuid, _>(id.0)
    .bind::<Array<Int4>, _>(HISTOGRAM_BOUNDS_MS.to_vec())
    .load(conn)
    .await?;
    let latency = LatencyFigures {
        count: pct.n,
        p50_ms: pct.p50,
        p95_ms: pct.p95,
        p99_ms: pct.p99,
        histogram_ms: histogram(buckets.iter().map(|b| (b.bucket, b.n))),
    };

    Ok(Some(CampaignSummary {
        state: head.state,
        at: head.at,
        contacts,
        calls,
        latency,
    }))
}

/// Every bucket of [`HISTOGRAM_BOUNDS_MS`] and the open one, with the
/// counts of `(bucket index, count)` pairs (an index past the bounds is
/// the open bucket).
fn histogram(counts: impl IntoIterator<Item = (i32, i64)>) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = HISTOGRAM_BOUNDS_MS
        .iter()
        .map(|le| Some(*le))
        .chain([None])
        .map(|le| Bucket { le, count: 0 })
        .collect();
    let last = out.len() - 1;
    for (i, n) in counts {
        let i = usize::try_from(i).unwrap_or(0).min(last);
        out[i].count += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_is_listed_in_order_with_its_count() {
        let h = histogram([(0, 3), (8, 2), (3, 1)]);
        assert_eq!(h.len(), HISTOGRAM_BOUNDS_MS.len() + 1);
        assert_eq!(
            h[0],
            Bucket {
                le: Some(250),
                count: 3
            }
        );
        assert_eq!(
            h[3],
            Bucket {
                le: Some(1000),
                count: 1
            }
        );
        assert_eq!(h[8], Bucket { le: None, count: 2 });
        assert_eq!(h.iter().map(|b| b.count).sum::<i64>(), 6);
        assert!(h.windows(2).all(|w| match (w[0].le, w[1].le) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            _ => false,
        }));
    }
}
