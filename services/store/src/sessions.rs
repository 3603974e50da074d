//! The aggregator's session state in PostgreSQL: load the sessions a batch can touch, replace the
//! ones it changed. Always called inside the aggregator's transaction.

use beacon_pipeline::session::{SESSION_GAP_MS, Session, Stamped, VisitAttrs};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use crate::postgres::StoreError;

const COLUMNS: &str = "site, visitor_id, start_ms, end_ms, pageviews, events, interactions,
    entry_page, entry_ms, exit_page, exit_ms, attrs_rank, source, referrer, utm_medium,
    utm_source, utm_campaign, utm_content, utm_term, country, browser, browser_version, os,
    os_version, device";

/// Visitor ids are u64 hashes; PostgreSQL stores them bit for bit as bigint.
pub fn id_to_sql(id: u64) -> i64 {
    i64::from_ne_bytes(id.to_ne_bytes())
}

fn id_from_sql(id: i64) -> u64 {
    u64::from_ne_bytes(id.to_ne_bytes())
}

/// Stored sessions of `visitor_ids` on `site` that events between `first_ms` and `last_ms` can
/// join: those within the session gap of that span.
pub async fn load(
    client: &impl GenericClient,
    site: &str,
    visitor_ids: &[u64],
    first_ms: i64,
    last_ms: i64,
) -> Result<Vec<Session>, StoreError> {
    let ids: Vec<i64> = visitor_ids.iter().map(|&id| id_to_sql(id)).collect();
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, closed FROM sessions
                 WHERE site = $1 AND visitor_id = ANY($2) AND end_ms > $3 AND start_ms < $4"
            ),
            &[
                &site,
                &ids,
                &first_ms.saturating_sub(SESSION_GAP_MS),
                &last_ms.saturating_add(SESSION_GAP_MS),
            ],
        )
        .await?;
    rows.iter().map(session_from_row).collect()
}

fn session_from_row(row: &Row) -> Result<Session, StoreError> {
    let stamped = |page: Option<String>, at: Option<i64>| {
        page.zip(at).map(|(value, at_ms)| Stamped { at_ms, value })
    };
    Ok(Session {
        site: row.try_get(0)?,
        visitor_id: id_from_sql(row.try_get(1)?),
        start_ms: row.try_get(2)?,
        end_ms: row.try_get(3)?,
        pageviews: i64::from(row.try_get::<_, i32>(4)?),
        events: i64::from(row.try_get::<_, i32>(5)?),
        interactions: i64::from(row.try_get::<_, i32>(6)?),
        entry: stamped(row.try_get(7)?, row.try_get(8)?),
        exit: stamped(row.try_get(9)?, row.try_get(10)?),
        attrs: Stamped {
            at_ms: row.try_get(11)?,
            value: VisitAttrs {
                source: row.try_get(12)?,
                referrer: row.try_get(13)?,
                utm_medium: row.try_get(14)?,
                utm_source: row.try_get(15)?,
                utm_campaign: row.try_get(16)?,
                utm_content: row.try_get(17)?,
                utm_term: row.try_get(18)?,
                country: row.try_get(19)?,
                browser: row.try_get(20)?,
                browser_version: row.try_get(21)?,
                os: row.try_get(22)?,
                os_version: row.try_get(23)?,
                device: row.try_get(24)?,
            },
        },
        closed: row.try_get(25)?,
    })
}

/// The open sessions of `site` that start in `[from_ms, to_ms)` (not in the visit rollups yet).
pub async fn open_in_range(
    client: &impl GenericClient,
    site: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Session>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, closed FROM sessions
                 WHERE site = $1 AND NOT closed AND start_ms >= $2 AND start_ms < $3"
            ),
            &[&site, &from_ms, &to_ms],
        )
        .await?;
    rows.iter().map(session_from_row).collect()
}

/// Sites with open sessions nobody touched for `idle`.
pub async fn sites_with_idle_sessions(
    client: &impl GenericClient,
    idle: std::time::Duration,
) -> Result<Vec<String>, StoreError> {
    let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT DISTINCT site FROM sessions
             WHERE NOT closed AND touched_at < now() - make_interval(secs => $1::int8 / 1000.0)",
            &[&idle_ms],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Closes the open sessions of `site` nobody touched for `idle`, returning them as they were
/// closed. The caller holds the site's aggregation lock and adds their contributions to the
/// rollups in the same transaction.
pub async fn close_idle(
    client: &impl GenericClient,
    site: &str,
    idle: std::time::Duration,
    limit: i64,
) -> Result<Vec<Session>, StoreError> {
    let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &format!(
                "UPDATE sessions SET closed = true
                 WHERE (site, visitor_id, start_ms) IN (
                     SELECT site, visitor_id, start_ms FROM sessions
                     WHERE site = $1 AND NOT closed
                       AND touched_at < now() - make_interval(secs => $2::int8 / 1000.0)
                     LIMIT $3)
                 RETURNING {COLUMNS}, closed"
            ),
            &[&site, &idle_ms, &limit],
        )
        .await?;
    rows.iter().map(session_from_row).collect()
}

