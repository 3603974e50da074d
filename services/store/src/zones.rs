//! Sites' time zones for the pipeline's calendar rows: where each site's local days, weeks and
//! months start.

use std::collections::HashMap;

use beacon_pipeline::rollup::LocalCalendar;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use tokio_postgres::GenericClient;

use crate::error::StoreError;

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

fn local_date(tz: Tz, unix_ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// When the local `date` starts in `tz`: its midnight, or the first instant of that day when a DST
/// change skips midnight.
pub fn local_date_start(tz: Tz, date: NaiveDate) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                .earliest()
        })
        .map_or_else(
            || midnight.and_utc().timestamp_millis(),
            |t| t.timestamp_millis(),
        )
}

impl Zones {
    fn zone(&self, site: &str) -> Tz {
        self.0.get(site).copied().unwrap_or(Tz::UTC)
    }
}

impl LocalCalendar for Zones {
    fn local_date(&self, site: &str, unix_ms: i64) -> NaiveDate {
        local_date(self.zone(site), unix_ms)
    }

    fn date_start(&self, site: &str, date: NaiveDate) -> i64 {
        local_date_start(self.zone(site), date)
    }
}

#[cfg(test)]
mod tests {
    use beacon_pipeline::rollup::Span;

    use super::*;

    #[test]
    fn local_days_start_at_local_midnight() {
        // 2026-03-10T02:00Z is 07:30 in Kolkata: the day started at 2026-03-09T18:30Z.
        let t = 1_773_108_000_000;
        assert_eq!(
            Zones::of("a.in", chrono_tz::Asia::Kolkata).bucket_of("a.in", Span::Day, t),
            1_773_081_000_000
        );
        assert_eq!(
            Zones::default().bucket_of("x", Span::Day, t),
            1_773_100_800_000
        );
        // Santiago skips midnight on 2026-09-06 (clocks jump to 01:00): the day starts at 01:00.
        let skipped = Zones::of("a.cl", chrono_tz::America::Santiago);
        let noon = 1_788_714_000_000; // 2026-09-06T16:00Z, 13:00 local
        let start = skipped.bucket_of("a.cl", Span::Day, noon);
        assert_eq!(start, 1_788_667_200_000); // 2026-09-06T04:00Z = 01:00 local (UTC-3)
    }

    #[test]
    fn local_weeks_start_on_monday_and_months_on_the_first() {
        let kolkata = Zones::of("a.in", chrono_tz::Asia::Kolkata);
        // 2026-03-10T02:00Z is Tuesday 07:30 in Kolkata.
        let t = 1_773_108_000_000;
        // Monday 2026-03-09 00:00 +05:30 = 2026-03-08T18:30Z.
        assert_eq!(kolkata.bucket_of("a.in", Span::Week, t), 1_772_994_600_000);
        // 2026-03-01 00:00 +05:30 = 2026-02-28T18:30Z.
        assert_eq!(kolkata.bucket_of("a.in", Span::Month, t), 1_772_303_400_000);
        // Sunday 2026-03-08T20:00Z is already Monday 01:30 in Kolkata: its week starts then.
        let late_sunday = 1_772_992_800_000 + 7_200_000;
        assert_eq!(
            kolkata.bucket_of("a.in", Span::Week, late_sunday),
            1_772_994_600_000
        );
        assert_eq!(
            Zones::default().bucket_of("x", Span::Week, late_sunday),
            1_772_409_600_000
        );
    }
}
