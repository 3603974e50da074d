//! Rollup deltas: what a batch's new events and session transitions add to the rollup rows.
//!
//! A row is (site, span, bucket, property, value): every delta goes to the row of its 15-minute
//! bucket and to the rows of its site's local day, week and month, so a query reads the coarsest
//! rows that tile its range. Two kinds of rows:
//! - **event rows** (property [`TOTAL`], `event:page`, `event:name`, `event:hostname`,
//!   `event:props:<key>`): page views and custom events by event time, and a sketch of the
//!   visitors who sent them;
//! - **visit rows** (property [`VISITS`] and every `visit:*` property, including `visit:entry_page`
//!   and `visit:exit_page`): visits, bounces, total duration, and the page views and custom events
//!   of those visits, all bucketed by the visit's start, and a sketch of the visits' visitors.
//!
//! Counters are sums, so deltas fold in any order and batch split. Only **closed** sessions are in
//! the visit rows: closing a session adds its contribution ([`Rollup::of_closed`]); a batch whose
//! events join a closed session removes that session's contribution (negative deltas) and leaves
//! the merged session open. Sketches only grow, so a visitor stays in the sketch of a visit row
//! whose closed visit was later reopened by a late event (see ARCHITECTURE.md, "what is
//! approximate"); open sessions are never in a sketch.

use std::collections::BTreeMap;

use beacon_schemas::Event;
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime};

use crate::bucket::bucket_start;
use crate::session::{Session, Transition};
use crate::sketch::VisitorSketch;

/// Property of the site-wide event row.
pub const TOTAL: &str = "";
/// Property of the site-wide visit row.
pub const VISITS: &str = "visit";

/// How long a row's bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Span {
    /// 15 minutes of UTC (every zone's hours and days are unions of them).
    Quarter,
    /// One local day of the site's time zone.
    Day,
    /// One local week (Monday to Sunday) of the site's time zone.
    Week,
    /// One local calendar month of the site's time zone.
    Month,
}

impl Span {
    /// Every span, finest first: each delta is written to one row of each.
    pub const ALL: [Span; 4] = [Span::Quarter, Span::Day, Span::Week, Span::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Span::Quarter => "15m",
            Span::Day => "day",
            Span::Week => "week",
            Span::Month => "month",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Span::ALL.into_iter().find(|span| span.as_str() == text)
    }
}

/// A site's local calendar. The pipeline knows no time zones: the caller does.
pub trait LocalCalendar {
    /// The local date of `site` at `unix_ms`.
    fn local_date(&self, site: &str, unix_ms: i64) -> NaiveDate;
    /// When (Unix ms) the local `date` of `site` starts: its midnight, or its first instant when
    /// a DST change skips midnight.
    fn date_start(&self, site: &str, date: NaiveDate) -> i64;

    /// Start (Unix ms) of the bucket of `span` holding `unix_ms` for `site`.
    fn bucket_of(&self, site: &str, span: Span, unix_ms: i64) -> i64 {
        self.bucket_at(site, span, self.local_date(site, unix_ms), unix_ms)
    }

    /// The buckets of every span holding `unix_ms` for `site` (the local date found once).
    fn buckets(&self, site: &str, unix_ms: i64) -> [(Span, i64); 4] {
        let date = self.local_date(site, unix_ms);
        Span::ALL.map(|span| (span, self.bucket_at(site, span, date, unix_ms)))
    }

    /// Start of the bucket of `span` holding `unix_ms`, whose local date is `date`.
    fn bucket_at(&self, site: &str, span: Span, date: NaiveDate, unix_ms: i64) -> i64 {
        match span {
            Span::Quarter => bucket_start(unix_ms),
            Span::Day => self.date_start(site, date),
            Span::Week => self.date_start(
                site,
                date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            ),
            Span::Month => self.date_start(site, date.with_day(1).unwrap_or(date)),
        }
    }
}

/// Every site in UTC (tests, and sites whose zone is UTC).
pub struct UtcCalendar;

impl LocalCalendar for UtcCalendar {
    fn local_date(&self, _site: &str, unix_ms: i64) -> NaiveDate {
        DateTime::from_timestamp_millis(unix_ms)
            .unwrap_or_default()
            .date_naive()
    }

    fn date_start(&self, _site: &str, date: NaiveDate) -> i64 {
        date.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
    }
}

/// A rollup row. Rows are written in key order (so that two writers lock them in one order); the
/// fields are compared in the order declared, which puts the ones that tell a batch's rows apart
/// cheaply first and the site, usually the same for a whole batch, last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    pub bucket_ms: i64,
    pub span: Span,
    pub property: String,
    pub value: String,
    pub site: String,
}

