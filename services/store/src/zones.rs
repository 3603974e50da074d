//! Sites' time zones for the pipeline's day rows: where each site's local day starts.

use std::collections::HashMap;

use beacon_pipeline::rollup::LocalDays;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use tokio_postgres::GenericClient;

use crate::postgres::StoreError;

/// The zones of some sites; a site missing from it (removed meanwhile) counts in UTC.
#[derive(Debug, Clone, Default)]
pub struct Zones(HashMap<String, Tz>);

impl Zones {
    /// The zones of `sites`, read in the caller's transaction.
    pub async fn load(client: &impl GenericClient, sites: &[&str]) -> Result<Self, StoreError> {
        let rows = client
            .query(
                "SELECT domain, timezone FROM sites WHERE domain = ANY($1)",
                &[&sites],
            )
            .await?;
        let mut zones = HashMap::with_capacity(rows.len());
        for row in rows {
            let zone: &str = row.try_get(1)?;
            zones.insert(row.try_get(0)?, zone.parse().unwrap_or(Tz::UTC));
        }
        Ok(Self(zones))
    }

    pub fn of(site: &str, tz: Tz) -> Self {
        Self(HashMap::from([(site.to_string(), tz)]))
    }
}

/// The start of the local day holding `unix_ms` in `tz` (the first instant of that day when a DST
/// change skips its midnight).
pub fn local_day_start(tz: Tz, unix_ms: i64) -> i64 {
    let local = DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive();
    let midnight = local.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                .earliest()
        })
        .map_or(unix_ms, |t| t.timestamp_millis())
}

impl LocalDays for Zones {
    fn day_start(&self, site: &str, unix_ms: i64) -> i64 {
        local_day_start(self.0.get(site).copied().unwrap_or(Tz::UTC), unix_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_start_at_local_midnight() {
        // 2026-03-10T02:00Z is 07:30 in Kolkata: the day started at 2026-03-09T18:30Z.
        let t = 1_773_108_000_000;
        assert_eq!(
            local_day_start(chrono_tz::Asia::Kolkata, t),
            1_773_081_000_000
        );
        assert_eq!(local_day_start(Tz::UTC, t), 1_773_100_800_000);
        // Santiago skips midnight on 2026-09-06 (clocks jump to 01:00): the day starts at 01:00.
        let skipped = Zones::of("a.cl", chrono_tz::America::Santiago);
        let noon = 1_788_714_000_000; // 2026-09-06T16:00Z, 13:00 local
        let start = skipped.day_start("a.cl", noon);
        assert_eq!(start, 1_788_667_200_000); // 2026-09-06T04:00Z = 01:00 local (UTC-3)
    }
}
