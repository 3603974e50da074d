//! The rebuild equals live aggregation: the same events applied batch by batch, in any order,
//! with visits closed as they go quiet, leave exactly the rows and sessions of the range that a
//! rebuild computes in one pass.

use std::collections::BTreeMap;

use beacon_pipeline::rollup::{Rollup, RowKey, Span, UtcCalendar};
use beacon_pipeline::session::{Session, plan};
use beacon_pipeline::test_events::{event, on_page};
use beacon_schemas::Event;
use chrono::NaiveDate;
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;

const DAY: i64 = 24 * 3_600_000;
const MIN: i64 = 60_000;

fn range() -> DayRange {
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    DayRange::new("a.example", Tz::UTC, day, day).expect("range")
}

/// What the live path leaves: batches applied in turn, every visit closed at the end.
fn live(batches: &[&[Event]]) -> (Rollup, Vec<Session>) {
    let mut stored: Vec<Session> = Vec::new();
    let mut total = Rollup::default();
    for batch in batches {
        let transition = plan(&stored, batch);
        total.merge(&Rollup::of_batch(batch, &transition, &UtcCalendar));
        stored.retain(|s| !transition.removed.contains(s));
        stored.extend(transition.added);
    }
    for s in stored.iter_mut().filter(|s| !s.closed) {
        total.merge(&Rollup::of_closed(std::slice::from_ref(s), &UtcCalendar));
        s.closed = true;
    }
    (total, stored)
}

/// Counters and visitor counts of the rows of `range` (15-minute and day rows).
fn rows_in_range(rollup: &Rollup, range: &DayRange) -> BTreeMap<RowKey, [i64; 6]> {
    rollup
        .rows
        .iter()
        .filter(|(k, _)| matches!(k.span, Span::Quarter | Span::Day) && range.contains(k.bucket_ms))
        .map(|(k, d)| {
            let count = d.visitors.count() as i64;
            (
                k.clone(),
                [
                    d.pageviews,
                    d.events,
                    d.visits,
                    d.bounces,
                    d.duration_ms,
                    count,
                ],
            )
        })
        .filter(|(_, c)| c[..5].iter().any(|&x| x != 0))
        .collect()
}

const EVERYTHING_QUIET: Cutoffs = Cutoffs {
    quiet_before_ms: i64::MAX,
    fine_from_ms: i64::MIN,
};

proptest! {
    #[test]
    fn a_rebuild_equals_live_aggregation_of_the_range(
        specs in proptest::collection::vec((0u64..4, 0usize..4, 0i64..(3 * DAY / MIN)), 1..80),
        cuts in proptest::collection::vec(0usize..80, 0..6),
        reverse in any::<bool>(),
    ) {
        let range = range();
        let start = range.from_ms - DAY;
        let names = ["pageview", "signup", "engagement", "pageview"];
        let paths = ["/", "/a", "/b", "/c"];
        let mut events: Vec<Event> = specs.iter().enumerate()
            .map(|(i, (v, n, t))| {
                on_page(event("a.example", names[*n], start + t * MIN, *v), paths[i % 4])
            })
            .collect();
        if reverse {
            events.reverse();
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
        cuts.extend([0, events.len()]);
        cuts.sort_unstable();
        let batches: Vec<&[Event]> = cuts.windows(2).map(|w| &events[w[0]..w[1]]).collect();
        let (live_rollup, live_sessions) = live(&batches);

        let rebuilt = rebuild(&range, &events, &UtcCalendar, EVERYTHING_QUIET);
        prop_assert_eq!(
            rows_in_range(&rebuilt.rollup, &range),
            rows_in_range(&live_rollup, &range)
        );
        let mut expected: Vec<Session> = live_sessions
            .into_iter()
            .filter(|s| range.contains(s.start_ms))
            .collect();
        expected.sort_by_key(|s| (s.start_ms, s.visitor_id));
        prop_assert_eq!(rebuilt.sessions, expected);
    }
}

#[test]
fn visits_crossing_the_edges_count_where_they_start() {
    let range = range();
    let before = [
        event("a.example", "pageview", range.from_ms - 10 * MIN, 1),
        event("a.example", "pageview", range.from_ms + 5 * MIN, 1),
    ];
    let after = [
        event("a.example", "pageview", range.to_ms - 5 * MIN, 2),
        event("a.example", "pageview", range.to_ms + 20 * MIN, 2),
    ];
    let events: Vec<Event> = before.iter().chain(&after).cloned().collect();
    let rebuilt = rebuild(&range, &events, &UtcCalendar, EVERYTHING_QUIET);
    assert_eq!(
        rebuilt.sessions.len(),
        1,
        "only the visit starting in the range"
    );
    let visit = &rebuilt.sessions[0];
    assert_eq!((visit.visitor_id, visit.pageviews), (2, 2));
    let day = |property: &str| {
        rebuilt
            .rollup
            .rows
            .iter()
            .find(|(k, _)| k.span == Span::Day && k.property == property)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    };
    // Event rows: the two page views inside the range. Visit rows: one visit, both its pages.
    assert_eq!(day("").pageviews, 2);
    assert_eq!((day("visit").visits, day("visit").pageviews), (1, 2));
}

#[test]
fn recent_visits_stay_open_and_old_fine_rows_are_left_out() {
    let range = range();
    let events = [
        event("a.example", "pageview", range.from_ms + 60 * MIN, 1),
        event("a.example", "pageview", range.from_ms + 600 * MIN, 2),
    ];
    let cutoffs = Cutoffs {
        quiet_before_ms: range.from_ms + 300 * MIN,
        fine_from_ms: range.from_ms + 120 * MIN,
    };
    let rebuilt = rebuild(&range, &events, &UtcCalendar, cutoffs);
    let closed: Vec<bool> = rebuilt.sessions.iter().map(|s| s.closed).collect();
    assert_eq!(closed, [true, false]);
    let visits: i64 = rebuilt
        .rollup
        .rows
        .iter()
        .filter(|(k, _)| k.span == Span::Day && k.property == "visit")
        .map(|(_, d)| d.visits)
        .sum();
    assert_eq!(visits, 1, "the open visit is not in the visit rows yet");
    assert!(
        rebuilt
            .rollup
            .rows
            .keys()
            .filter(|k| k.span == Span::Quarter)
            .all(|k| k.bucket_ms >= cutoffs.fine_from_ms)
    );
    assert!(rebuilt.rollup.rows.keys().any(|k| k.span == Span::Quarter));
}

/// Old events that arrived lately (an import, a late delivery) leave their visit open, as the
/// live closing task would: it closes visits nobody touched for a while, by the wall clock.
#[test]
fn a_visit_whose_events_arrived_lately_stays_open() {
    let range = range();
    let mut late = event("a.example", "pageview", range.from_ms + 60 * MIN, 1);
    late.received_at_ms = range.to_ms + 10 * DAY;
    let on_time = event("a.example", "pageview", range.from_ms + 60 * MIN, 2);
    let cutoffs = Cutoffs {
        quiet_before_ms: range.to_ms + 5 * DAY,
        fine_from_ms: i64::MIN,
    };
    let rebuilt = rebuild(&range, &[late, on_time], &UtcCalendar, cutoffs);
    let closed: Vec<(u64, bool)> = rebuilt
        .sessions
        .iter()
        .map(|s| (s.visitor_id, s.closed))
        .collect();
    assert_eq!(closed.len(), 2);
    assert!(
        closed.contains(&(1, false)) && closed.contains(&(2, true)),
        "{closed:?}"
    );
}