/// What a batch adds to one row.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    pub pageviews: i64,
    /// Custom events (not page views, not engagement pings).
    pub events: i64,
    pub visits: i64,
    pub bounces: i64,
    pub duration_ms: i64,
    pub visitors: VisitorSketch,
}

impl Delta {
    pub fn add(&mut self, other: &Delta) {
        self.pageviews += other.pageviews;
        self.events += other.events;
        self.visits += other.visits;
        self.bounces += other.bounces;
        self.duration_ms += other.duration_ms;
        self.visitors.merge(&other.visitors);
    }

    /// Whether applying this delta changes nothing.
    pub fn is_noop(&self) -> bool {
        self.pageviews == 0
            && self.events == 0
            && self.visits == 0
            && self.bounces == 0
            && self.duration_ms == 0
            && self.visitors.is_empty()
    }
}

/// The deltas of a batch, ordered by row key (the order rows are written in).
#[derive(Debug, Clone)]
pub struct Rollup {
    pub rows: BTreeMap<RowKey, Delta>,
    /// Scratch key for lookups (see [`Rollup::change_row`]).
    probe: RowKey,
}

impl Default for Rollup {
    fn default() -> Self {
        Self::from_rows(BTreeMap::new())
    }
}

impl Rollup {
    pub fn from_rows(rows: BTreeMap<RowKey, Delta>) -> Self {
        let probe = RowKey {
            site: String::new(),
            span: Span::Quarter,
            bucket_ms: 0,
            property: String::new(),
            value: String::new(),
        };
        Self { rows, probe }
    }

    /// The deltas of a batch: its new events, and taking out the closed sessions they reopened.
    /// (The sessions the batch adds are open: they count once closed.)
    pub fn of_batch(
        new_events: &[Event],
        transition: &Transition,
        calendar: &impl LocalCalendar,
    ) -> Self {
        let mut rollup = Rollup::of_events(new_events, calendar);
        rollup.take_out_reopened(transition, calendar);
        rollup
    }

    /// The first part of [`Rollup::of_batch`], which needs no sessions: the new events' deltas
    /// to the event rows. (All of a batch's new visitors are here: taking out a reopened visit
    /// adds none.)
    pub fn of_events(new_events: &[Event], calendar: &impl LocalCalendar) -> Self {
        let mut rollup = Rollup::default();
        for event in new_events {
            rollup.add_event(event, calendar);
        }
        rollup
    }

    /// The second part of [`Rollup::of_batch`]: takes out the contributions of the closed
    /// sessions the batch reopened, and drops the rows left with nothing to change.
    pub fn take_out_reopened(&mut self, transition: &Transition, calendar: &impl LocalCalendar) {
        for session in transition.removed.iter().filter(|s| s.closed) {
            self.add_visit(session, -1, calendar);
        }
        self.rows.retain(|_, delta| !delta.is_noop());
    }

    /// The deltas of closing these (open) sessions.
    pub fn of_closed(sessions: &[Session], calendar: &impl LocalCalendar) -> Self {
        let mut rollup = Rollup::default();
        for session in sessions {
            rollup.add_visit(session, 1, calendar);
        }
        rollup
    }

    /// An event's contribution to the event rows. Engagement pings have none.
    pub fn add_event(&mut self, event: &Event, calendar: &impl LocalCalendar) {
        if event.is_engagement() {
            return;
        }
        let pageview = event.is_pageview();
        let buckets = calendar.buckets(&event.site, event.timestamp_ms);
        let mut touch = |property: &str, value: &str| {
            for (span, bucket_ms) in buckets {
                self.change_row(&event.site, span, bucket_ms, property, value, |delta| {
                    if pageview {
                        delta.pageviews += 1;
                    } else {
                        delta.events += 1;
                    }
                    delta.visitors.insert(event.visitor_id);
                });
            }
        };
        touch(TOTAL, "");
        touch("event:page", &event.pathname);
        touch("event:name", &event.name);
        touch("event:hostname", &event.hostname);
        for (key, value) in &event.props {
            touch(&format!("event:props:{key}"), value);
        }
    }

