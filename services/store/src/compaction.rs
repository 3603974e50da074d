//! Rollup compaction: the 15-minute rows of a site's old local days merged into one row per day.
//!
//! A compacted row's bucket is the local midnight of the site's zone, so every range the API asks
//! for (whole local days) sums exactly the same counters and merges exactly the same visitors as
//! before; only hourly series of compacted days lose their detail (everything shows at midnight).
//! Late events for a compacted day land in fresh 15-minute rows beside the day row and are summed
//! with it, so compaction never loses anything; compacting a day again merges those in too.

use std::collections::BTreeMap;

use beacon_pipeline::sketch::VisitorSketch;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use tokio_postgres::GenericClient;

use crate::postgres::{Pool, StoreError};
use crate::rollups::lock_sites;

/// What one call compacted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub days: u64,
    pub rows_before: u64,
    pub rows_after: u64,
}

fn midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            // Midnight skipped by a DST change: the day starts at the first instant that exists.
            (1..=3).find_map(|h| {
                tz.from_local_datetime(&(naive + chrono::Duration::hours(h)))
                    .earliest()
            })
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

/// Compacts every local day that ended before `before` (in each site's zone) and still has more
/// than one row for some property value.
pub async fn compact(pool: &Pool, before: DateTime<Utc>) -> Result<Compacted, StoreError> {
    let mut client = pool.get().await?;
    let sites: Vec<(String, String)> = client
        .query("SELECT domain, timezone FROM sites ORDER BY domain", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut total = Compacted::default();
    for (site, zone) in sites {
        let tz: Tz = zone.parse().unwrap_or(Tz::UTC);
        let days: Vec<NaiveDate> = client
            .query(
                "SELECT DISTINCT (bucket AT TIME ZONE $2)::date AS day FROM rollups
                 WHERE site = $1 AND bucket < $3
                   AND bucket <> date_trunc('day', bucket AT TIME ZONE $2) AT TIME ZONE $2
                 ORDER BY day",
                &[&site, &tz.name(), &before],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for day in days {
            let (from, to) = (
                midnight(tz, day),
                midnight(tz, day.succ_opt().unwrap_or(day)),
            );
            if to > before {
                continue;
            }
            let tx = client.transaction().await?;
            lock_sites(&*tx, &[site.as_str()]).await?;
            let (before_rows, after_rows) = compact_day(&*tx, &site, from, to).await?;
            tx.commit().await?;
            total.days += 1;
            total.rows_before += before_rows;
            total.rows_after += after_rows;
        }
    }
    Ok(total)
}

/// Merges the rows of `[from, to)` into one row per property value at `from`.
async fn compact_day(
    client: &impl GenericClient,
    site: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(u64, u64), StoreError> {
    let rows = client
        .query(
            "DELETE FROM rollups WHERE site = $1 AND bucket >= $2 AND bucket < $3
             RETURNING property, value, pageviews, events, visits, bounces, duration_ms, visitors",
            &[&site, &from, &to],
        )
        .await?;
    type Sums = (i64, i64, i64, i64, i64, Option<VisitorSketch>);
    let mut merged: BTreeMap<(String, String), Sums> = BTreeMap::new();
    for row in &rows {
        let entry = merged
            .entry((row.try_get(0)?, row.try_get(1)?))
            .or_insert((0, 0, 0, 0, 0, None));
        entry.0 += row.try_get::<_, i64>(2)?;
        entry.1 += row.try_get::<_, i64>(3)?;
        entry.2 += row.try_get::<_, i64>(4)?;
        entry.3 += row.try_get::<_, i64>(5)?;
        entry.4 += row.try_get::<_, i64>(6)?;
        if let Some(bytes) = row.try_get::<_, Option<Vec<u8>>>(7)? {
            let sketch = VisitorSketch::from_bytes(&bytes)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            entry
                .5
                .get_or_insert_with(VisitorSketch::default)
                .merge(&sketch);
        }
    }
    let n = merged.len();
    let mut properties = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    let mut counters: [Vec<i64>; 5] = Default::default();
    let mut sketches: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
    for ((property, value), (pv, ev, vi, bo, du, sketch)) in merged {
        properties.push(property);
        values.push(value);
        for (column, x) in counters.iter_mut().zip([pv, ev, vi, bo, du]) {
            column.push(x);
        }
        sketches.push(sketch.map(|s| s.to_bytes()));
    }
    client
        .execute(
            "INSERT INTO rollups (site, property, value, bucket, pageviews, events, visits,
                 bounces, duration_ms, visitors)
             SELECT $1, p, v, $2, pv, ev, vi, bo, du, sk FROM unnest($3::text[], $4::text[],
                 $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::bytea[])
                 AS t (p, v, pv, ev, vi, bo, du, sk)",
            &[
                &site,
                &from,
                &properties,
                &values,
                &counters[0],
                &counters[1],
                &counters[2],
                &counters[3],
                &counters[4],
                &sketches,
            ],
        )
        .await?;
    Ok((rows.len() as u64, n as u64))
}
