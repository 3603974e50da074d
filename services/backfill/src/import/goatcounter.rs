//! One row of GoatCounter's CSV export (version 2) as an import record: the page view or event it
//! holds, mapped field by field onto what the collector would have made of it.
//!
//! The export's 14 columns, by position (GoatCounter's own importer reads them so too):
//! `2Path, Title, Event, UserAgent, Browser, System, Session, Bot, Referrer, Referrer scheme,
//! Screen size, Location, FirstVisit, Date`.
//! - `Path` is the page's path, or the event's name when `Event` is true.
//! - `Session` (GoatCounter's visitor within its 8-hour session) is the opaque visitor.
//! - `Browser` / `System` are "name version"; `Screen size` gives the device by width.
//! - `Referrer` with scheme `h` is a URL without its scheme; `g` (a group such as "Google"), `c`
//!   (a campaign) and `o` (other, e.g. an app id) are the source itself.
//! - `Location` is `NL` or `NL-NH`: the country is its first part.
//! - `Bot` other than 0 is a bot's hit, skipped (GoatCounter's exports hold none).
//! - `Title`, `FirstVisit` and `UserAgent` are not used (Beacon keeps no titles and counts first
//!   visits itself); an old export's `UserAgent` fills a missing browser or system.

use beacon_pipeline::hit::Hit;
use beacon_pipeline::url_parts::split_url;
use beacon_pipeline::user_agent::{UserAgentInfo, classify};
use beacon_schemas::text::{MAX_NAME_LEN, MAX_URL_LEN};

use super::line::{Identity, LineError, ParsedLine, problem, timestamp_text, visitor_text};

/// Columns of a version-2 export.
pub const COLUMNS: usize = 14;

const PATH: usize = 0;
const EVENT: usize = 2;
const USER_AGENT: usize = 3;
const BROWSER: usize = 4;
const SYSTEM: usize = 5;
const SESSION: usize = 6;
const BOT: usize = 7;
const REFERRER: usize = 8;
const REFERRER_SCHEME: usize = 9;
const SCREEN_SIZE: usize = 10;
const LOCATION: usize = 11;
const DATE: usize = 13;

/// What a row holds.
#[derive(Debug)]
pub enum Row {
    Hit(Box<ParsedLine>),
    /// A bot's hit (skipped, as the collector drops bots).
    Bot,
}

/// Checks the header: GoatCounter's importer checks only that the first column starts with the
/// format's version, `2`.
pub fn check_header(fields: &[&str]) -> Result<(), LineError> {
    match fields.first() {
        Some(first) if first.trim_start_matches('\u{feff}').starts_with('2') => {
            if fields.len() == COLUMNS {
                Ok(())
            } else {
                Err(problem(
                    "",
                    format!(
                        "the header has {} columns; GoatCounter's export (version 2) has {COLUMNS}",
                        fields.len()
                    ),
                ))
            }
        }
        _ => Err(problem(
            "",
            "is not the header of a GoatCounter CSV export, version 2 (it starts with `2Path,Title,…`)",
        )),
    }
}

