//! One NDJSON import line: the fields of `POST /track`, plus `timestamp` (required), an optional
//! `id`, and the visitor as `visitor` (any opaque string) or `ip` + `user_agent`. Beacon's own
//! export adds the enrichment it can no longer recompute (`browser`, `os`, `country`, … and
//! `previous_visitor`), which an import then takes as given.

use std::collections::BTreeMap;
use std::net::IpAddr;

use beacon_pipeline::domain::normalize_domain;
use beacon_pipeline::hit::{Client, Hit};
use beacon_pipeline::url_parts::split_url;
use beacon_pipeline::user_agent::UserAgentInfo;
use beacon_schemas::EventId;
use beacon_schemas::text::{MAX_NAME_LEN, MAX_PROPS, MAX_URL_LEN, without_controls};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest user agent kept (the collector's bound).
const MAX_USER_AGENT: usize = 1024;
/// Longest opaque visitor string.
const MAX_VISITOR: usize = 1024;
/// An event may be at most this far in the future of the importing machine's clock.
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// The line as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub props: Option<serde_json::Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// RFC 3339 or Unix milliseconds; required (absent reads as null, refused naming it).
    #[serde(default)]
    pub timestamp: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Beacon's export: the visitor under the previous day's salt (links a visit across midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_visitor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Beacon's export: the source as attributed when the event arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Who a line's visitor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An opaque string (and, from Beacon's export, the previous day's one).
    Opaque {
        visitor: String,
        previous: Option<String>,
    },
    /// Address and user agent, hashed with the salt of the event's day.
    Client,
}

/// A line checked: the hit, who sent it, and the enrichment the line brings itself.
#[derive(Debug, Clone)]
pub struct ParsedLine {
    pub hit: Hit,
    pub identity: Identity,
    /// Browser, OS and device given by the line (Beacon's export); `None`: from the user agent.
    pub agent: Option<UserAgentInfo>,
    pub country: Option<String>,
    /// The source given by the line (Beacon's export); `None`: attributed from URL and referrer.
    pub source: Option<String>,
}

/// Why a line is rejected: the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.field, self.problem)
        }
    }
}

pub fn problem(field: &str, problem: impl Into<String>) -> LineError {
    LineError {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// Parses and checks one line for `site` (normalised). `now_ms` bounds the timestamp.
pub fn parse_line(text: &str, site: &str, now_ms: i64) -> Result<ParsedLine, LineError> {
    let line: Line = serde_json::from_str(text).map_err(|e| {
        // serde_json's message names an unknown field or the wrong type; never echo the line.
        let message = e.to_string();
        problem("", message.chars().take(200).collect::<String>())
    })?;
    if let Some(named) = &line.site {
        let named = normalize_domain(named).map_err(|e| problem("site", e.to_string()))?;
        if named != site {
            return Err(problem(
                "site",
                format!("is {named}, but this import is for {site}"),
            ));
        }
    }
    let url = line.url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(problem(
            "url",
            format!("is longer than {MAX_URL_LEN} bytes"),
        ));
    }
    let parts = split_url(url).map_err(|e| problem("url", e.to_string()))?;
    let name = line.name.as_deref().map(str::trim).unwrap_or("pageview");
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(problem(
            "name",
            format!("must have 1 to {MAX_NAME_LEN} bytes"),
        ));
    }
    let mut hit = Hit::new(
        site.to_string(),
        name.to_string(),
        url.to_string(),
        parts.hostname,
        parts.pathname,
    );
    hit.referrer = line
        .referrer
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    hit.props = props(line.props.as_ref())?;
    hit.interactive = line.interactive.unwrap_or(true);
    hit.id = line
        .id
        .as_deref()
        .map(|id| {
            id.trim()
                .parse::<EventId>()
                .map_err(|_| problem("id", "is not a UUID"))
        })
        .transpose()?;
    hit.timestamp_ms = Some(timestamp(&line.timestamp, now_ms)?);
    let user_agent = line
        .user_agent
        .as_deref()
        .map(|ua| ua.trim().chars().take(MAX_USER_AGENT).collect::<String>());
    let ip = line
        .ip
        .as_deref()
        .map(|ip| {
            ip.trim()
                .parse::<IpAddr>()
                .map_err(|_| problem("ip", "is not an IP address"))
        })
        .transpose()?;
    let identity = match (&line.visitor, ip, &user_agent) {
        (Some(visitor), _, _) => {
            let visitor = visitor_text("visitor", visitor)?;
            let previous = line
                .previous_visitor
                .as_deref()
                .map(|p| visitor_text("previous_visitor", p))
                .transpose()?;
            Identity::Opaque { visitor, previous }
        }
        (None, Some(_), Some(_)) => Identity::Client,
        (None, None, _) => {
            return Err(problem(
                "visitor",
                "is required, or ip and user_agent (who the visitor is)",
            ));
        }
        (None, Some(_), None) => return Err(problem("user_agent", "is required with ip")),
    };
    if let (Some(ip), Some(user_agent)) = (ip, user_agent) {
        hit.client = Some(Client { ip, user_agent });
    } else if let Some(ip) = ip {
        // An address alone still gives the country.
        hit.client = Some(Client {
            ip,
            user_agent: String::new(),
        });
    }
    let given = [
        &line.browser,
        &line.browser_version,
        &line.os,
        &line.os_version,
        &line.device,
    ];
    let agent = given.iter().any(|v| v.is_some()).then(|| UserAgentInfo {
        browser: line.browser.clone(),
        browser_version: line.browser_version.clone(),
        os: line.os.clone(),
        os_version: line.os_version.clone(),
        device: line.device.clone(),
    });
    Ok(ParsedLine {
        hit,
        identity,
        agent,
        country: line.country.clone(),
        source: line.source.clone(),
    })
}

