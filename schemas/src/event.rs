//! The versioned event envelope: what the collector knows about one page view or custom event.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Wire format version written by this build. Adding an optional field (with `#[serde(default)]`)
/// does not change it; a change an older reader would misread does, and readers refuse versions
/// newer than the one they know.
pub const SCHEMA_VERSION: u16 = 1;

/// Upper bounds every stored event respects (the collector rejects longer input before it gets here).
pub const MAX_SITE_LEN: usize = 253;
pub const MAX_NAME_LEN: usize = 120;
pub const MAX_URL_LEN: usize = 2048;

/// Unique, time-ordered event id (UUIDv7). Doubles as the JetStream `Nats-Msg-Id` and the archive's
/// `_id`, which is what makes publishing and archiving idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// A new id whose leading bits are the given Unix time in milliseconds.
    pub fn new_at(unix_ms: i64) -> Self {
        let ms = u64::try_from(unix_ms).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            ms / 1000,
            ((ms % 1000) * 1_000_000) as u32,
        );
        Self(Uuid::new_v7(ts))
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for EventId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// One accepted event, as published to the stream. Fields are encoded by name, so readers skip
/// fields they do not know and fill fields an older writer did not send from their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version the writer used.
    pub v: u16,
    pub id: EventId,
    /// Normalised site domain (lower case, no `www.`), as registered with `beacon site add`.
    pub site: String,
    /// `pageview`, `engagement` or a custom event name.
    pub name: String,
    /// When the event happened (Unix ms). Equal to `received_at_ms` for live traffic; imports keep
    /// their historical time here.
    pub timestamp_ms: i64,
    /// When the collector accepted it (Unix ms).
    pub received_at_ms: i64,
    pub url: String,
    pub hostname: String,
    pub pathname: String,
    #[serde(default)]
    pub referrer: Option<String>,
    #[serde(default)]
    pub props: BTreeMap<String, String>,
    /// Keyed hash of (daily salt, site, client address, user agent). Never reversible to an IP.
    pub visitor_id: u64,
    /// `false` for events that must not end a bounce (Plausible's `i: false`).
    #[serde(default = "default_true")]
    pub interactive: bool,
    #[serde(default)]
    pub enrichment: Enrichment,
    /// Visitor id under the previous day's salt, so a visit crossing midnight stays one visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_visitor_id: Option<u64>,
    /// Engagement events: deepest scroll position reached on the page, percent (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scroll_depth: Option<u8>,
    /// Engagement events: time the page was visible and focused since the last engagement, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement_ms: Option<u64>,
    /// Revenue attached to a goal (Plausible's `$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Revenue>,
}

/// A monetary amount as sent (decimal string) in an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revenue {
    pub amount: String,
    pub currency: String,
}

fn default_true() -> bool {
    true
}

/// Derived attributes the collector adds at ingest. All optional: absent means unknown.
/// (`source` is the attributed traffic source; the event's `referrer` is already normalised.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Enrichment {
    pub source: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    pub browser: Option<String>,
    pub browser_version: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub device: Option<String>,
    pub country: Option<String>,
}

/// Why a decoded event cannot be processed; names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: field `{field}` {problem}")]
pub struct InvalidEvent {
    pub field: &'static str,
    pub problem: &'static str,
}

impl Event {
    /// Checks the invariants every consumer relies on.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        let check = |ok: bool, field, problem| {
            if ok {
                Ok(())
            } else {
                Err(InvalidEvent { field, problem })
            }
        };
        check(!self.site.is_empty(), "site", "is empty")?;
        check(self.site.len() <= MAX_SITE_LEN, "site", "is too long")?;
        check(!self.name.is_empty(), "name", "is empty")?;
        check(self.name.len() <= MAX_NAME_LEN, "name", "is too long")?;
        check(self.url.len() <= MAX_URL_LEN, "url", "is too long")?;
        check(
            self.pathname.starts_with('/'),
            "pathname",
            "does not start with '/'",
        )?;
        check(
            self.timestamp_ms > 0,
            "timestamp_ms",
            "is not a positive Unix time",
        )?;
        Ok(())
    }

    /// True for the tracker's engagement pings (time on page, scroll depth): never a custom event.
    pub fn is_engagement(&self) -> bool {
        self.name == "engagement"
    }

    /// True for page views (the only events that count as `pageviews`).
    pub fn is_pageview(&self) -> bool {
        self.name == "pageview"
    }
}