    /// Adds (`sign` 1) or removes (`sign` -1) a session's contribution to the visit rows.
    /// Sessions that are not visits (only engagement pings) contribute nothing.
    pub fn add_visit(&mut self, session: &Session, sign: i64, calendar: &impl LocalCalendar) {
        if !session.is_visit() {
            return;
        }
        let buckets = calendar.buckets(&session.site, session.start_ms);
        let attrs = session.attrs.value.properties();
        let entry_exit = [
            ("visit:entry_page", session.entry_page()),
            ("visit:exit_page", session.exit_page()),
        ];
        let properties = [(VISITS, "")].into_iter().chain(attrs).chain(entry_exit);
        for (property, value) in properties {
            for (span, bucket_ms) in buckets {
                self.change_row(&session.site, span, bucket_ms, property, value, |delta| {
                    delta.visits += sign;
                    delta.bounces += sign * i64::from(session.is_bounce());
                    delta.duration_ms += sign * session.duration_ms();
                    delta.pageviews += sign * session.pageviews;
                    delta.events += sign * session.events;
                    if sign > 0 {
                        delta.visitors.insert(session.visitor_id);
                    }
                });
            }
        }
    }

    /// Runs `change` on the row's delta, creating it if missing. The key is built in a reused
    /// scratch key, so folding a batch allocates once per row, not once per event and row.
    fn change_row(
        &mut self,
        site: &str,
        span: Span,
        bucket_ms: i64,
        property: &str,
        value: &str,
        change: impl FnOnce(&mut Delta),
    ) {
        let probe = &mut self.probe;
        probe.site.clear();
        probe.site.push_str(site);
        probe.span = span;
        probe.bucket_ms = bucket_ms;
        probe.property.clear();
        probe.property.push_str(property);
        probe.value.clear();
        probe.value.push_str(value);
        if let Some(delta) = self.rows.get_mut(probe) {
            change(delta);
            return;
        }
        change(self.rows.entry(probe.clone()).or_default());
    }