pub fn visitor_text(field: &str, text: &str) -> Result<String, LineError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_VISITOR {
        return Err(problem(
            field,
            format!("must have 1 to {MAX_VISITOR} bytes"),
        ));
    }
    Ok(text.to_string())
}

fn timestamp(value: &Value, now_ms: i64) -> Result<i64, LineError> {
    let ms = match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| unreadable_time("timestamp"))?,
        Value::String(s) => return timestamp_text("timestamp", s, now_ms),
        Value::Null => return Err(problem("timestamp", "is required")),
        _ => return Err(unreadable_time("timestamp")),
    };
    checked_time("timestamp", ms, now_ms)
}

/// An RFC 3339 time in `field`, in milliseconds, not before 1970 nor in the future.
pub fn timestamp_text(field: &str, text: &str, now_ms: i64) -> Result<i64, LineError> {
    let ms = chrono::DateTime::parse_from_rfc3339(text.trim())
        .map_err(|_| unreadable_time(field))?
        .timestamp_millis();
    checked_time(field, ms, now_ms)
}

fn unreadable_time(field: &str) -> LineError {
    problem(field, "is not an RFC 3339 time or Unix milliseconds")
}

fn checked_time(field: &str, ms: i64, now_ms: i64) -> Result<i64, LineError> {
    if ms <= 0 || ms > now_ms + MAX_CLOCK_SKEW_MS {
        return Err(problem(field, "is before 1970 or in the future"));
    }
    Ok(ms)
}

