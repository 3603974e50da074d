//! Events for unit tests (of this crate, and of others with the `test-support` feature).

use beacon_schemas::{Enrichment, Event, EventId, SCHEMA_VERSION};

/// An interactive event of visitor `visitor` on `/` of `site` at `ts`.
pub fn event(site: &str, name: &str, ts: i64, visitor: u64) -> Event {
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
        visitor_id: visitor,
        interactive: name != "engagement",
        enrichment: Enrichment::default(),
        previous_visitor_id: None,
        scroll_depth: None,
        engagement_ms: None,
        revenue: None,
    }
}

/// The same event on `path`.
pub fn on_page(mut event: Event, path: &str) -> Event {
    event.url = format!("https://{}{path}", event.site);
    event.pathname = path.into();
    event
}
