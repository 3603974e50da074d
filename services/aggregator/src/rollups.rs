//! The exactly-once write: event ids and the deltas of the events that were new, in one
//! PostgreSQL transaction.

use std::collections::HashSet;

use beacon_pipeline::rollup::fold_counts;
use beacon_schemas::Event;
use beacon_store::{Pool, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Applies the events not applied before; returns how many were new. All or nothing.
pub async fn apply(pool: &Pool, events: &[Event]) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;

    // Sorted ids: concurrent aggregators lock rows in the same order and cannot deadlock.
    let mut ids: Vec<Uuid> = events.iter().map(|e| e.id.as_uuid()).collect();
    ids.sort_unstable();
    let new_ids: HashSet<Uuid> = tx
        .query(
            "INSERT INTO applied_events (event_id) SELECT * FROM unnest($1::uuid[])
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            &[&ids],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();

    let rows = fold_counts(events.iter().filter(|e| new_ids.contains(&e.id.as_uuid())));
    if !rows.is_empty() {
        let mut sites = Vec::with_capacity(rows.len());
        let mut buckets = Vec::with_capacity(rows.len());
        let mut pageviews = Vec::with_capacity(rows.len());
        let mut custom = Vec::with_capacity(rows.len());
        for ((site, bucket_ms), counts) in &rows {
            sites.push(site.as_str());
            buckets.push(DateTime::<Utc>::from_timestamp_millis(*bucket_ms).unwrap_or_default());
            pageviews.push(counts.pageviews);
            custom.push(counts.events);
        }
        tx.execute(
            "INSERT INTO rollup_counts (site, bucket, pageviews, events)
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::int8[])
             ON CONFLICT (site, bucket) DO UPDATE
             SET pageviews = rollup_counts.pageviews + EXCLUDED.pageviews,
                 events = rollup_counts.events + EXCLUDED.events",
            &[&sites, &buckets, &pageviews, &custom],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(new_ids.len())
}