/// Props as the collector keeps them: scalars as text (control characters made spaces), blanks,
/// nulls and nested values dropped; more than the collector's limit is refused.
fn props(
    raw: Option<&serde_json::Map<String, Value>>,
) -> Result<BTreeMap<String, String>, LineError> {
    let Some(raw) = raw else {
        return Ok(BTreeMap::new());
    };
    if raw.len() > MAX_PROPS {
        return Err(problem(
            "props",
            format!("has more than {MAX_PROPS} properties"),
        ));
    }
    let mut props = BTreeMap::new();
    for (key, value) in raw {
        let text = match value {
            Value::String(s) => {
                let cleaned = without_controls(s);
                (!cleaned.trim().is_empty()).then(|| cleaned.into_owned())
            }
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        if let Some(text) = text {
            props.insert(key.clone(), text);
        }
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn a_full_line_reads_and_a_minimal_one_defaults() {
        let parsed = parse_line(
            r#"{"url":"https://a.example/pricing?utm_source=news","referrer":"https://www.google.com/",
                "name":"signup","props":{"plan":"pro","n":3,"x":null},"interactive":false,
                "timestamp":"2026-03-01T10:00:00Z","ip":"192.0.2.1","user_agent":"Firefox",
                "id":"0190a000-0000-7000-8000-000000000001"}"#,
            "a.example",
            NOW,
        )
        .expect("valid");
        assert_eq!(parsed.hit.pathname, "/pricing");
        assert_eq!(parsed.hit.name, "signup");
        assert_eq!(parsed.hit.props.len(), 2);
        assert!(!parsed.hit.interactive);
        assert_eq!(parsed.hit.timestamp_ms, Some(1_772_359_200_000));
        assert_eq!(parsed.identity, Identity::Client);
        let minimal = parse_line(
            r#"{"url":"https://a.example/","timestamp":1772359200000,"visitor":"u1"}"#,
            "a.example",
            NOW,
        )
        .expect("valid");
        assert_eq!(minimal.hit.name, "pageview");
        assert!(matches!(minimal.identity, Identity::Opaque { .. }));
    }

    #[test]
    fn bad_lines_name_the_field() {
        let field = |line: &str| parse_line(line, "a.example", NOW).expect_err(line).field;
        assert_eq!(field("{not json"), "");
        assert_eq!(
            field(r#"{"url":"https://a.example/","visitor":"u"}"#),
            "timestamp"
        );
        assert_eq!(
            field(r#"{"url":"https://a.example/","timestamp":"soon","visitor":"u"}"#),
            "timestamp"
        );
        assert_eq!(
            field(r#"{"url":"https://a.example/","timestamp":9999999999999,"visitor":"u"}"#),
            "timestamp"
        );
        assert_eq!(
            field(r#"{"url":"nope","timestamp":1,"visitor":"u"}"#),
            "url"
        );
        assert_eq!(
            field(r#"{"url":"https://a.example/","timestamp":1}"#),
            "visitor"
        );
        assert_eq!(
            field(r#"{"url":"https://a.example/","timestamp":1,"ip":"1.2.3.4"}"#),
            "user_agent"
        );
        assert_eq!(
            field(r#"{"url":"https://a.example/","timestamp":1,"ip":"x","user_agent":"F"}"#),
            "ip"
        );
        assert_eq!(
            field(r#"{"url":"https://a.example/","timestamp":1,"visitor":"u","id":"7"}"#),
            "id"
        );
        assert_eq!(
            field(r#"{"site":"b.example","url":"https://a.example/","timestamp":1,"visitor":"u"}"#),
            "site"
        );
        let unknown = parse_line(
            r#"{"url":"https://a.example/","timestamp":1,"visitor":"u","colour":"red"}"#,
            "a.example",
            NOW,
        )
        .expect_err("unknown field");
        assert!(unknown.problem.contains("colour"), "{unknown}");
    }

    /// What hostile values in a line come to: refused with the field named (by the parser, or by
    /// `Event::validate` on the enriched event, the same gate the collector and consumers use),
    /// or, for the opaque visitor, only ever hashed.
    #[test]
    fn hostile_values_are_refused_naming_the_field() {
        use beacon_pipeline::hit::{SenderFacts, VisitorIds};
        let checked = |line: &str| -> Result<(), String> {
            let parsed = parse_line(line, "a.example", NOW).map_err(|e| e.field)?;
            let facts = SenderFacts {
                agent: parsed.agent.unwrap_or_default(),
                country: parsed.country,
            };
            let visitor = VisitorIds {
                today: 1,
                previous: None,
            };
            parsed
                .hit
                .into_event(visitor, facts, NOW)
                .validate()
                .map_err(|e| e.field)
        };
        let base = r#""url":"https://a.example/","timestamp":1772359200000,"visitor":"u""#;
        let with = |extra: &str| format!("{{{base},{extra}}}");
        assert_eq!(
            checked(&with(r#""name":"sign\u0000up""#)),
            Err("name".into())
        );
        assert_eq!(
            checked(&with(r#""props":{"k\u0007":"v"}"#)),
            Err("props".into())
        );
        assert_eq!(
            checked(&with(r#""country":"D\u001bE""#)),
            Err("enrichment.country".into())
        );
        assert_eq!(
            checked(&with(&format!(r#""browser":"{}""#, "x".repeat(5_000)))),
            Err("enrichment.browser".into())
        );
        assert_eq!(
            checked(&with(r#""timestamp":1e300"#)),
            Err("".into()),
            "a repeated key"
        );
        assert_eq!(
            checked(r#"{"url":"https://a.example/","timestamp":1e300,"visitor":"u"}"#),
            Err("timestamp".into())
        );
        assert_eq!(
            checked(
                r#"{"url":"https://a.example/","timestamp":18446744073709551615,"visitor":"u"}"#
            ),
            Err("timestamp".into())
        );
        let deep = format!(
            r#"{{{base},"props":{{"k":{}1{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(
            checked(&deep),
            Err("".into()),
            "nesting past serde_json's limit"
        );
        // Control characters in a prop value are cleaned as the collector cleans them, and an
        // opaque visitor is hashed, never kept.
        assert_eq!(checked(&with(r#""props":{"k":"a\u0000b"}"#)), Ok(()));
        assert_eq!(
            checked(r#"{"url":"https://a.example/","timestamp":1,"visitor":"\u0000\u0001"}"#),
            Ok(())
        );
    }
}
