//! Events for this crate's tests.

use beacon_schemas::{Enrichment, Event, EventId, SCHEMA_VERSION};

/// An interactive page view of `visitor` on `/` of `site` at `ts`.
pub fn pageview(site: &str, visitor: u64, ts: i64) -> Event {
    Event {
        v: SCHEMA_VERSION,
        id: EventId::new_at(ts),
        site: site.into(),
        name: "pageview".into(),
        timestamp_ms: ts,
        received_at_ms: ts,
        url: format!("https://{site}/"),
        hostname: site.into(),
        pathname: "/".into(),
        referrer: None,
        props: Default::default(),
        visitor_id: visitor,
        interactive: true,
        enrichment: Enrichment::default(),
        previous_visitor_id: None,
        scroll_depth: None,
        engagement_ms: None,
        revenue: None,
    }
}
