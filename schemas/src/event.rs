//! The versioned event envelope: what the collector knows about one page view or custom event.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Wire format version written by this build. Adding an optional field (with `#[serde(default)]`)
/// does not change it; a change an older reader would misread does, and readers refuse versions
/// newer than the one they know.
pub const SCHEMA_VERSION: u16 = 1;

use crate::text::{
    MAX_ATTRIBUTE_LEN, MAX_NAME_LEN, MAX_PROP_KEY_LEN, MAX_PROP_VALUE_LEN, MAX_PROPS,
    MAX_REFERRER_LEN, MAX_SITE_LEN, MAX_TIMESTAMP_MS, MAX_URL_LEN, TextProblem,
    check_required_text, check_text,
};

/// Longest engaged time one engagement event may report (Plausible: 30 days).
pub const MAX_ENGAGEMENT_MS: u64 = 30 * 24 * 3600 * 1000;

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

impl Enrichment {
    /// Every attribute with its envelope field name, for checks that treat them alike.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 12] {
        [
            ("enrichment.source", self.source.as_deref()),
            ("enrichment.utm_source", self.utm_source.as_deref()),
            ("enrichment.utm_medium", self.utm_medium.as_deref()),
            ("enrichment.utm_campaign", self.utm_campaign.as_deref()),
            ("enrichment.utm_content", self.utm_content.as_deref()),
            ("enrichment.utm_term", self.utm_term.as_deref()),
            ("enrichment.browser", self.browser.as_deref()),
            (
                "enrichment.browser_version",
                self.browser_version.as_deref(),
            ),
            ("enrichment.os", self.os.as_deref()),
            ("enrichment.os_version", self.os_version.as_deref()),
            ("enrichment.device", self.device.as_deref()),
            ("enrichment.country", self.country.as_deref()),
        ]
    }
}

/// Why a decoded event cannot be processed; names the offending field (a prop by its key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: field `{field}` {problem}")]
pub struct InvalidEvent {
    pub field: String,
    pub problem: String,
}

impl InvalidEvent {
    fn new(field: impl Into<String>, problem: impl ToString) -> Self {
        Self {
            field: field.into(),
            problem: problem.to_string(),
        }
    }
}

/// `Ok` when `ok`, else the problem with `field`.
fn ensure(ok: bool, field: &str, problem: &str) -> Result<(), InvalidEvent> {
    if ok {
        Ok(())
    } else {
        Err(InvalidEvent::new(field, problem))
    }
}

fn text(field: &str, value: &str, max: usize) -> Result<(), InvalidEvent> {
    check_text(value, max).map_err(|p: TextProblem| InvalidEvent::new(field, p))
}

fn required_text(field: &str, value: &str, max: usize) -> Result<(), InvalidEvent> {
    check_required_text(value, max).map_err(|p| InvalidEvent::new(field, p))
}

