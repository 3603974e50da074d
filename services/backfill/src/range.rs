//! The days a replay rebuilds: whole local days of the site, as a UTC range, and the wider window
//! of events read around them so that the visits crossing the range's edges are seen whole.

use chrono::{Days, NaiveDate};
use chrono_tz::Tz;

/// Events this far before and after the range are read too: a visit that starts in the range
/// and goes on past its end is counted whole, and one that started before it is recognised as
/// such (visits are cut at 30-minute gaps; one running on for a day is cut at this edge).
pub const CONTEXT_MS: i64 = 24 * 3_600_000;

/// Longest range one replay takes.
pub const MAX_DAYS: u64 = 3_660;

/// Why a range is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{field}: '{text}' is not a date (YYYY-MM-DD)")]
    NotADate { field: &'static str, text: String },
    #[error("--until {until} is before --since {since}: the range is empty")]
    Empty { since: NaiveDate, until: NaiveDate },
    #[error("the range {since} to {until} is longer than {MAX_DAYS} days; replay it in parts")]
    TooLong { since: NaiveDate, until: NaiveDate },
}

/// Parses a `YYYY-MM-DD` option (years 1970 to 9999).
pub fn parse_day(field: &'static str, text: &str) -> Result<NaiveDate, RangeError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| (1970..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| RangeError::NotADate {
            field,
            text: beacon_schemas::text::without_controls(text)
                .chars()
                .take(40)
                .collect(),
        })
}

/// Whole local days `first_day..=last_day` of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRange {
    pub site: String,
    pub zone: Tz,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Start of the first day (Unix ms).
    pub from_ms: i64,
    /// Start of the day after the last (Unix ms).
    pub to_ms: i64,
}

impl DayRange {
    pub fn new(
        site: &str,
        zone: Tz,
        since: NaiveDate,
        until: NaiveDate,
    ) -> Result<Self, RangeError> {
        if until < since {
            return Err(RangeError::Empty { since, until });
        }
        if (until - since).num_days() >= MAX_DAYS as i64 {
            return Err(RangeError::TooLong { since, until });
        }
        let after = until.checked_add_days(Days::new(1)).unwrap_or(until);
        Ok(Self {
            site: site.to_string(),
            zone,
            first_day: since,
            last_day: until,
            from_ms: day_start(zone, since),
            to_ms: day_start(zone, after),
        })
    }

    /// Events with times in `[read_from_ms, read_to_ms)` are read.
    pub fn read_from_ms(&self) -> i64 {
        self.from_ms - CONTEXT_MS
    }

    pub fn read_to_ms(&self) -> i64 {
        self.to_ms + CONTEXT_MS
    }

    pub fn contains(&self, unix_ms: i64) -> bool {
        (self.from_ms..self.to_ms).contains(&unix_ms)
    }

    /// The local days of the range, first to last.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let last = self.last_day;
        self.first_day.iter_days().take_while(move |d| *d <= last)
    }

    /// When local day `day` of the site starts (Unix ms).
    pub fn day_start(&self, day: NaiveDate) -> i64 {
        day_start(self.zone, day)
    }

    /// The local day of the site at `unix_ms`.
    pub fn day_of(&self, unix_ms: i64) -> NaiveDate {
        chrono::DateTime::from_timestamp_millis(unix_ms)
            .unwrap_or_default()
            .with_timezone(&self.zone)
            .date_naive()
    }
}

fn day_start(zone: Tz, day: NaiveDate) -> i64 {
    beacon_store::zones::local_date_start(zone, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        parse_day("--since", text).expect("a date")
    }

    #[test]
    fn a_range_is_whole_local_days_of_the_site() {
        let kolkata: Tz = "Asia/Kolkata".parse().expect("zone");
        let range = DayRange::new("a.example", kolkata, day("2026-03-01"), day("2026-03-02"))
            .expect("range");
        // Midnight in +05:30 is 18:30 UTC the day before.
        assert_eq!(range.from_ms, 1_772_303_400_000);
        assert_eq!(range.to_ms - range.from_ms, 2 * 24 * 3_600_000);
        assert_eq!(range.days().count(), 2);
        assert_eq!(range.day_of(range.from_ms), day("2026-03-01"));
        assert_eq!(range.day_of(range.to_ms - 1), day("2026-03-02"));
    }

    #[test]
    fn bad_ranges_are_refused_naming_the_option() {
        let err = parse_day("--until", "2026-02-30").expect_err("no such day");
        assert_eq!(
            err.to_string(),
            "--until: '2026-02-30' is not a date (YYYY-MM-DD)"
        );
        assert!(parse_day("--since", "0001-01-01").is_err());
        assert!(parse_day("--since", "yesterday\u{0}").is_err());
        let empty = DayRange::new("a.example", Tz::UTC, day("2026-03-02"), day("2026-03-01"));
        assert!(matches!(empty, Err(RangeError::Empty { .. })));
        let long = DayRange::new("a.example", Tz::UTC, day("2000-01-01"), day("2026-01-01"));
        assert!(matches!(long, Err(RangeError::TooLong { .. })));
    }
}