/// Reads one row (after the header) for `site`. `now_ms` bounds the date.
pub fn parse_row(fields: &[&str], site: &str, now_ms: i64) -> Result<Row, LineError> {
    if fields.len() != COLUMNS {
        return Err(problem(
            "",
            format!("has {} columns, not {COLUMNS}", fields.len()),
        ));
    }
    let field = |i: usize| fields[i].trim();
    let bot = field(BOT);
    match bot {
        "" | "0" => {}
        other if other.parse::<u32>().is_ok() => return Ok(Row::Bot),
        _ => return Err(problem("Bot", "is not a number")),
    }
    let event = boolean("Event", field(EVENT))?;
    let path = field(PATH);
    if path.is_empty() {
        return Err(problem("Path", "is empty"));
    }
    let (name, url) = if event {
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(problem(
                "Path",
                format!("an event's name must have 1 to {MAX_NAME_LEN} bytes"),
            ));
        }
        // GoatCounter's events belong to no page: they are counted on the site's root.
        (name.to_string(), format!("https://{site}/"))
    } else {
        if !path.starts_with('/') {
            return Err(problem("Path", "a page's path must start with /"));
        }
        ("pageview".to_string(), format!("https://{site}{path}"))
    };
    if url.len() > MAX_URL_LEN {
        return Err(problem(
            "Path",
            format!("is longer than {MAX_URL_LEN} bytes"),
        ));
    }
    let parts = split_url(&url).map_err(|e| problem("Path", e.to_string()))?;
    let mut hit = Hit::new(site.to_string(), name, url, parts.hostname, parts.pathname);
    hit.timestamp_ms = Some(timestamp_text("Date", field(DATE), now_ms)?);
    let session = field(SESSION);
    if session.is_empty() || session == "0-0" {
        return Err(problem(
            "Session",
            "is empty: who the visitor was is not known",
        ));
    }
    let identity = Identity::Opaque {
        visitor: visitor_text("Session", session)?,
        previous: None,
    };
    let (referrer, source) = referrer(field(REFERRER), field(REFERRER_SCHEME))?;
    hit.referrer = referrer;
    let mut agent = UserAgentInfo::default();
    (agent.browser, agent.browser_version) = name_and_version(field(BROWSER));
    (agent.os, agent.os_version) = name_and_version(field(SYSTEM));
    agent.os = agent.os.map(|os| os_name(&os).to_string());
    agent.device = device(field(SCREEN_SIZE))?;
    let user_agent = field(USER_AGENT);
    if !user_agent.is_empty() && (agent.browser.is_none() || agent.os.is_none()) {
        let Ok(classified) = classify(user_agent) else {
            return Ok(Row::Bot);
        };
        if agent.browser.is_none() {
            (agent.browser, agent.browser_version) =
                (classified.browser, classified.browser_version);
        }
        if agent.os.is_none() {
            (agent.os, agent.os_version) = (classified.os, classified.os_version);
        }
        agent.device = agent.device.or(classified.device);
    }
    let country = field(LOCATION)
        .split('-')
        .next()
        .filter(|c| !c.is_empty())
        .map(str::to_ascii_uppercase);
    Ok(Row::Hit(Box::new(ParsedLine {
        hit,
        identity,
        agent: Some(agent),
        country,
        source,
    })))
}

/// GoatCounter writes 0/1; its importer also takes true/false, t/f, yes/no, on/off.
fn boolean(name: &str, value: &str) -> Result<bool, LineError> {
    match value.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "f" | "n" | "no" | "off" => Ok(false),
        "1" | "true" | "t" | "y" | "yes" | "on" => Ok(true),
        _ => Err(problem(name, "is not 0 or 1 (true or false)")),
    }
}

/// The referrer URL (scheme `h`) or the source named outright (`g`, `c`, `o`).
fn referrer(value: &str, scheme: &str) -> Result<(Option<String>, Option<String>), LineError> {
    if value.is_empty() {
        return Ok((None, None));
    }
    match scheme {
        // Old exports leave the scheme empty; their referrers are URLs without a scheme.
        "h" | "" => Ok((Some(format!("https://{value}")), None)),
        "g" | "c" | "o" => Ok((None, Some(value.chars().take(MAX_NAME_LEN).collect()))),
        _ => Err(problem("Referrer scheme", "is not one of h, g, c, o")),
    }
}

/// "Firefox 128" → ("Firefox", "128"); "Linux " → ("Linux", none).
fn name_and_version(value: &str) -> (Option<String>, Option<String>) {
    let value = value.trim();
    if value.is_empty() {
        return (None, None);
    }
    match value.rsplit_once(' ') {
        Some((name, version)) if version.starts_with(|c: char| c.is_ascii_digit()) => {
            (Some(name.trim().to_string()), Some(version.to_string()))
        }
        _ => (Some(value.to_string()), None),
    }
}

