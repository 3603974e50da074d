//! Writing rollup deltas: one read of the sketches the batch touches, one multi-row upsert.
//!
//! Counters are added in SQL. Sketches are merged here (PostgreSQL has no HyperLogLog type), which
//! is a read-modify-write: the caller must hold the sites' aggregation locks (see
//! [`lock_sites`]) from before the read until it commits, so that no other aggregator changes
//! those rows in between. The read can be sent early ([`read_sketches`]), so that PostgreSQL
//! serves it while the caller does other work.

use std::collections::{HashMap, HashSet};

use beacon_pipeline::rollup::{Delta, Rollup, RowKey, Span};
use beacon_pipeline::sketch::VisitorSketch;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;

use crate::error::StoreError;

/// Serializes aggregation per site for the rest of the transaction. Sites are locked in sorted
/// order, so two aggregators locking overlapping sets cannot deadlock. One statement (sent as one
/// message), so a caller may pipeline the statements that must follow it.
pub async fn lock_sites(client: &impl GenericClient, sites: &[&str]) -> Result<(), StoreError> {
    // The subquery's ORDER BY keeps it from being flattened, so the locks are taken row by row
    // in that order.
    client
        .execute_typed(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || site, 0))
             FROM (SELECT DISTINCT site FROM unnest($1::text[]) AS s (site) ORDER BY site) AS sorted",
            &[(&sites, Type::TEXT_ARRAY)],
        )
        .await?;
    Ok(())
}

fn bucket_time(bucket_ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(bucket_ms).unwrap_or_default()
}

/// The stored sketches of some rows, as read under the sites' aggregation locks.
#[derive(Debug, Default)]
pub struct StoredSketches {
    /// Every row asked for, found or not.
    asked: HashSet<RowKey>,
    found: HashMap<RowKey, Vec<u8>>,
}

/// Adds the deltas to the rows, creating missing ones.
pub async fn apply(client: &impl GenericClient, rollup: &Rollup) -> Result<(), StoreError> {
    apply_read(client, rollup, StoredSketches::default()).await
}

/// Reads the stored sketches of the rows whose deltas add visitors (the caller holds their
/// sites' aggregation locks and keeps them until it commits the write that uses them,
/// [`apply_read`]).
pub async fn read_sketches(
    client: &impl GenericClient,
    rollup: &Rollup,
) -> Result<StoredSketches, StoreError> {
    let asked: HashSet<RowKey> = adding_visitors(rollup).cloned().collect();
    let found = stored_sketches(client, asked.iter()).await?;
    Ok(StoredSketches { asked, found })
}

/// The rows whose deltas add visitors: the ones whose sketch is read, merged and written.
fn adding_visitors(rollup: &Rollup) -> impl Iterator<Item = &RowKey> {
    rollup
        .rows
        .iter()
        .filter(|(_, d)| !d.visitors.is_empty())
        .map(|(k, _)| k)
}

/// [`apply`] with the sketches read before ([`read_sketches`], of an earlier state of this
/// rollup): rows adding visitors that were not asked for then are read now.
pub async fn apply_read(
    client: &impl GenericClient,
    rollup: &Rollup,
    mut stored: StoredSketches,
) -> Result<(), StoreError> {
    if rollup.rows.is_empty() {
        return Ok(());
    }
    let unread = adding_visitors(rollup).filter(|k| !stored.asked.contains(*k));
    stored.found.extend(stored_sketches(client, unread).await?);
    let stored = stored.found;

    let n = rollup.rows.len();
    let mut sites = Vec::with_capacity(n);
    let mut properties = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    let mut spans = Vec::with_capacity(n);
    let mut buckets = Vec::with_capacity(n);
    let mut pageviews = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n);
    let mut visits = Vec::with_capacity(n);
    let mut bounces = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut sketches: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
    for (key, delta) in &rollup.rows {
        sites.push(key.site.as_str());
        properties.push(key.property.as_str());
        values.push(key.value.as_str());
        spans.push(key.span.as_str());
        buckets.push(bucket_time(key.bucket_ms));
        pageviews.push(delta.pageviews);
        events.push(delta.events);
        visits.push(delta.visits);
        bounces.push(delta.bounces);
        durations.push(delta.duration_ms);
        sketches.push(merged_sketch(stored.get(key), delta)?);
    }
    client
        .execute_typed(
            "INSERT INTO rollups AS r (site, property, value, span, bucket, pageviews, events,
                 visits, bounces, duration_ms, visitors)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                 $5::timestamptz[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[],
                 $11::bytea[])
             ON CONFLICT (site, property, span, value, bucket) DO UPDATE SET
                 pageviews = r.pageviews + EXCLUDED.pageviews,
                 events = r.events + EXCLUDED.events,
                 visits = r.visits + EXCLUDED.visits,
                 bounces = r.bounces + EXCLUDED.bounces,
                 duration_ms = r.duration_ms + EXCLUDED.duration_ms,
                 visitors = coalesce(EXCLUDED.visitors, r.visitors)",
            &[
                (&sites, Type::TEXT_ARRAY),
                (&properties, Type::TEXT_ARRAY),
                (&values, Type::TEXT_ARRAY),
                (&spans, Type::TEXT_ARRAY),
                (&buckets, Type::TIMESTAMPTZ_ARRAY),
                (&pageviews, Type::INT8_ARRAY),
                (&events, Type::INT8_ARRAY),
                (&visits, Type::INT8_ARRAY),
                (&bounces, Type::INT8_ARRAY),
                (&durations, Type::INT8_ARRAY),
                (&sketches, Type::BYTEA_ARRAY),
            ],
        )
        .await?;
    Ok(())
}

