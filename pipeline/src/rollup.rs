//! Rollup deltas: what a set of events adds to the per-site, per-bucket counters.
//!
//! Deltas are sums, so folding a set of events gives the same result in any order and any batch
//! split; the aggregator applies each event's delta exactly once (see ARCHITECTURE.md).

use std::collections::BTreeMap;

use beacon_schemas::Event;

use crate::bucket::bucket_start;

/// Counters of one (site, bucket) row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pageviews: i64,
    /// Custom events (not page views, not engagement pings).
    pub events: i64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.pageviews += other.pageviews;
        self.events += other.events;
    }
}

/// Row key: (site, bucket start in Unix ms). Ordered, so rows are always written in the same
/// order and concurrent aggregators cannot deadlock on them.
pub type RowKey = (String, i64);

/// Sums the events into per-row deltas.
pub fn fold_counts<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<RowKey, Counts> {
    let mut rows: BTreeMap<RowKey, Counts> = BTreeMap::new();
    for event in events {
        let delta = match event.name.as_str() {
            "pageview" => Counts {
                pageviews: 1,
                events: 0,
            },
            "engagement" => continue,
            _ => Counts {
                pageviews: 0,
                events: 1,
            },
        };
        rows.entry((event.site.clone(), bucket_start(event.timestamp_ms)))
            .or_default()
            .add(delta);
    }
    rows
}

#[cfg(test)]
mod tests {
    use beacon_schemas::{Enrichment, EventId, SCHEMA_VERSION};
    use proptest::prelude::*;

    use super::*;
    use crate::bucket::BUCKET_MS;

    fn event(site: &str, name: &str, ts: i64) -> Event {
        Event {
            v: SCHEMA_VERSION,
            id: EventId::new_at(ts),
            site: site.into(),
            name: name.into(),
            timestamp_ms: ts,
            received_at_ms: ts,
            url: format!("https://{site}/"),
            hostname: site.into(),
            pathname: "/".into(),
            referrer: None,
            props: Default::default(),
            visitor_id: 1,
            interactive: true,
            enrichment: Enrichment::default(),
            previous_visitor_id: None,
            scroll_depth: None,
            engagement_ms: None,
            revenue: None,
        }
    }

    #[test]
    fn counts_pageviews_and_custom_events_per_bucket() {
        let t = 1_700_000_000_000 - 1_700_000_000_000 % BUCKET_MS;
        let events = [
            event("a.com", "pageview", t),
            event("a.com", "pageview", t + 1),
            event("a.com", "signup", t + 2),
            event("a.com", "engagement", t + 3),
            event("a.com", "pageview", t + BUCKET_MS),
            event("b.com", "pageview", t),
        ];
        let rows = fold_counts(&events);
        assert_eq!(
            rows[&("a.com".to_string(), t)],
            Counts {
                pageviews: 2,
                events: 1
            }
        );
        assert_eq!(
            rows[&("a.com".to_string(), t + BUCKET_MS)],
            Counts {
                pageviews: 1,
                events: 0
            }
        );
        assert_eq!(
            rows[&("b.com".to_string(), t)],
            Counts {
                pageviews: 1,
                events: 0
            }
        );
        assert_eq!(rows.len(), 3);
    }

    proptest! {
        #[test]
        fn any_batch_split_in_any_order_gives_the_same_rows(
            specs in proptest::collection::vec((0usize..3, 0usize..3, 0i64..(4 * BUCKET_MS)), 0..60),
            split in 0usize..60,
        ) {
            let sites = ["a.com", "b.com", "c.org"];
            let names = ["pageview", "signup", "engagement"];
            let events: Vec<Event> = specs.iter()
                .map(|(s, n, t)| event(sites[*s], names[*n], 1_700_000_000_000 + t))
                .collect();
            let whole = fold_counts(&events);
            let split = split.min(events.len());
            let mut merged = fold_counts(events[split..].iter().rev());
            for (key, counts) in fold_counts(&events[..split]) {
                merged.entry(key).or_default().add(counts);
            }
            prop_assert_eq!(whole, merged);
        }
    }
}
