//! The cache's rules without a database: when it answers, what it answers, when it forgets.

use std::collections::HashMap;

use beacon_pipeline::session::Session;
use beacon_schemas::Event;

use super::{BatchRecord, SessionCache};

const SITE: &str = "cache.example";
const T0: i64 = 1_780_000_000_000;
const MINUTE: i64 = 60_000;

fn pageview(visitor: u64, ts: i64) -> Event {
    beacon_pipeline::test_events::event(SITE, "pageview", ts, visitor)
}

fn session(visitor: u64, start: i64, end: i64) -> Session {
    let mut s = Session::of_event(&pageview(visitor, start));
    s.absorb(&Session::of_event(&pageview(visitor, end)));
    s
}

/// Records a batch that found `before` for visitor 1 and left `after`.
fn record(
    cache: &SessionCache,
    generation: i64,
    after_ms: i64,
    before: Vec<Session>,
    after: &[Session],
) {
    cache.record(BatchRecord::new(
        SITE,
        generation,
        after_ms,
        HashMap::from([(1, before.clone())]),
        &before,
        after,
    ));
}

#[test]
fn a_site_recorded_at_the_previous_generation_is_answered() {
    let cache = SessionCache::new(100);
    let s = session(1, T0, T0 + MINUTE);
    record(
        &cache,
        7,
        T0 - 30 * MINUTE,
        vec![],
        std::slice::from_ref(&s),
    );

    let known = cache.known(SITE, 8, [1, 2], T0);
    assert_eq!(known.sessions[&1], vec![s]);
    assert_eq!(known.missing, vec![2], "a visitor never recorded is loaded");
}

#[test]
fn a_generation_skipped_means_someone_else_wrote_and_nothing_is_answered() {
    let cache = SessionCache::new(100);
    record(&cache, 7, T0 - 30 * MINUTE, vec![], &[session(1, T0, T0)]);

    let known = cache.known(SITE, 9, [1], T0);
    assert!(known.sessions.is_empty());
    assert_eq!(known.missing, vec![1]);
    assert_eq!(
        cache.known(SITE, 7, [1], T0).missing,
        vec![1],
        "nor an older one"
    );
}

#[test]
fn after_a_gap_only_what_the_gap_batch_loaded_is_answered() {
    let cache = SessionCache::new(100);
    let first = session(1, T0, T0);
    record(
        &cache,
        1,
        T0 - 30 * MINUTE,
        vec![],
        std::slice::from_ref(&first),
    );
    // Generation 2 was another writer's; this batch (3) loaded visitor 2 whole from PostgreSQL.
    let other = session(2, T0, T0);
    cache.record(BatchRecord::new(
        SITE,
        3,
        T0 - 30 * MINUTE,
        HashMap::from([(2, vec![])]),
        &[],
        std::slice::from_ref(&other),
    ));

    let known = cache.known(SITE, 4, [1, 2], T0 - 30 * MINUTE);
    assert_eq!(
        known.missing,
        vec![1],
        "visitor 1's entry predates the other writer"
    );
    assert_eq!(known.sessions[&2], vec![other]);
}

#[test]
fn a_commit_recorded_after_a_later_one_is_ignored() {
    let cache = SessionCache::new(100);
    let later = session(1, T0, T0 + 2 * MINUTE);
    record(&cache, 1, T0 - 30 * MINUTE, vec![], &[session(1, T0, T0)]);
    record(
        &cache,
        3,
        T0 - 30 * MINUTE,
        vec![],
        std::slice::from_ref(&later),
    );
    record(
        &cache,
        2,
        T0 - 30 * MINUTE,
        vec![],
        &[session(1, T0, T0 + MINUTE)],
    );

    assert_eq!(cache.known(SITE, 4, [1], T0).sessions[&1], vec![later]);
}

#[test]
fn events_reaching_behind_the_horizon_are_loaded_and_older_sessions_are_not_answered() {
    let cache = SessionCache::new(100);
    let early = session(1, T0, T0 + MINUTE);
    let late = session(1, T0 + 60 * MINUTE, T0 + 61 * MINUTE);
    record(
        &cache,
        1,
        T0 - 30 * MINUTE,
        vec![],
        &[early.clone(), late.clone()],
    );

    assert_eq!(cache.known(SITE, 2, [1], T0 - 31 * MINUTE).missing, vec![1]);
    let known = cache.known(SITE, 2, [1], T0 + 30 * MINUTE);
    assert_eq!(
        known.sessions[&1],
        vec![late],
        "ended before the bound: not joinable"
    );
}

#[test]
fn removed_sessions_are_forgotten_and_replaced_ones_kept_once() {
    let cache = SessionCache::new(100);
    let a = session(1, T0, T0);
    let b = session(1, T0 + 20 * MINUTE, T0 + 20 * MINUTE);
    record(&cache, 1, T0 - 30 * MINUTE, vec![], &[a.clone(), b.clone()]);
    // A batch merges both into one visit that keeps a's key.
    let mut merged = a.clone();
    merged.absorb(&b);
    merged.absorb(&session(1, T0 + 10 * MINUTE, T0 + 10 * MINUTE));
    record(
        &cache,
        2,
        T0 - 30 * MINUTE,
        vec![a, b],
        std::slice::from_ref(&merged),
    );

    assert_eq!(cache.known(SITE, 3, [1], T0).sessions[&1], vec![merged]);
}

#[test]
fn a_closing_recorded_in_turn_marks_the_cached_session_closed() {
    let cache = SessionCache::new(100);
    let s = session(1, T0, T0);
    record(
        &cache,
        1,
        T0 - 30 * MINUTE,
        vec![],
        std::slice::from_ref(&s),
    );
    let mut closed = s.clone();
    closed.closed = true;
    cache.record_closed(SITE, 2, std::slice::from_ref(&closed));

    assert_eq!(
        cache.known(SITE, 3, [1], T0 - MINUTE).sessions[&1],
        vec![closed]
    );
}

#[test]
fn capacity_zero_answers_nothing() {
    let cache = SessionCache::new(0);
    record(&cache, 1, T0 - 30 * MINUTE, vec![], &[session(1, T0, T0)]);
    assert_eq!(cache.known(SITE, 2, [1], T0).missing, vec![1]);
}
