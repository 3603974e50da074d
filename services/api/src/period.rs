//! Plausible's `period`/`date` parameters resolved to an exact UTC range in the site's time zone.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Days7,
    Days30,
    Month,
    Months6,
    Months12,
    Custom(NaiveDate, NaiveDate),
}

/// Time-series granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    Month,
}

impl Interval {
    /// The `date_trunc` unit.
    pub fn as_sql(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Month => "month",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodError(pub String);

/// A resolved period: local first and last day, the UTC range `[from, to)`, the default interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
}

/// Longest custom range, in days (ten years): a range of centuries is refused, not computed.
pub const MAX_RANGE_DAYS: i64 = 3_660;
/// Most points a time series may have (an hourly series of years is refused).
pub const MAX_SERIES_POINTS: i64 = 10_000;

fn parse_day(s: &str) -> Result<NaiveDate, PeriodError> {
    let day = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| PeriodError(format!("date '{}' is not YYYY-MM-DD", s.escape_debug())))?;
    // Events carry Unix times after 1970; the year bound also keeps every day arithmetic
    // (a range's end plus one day, a month back) far from the calendar's limits.
    if !(1970..=9999).contains(&day.year()) {
        return Err(PeriodError(format!(
            "date '{day}' is not between 1970-01-01 and 9999-12-31"
        )));
    }
    Ok(day)
}

/// Refuses a series of more than [`MAX_SERIES_POINTS`] points.
pub fn check_series_length(range: &Range, interval: Interval) -> Result<(), PeriodError> {
    let days = (range.last_day - range.first_day).num_days() + 1;
    let points = match interval {
        Interval::Hour => days * 24,
        Interval::Day => days,
        Interval::Month => days / 28 + 1,
    };
    if points > MAX_SERIES_POINTS {
        return Err(PeriodError(format!(
            "interval {interval:?} over {days} days gives {points} points; at most {MAX_SERIES_POINTS} (use a longer interval or a shorter range)"
        )));
    }
    Ok(())
}

/// Parses `period` (default `30d`) and `date` (a day, or `from,to` for `custom`).
pub fn parse_period(
    period: Option<&str>,
    date: Option<&str>,
) -> Result<(Period, Option<NaiveDate>), PeriodError> {
    let period = match period.unwrap_or("30d") {
        "day" => Period::Day,
        "7d" => Period::Days7,
        "30d" => Period::Days30,
        "month" => Period::Month,
        "6mo" => Period::Months6,
        "12mo" => Period::Months12,
        "custom" => {
            let date = date.ok_or_else(|| {
                PeriodError("period=custom needs date=YYYY-MM-DD,YYYY-MM-DD".into())
            })?;
            let (a, b) = date
                .split_once(',')
                .ok_or_else(|| PeriodError("date must be 'from,to' for period=custom".into()))?;
            let (a, b) = (parse_day(a)?, parse_day(b)?);
            if b < a {
                return Err(PeriodError("date range ends before it starts".into()));
            }
            if (b - a).num_days() >= MAX_RANGE_DAYS {
                return Err(PeriodError(format!(
                    "date range is longer than {MAX_RANGE_DAYS} days"
                )));
            }
            return Ok((Period::Custom(a, b), None));
        }
        other => {
            return Err(PeriodError(format!(
                "period '{other}' is not one of day, 7d, 30d, month, 6mo, 12mo, custom"
            )));
        }
    };
    Ok((period, date.map(parse_day).transpose()?))
}

fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight can be skipped by a DST change (e.g. America/Santiago): take the first instant
    // of the local day that exists.
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        chrono::LocalResult::None => (1..=3)
            .find_map(|h| {
                tz.from_local_datetime(&(naive + chrono::Duration::hours(h)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

/// Resolves `period` ending at `today` (the reference date, in the site's zone).
pub fn resolve_period(period: Period, today: NaiveDate, tz: Tz) -> Range {
    let month_start = |d: NaiveDate| d.with_day(1).unwrap_or(d);
    let (first_day, last_day, interval) = match period {
        Period::Day => (today, today, Interval::Hour),
        Period::Days7 => (today - Days::new(6), today, Interval::Day),
        Period::Days30 => (today - Days::new(29), today, Interval::Day),
        Period::Month => {
            let first = month_start(today);
            (first, first + Months::new(1) - Days::new(1), Interval::Day)
        }
        Period::Months6 => (month_start(today) - Months::new(5), today, Interval::Month),
        Period::Months12 => (month_start(today) - Months::new(11), today, Interval::Month),
        Period::Custom(a, b) => (a, b, Interval::Day),
    };
    Range {
        first_day,
        last_day,
        from: local_midnight(tz, first_day),
        to: local_midnight(tz, last_day + Days::new(1)),
        interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        parse_day(s).expect("day")
    }

    #[test]
    fn day_in_kolkata_starts_at_1830_utc_the_day_before() {
        let range = resolve_period(Period::Day, day("2026-03-10"), chrono_tz::Asia::Kolkata);
        assert_eq!(range.from.to_rfc3339(), "2026-03-09T18:30:00+00:00");
        assert_eq!(range.to.to_rfc3339(), "2026-03-10T18:30:00+00:00");
        assert_eq!(range.interval, Interval::Hour);
    }

    #[test]
    fn seven_days_include_the_reference_day() {
        let range = resolve_period(Period::Days7, day("2026-03-10"), Tz::UTC);
        assert_eq!(
            (range.first_day, range.last_day),
            (day("2026-03-04"), day("2026-03-10"))
        );
    }

    #[test]
    fn month_and_custom() {
        let range = resolve_period(Period::Month, day("2024-02-10"), Tz::UTC);
        assert_eq!(
            (range.first_day, range.last_day),
            (day("2024-02-01"), day("2024-02-29"))
        );
        let (p, _) = parse_period(Some("custom"), Some("2024-01-01,2024-01-31")).expect("valid");
        let range = resolve_period(p, day("2030-01-01"), Tz::UTC);
        assert_eq!(range.to.to_rfc3339(), "2024-02-01T00:00:00+00:00");
    }

    #[test]
    fn dst_day_is_23_hours_long() {
        let range = resolve_period(Period::Day, day("2026-03-29"), chrono_tz::Europe::Berlin);
        assert_eq!((range.to - range.from).num_hours(), 23);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(parse_period(Some("week"), None).is_err());
        assert!(parse_period(Some("custom"), None).is_err());
        assert!(parse_period(Some("custom"), Some("2024-02-01,2024-01-01")).is_err());
        assert!(parse_period(Some("day"), Some("yesterday")).is_err());
    }

    #[test]
    fn ranges_and_series_are_bounded() {
        assert!(parse_period(Some("custom"), Some("1000-01-01,2999-12-31")).is_err());
        assert!(parse_period(Some("custom"), Some("2000-01-01,2020-01-01")).is_err());
        assert!(parse_period(Some("day"), Some("+262143-12-31")).is_err());
        assert!(parse_period(Some("custom"), Some("9999-12-01,9999-12-31")).is_ok());
        let (p, _) = parse_period(Some("custom"), Some("2020-01-01,2021-12-31")).expect("valid");
        let range = resolve_period(p, day("2030-01-01"), Tz::UTC);
        assert!(check_series_length(&range, Interval::Day).is_ok());
        assert!(check_series_length(&range, Interval::Hour).is_err());
        let range = resolve_period(
            parse_period(Some("custom"), Some("9999-12-01,9999-12-31"))
                .expect("valid")
                .0,
            day("2030-01-01"),
            Tz::UTC,
        );
        assert_eq!(range.to.to_rfc3339(), "+10000-01-01T00:00:00+00:00");
    }
}
