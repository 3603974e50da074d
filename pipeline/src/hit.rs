//! A hit — one page view or custom event as a sender described it, checked but not enriched — and
//! how it becomes an [`Event`]: the one enrichment every way in shares (the collector's endpoints,
//! `beacon import`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use beacon_schemas::{Enrichment, Event, EventId, Revenue, SCHEMA_VERSION};

use crate::referrer::attribute;
use crate::user_agent::UserAgentInfo;

/// One validated hit, before enrichment.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub site: String,
    pub name: String,
    pub url: String,
    pub hostname: String,
    pub pathname: String,
    pub referrer: Option<String>,
    pub props: BTreeMap<String, String>,
    pub interactive: bool,
    /// Sender-chosen id (server-side senders, imports), making their retries idempotent.
    pub id: Option<EventId>,
    /// Event time for server-side senders and imports; `None` = now.
    pub timestamp_ms: Option<i64>,
    pub scroll_depth: Option<u8>,
    pub engagement_ms: Option<u64>,
    pub revenue: Option<Revenue>,
    /// Server-side senders forward their visitor's address and user agent.
    pub client: Option<Client>,
}

/// Who sent a hit: used for the visitor hash, the bot filter and the country, then forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: String,
}

/// The visitor a hit is counted for: its id, and its id under the previous day's salt (which
/// links a visit across midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitorIds {
    pub today: u64,
    pub previous: Option<u64>,
}

/// What enrichment learnt about the sender, beside the hit itself.
#[derive(Debug, Clone, Default)]
pub struct SenderFacts {
    pub agent: UserAgentInfo,
    pub country: Option<String>,
}

impl Hit {
    /// A page view or event with only the required parts; the rest default.
    pub fn new(
        site: String,
        name: String,
        url: String,
        hostname: String,
        pathname: String,
    ) -> Self {
        Self {
            site,
            name,
            url,
            hostname,
            pathname,
            referrer: None,
            props: BTreeMap::new(),
            interactive: true,
            id: None,
            timestamp_ms: None,
            scroll_depth: None,
            engagement_ms: None,
            revenue: None,
            client: None,
        }
    }

    /// The enriched event: source and UTM tags from the URL and referrer, browser, OS and device
    /// from the user agent, the visitor and the country as given. Received at `now_ms`, which is
    /// also its time unless the hit has one. The caller checks it with `Event::validate`.
    pub fn into_event(self, visitor: VisitorIds, facts: SenderFacts, now_ms: i64) -> Event {
        let attribution = attribute(&self.url, self.referrer.as_deref(), &self.hostname);
        let timestamp_ms = self.timestamp_ms.unwrap_or(now_ms);
        let agent = facts.agent;
        Event {
            v: SCHEMA_VERSION,
            id: self.id.unwrap_or_else(|| EventId::new_at(timestamp_ms)),
            visitor_id: visitor.today,
            previous_visitor_id: visitor.previous,
            site: self.site,
            name: self.name,
            timestamp_ms,
            received_at_ms: now_ms,
            url: self.url,
            hostname: self.hostname,
            pathname: self.pathname,
            referrer: attribution.referrer,
            props: self.props,
            interactive: self.interactive,
            enrichment: Enrichment {
                source: attribution.source,
                utm_source: attribution.utm_source,
                utm_medium: attribution.utm_medium,
                utm_campaign: attribution.utm_campaign,
                utm_content: attribution.utm_content,
                utm_term: attribution.utm_term,
                browser: agent.browser,
                browser_version: agent.browser_version,
                os: agent.os,
                os_version: agent.os_version,
                device: agent.device,
                country: facts.country,
            },
            scroll_depth: self.scroll_depth,
            engagement_ms: self.engagement_ms,
            revenue: self.revenue,
        }
    }
}