impl Event {
    /// Checks the invariants every consumer and store relies on: every string printable and
    /// bounded ([`crate::text`]), times in range, counts bounded. An event that fails is
    /// dead-lettered by the consumers and refused by the collector.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        required_text("site", &self.site, MAX_SITE_LEN)?;
        required_text("name", &self.name, MAX_NAME_LEN)?;
        text("url", &self.url, MAX_URL_LEN)?;
        text("hostname", &self.hostname, MAX_SITE_LEN)?;
        text("pathname", &self.pathname, MAX_URL_LEN)?;
        ensure(
            self.pathname.starts_with('/'),
            "pathname",
            "does not start with '/'",
        )?;
        if let Some(referrer) = &self.referrer {
            text("referrer", referrer, MAX_REFERRER_LEN)?;
        }
        ensure(
            self.props.len() <= MAX_PROPS,
            "props",
            "has more than 30 properties",
        )?;
        for (key, value) in &self.props {
            required_text("props", key, MAX_PROP_KEY_LEN)?;
            // The field's name is built only for the error.
            check_text(value, MAX_PROP_VALUE_LEN)
                .map_err(|p| InvalidEvent::new(format!("props.{key}"), p))?;
        }
        for (field, value) in self.enrichment.fields() {
            if let Some(value) = value {
                text(field, value, MAX_ATTRIBUTE_LEN)?;
            }
        }
        ensure(
            self.timestamp_ms > 0 && self.timestamp_ms <= MAX_TIMESTAMP_MS,
            "timestamp_ms",
            "is not a Unix time between 1970 and 9999",
        )?;
        ensure(
            (0..=MAX_TIMESTAMP_MS).contains(&self.received_at_ms),
            "received_at_ms",
            "is not a Unix time between 1970 and 9999",
        )?;
        ensure(
            self.scroll_depth.is_none_or(|d| d <= 100),
            "scroll_depth",
            "is more than 100 percent",
        )?;
        ensure(
            self.engagement_ms.is_none_or(|ms| ms <= MAX_ENGAGEMENT_MS),
            "engagement_ms",
            "is more than 30 days",
        )?;
        if let Some(revenue) = &self.revenue {
            ensure(
                revenue.amount.len() <= 40
                    && revenue.amount.parse::<f64>().is_ok_and(f64::is_finite),
                "revenue.amount",
                "is not a decimal number of at most 40 characters",
            )?;
            ensure(
                revenue.currency.len() == 3
                    && revenue.currency.bytes().all(|b| b.is_ascii_uppercase()),
                "revenue.currency",
                "is not a three-letter ISO 4217 code",
            )?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            v: SCHEMA_VERSION,
            id: EventId::new_at(1_780_000_000_000),
            site: "a.com".into(),
            name: "pageview".into(),
            timestamp_ms: 1_780_000_000_000,
            received_at_ms: 1_780_000_000_000,
            url: "https://a.com/x".into(),
            hostname: "a.com".into(),
            pathname: "/x".into(),
            referrer: Some("google.com".into()),
            props: BTreeMap::from([("plan".to_string(), "pro".to_string())]),
            visitor_id: 7,
            interactive: true,
            enrichment: Enrichment {
                utm_source: Some("news".into()),
                ..Enrichment::default()
            },
            previous_visitor_id: None,
            scroll_depth: Some(40),
            engagement_ms: Some(1000),
            revenue: Some(Revenue {
                amount: "19.90".into(),
                currency: "EUR".into(),
            }),
        }
    }

    fn field_of(change: impl FnOnce(&mut Event)) -> String {
        let mut e = event();
        change(&mut e);
        e.validate().expect_err("must be invalid").field
    }

    #[test]
    fn an_ordinary_event_is_valid() {
        assert_eq!(event().validate(), Ok(()));
    }

    #[test]
    fn a_nul_anywhere_names_its_field() {
        assert_eq!(field_of(|e| e.name = "x\u{0}y".into()), "name");
        assert_eq!(field_of(|e| e.site = "a\u{0}.com".into()), "site");
        assert_eq!(field_of(|e| e.url.push('\u{0}')), "url");
        assert_eq!(field_of(|e| e.pathname.push('\u{1b}')), "pathname");
        assert_eq!(field_of(|e| e.referrer = Some("\u{0}".into())), "referrer");
        assert_eq!(
            field_of(|e| {
                e.props.insert("k\u{0}".into(), "v".into());
            }),
            "props"
        );
        assert_eq!(
            field_of(|e| {
                e.props.insert("k".into(), "v\u{0}".into());
            }),
            "props.k"
        );
        assert_eq!(
            field_of(|e| e.enrichment.utm_source = Some("\u{0}".into())),
            "enrichment.utm_source"
        );
        assert_eq!(
            field_of(|e| e.enrichment.country = Some("D\u{7f}".into())),
            "enrichment.country"
        );
    }

    #[test]
    fn sizes_counts_and_ranges_are_bounded() {
        assert_eq!(field_of(|e| e.name = "n".repeat(121)), "name");
        assert_eq!(field_of(|e| e.name.clear()), "name");
        assert_eq!(
            field_of(|e| {
                e.props.insert("v".into(), "x".repeat(2001));
            }),
            "props.v"
        );
        assert_eq!(
            field_of(|e| e.props = (0..31).map(|i| (i.to_string(), "x".into())).collect()),
            "props"
        );
        assert_eq!(field_of(|e| e.timestamp_ms = i64::MAX), "timestamp_ms");
        assert_eq!(field_of(|e| e.timestamp_ms = 0), "timestamp_ms");
        assert_eq!(field_of(|e| e.received_at_ms = -1), "received_at_ms");
        assert_eq!(field_of(|e| e.scroll_depth = Some(101)), "scroll_depth");
        assert_eq!(
            field_of(|e| e.engagement_ms = Some(u64::MAX)),
            "engagement_ms"
        );
        assert_eq!(
            field_of(|e| e.revenue = Some(Revenue {
                amount: "1".repeat(41),
                currency: "EUR".into()
            })),
            "revenue.amount"
        );
        assert_eq!(
            field_of(|e| e.revenue = Some(Revenue {
                amount: "NaN".into(),
                currency: "EUR".into()
            })),
            "revenue.amount"
        );
        assert_eq!(
            field_of(|e| e.revenue = Some(Revenue {
                amount: "1".into(),
                currency: "eu\u{0}".into()
            })),
            "revenue.currency"
        );
    }
}
