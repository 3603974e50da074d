//! Rollup retention: the 15-minute rows of a site's old local days are deleted, leaving the day,
//! week and month rows written beside them (every delta goes to all, see `pipeline/src/rollup.rs`).
//!
//! Every range the API asks for is whole local days, answered from those rows, so no number changes;
//! only hourly series of those days are gone. A day is compacted only if its site-wide day row
//! exists, so history without day rows (from before day rows existed) is never lost.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::postgres::{Pool, StoreError};
use crate::rollups::lock_sites;
use crate::zones::local_date_start;

/// What one call compacted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub days: u64,
    pub rows_deleted: u64,
}

fn day_bounds(tz: Tz, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |d: NaiveDate| {
        DateTime::<Utc>::from_timestamp_millis(local_date_start(tz, d)).unwrap_or_default()
    };
    (at(day), at(day.succ_opt().unwrap_or(day)))
}

/// Deletes the 15-minute rows of every local day that ended before `before` (in each site's zone)
/// and has day rows.
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
                 WHERE site = $1 AND span = '15m' AND bucket < $3 ORDER BY day",
                &[&site, &tz.name(), &before],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for day in days {
            let (from, to) = day_bounds(tz, day);
            if to > before {
                continue;
            }
            let tx = client.transaction().await?;
            lock_sites(&*tx, &[site.as_str()]).await?;
            let has_day_rows = tx
                .query_opt(
                    "SELECT 1 FROM rollups WHERE site = $1 AND property = '' AND value = ''
                     AND span = 'day' AND bucket = $2",
                    &[&site, &from],
                )
                .await?
                .is_some();
            if has_day_rows {
                let deleted = tx
                    .execute(
                        "DELETE FROM rollups
                         WHERE site = $1 AND span = '15m' AND bucket >= $2 AND bucket < $3",
                        &[&site, &from, &to],
                    )
                    .await?;
                total.days += 1;
                total.rows_deleted += deleted;
            }
            tx.commit().await?;
        }
    }
    Ok(total)
}
