//! Generators of hostile envelopes for property tests (the `arbitrary` feature): the envelope
//! check's own test and the consumers' test against real servers draw from the same alphabet.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::{Enrichment, Event, EventId, SCHEMA_VERSION};

/// Text from a hostile alphabet: plain letters, multi-byte letters, and control characters,
/// sometimes long.
pub fn hostile_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        6 => proptest::char::range('a', 'z'),
        1 => Just('é'),
        1 => Just('日'),
        1 => Just('\u{0}'),
        1 => Just('\u{1b}'),
        1 => Just('\u{7f}'),
        1 => Just('\u{85}'),
    ];
    // Long text repeats a short sample (cheap to generate), past the 2,000-byte limits.
    (
        proptest::collection::vec(ch, 1..24),
        prop_oneof![8 => Just(1usize), 1 => 80..200usize],
    )
        .prop_map(|(chars, times)| chars.into_iter().collect::<String>().repeat(times))
}

/// An envelope whose every text comes from [`hostile_text`], with 0–3 props and any time
/// (mostly within 1970–9999, sometimes any `i64`). All share one id: set your own.
pub fn hostile_event() -> impl Strategy<Value = Event> {
    (
        hostile_text(),
        hostile_text(),
        hostile_text(),
        proptest::collection::btree_map(hostile_text(), hostile_text(), 0..4),
        proptest::option::of(hostile_text()),
        proptest::option::of(hostile_text()),
        prop_oneof![9 => 1..253_402_300_799_999i64, 1 => any::<i64>()],
    )
        .prop_map(|(site, name, path, props, utm, referrer, ts)| Event {
            v: SCHEMA_VERSION,
            id: EventId::new_at(1_780_000_000_000),
            site,
            name,
            timestamp_ms: ts,
            received_at_ms: 1_780_000_000_000,
            url: format!("https://a.com/{path}"),
            hostname: "a.com".into(),
            pathname: format!("/{path}"),
            referrer,
            props: props.into_iter().collect::<BTreeMap<_, _>>(),
            visitor_id: 1,
            interactive: true,
            enrichment: Enrichment {
                utm_source: utm,
                ..Enrichment::default()
            },
            previous_visitor_id: None,
            scroll_depth: None,
            engagement_ms: None,
            revenue: None,
        })
}