/// Deletes `removed` and inserts `added`, each with one set-based statement.
pub async fn replace(
    client: &impl GenericClient,
    removed: &[Session],
    added: &[Session],
) -> Result<(), StoreError> {
    if !removed.is_empty() {
        let sites: Vec<&str> = removed.iter().map(|s| s.site.as_str()).collect();
        let ids: Vec<i64> = removed.iter().map(|s| id_to_sql(s.visitor_id)).collect();
        let starts: Vec<i64> = removed.iter().map(|s| s.start_ms).collect();
        client
            .execute(
                "DELETE FROM sessions s USING unnest($1::text[], $2::int8[], $3::int8[])
                     AS gone (site, visitor_id, start_ms)
                 WHERE s.site = gone.site AND s.visitor_id = gone.visitor_id
                   AND s.start_ms = gone.start_ms",
                &[&sites, &ids, &starts],
            )
            .await?;
    }
    if added.is_empty() {
        return Ok(());
    }
    let columns = SessionColumns::of(added);
    let params: [&(dyn ToSql + Sync); 25] = [
        &columns.site,
        &columns.visitor_id,
        &columns.start_ms,
        &columns.end_ms,
        &columns.pageviews,
        &columns.events,
        &columns.interactions,
        &columns.entry_page,
        &columns.entry_ms,
        &columns.exit_page,
        &columns.exit_ms,
        &columns.attrs_rank,
        &columns.attrs[0],
        &columns.attrs[1],
        &columns.attrs[2],
        &columns.attrs[3],
        &columns.attrs[4],
        &columns.attrs[5],
        &columns.attrs[6],
        &columns.attrs[7],
        &columns.attrs[8],
        &columns.attrs[9],
        &columns.attrs[10],
        &columns.attrs[11],
        &columns.attrs[12],
    ];
    client
        .execute(
            &format!(
                "INSERT INTO sessions ({COLUMNS}) SELECT * FROM unnest(
                    $1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int4[], $6::int4[],
                    $7::int4[], $8::text[], $9::int8[], $10::text[], $11::int8[], $12::int8[],
                    $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
                    $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[],
                    $25::text[])"
            ),
            &params,
        )
        .await?;
    Ok(())
}

/// Sessions turned into one array per column, for `unnest`.
#[derive(Default)]
struct SessionColumns<'a> {
    site: Vec<&'a str>,
    visitor_id: Vec<i64>,
    start_ms: Vec<i64>,
    end_ms: Vec<i64>,
    pageviews: Vec<i32>,
    events: Vec<i32>,
    interactions: Vec<i32>,
    entry_page: Vec<Option<&'a str>>,
    entry_ms: Vec<Option<i64>>,
    exit_page: Vec<Option<&'a str>>,
    exit_ms: Vec<Option<i64>>,
    attrs_rank: Vec<i64>,
    /// In the order of [`VisitAttrs::properties`], which is the table's column order.
    attrs: [Vec<&'a str>; 13],
}

impl<'a> SessionColumns<'a> {
    fn of(sessions: &'a [Session]) -> Self {
        let mut c = SessionColumns::default();
        let clamp = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        for s in sessions {
            c.site.push(&s.site);
            c.visitor_id.push(id_to_sql(s.visitor_id));
            c.start_ms.push(s.start_ms);
            c.end_ms.push(s.end_ms);
            c.pageviews.push(clamp(s.pageviews));
            c.events.push(clamp(s.events));
            c.interactions.push(clamp(s.interactions));
            c.entry_page
                .push(s.entry.as_ref().map(|e| e.value.as_str()));
            c.entry_ms.push(s.entry.as_ref().map(|e| e.at_ms));
            c.exit_page.push(s.exit.as_ref().map(|e| e.value.as_str()));
            c.exit_ms.push(s.exit.as_ref().map(|e| e.at_ms));
            c.attrs_rank.push(s.attrs.at_ms);
            for (column, (_, value)) in c.attrs.iter_mut().zip(s.attrs.value.properties()) {
                column.push(value);
            }
        }
        c
    }
}
