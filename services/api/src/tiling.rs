//! Which rollup rows answer a range: the coarsest rows (months, weeks, days) that tile it.
//!
//! Every delta is in one row of each span (pipeline/src/rollup.rs), so any set of rows whose
//! buckets tile the range exactly — no gap, no overlap — gives the same sums. Coarser rows mean
//! fewer visitor sketches to read and merge: 30 days take about ten rows per value instead of
//! thirty, a year twelve instead of 365.

use beacon_pipeline::rollup::{LocalCalendar, Span};
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc, Weekday};

use crate::grouping::Grouping;
use crate::period::Interval;

/// The rows of one span whose buckets start in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub span: Span,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Piece {
    pub fn holds(&self, span: Span, bucket_ms: i64) -> bool {
        self.span == span
            && self.from.timestamp_millis() <= bucket_ms
            && bucket_ms < self.to.timestamp_millis()
    }
}

/// Pieces tiling `[from, to)` for `site`, with rows no coarser than the grouping allows: hourly
/// series read 15-minute rows, daily series day rows, monthly series months and days, totals and
/// breakdowns months, weeks and days. A range that is not whole local days reads 15-minute rows.
pub fn tile(
    calendar: &impl LocalCalendar,
    site: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    grouping: Grouping,
) -> Vec<Piece> {
    let quarters = vec![Piece {
        span: Span::Quarter,
        from,
        to,
    }];
    let (months, weeks) = match grouping {
        Grouping::Time(Interval::Hour, _) => return quarters,
        Grouping::Time(Interval::Day, _) => (false, false),
        Grouping::Time(Interval::Month, _) => (true, false),
        Grouping::None | Grouping::Value => (true, true),
    };
    let first = calendar.local_date(site, from.timestamp_millis());
    let end = calendar.local_date(site, to.timestamp_millis());
    let start = |date: NaiveDate| calendar.date_start(site, date);
    if start(first) != from.timestamp_millis() || start(end) != to.timestamp_millis() {
        return quarters;
    }
    let mut pieces: Vec<(Span, NaiveDate, NaiveDate)> = Vec::new();
    let mut day = first;
    while day < end {
        let next_month = day.checked_add_months(Months::new(1)).unwrap_or(end);
        let next_week = day.checked_add_days(Days::new(7)).unwrap_or(end);
        let (span, next) = if months && day.day() == 1 && next_month <= end {
            (Span::Month, next_month)
        } else if weeks && day.weekday() == Weekday::Mon && next_week <= end {
            (Span::Week, next_week)
        } else {
            (Span::Day, day.succ_opt().unwrap_or(end))
        };
        match pieces.last_mut() {
            Some((last_span, _, last_end)) if *last_span == span && *last_end == day => {
                *last_end = next;
            }
            _ => pieces.push((span, day, next)),
        }
        day = next;
    }
    pieces
        .into_iter()
        .map(|(span, a, b)| Piece {
            span,
            from: utc(start(a)),
            to: utc(start(b)),
        })
        .collect()
}

fn utc(unix_ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(unix_ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use beacon_store::zones::Zones;
    use chrono::TimeZone;
    use chrono_tz::Tz;

    use super::*;

    fn local(tz: Tz, y: i32, m: u32, d: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn spans(pieces: &[Piece]) -> Vec<(Span, DateTime<Utc>, DateTime<Utc>)> {
        pieces.iter().map(|p| (p.span, p.from, p.to)).collect()
    }

    #[test]
    fn thirty_days_take_days_weeks_and_days() {
        let tz = chrono_tz::Asia::Kolkata;
        let zones = Zones::of("a.in", tz);
        // Tuesday 2026-10-27 to Wednesday 2026-11-25 inclusive.
        let (from, to) = (local(tz, 2026, 10, 27), local(tz, 2026, 11, 26));
        let pieces = tile(&zones, "a.in", from, to, Grouping::Value);
        assert_eq!(
            spans(&pieces),
            vec![
                (Span::Day, from, local(tz, 2026, 11, 2)),
                (Span::Week, local(tz, 2026, 11, 2), local(tz, 2026, 11, 23)),
                (Span::Day, local(tz, 2026, 11, 23), to),
            ]
        );
    }

    #[test]
    fn whole_months_are_read_as_month_rows() {
        let zones = Zones::default();
        let (from, to) = (local(Tz::UTC, 2026, 5, 28), local(Tz::UTC, 2026, 11, 3));
        let monthly = Grouping::Time(Interval::Month, Tz::UTC);
        assert_eq!(
            spans(&tile(&zones, "x", from, to, monthly)),
            vec![
                (Span::Day, from, local(Tz::UTC, 2026, 6, 1)),
                (
                    Span::Month,
                    local(Tz::UTC, 2026, 6, 1),
                    local(Tz::UTC, 2026, 11, 1)
                ),
                (Span::Day, local(Tz::UTC, 2026, 11, 1), to),
            ]
        );
        // Totals may use weeks in the partial months too (2026-05-18 is a Monday).
        let monday = local(Tz::UTC, 2026, 5, 18);
        assert_eq!(
            spans(&tile(&zones, "x", monday, to, Grouping::None))[0],
            (Span::Week, monday, local(Tz::UTC, 2026, 6, 1))
        );
    }

    #[test]
    fn series_and_uneven_ranges_keep_their_resolution() {
        let zones = Zones::default();
        let (from, to) = (local(Tz::UTC, 2026, 6, 1), local(Tz::UTC, 2026, 7, 1));
        let daily = Grouping::Time(Interval::Day, Tz::UTC);
        assert_eq!(
            spans(&tile(&zones, "x", from, to, daily)),
            vec![(Span::Day, from, to)]
        );
        let hourly = Grouping::Time(Interval::Hour, Tz::UTC);
        assert_eq!(
            spans(&tile(&zones, "x", from, to, hourly)),
            vec![(Span::Quarter, from, to)]
        );
        let noon = from + chrono::Duration::hours(12);
        assert_eq!(
            spans(&tile(&zones, "x", noon, to, Grouping::None)),
            vec![(Span::Quarter, noon, to)]
        );
    }

    #[test]
    fn pieces_tile_the_range_without_gap_or_overlap() {
        let tz = chrono_tz::America::Santiago; // DST moves midnight
        let zones = Zones::of("a.cl", tz);
        for (start, days) in [(0u64, 1u64), (3, 30), (10, 180), (40, 400)] {
            let from_date =
                NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default() + Days::new(start);
            let to_date = from_date + Days::new(days);
            let from = local(tz, from_date.year(), from_date.month(), from_date.day());
            let to = local(tz, to_date.year(), to_date.month(), to_date.day());
            let pieces = tile(&zones, "a.cl", from, to, Grouping::None);
            assert_eq!(pieces.first().map(|p| p.from), Some(from));
            assert_eq!(pieces.last().map(|p| p.to), Some(to));
            for pair in pieces.windows(2) {
                assert_eq!(pair[0].to, pair[1].from);
            }
            // Every piece's bounds are bucket starts of its span.
            for p in &pieces {
                let ms = p.from.timestamp_millis();
                assert_eq!(zones.bucket_of("a.cl", p.span, ms), ms, "{p:?}");
            }
        }
    }
}
