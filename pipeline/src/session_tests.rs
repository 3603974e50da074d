//! Tests of the session rule: the same sessions whatever the batching and order.

use proptest::prelude::*;

use super::*;
use crate::test_events::{event, on_page};

const T: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

/// Applies the batches one after another, as the aggregator does with its stored sessions.
fn apply(batches: &[&[Event]]) -> Vec<Session> {
    let mut stored: Vec<Session> = Vec::new();
    for batch in batches {
        let transition = plan(&stored, batch);
        for removed in &transition.removed {
            let at = stored.iter().position(|s| s == removed);
            assert!(at.is_some(), "removed a session that was not stored");
            stored.swap_remove(at.unwrap_or_default());
        }
        stored.extend(transition.added);
    }
    stored.sort_by_key(|s| (s.site.clone(), s.visitor_id, s.start_ms));
    stored
}

#[test]
fn a_gap_of_thirty_minutes_starts_a_new_visit() {
    let events = [
        event("a.com", "pageview", T, 1),
        event("a.com", "pageview", T + 29 * MIN, 1),
        event("a.com", "pageview", T + 58 * MIN, 1),
        event("a.com", "pageview", T + 88 * MIN, 1),
    ];
    let sessions = apply(&[&events]);
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        (sessions[0].pageviews, sessions[0].duration_ms()),
        (3, 58 * MIN)
    );
    assert_eq!((sessions[1].pageviews, sessions[1].duration_ms()), (1, 0));
    assert!(sessions[1].is_bounce() && !sessions[0].is_bounce());
}

#[test]
fn a_late_first_page_view_becomes_the_entry_page() {
    let later = [on_page(
        event("a.com", "pageview", T + 5 * MIN, 1),
        "/pricing",
    )];
    let mut first = on_page(event("a.com", "pageview", T, 1), "/");
    first.enrichment.source = Some("Google".into());
    let sessions = apply(&[&later, &[first]]);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].entry_page(), "/");
    assert_eq!(sessions[0].exit_page(), "/pricing");
    assert_eq!(sessions[0].attrs.value.source, "Google");
    assert_eq!(sessions[0].start_ms, T);
}

#[test]
fn a_visit_across_midnight_continues_under_the_new_visitor_id() {
    let before = [event("a.com", "pageview", T, 7)];
    let mut after = event("a.com", "pageview", T + 10 * MIN, 8);
    after.previous_visitor_id = Some(7);
    let sessions = apply(&[&before, &[after]]);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].visitor_id, 7);
    assert_eq!(sessions[0].pageviews, 2);
}

#[test]
fn engagement_pings_extend_a_visit_but_are_not_one() {
    let ping_only = apply(&[&[event("a.com", "engagement", T, 1)]]);
    assert_eq!(ping_only.len(), 1);
    assert!(!ping_only[0].is_visit());

    let events = [
        event("a.com", "pageview", T, 1),
        event("a.com", "engagement", T + 3 * MIN, 1),
    ];
    let sessions = apply(&[&events[1..], &events[..1]]);
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].is_visit() && sessions[0].is_bounce());
    assert_eq!(sessions[0].duration_ms(), 3 * MIN);
    assert_eq!(sessions[0].interactions, 1);
}

#[test]
fn visitors_and_sites_never_share_a_session() {
    let events = [
        event("a.com", "pageview", T, 1),
        event("a.com", "pageview", T + MIN, 2),
        event("b.com", "pageview", T + MIN, 1),
    ];
    assert_eq!(apply(&[&events]).len(), 3);
}

#[test]
fn untouched_stored_sessions_are_left_alone() {
    let old = apply(&[&[event("a.com", "pageview", T, 1)]]);
    let transition = plan(&old, &[event("a.com", "pageview", T + 31 * MIN, 1)]);
    assert!(transition.removed.is_empty());
    assert_eq!(transition.added.len(), 1);
    assert_eq!(transition.event_session[&0], 0);
}

proptest! {
    #[test]
    fn sessions_do_not_depend_on_batching_or_order(
        specs in proptest::collection::vec((0u64..3, 0usize..3, 0i64..(4 * 60), 0usize..3), 1..40),
        cuts in proptest::collection::vec(0usize..40, 0..6),
        seed in any::<u64>(),
    ) {
        let names = ["pageview", "signup", "engagement"];
        let pages = ["/", "/a", "/b"];
        let events: Vec<Event> = specs.iter()
            .map(|(v, n, minute, p)| on_page(event("a.com", names[*n], T + minute * MIN, *v), pages[*p]))
            .collect();
        let expected = apply(&[&events]);

        // A deterministic shuffle, then batches at the cuts.
        let mut shuffled = events.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(shuffled.len())).collect();
        cuts.extend([0, shuffled.len()]);
        cuts.sort_unstable();
        let batches: Vec<&[Event]> = cuts.windows(2).map(|w| &shuffled[w[0]..w[1]]).collect();
        prop_assert_eq!(apply(&batches), expected);
    }
}

/// The case as a new user met it: a landing page from Google and the next page in the
/// same millisecond (history with second resolution). The visit enters on the page that brought
/// it and keeps that page's source, whatever the arrival order or batching.
#[test]
fn events_of_one_millisecond_give_entry_page_and_source_from_one_event() {
    let mut landing = on_page(event("a.com", "pageview", T, 1), "/landing");
    landing.referrer = Some("https://www.google.com/".into());
    landing.enrichment.source = Some("Google".into());
    // "/next" sorts after "/landing", and "" (no source) before "Google": a rule that fell back
    // on the values would take the entry page from one event and the source from the other.
    let next = on_page(event("a.com", "pageview", T, 1), "/next");
    for batches in [
        vec![vec![landing.clone(), next.clone()]],
        vec![vec![next.clone(), landing.clone()]],
        vec![vec![next.clone()], vec![landing.clone()]],
        vec![vec![landing.clone()], vec![next.clone()]],
    ] {
        let batches: Vec<&[Event]> = batches.iter().map(Vec::as_slice).collect();
        let sessions = apply(&batches);
        assert_eq!(sessions.len(), 1);
        let visit = &sessions[0];
        assert_eq!(visit.entry_page(), "/landing");
        assert_eq!(visit.attrs.value.source, "Google");
        assert_eq!(visit.exit_page(), "/next");
        assert_eq!(visit.pageviews, 2);
    }
}

/// Without a source to tell them apart, the event id decides, and it decides every property:
/// the entry page and the attributes come from the same event.
#[test]
fn the_event_id_breaks_other_ties_for_every_property_alike() {
    let mut a = on_page(event("a.com", "pageview", T, 1), "/a");
    a.enrichment.browser = Some("Firefox".into());
    let mut b = on_page(event("a.com", "pageview", T, 1), "/b");
    b.enrichment.browser = Some("Chrome".into());
    for (x, y) in [(&a, &b), (&b, &a)] {
        let sessions = apply(&[std::slice::from_ref(x), std::slice::from_ref(y)]);
        let first = if EventRank::tie(&a) < EventRank::tie(&b) {
            &a
        } else {
            &b
        };
        assert_eq!(sessions[0].entry_page(), first.pathname);
        assert_eq!(
            Some(sessions[0].attrs.value.browser.as_str()),
            first.enrichment.browser.as_deref()
        );
    }
}