/// The sketch to store for a row: the stored one merged with the delta's, or `None` to keep the
/// stored one as it is — also when the delta's visitors change nothing in it (visitors seen before
/// in the row, or registers already as high), which spares rewriting an 8 KiB value.
fn merged_sketch(stored: Option<&Vec<u8>>, delta: &Delta) -> Result<Option<Vec<u8>>, StoreError> {
    if delta.visitors.is_empty() {
        return Ok(None);
    }
    let mut sketch = match stored {
        Some(bytes) => VisitorSketch::from_bytes(bytes)
            .map_err(|e| StoreError::corrupt("a stored rollup row", e))?,
        None => VisitorSketch::default(),
    };
    sketch.merge(&delta.visitors);
    let merged = sketch.to_bytes();
    if stored.is_some_and(|bytes| *bytes == merged) {
        return Ok(None);
    }
    Ok(Some(merged))
}

/// Deletes `site`'s 15-minute and day rows whose bucket is in `[from_ms, to_ms)` (whole local days
/// of the site), returning how many. The caller holds the site's aggregation lock, writes the
/// rebuilt rows and rebuilds the week and month rows over them
/// (`calendar_rows::rebuild_range`) before it commits.
pub async fn delete_fine_and_day_rows(
    client: &impl GenericClient,
    site: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "DELETE FROM rollups WHERE site = $1 AND span IN ('15m', 'day')
             AND bucket >= $2 AND bucket < $3",
            &[&site, &bucket_time(from_ms), &bucket_time(to_ms)],
        )
        .await?)
}

/// One day row as an export reads it: the counters, and the visitors its sketch counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRow {
    /// The local midnight the row's day starts at.
    pub day_start_ms: i64,
    pub property: String,
    pub value: String,
    pub visitors: u64,
    pub pageviews: i64,
    pub events: i64,
    pub visits: i64,
    pub bounces: i64,
    pub duration_ms: i64,
}

/// `site`'s day rows of `properties` whose day starts in `[from_ms, to_ms)`, by day, property and
/// value. Visits still open are not in them (they are counted when they close).
pub async fn day_rows(
    client: &impl GenericClient,
    site: &str,
    properties: &[&str],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DayRow>, StoreError> {
    let rows = client
        .query(
            "SELECT bucket, property, value, pageviews, events, visits, bounces, duration_ms,
                    visitors
             FROM rollups WHERE site = $1 AND span = 'day' AND property = ANY($2)
                 AND bucket >= $3 AND bucket < $4
             ORDER BY bucket, property, value",
            &[
                &site,
                &properties,
                &bucket_time(from_ms),
                &bucket_time(to_ms),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let sketch: Option<&[u8]> = row.get(8);
            let visitors = match sketch {
                Some(bytes) => VisitorSketch::from_bytes(bytes)
                    .map_err(|e| StoreError::corrupt("a stored rollup row", e))?
                    .count(),
                None => 0,
            };
            Ok(DayRow {
                day_start_ms: row.get::<_, DateTime<Utc>>(0).timestamp_millis(),
                property: row.get(1),
                value: row.get(2),
                visitors,
                pageviews: row.get(3),
                events: row.get(4),
                visits: row.get(5),
                bounces: row.get(6),
                duration_ms: row.get(7),
            })
        })
        .collect()
}

/// The stored sketches of these rows (the ones that have one).
async fn stored_sketches<'a>(
    client: &impl GenericClient,
    keys: impl Iterator<Item = &'a RowKey>,
) -> Result<HashMap<RowKey, Vec<u8>>, StoreError> {
    let keys: Vec<&RowKey> = keys.collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let sites: Vec<&str> = keys.iter().map(|k| k.site.as_str()).collect();
    let properties: Vec<&str> = keys.iter().map(|k| k.property.as_str()).collect();
    let values: Vec<&str> = keys.iter().map(|k| k.value.as_str()).collect();
    let spans: Vec<&str> = keys.iter().map(|k| k.span.as_str()).collect();
    let buckets: Vec<DateTime<Utc>> = keys.iter().map(|k| bucket_time(k.bucket_ms)).collect();
    let rows = client
        .query_typed(
            "SELECT r.site, r.property, r.value, r.span, r.bucket, r.visitors
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                 AS k (site, property, value, span, bucket)
             JOIN rollups r USING (site, property, value, span, bucket)
             WHERE r.visitors IS NOT NULL",
            &[
                (&sites, Type::TEXT_ARRAY),
                (&properties, Type::TEXT_ARRAY),
                (&values, Type::TEXT_ARRAY),
                (&spans, Type::TEXT_ARRAY),
                (&buckets, Type::TIMESTAMPTZ_ARRAY),
            ],
        )
        .await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let span: &str = row.try_get(3)?;
        let bucket: DateTime<Utc> = row.try_get(4)?;
        let key = RowKey {
            site: row.try_get(0)?,
            property: row.try_get(1)?,
            value: row.try_get(2)?,
            span: Span::parse(span).ok_or_else(|| {
                StoreError::corrupt("a stored rollup row", format!("unknown span {span}"))
            })?,
            bucket_ms: bucket.timestamp_millis(),
        };
        stored.insert(key, row.try_get(5)?);
    }
    Ok(stored)
}