/// GoatCounter's system names where Beacon (after Plausible) names them otherwise.
fn os_name(name: &str) -> &str {
    match name {
        "macOS" | "OS X" | "Mac OS X" => "Mac",
        "Linux" => "GNU/Linux",
        other => other,
    }
}

/// The device by screen width ("1920,0,1"): below 768 a phone, below 1024 a tablet.
fn device(size: &str) -> Result<Option<String>, LineError> {
    let width = size.split(',').next().unwrap_or("").trim();
    if width.is_empty() {
        return Ok(None);
    }
    let width: f64 = width
        .parse()
        .map_err(|_| problem("Screen size", "is not `width,height,scale`"))?;
    Ok(match width {
        w if w.is_nan() || w <= 0.0 => None,
        w if w < 768.0 => Some("Mobile".into()),
        w if w < 1024.0 => Some("Tablet".into()),
        _ => Some("Desktop".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn row(line: &str) -> Result<Row, LineError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(line.as_bytes());
        let record = reader.records().next().expect("a row").expect("csv");
        let fields: Vec<&str> = record.iter().collect();
        parse_row(&fields, "a.example", NOW)
    }

    fn hit(line: &str) -> ParsedLine {
        match row(line).expect(line) {
            Row::Hit(parsed) => *parsed,
            Row::Bot => panic!("not a bot: {line}"),
        }
    }

    #[test]
    fn a_page_view_maps_field_by_field() {
        let parsed = hit(
            "/blog/post.html,My post,0,,Firefox 128,macOS 10.15,3c1f0a9b2d4e5f6-8e4f5c975b8fee06,0,\
             www.reddit.com/r/programming,h,\"1920,0,1\",NL-NH,1,2025-03-01T09:15:02Z",
        );
        assert_eq!(parsed.hit.name, "pageview");
        assert_eq!(parsed.hit.pathname, "/blog/post.html");
        assert_eq!(
            parsed.hit.referrer.as_deref(),
            Some("https://www.reddit.com/r/programming")
        );
        assert_eq!(parsed.hit.timestamp_ms, Some(1_740_820_502_000));
        let agent = parsed.agent.expect("agent");
        assert_eq!(agent.browser.as_deref(), Some("Firefox"));
        assert_eq!(agent.browser_version.as_deref(), Some("128"));
        assert_eq!(agent.os.as_deref(), Some("Mac"));
        assert_eq!(agent.os_version.as_deref(), Some("10.15"));
        assert_eq!(agent.device.as_deref(), Some("Desktop"));
        assert_eq!(parsed.country.as_deref(), Some("NL"));
        assert_eq!(parsed.source, None);
        assert_eq!(
            parsed.identity,
            Identity::Opaque {
                visitor: "3c1f0a9b2d4e5f6-8e4f5c975b8fee06".into(),
                previous: None
            }
        );
    }

    #[test]
    fn events_groups_and_bots() {
        let event = hit(
            "signup-click,Sign up,1,,Chrome 133,Android 14,a07-1b2,0,Google,g,\"412,0,1\",US,1,\
             2025-03-01T10:02:11Z",
        );
        assert_eq!(event.hit.name, "signup-click");
        assert_eq!(event.hit.pathname, "/");
        assert_eq!(event.source.as_deref(), Some("Google"));
        assert_eq!(event.hit.referrer, None);
        assert_eq!(
            event.agent.and_then(|a| a.device).as_deref(),
            Some("Mobile")
        );
        assert!(matches!(
            row("/,Home,0,,Chrome 1,Linux ,s-1,5,,o,\"0,0,1\",,1,2025-03-01T10:02:11Z"),
            Ok(Row::Bot)
        ));
        let linux = hit("/,Home,0,,Chrome 1,Linux ,s-1,0,,o,\"0,0,1\",,1,2025-03-01T10:02:11Z");
        let agent = linux.agent.expect("agent");
        assert_eq!(agent.os.as_deref(), Some("GNU/Linux"));
        assert_eq!(agent.os_version, None);
        assert_eq!(agent.device, None, "width 0 is unknown");
    }

    #[test]
    fn bad_rows_name_the_column() {
        let field = |line: &str| row(line).expect_err(line).field;
        let base = |path: &str, event: &str, session: &str, date: &str| {
            format!("{path},T,{event},,,,{session},0,,o,,,1,{date}")
        };
        assert_eq!(
            field(&base("/", "0", "s-1", "yesterday")),
            "Date",
            "an unreadable date"
        );
        assert_eq!(
            field(&base("/", "0", "s-1", "2999-01-01T00:00:00Z")),
            "Date"
        );
        assert_eq!(
            field(&base("/", "maybe", "s-1", "2025-03-01T10:02:11Z")),
            "Event"
        );
        assert_eq!(
            field(&base("no-slash", "0", "s-1", "2025-03-01T10:02:11Z")),
            "Path"
        );
        assert_eq!(
            field(&base("/", "0", "0-0", "2025-03-01T10:02:11Z")),
            "Session"
        );
        assert_eq!(field("/,T,0,,,,s-1,0,,o,,,1"), "", "a column missing");
        assert_eq!(field("/,T,0,,,,s-1,x,,o,,,1,2025-03-01T10:02:11Z"), "Bot");
        assert_eq!(
            field("/,T,0,,,,s-1,0,x.example,z,,,1,2025-03-01T10:02:11Z"),
            "Referrer scheme"
        );
    }

    #[test]
    fn the_header_is_checked() {
        let header = "2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,\
                      Referrer scheme,Screen size,Location,FirstVisit,Date";
        let fields: Vec<&str> = header.split(',').collect();
        assert!(check_header(&fields).is_ok());
        assert!(check_header(&["1Path"; COLUMNS]).is_err());
        assert!(check_header(&fields[..5]).is_err());
    }

    /// Hostile values in a row are refused naming the column (by the parser, or by
    /// `Event::validate` on the enriched event, the collector's own gate), never a panic.
    #[test]
    fn hostile_values_are_refused_naming_the_field() {
        use beacon_pipeline::hit::{SenderFacts, VisitorIds};
        let checked = |line: &str| -> Result<(), String> {
            let Row::Hit(parsed) = row(line).map_err(|e| e.field)? else {
                return Ok(());
            };
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
        let date = "2025-03-01T10:02:11Z";
        let line = |path: &str, event: &str, browser: &str, size: &str, location: &str| {
            format!("{path},T,{event},,{browser},,s-1,0,,o,\"{size}\",{location},1,{date}")
        };
        assert_eq!(
            checked(&line("sign\u{0}up", "1", "", "0,0,1", "")),
            Err("name".into())
        );
        assert_eq!(
            checked(&line("/", "0", &"x".repeat(5_000), "0,0,1", "")),
            Err("enrichment.browser".into())
        );
        assert_eq!(
            checked(&line("/", "0", "", "0,0,1", "N\u{7}L")),
            Err("enrichment.country".into())
        );
        assert_eq!(
            checked(&line(
                &format!("/{}", "a".repeat(10_000)),
                "0",
                "",
                "0,0,1",
                ""
            )),
            Err("Path".into())
        );
        // Widths out of range or not numbers at all.
        assert_eq!(checked(&line("/", "0", "", "1e400,0,1", "")), Ok(()));
        assert_eq!(checked(&line("/", "0", "", "NaN,0,1", "")), Ok(()));
        assert_eq!(
            checked(&line("/", "0", "", "wide,0,1", "")),
            Err("Screen size".into())
        );
        assert_eq!(
            checked(&format!("/,T,0,,,,{},0,,o,,,1,{date}", "s".repeat(2_000))),
            Err("Session".into())
        );
    }
}