    /// Folds another batch's deltas into these.
    pub fn merge(&mut self, other: &Rollup) {
        for (key, delta) in &other.rows {
            self.rows.entry(key.clone()).or_default().add(delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::bucket::BUCKET_MS;
    use crate::session::plan;
    use crate::test_events::{event, on_page};

    fn key(site: &str, bucket_ms: i64, property: &str, value: &str) -> RowKey {
        RowKey {
            site: site.into(),
            span: Span::Quarter,
            bucket_ms,
            property: property.into(),
            value: value.into(),
        }
    }

    #[test]
    fn event_rows_count_pageviews_custom_events_and_visitors() {
        let t = 1_700_000_000_000 - 1_700_000_000_000 % BUCKET_MS;
        let mut signup = event("a.com", "signup", t + 2, 2);
        signup.props.insert("plan".into(), "pro".into());
        let events = [
            on_page(event("a.com", "pageview", t, 1), "/x"),
            event("a.com", "pageview", t + 1, 1),
            signup,
            event("a.com", "engagement", t + 3, 3),
            event("a.com", "pageview", t + BUCKET_MS, 1),
            event("b.com", "pageview", t, 1),
        ];
        let rollup = Rollup::of_batch(&events, &Transition::default(), &UtcCalendar);
        let total = &rollup.rows[&key("a.com", t, TOTAL, "")];
        assert_eq!((total.pageviews, total.events), (2, 1));
        assert_eq!(
            total.visitors.count(),
            2,
            "the engagement ping's visitor is not counted"
        );
        let x = &rollup.rows[&key("a.com", t, "event:page", "/x")];
        assert_eq!((x.pageviews, x.events), (1, 0));
        let plan = &rollup.rows[&key("a.com", t, "event:props:plan", "pro")];
        assert_eq!((plan.pageviews, plan.events), (0, 1));
        assert_eq!(
            rollup.rows[&key("a.com", t, "event:name", "signup")].events,
            1
        );
        assert_eq!(
            rollup.rows[&key("a.com", t + BUCKET_MS, TOTAL, "")].pageviews,
            1
        );
        assert_eq!(rollup.rows[&key("b.com", t, TOTAL, "")].pageviews, 1);
    }

    #[test]
    fn a_merge_replaces_two_visits_by_one() {
        let t = 1_700_000_000_000 - 1_700_000_000_000 % BUCKET_MS;
        let gap = crate::session::SESSION_GAP_MS;
        let first = [on_page(event("a.com", "pageview", t, 1), "/a")];
        let second = [on_page(
            event("a.com", "pageview", t + gap + 20 * 60_000, 1),
            "/b",
        )];
        let bridge = [event("a.com", "pageview", t + 25 * 60_000, 1)];
        let mut stored: Vec<Session> = Vec::new();
        let mut total = Rollup::default();
        for batch in [&first[..], &second[..], &bridge[..]] {
            let transition = plan(&stored, batch);
            total.merge(&Rollup::of_batch(batch, &transition, &UtcCalendar));
            stored.retain(|s| !transition.removed.contains(s));
            stored.extend(transition.added);
            // Everything goes quiet between batches: the open sessions close.
            let open: Vec<Session> = stored.iter().filter(|s| !s.closed).cloned().collect();
            total.merge(&Rollup::of_closed(&open, &UtcCalendar));
            for s in &mut stored {
                s.closed = true;
            }
        }
        assert_eq!(stored.len(), 1);
        let visits: i64 = total
            .rows
            .iter()
            .filter(|(k, _)| k.property == VISITS && k.span == Span::Quarter)
            .map(|(_, d)| d.visits)
            .sum();
        assert_eq!(visits, 1);
        let bounces: i64 = total
            .rows
            .iter()
            .filter(|(k, _)| k.property == VISITS && k.span == Span::Quarter)
            .map(|(_, d)| d.bounces)
            .sum();
        assert_eq!(bounces, 0);
        let entry = total.rows[&key("a.com", t, "visit:entry_page", "/a")].visits;
        let exit = &total.rows[&key("a.com", t, "visit:exit_page", "/b")];
        assert_eq!((entry, exit.visits, exit.pageviews), (1, 1, 3));
        assert_eq!(exit.duration_ms, gap + 20 * 60_000);
        let stale_exit: i64 = total
            .rows
            .iter()
            .filter(|(k, _)| k.property == "visit:exit_page" && k.value == "/a")
            .map(|(_, d)| d.visits)
            .sum();
        assert_eq!(stale_exit, 0, "the first visit's exit page was replaced");
    }

    proptest! {
        /// Counters after applying the batches one by one equal the counters of the final sessions
        /// and events, whatever the split and order.
        #[test]
        fn counters_do_not_depend_on_batching_or_order(
            specs in proptest::collection::vec((0u64..3, 0usize..3, 0i64..(6 * BUCKET_MS)), 1..50),
            cuts in proptest::collection::vec(0usize..50, 0..5),
            reverse in any::<bool>(),
            close_after in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let names = ["pageview", "signup", "engagement"];
            let mut events: Vec<Event> = specs.iter()
                .map(|(v, n, t)| event("a.com", names[*n], 1_700_000_000_000 + t, *v))
                .collect();
            if reverse {
                events.reverse();
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
            cuts.extend([0, events.len()]);
            cuts.sort_unstable();
            let mut stored: Vec<Session> = Vec::new();
            let mut applied = Rollup::default();
            let close = |stored: &mut Vec<Session>, applied: &mut Rollup| {
                let open: Vec<Session> = stored.iter().filter(|s| !s.closed).cloned().collect();
                applied.merge(&Rollup::of_closed(&open, &UtcCalendar));
                for s in stored.iter_mut() {
                    s.closed = true;
                }
            };
            for (i, w) in cuts.windows(2).enumerate() {
                let batch = &events[w[0]..w[1]];
                let transition = plan(&stored, batch);
                applied.merge(&Rollup::of_batch(batch, &transition, &UtcCalendar));
                stored.retain(|s| !transition.removed.contains(s));
                stored.extend(transition.added);
                if close_after.get(i).copied().unwrap_or(false) {
                    close(&mut stored, &mut applied);
                }
            }
            close(&mut stored, &mut applied);
            let mut expected = Rollup::default();
            for e in &events {
                expected.add_event(e, &UtcCalendar);
            }
            for s in &stored {
                expected.add_visit(s, 1, &UtcCalendar);
            }
            let counters = |r: &Rollup| -> BTreeMap<RowKey, [i64; 5]> {
                r.rows.iter()
                    .map(|(k, d)| (k.clone(), [d.pageviews, d.events, d.visits, d.bounces, d.duration_ms]))
                    .filter(|(_, c)| c.iter().any(|&x| x != 0))
                    .collect()
            };
            prop_assert_eq!(counters(&applied), counters(&expected));

            // A day, week or month row holds exactly the sum of its 15-minute rows.
            for span in [Span::Day, Span::Week, Span::Month] {
                let mut quarters_summed: BTreeMap<RowKey, [i64; 5]> = BTreeMap::new();
                for (key, c) in counters(&applied) {
                    if key.span == Span::Quarter {
                        let bucket_ms = UtcCalendar.bucket_of(&key.site, span, key.bucket_ms);
                        let sum = quarters_summed.entry(RowKey { span, bucket_ms, ..key }).or_default();
                        for (s, x) in sum.iter_mut().zip(c) {
                            *s += x;
                        }
                    }
                }
                let rows: BTreeMap<RowKey, [i64; 5]> =
                    counters(&applied).into_iter().filter(|(k, _)| k.span == span).collect();
                prop_assert_eq!(rows, quarters_summed);
            }
        }
    }
}
