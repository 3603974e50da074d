//! The kinds of value a `BEACON_*` variable takes: how each is parsed and checked, and how its
//! accepted values are described (in `beacon --help`, `beacon config` and the README).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// A kind of value: parses the variable's text into `Out`, or says what is wrong with it.
pub trait ValueKind {
    type Out;
    fn parse(&self, raw: &str) -> Result<Self::Out, String>;
    /// What values are accepted, in a few words.
    fn describe(&self) -> String;
}

/// A URL with one of these schemes.
pub struct Url(pub &'static [&'static str]);

impl ValueKind for Url {
    type Out = String;
    fn parse(&self, raw: &str) -> Result<String, String> {
        let scheme = raw.split_once("://").map(|(s, _)| s).unwrap_or("");
        if self.0.contains(&scheme) {
            Ok(raw.to_string())
        } else {
            Err(format!(
                "'{raw}' is not a URL with a scheme of {}",
                self.0.join(", ")
            ))
        }
    }
    fn describe(&self) -> String {
        format!("URL ({})", self.0.join(", "))
    }
}

/// One URL, or several separated by commas (the servers of a cluster), each with one of these
/// schemes.
pub struct UrlList(pub &'static [&'static str]);

impl ValueKind for UrlList {
    type Out = String;
    fn parse(&self, raw: &str) -> Result<String, String> {
        for url in raw.split(',') {
            Url(self.0).parse(url.trim())?;
        }
        Ok(raw.to_string())
    }
    fn describe(&self) -> String {
        format!(
            "URL ({}), or several separated by commas",
            self.0.join(", ")
        )
    }
}

/// An address to listen on, like `127.0.0.1:8080`.
pub struct Addr;

impl ValueKind for Addr {
    type Out = SocketAddr;
    fn parse(&self, raw: &str) -> Result<SocketAddr, String> {
        raw.parse()
            .map_err(|_| format!("'{raw}' is not an address like 127.0.0.1:8080"))
    }
    fn describe(&self) -> String {
        "address:port".into()
    }
}

/// A duration like `30s`, `15m`, `30days`.
pub struct Span {
    /// Zero refused (it would mean "none" or refuse everything).
    pub nonzero: bool,
    pub max: Option<Duration>,
}

/// A duration of any length.
pub const ANY_SPAN: Span = Span {
    nonzero: false,
    max: None,
};
/// A timeout: longer than zero and at most a day (PostgreSQL takes a statement timeout of at most
/// 24.8 days in milliseconds, and a longer wait is no bound).
pub const TIMEOUT: Span = Span {
    nonzero: true,
    max: Some(Duration::from_secs(24 * 3600)),
};

impl ValueKind for Span {
    type Out = Duration;
    fn parse(&self, raw: &str) -> Result<Duration, String> {
        let d = humantime::parse_duration(raw)
            .map_err(|e| format!("'{raw}' is not a duration like 30days: {e}"))?;
        if self.nonzero && d.is_zero() {
            return Err("must be longer than 0".into());
        }
        if let Some(max) = self.max
            && d > max
        {
            return Err(format!(
                "must be at most {}",
                humantime::format_duration(max)
            ));
        }
        Ok(d)
    }
    fn describe(&self) -> String {
        match (self.nonzero, self.max) {
            (true, Some(max)) => format!("duration > 0, ≤ {}", humantime::format_duration(max)),
            (true, None) => "duration > 0".into(),
            _ => "duration".into(),
        }
    }
}

/// A duration, or `forever` (or empty) for none.
pub struct SpanOrForever;

impl ValueKind for SpanOrForever {
    type Out = Option<Duration>;
    fn parse(&self, raw: &str) -> Result<Option<Duration>, String> {
        match raw.trim() {
            "forever" | "" => Ok(None),
            _ => ANY_SPAN.parse(raw).map(Some),
        }
    }
    fn describe(&self) -> String {
        "duration or forever".into()
    }
}

/// A whole number in `min..=max`.
pub struct Count<T> {
    pub min: T,
    pub max: T,
}

impl<T> ValueKind for Count<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    type Out = T;
    fn parse(&self, raw: &str) -> Result<T, String> {
        match raw.trim().parse::<T>() {
            Ok(n) if n >= self.min && n <= self.max => Ok(n),
            _ => Err(format!(
                "'{raw}' is not a whole number from {} to {}",
                self.min, self.max
            )),
        }
    }
    fn describe(&self) -> String {
        format!("{}–{}", self.min, self.max)
    }
}

/// Comma-separated IP addresses and CIDRs.
pub struct Networks;

impl ValueKind for Networks {
    type Out = Vec<IpNet>;
    fn parse(&self, raw: &str) -> Result<Vec<IpNet>, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("'{item}' is not an IP address or CIDR"))
            })
            .collect()
    }
    fn describe(&self) -> String {
        "addresses/CIDRs, comma-separated".into()
    }
}

/// The prefix of everything Beacon owns: a lower-case letter, then lower-case letters, digits or
/// `_`, at most 40 characters (it becomes part of stream, schema and database names).
pub struct Namespace;

impl ValueKind for Namespace {
    type Out = String;
    fn parse(&self, raw: &str) -> Result<String, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 40
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(raw.to_string())
        } else {
            Err(format!(
                "'{raw}' must be 1-40 characters: a lower-case letter, then lower-case letters, digits or '_'"
            ))
        }
    }
    fn describe(&self) -> String {
        "[a-z][a-z0-9_]*, ≤ 40".into()
    }
}

/// A readable file, or empty for none.
pub struct OptionalFile;

impl ValueKind for OptionalFile {
    type Out = Option<PathBuf>;
    fn parse(&self, raw: &str) -> Result<Option<PathBuf>, String> {
        if raw.trim().is_empty() {
            return Ok(None);
        }
        let path = PathBuf::from(raw.trim());
        if path.is_file() {
            Ok(Some(path))
        } else {
            Err(format!("'{raw}' is not a readable file"))
        }
    }
    fn describe(&self) -> String {
        "file path or empty".into()
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `text` or `json`.
pub struct LogFormats;

impl ValueKind for LogFormats {
    type Out = LogFormat;
    fn parse(&self, raw: &str) -> Result<LogFormat, String> {
        match raw {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("'{other}' is neither 'text' nor 'json'")),
        }
    }
    fn describe(&self) -> String {
        "text or json".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_list_checks_every_url_in_it() {
        let kind = UrlList(&["nats", "tls"]);
        assert!(kind.parse("nats://a:4222").is_ok());
        assert!(
            kind.parse("nats://a:4222, tls://b:4222,nats://c:4222")
                .is_ok()
        );
        let error = kind.parse("nats://a:4222,http://b:4222").unwrap_err();
        assert!(error.contains("http://b:4222"), "{error}");
        assert!(kind.parse("nats://a:4222,").is_err());
    }

    #[test]
    fn timeouts_are_bounded_on_both_sides() {
        assert!(TIMEOUT.parse("0s").is_err());
        assert!(TIMEOUT.parse("2days").is_err());
        assert_eq!(TIMEOUT.parse("1day"), Ok(Duration::from_secs(86_400)));
        assert_eq!(ANY_SPAN.parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn counts_keep_to_their_range() {
        let kind = Count { min: 1u32, max: 16 };
        assert_eq!(kind.parse(" 4 "), Ok(4));
        assert!(kind.parse("0").is_err());
        assert!(kind.parse("17").is_err());
        assert!(kind.parse("-1").is_err());
        assert_eq!(kind.describe(), "1–16");
    }
}
