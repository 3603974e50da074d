//! Events in, rows and sessions out: what the live aggregator would have written for a range of
//! whole local days, computed in one pass with the pipeline's own code (the session rule and the
//! rollup deltas), so a replay can only differ from live aggregation where the events differ.

use beacon_pipeline::rollup::{LocalCalendar, Rollup, Span};
use beacon_pipeline::session::{Session, plan};
use beacon_schemas::Event;

use crate::range::DayRange;

/// The rebuilt state of a range.
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// The range's 15-minute and day rows (week and month rows are summed from the day rows
    /// afterwards, as `calendar_rows` does).
    pub rollup: Rollup,
    /// The sessions that start in the range; `closed` ones are in the visit rows.
    pub sessions: Vec<Session>,
}

/// When the rebuilt sessions count as quiet, and which 15-minute rows are kept.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    /// A session whose events all happened and arrived before this (Unix ms) is closed into the
    /// visit rows; the others stay open, for the aggregator's closing task
    /// (`BEACON_SESSION_CLOSE_AFTER` ago).
    pub quiet_before_ms: i64,
    /// 15-minute rows of buckets before this are not written: compaction has dropped those of
    /// older days (`BEACON_ROLLUP_FINE_RETENTION`), leaving their day rows.
    pub fine_from_ms: i64,
}

/// Rebuilds `range` from `events`: every event of the site the range needs — those in the range
/// and those within [`crate::range::CONTEXT_MS`] around it — each once.
pub fn rebuild(
    range: &DayRange,
    events: &[Event],
    calendar: &impl LocalCalendar,
    cutoffs: Cutoffs,
) -> Rebuilt {
    let events: Vec<Event> = events
        .iter()
        .filter(|e| e.site == range.site)
        .filter(|e| (range.read_from_ms()..range.read_to_ms()).contains(&e.timestamp_ms))
        .cloned()
        .collect();
    let mut rollup = Rollup::default();
    for event in events.iter().filter(|e| range.contains(e.timestamp_ms)) {
        rollup.add_event(event, calendar);
    }
    let transition = plan(std::iter::empty(), &events);
    // When each session was last touched: the latest arrival of its events. The live closing
    // task closes a visit nobody touched for a while (wall clock), so a visit whose events
    // arrived lately (live traffic, an import of old events) stays open here too; closing it by
    // its event times would let the next live event reopen it.
    let mut touched_ms = vec![i64::MIN; transition.added.len()];
    for (&event, &session) in &transition.event_session {
        touched_ms[session] = touched_ms[session].max(events[event].received_at_ms);
    }
    let mut sessions: Vec<Session> = Vec::new();
    for (mut session, touched_ms) in transition.added.into_iter().zip(touched_ms) {
        if !range.contains(session.start_ms) {
            continue;
        }
        session.closed = touched_ms.max(session.end_ms) < cutoffs.quiet_before_ms;
        if session.closed {
            rollup.add_visit(&session, 1, calendar);
        }
        sessions.push(session);
    }
    rollup.rows.retain(|key, delta| match key.span {
        Span::Quarter => key.bucket_ms >= cutoffs.fine_from_ms && !delta.is_noop(),
        Span::Day => !delta.is_noop(),
        Span::Week | Span::Month => false,
    });
    sessions.sort_by_key(|s| (s.start_ms, s.visitor_id));
    Rebuilt { rollup, sessions }
}

#[cfg(test)]
#[path = "rebuild_tests.rs"]
mod tests;
