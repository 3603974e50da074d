//! Week and month rows rebuilt from day rows: for history written before week and month rows
//! existed (migration V5), and on demand.
//!
//! Every delta the aggregator writes goes to its day, week and month rows alike, so a site's week
//! and month rows are exactly the sums of its day rows, sketches merged. Rebuilding them from the
//! day rows under the site's aggregation lock therefore gives what the aggregator would have
//! written, whatever was there before.

use beacon_pipeline::rollup::{Delta, LocalCalendar, Rollup, RowKey, Span};
use beacon_pipeline::sketch::VisitorSketch;
use chrono::{DateTime, Utc};
use tokio_postgres::{Client, GenericClient};

use crate::error::StoreError;
use crate::rollups::{self, lock_sites};
use crate::zones::Zones;

/// The name under which the one-time build is recorded in `data_migrations`.
const BUILT_FROM_DAY_ROWS: &str = "V5 week and month rows from day rows";

/// Day rows are read this many at a time.
const CHUNK: i64 = 5_000;

/// Builds the week and month rows of all history once (recorded in `data_migrations`). Runs right
/// after the schema migrations, under their lock.
pub(crate) async fn build_once(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let done = tx
        .query_opt(
            "SELECT 1 FROM data_migrations WHERE name = $1",
            &[&BUILT_FROM_DAY_ROWS],
        )
        .await?
        .is_some();
    if !done {
        let sites: Vec<String> = tx
            .query("SELECT DISTINCT site FROM rollups WHERE span = 'day'", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let sites: Vec<&str> = sites.iter().map(String::as_str).collect();
        lock_sites(&tx, &sites).await?;
        for site in &sites {
            let rows = rebuild(&tx, site).await?;
            tracing::info!(site, rows, "built week and month rows from day rows");
        }
        tx.execute(
            "INSERT INTO data_migrations (name) VALUES ($1)",
            &[&BUILT_FROM_DAY_ROWS],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Replaces `site`'s week and month rows by the sums of its day rows; returns how many rows it
/// wrote. The caller's transaction must hold the site's aggregation lock.
pub async fn rebuild(client: &impl GenericClient, site: &str) -> Result<u64, StoreError> {
    client
        .execute(
            "DELETE FROM rollups WHERE site = $1 AND span IN ('week', 'month')",
            &[&site],
        )
        .await?;
    let zones = Zones::load(client, &[site]).await?;
    // Day rows in key order: all days of one (property, value) come together, so each group's
    // week and month rows are complete when the next group starts. Paged by key; every bucket is
    // after 1970, so the first page starts after ('', '', 1970-01-01).
    let mut after: (String, String, DateTime<Utc>) =
        (String::new(), String::new(), DateTime::UNIX_EPOCH);
    let mut group: Option<(String, String)> = None;
    let mut pending = Rollup::default();
    let mut written = 0;
    loop {
        let (property, value, bucket) = &after;
        let rows = client
            .query(
                "SELECT property, value, bucket, pageviews, events, visits, bounces, duration_ms,
                     visitors
                 FROM rollups WHERE site = $1 AND span = 'day'
                     AND (property, value, bucket) > ($3, $4, $5)
                 ORDER BY property, value, bucket LIMIT $2",
                &[&site, &CHUNK, property, value, bucket],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = (last.get(0), last.get(1), last.get(2));
        for row in &rows {
            let (property, value): (String, String) = (row.get(0), row.get(1));
            if group
                .as_ref()
                .is_none_or(|(p, v)| *p != property || *v != value)
            {
                written += flush(client, &mut pending).await?;
                group = Some((property.clone(), value.clone()));
            }
            let bucket: DateTime<Utc> = row.get(2);
            let delta = day_delta(row)?;
            for span in [Span::Week, Span::Month] {
                let key = RowKey {
                    site: site.to_string(),
                    span,
                    bucket_ms: zones.bucket_of(site, span, bucket.timestamp_millis()),
                    property: property.clone(),
                    value: value.clone(),
                };
                pending.rows.entry(key).or_default().add(&delta);
            }
        }
    }
    written += flush(client, &mut pending).await?;
    Ok(written)
}

/// Replaces `site`'s week and month rows that overlap `[from_ms, to_ms)` (whole local days) by
/// the sums of their day rows; returns how many rows it wrote. The caller's transaction holds the
/// site's aggregation lock. What `beacon replay` calls after rewriting the day rows of a range.
pub async fn rebuild_range(
    client: &impl GenericClient,
    site: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<u64, StoreError> {
    let zones = Zones::load(client, &[site]).await?;
    // The weeks and months that overlap the range start at or after the earlier of the week and
    // the month holding its first day, and end at most 31 days after its end.
    let first = zones
        .bucket_of(site, Span::Week, from_ms)
        .min(zones.bucket_of(site, Span::Month, from_ms));
    let last_day = to_ms - 1;
    let (week_of_last, month_of_last) = (
        zones.bucket_of(site, Span::Week, last_day),
        zones.bucket_of(site, Span::Month, last_day),
    );
    let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    // The rows rebuilt: weeks and months starting from `first` up to the ones holding the last
    // day (some may not overlap the range; rebuilt from their day rows they stay as they are).
    let rebuilt = |span: Span, bucket_ms: i64| {
        let last = if span == Span::Week {
            week_of_last
        } else {
            month_of_last
        };
        (first..=last).contains(&bucket_ms)
    };
    client
        .execute(
            "DELETE FROM rollups WHERE site = $1 AND bucket >= $2
             AND (span = 'week' AND bucket <= $3 OR span = 'month' AND bucket <= $4)",
            &[&site, &at(first), &at(week_of_last), &at(month_of_last)],
        )
        .await?;
    let rows = client
        .query(
            "SELECT property, value, bucket, pageviews, events, visits, bounces, duration_ms,
                 visitors
             FROM rollups WHERE site = $1 AND span = 'day' AND bucket >= $2 AND bucket < $3",
            &[&site, &at(first), &at(to_ms + 32 * 24 * 3_600_000)],
        )
        .await?;
    let mut pending = Rollup::default();
    for row in &rows {
        let bucket: DateTime<Utc> = row.get(2);
        let delta = day_delta(row)?;
        for span in [Span::Week, Span::Month] {
            let bucket_ms = zones.bucket_of(site, span, bucket.timestamp_millis());
            if rebuilt(span, bucket_ms) {
                let key = RowKey {
                    site: site.to_string(),
                    span,
                    bucket_ms,
                    property: row.get(0),
                    value: row.get(1),
                };
                pending.rows.entry(key).or_default().add(&delta);
            }
        }
    }
    flush(client, &mut pending).await
}

/// The counters and sketch of a day row read as `…, pageviews, events, visits, bounces,
/// duration_ms, visitors` in columns 3 to 8.
fn day_delta(row: &tokio_postgres::Row) -> Result<Delta, StoreError> {
    let visitors = match row.get::<_, Option<&[u8]>>(8) {
        Some(bytes) => VisitorSketch::from_bytes(bytes)
            .map_err(|e| StoreError::corrupt("a stored rollup row", e))?,
        None => VisitorSketch::default(),
    };
    Ok(Delta {
        pageviews: row.get(3),
        events: row.get(4),
        visits: row.get(5),
        bounces: row.get(6),
        duration_ms: row.get(7),
        visitors,
    })
}

async fn flush(client: &impl GenericClient, pending: &mut Rollup) -> Result<u64, StoreError> {
    let rollup = Rollup::from_rows(std::mem::take(&mut pending.rows));
    rollups::apply(client, &rollup).await?;
    Ok(rollup.rows.len() as u64)
}
