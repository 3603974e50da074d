//! User-agent classification: is this request a human visit, and if so which browser, operating
//! system and kind of device sent it (named the way Plausible names them).
//!
//! Parsing is done by [`woothee`]: its rules are compiled Rust (no `regexes.yaml` to ship or load
//! at run time), it needs no start-up work and parses a user agent in a few microseconds. Bots are
//! recognised in four layers, cheapest first: a blank or very short user agent; a fixed list of
//! headless-browser and HTTP-library markers (one Aho-Corasick pass, no allocation); woothee's own
//! crawler category; and the [`isbot`] pattern list (a port of the `isbot` npm package's list, ~350
//! patterns joined into one regex, built once).
//!
//! Known limits of reading the user agent on the server:
//! - iPadOS 13+ Safari asks for desktop sites by default and sends the very same user agent as
//!   Safari on a Mac, so those iPads are counted as `Mac` / `Desktop`. Only client-side signals
//!   (`navigator.maxTouchPoints`) could tell them apart.
//! - Windows 11 still sends `Windows NT 10.0`, so it is reported as Windows `10`; macOS has been
//!   frozen at `10_15_7` by Safari, Chrome and Firefox since macOS 11, so recent Macs report `10.15`.
//! - Chrome's reduced user agent (`Android 10; K`) hides the device model; phone vs tablet is
//!   still told apart by the `Mobile` token, which the reduction keeps. Android TV boxes, which
//!   don't send `Mobile` either, are counted as tablets.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAgentInfo {
    /// e.g. "Chrome", "Firefox", "Safari", "Edge", "Opera", "Samsung Internet".
    pub browser: Option<String>,
    /// `major.minor`, as Plausible shows it, e.g. "124.0".
    pub browser_version: Option<String>,
    /// "Windows", "Mac", "iOS", "Android", "GNU/Linux", "Chrome OS", …
    pub os: Option<String>,
    /// e.g. "10", "10.15", "17.4".
    pub os_version: Option<String>,
    /// "Desktop" | "Mobile" | "Tablet" (Plausible's names).
    pub device: Option<String>,
}

/// Why a request is not a human visit (dropped and counted, never published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotKind {
    /// A search engine, link-preview fetcher, SEO or AI crawler, monitor, …
    Crawler,
    /// A scripted browser: headless Chrome, PhantomJS, Puppeteer, Playwright, Lighthouse.
    Headless,
    /// A command-line tool or HTTP library: curl, wget, python-requests, Go, okhttp, Java, …
    Tool,
    /// No user agent, or one too short to come from a browser.
    Empty,
}

/// A user agent shorter than this (after trimming) that matched no tool marker is [`BotKind::Empty`].
/// Every browser sends well over 8 bytes; `Mozilla` alone (7) is not a browser.
const MIN_LEN: usize = 8;

/// Markers searched case-insensitively anywhere in the user agent; the leftmost match decides.
const MARKERS: &[(&str, BotKind)] = &[
    ("HeadlessChrome", BotKind::Headless),
    ("PhantomJS", BotKind::Headless),
    ("SlimerJS", BotKind::Headless),
    ("Puppeteer", BotKind::Headless),
    ("Playwright", BotKind::Headless),
    // Also covers PageSpeed Insights' "Chrome-Lighthouse".
    ("Lighthouse", BotKind::Headless),
    ("curl/", BotKind::Tool),
    ("Wget/", BotKind::Tool),
    ("python-requests/", BotKind::Tool),
    ("Python-urllib/", BotKind::Tool),
    ("python-httpx/", BotKind::Tool),
    ("aiohttp/", BotKind::Tool),
    ("Go-http-client/", BotKind::Tool),
    ("okhttp/", BotKind::Tool),
    ("Java/", BotKind::Tool),
    ("Apache-HttpClient/", BotKind::Tool),
    ("libwww-perl/", BotKind::Tool),
    ("HTTPie/", BotKind::Tool),
    ("axios/", BotKind::Tool),
    ("node-fetch", BotKind::Tool),
    ("undici", BotKind::Tool),
    ("GuzzleHttp/", BotKind::Tool),
    ("PostmanRuntime/", BotKind::Tool),
    ("insomnia/", BotKind::Tool),
    ("Dart/", BotKind::Tool),
];

static MARKER_SEARCH: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(MARKERS.iter().map(|(pattern, _)| pattern))
        .expect("the marker list is a valid Aho-Corasick pattern set")
});

static BOT_PATTERNS: LazyLock<isbot::Bots> = LazyLock::new(isbot::Bots::default);

/// Builds the lazily compiled matchers now, so the first request does not pay for it.
pub fn warm_up() {
    LazyLock::force(&MARKER_SEARCH);
    LazyLock::force(&BOT_PATTERNS);
}

/// Classifies a `User-Agent` header: `Ok` with what could be read for a human visit (any field may
/// be `None`), `Err` with the reason for anything that is not a browser run by a person.
pub fn classify(user_agent: &str) -> Result<UserAgentInfo, BotKind> {
    let ua = user_agent.trim();
    if ua.is_empty() {
        return Err(BotKind::Empty);
    }
    if let Some(found) = MARKER_SEARCH.find(ua) {
        return Err(MARKERS[found.pattern().as_usize()].1);
    }
    if ua.len() < MIN_LEN {
        return Err(BotKind::Empty);
    }

    let parsed = woothee::parser::Parser::new().parse(ua);
    if let Some(result) = &parsed {
        if result.category == "crawler" {
            return Err(BotKind::Crawler);
        }
        if result.name == "HTTP Library" {
            return Err(BotKind::Tool);
        }
    }
    if BOT_PATTERNS.is_bot(ua) {
        return Err(BotKind::Crawler);
    }

    let Some(result) = parsed else {
        return Ok(UserAgentInfo::default());
    };
    let (browser, browser_version) = browser(ua, result.name, result.version);
    let (os, os_version) = os(result.os, &result.os_version);
    Ok(UserAgentInfo {
        browser,
        browser_version,
        os,
        os_version,
        device: device(ua, result.category).map(str::to_owned),
    })
}

/// woothee's "not known" value.
const UNKNOWN: &str = "UNKNOWN";

fn browser(ua: &str, name: &str, version: &str) -> (Option<String>, Option<String>) {
    // Amazon's Silk says "like Chrome/…", which woothee reads as Chrome.
    if let Some(at) = ua.find("Silk/") {
        let version = &ua[at + "Silk/".len()..];
        let end = version
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(version.len());
        return (Some("Amazon Silk".into()), major_minor(&version[..end]));
    }
    match name {
        "" | UNKNOWN => (None, None),
        "SamsungBrowser" => (Some("Samsung Internet".into()), major_minor(version)),
        // Android WebViews and in-app browsers: Plausible files them all under "Mobile App".
        "Webview" => (Some("Mobile App".into()), None),
        _ => (Some(name.to_owned()), major_minor(version)),
    }
}

fn os(name: &str, version: &str) -> (Option<String>, Option<String>) {
    let (os, version) = match name {
        "" | UNKNOWN => return (None, None),
        "Mac OSX" => ("Mac", major_minor(version)),
        "iPhone" | "iPad" | "iPod" | "iOS" => ("iOS", major_minor(version)),
        "Android" => ("Android", major_minor(version)),
        "Linux" => ("GNU/Linux", None),
        // woothee gives "x86_64 14541.0.0": the platform, then the Chrome OS build.
        "ChromeOS" => (
            "Chrome OS",
            version.rsplit(' ').next().and_then(major_minor),
        ),
        "Windows Phone OS" => ("Windows Phone", major_minor(version)),
        "Windows UNKNOWN Ver" => ("Windows", None),
        "Windows CE" => ("Windows CE", None),
        // "Windows 10", "Windows 8.1", "Windows XP", … (the version is in the name).
        _ => match name.strip_prefix("Windows ") {
            Some(release) => return (Some("Windows".into()), Some(release.to_owned())),
            None => (name, major_minor(version)),
        },
    };
    (Some(os.to_owned()), version)
}

fn device(ua: &str, category: &str) -> Option<&'static str> {
    if ua.contains("iPad") || ua.contains("Kindle") || ua.contains("Silk/") {
        return Some("Tablet");
    }
    // Android browsers put "Mobile" in phone user agents only (Chrome keeps it in the reduced
    // user agent, Firefox sends "Mobile;" or "Tablet;").
    if ua.contains("Android") {
        return Some(if ua.contains("Mobile") {
            "Mobile"
        } else {
            "Tablet"
        });
    }
    match category {
        "pc" | "appliance" => Some("Desktop"),
        "smartphone" | "mobilephone" => Some("Mobile"),
        _ => None,
    }
}

/// "124.0.6367.82" → "124.0", "17.4.1" → "17.4", "14" → "14"; `None` unless it starts with a digit.
fn major_minor(version: &str) -> Option<String> {
    if !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let end = version
        .match_indices('.')
        .nth(1)
        .map_or(version.len(), |(at, _)| at);
    Some(version[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (user agent, browser, browser version, os, os version, device)
    type Human = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    const HUMANS: &[Human] = &[
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Chrome",
            "124.0",
            "Windows",
            "10",
            "Desktop",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
            "Edge",
            "124.0",
            "Windows",
            "10",
            "Desktop",
        ),
        (
            "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0",
            "Firefox",
            "115.0",
            "Windows",
            "7",
            "Desktop",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "Firefox",
            "125.0",
            "GNU/Linux",
            "",
            "Desktop",
        ),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
            "Firefox",
            "124.0",
            "GNU/Linux",
            "",
            "Desktop",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
            "Safari",
            "17.4",
            "Mac",
            "10.15",
            "Desktop",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Chrome",
            "124.0",
            "Mac",
            "10.15",
            "Desktop",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
            "Safari",
            "17.4",
            "iOS",
            "17.4",
            "Mobile",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
            "Chrome",
            "124.0",
            "iOS",
            "17.4",
            "Mobile",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
            "Chrome",
            "124.0",
            "Android",
            "14",
            "Mobile",
        ),
        (
            // Chrome's reduced user agent: model and Android version are frozen.
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "124.0",
            "Android",
            "10",
            "Mobile",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
            "Samsung Internet",
            "24.0",
            "Android",
            "13",
            "Mobile",
        ),
        (
            "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
            "Firefox",
            "125.0",
            "Android",
            "14",
            "Mobile",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            "Safari",
            "16.6",
            "iOS",
            "16.6",
            "Tablet",
        ),
        (
            // Galaxy Tab S7 in Samsung Internet.
            "Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/20.0 Chrome/106.0.5249.126 Safari/537.36",
            "Samsung Internet",
            "20.0",
            "Android",
            "12",
            "Tablet",
        ),
        (
            // Galaxy Tab S9 in Chrome.
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Safari/537.36",
            "Chrome",
            "123.0",
            "Android",
            "13",
            "Tablet",
        ),
        (
            "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.4.1 like Chrome/120.0.6099.230 Safari/537.36",
            "Amazon Silk",
            "120.4",
            "Android",
            "9",
            "Tablet",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 OPR/109.0.0.0",
            "Opera",
            "109.0",
            "Windows",
            "10",
            "Desktop",
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Chrome",
            "124.0",
            "Chrome OS",
            "14541.0",
            "Desktop",
        ),
    ];

    #[test]
    fn reads_real_browsers() {
        for &(ua, browser, version, os, os_version, device) in HUMANS {
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            let expected = UserAgentInfo {
                browser: opt(browser),
                browser_version: opt(version),
                os: opt(os),
                os_version: opt(os_version),
                device: opt(device),
            };
            assert_eq!(classify(ua), Ok(expected), "{ua}");
        }
    }

    const BOTS: &[(&str, BotKind)] = &[
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            BotKind::Crawler,
        ),
        (
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.60 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            BotKind::Crawler,
        ),
        (
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            BotKind::Crawler,
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
            BotKind::Crawler,
        ),
        (
            "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
            BotKind::Crawler,
        ),
        (
            "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
            BotKind::Crawler,
        ),
        (
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            BotKind::Crawler,
        ),
        (
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            BotKind::Crawler,
        ),
        ("Twitterbot/1.0", BotKind::Crawler),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
            BotKind::Crawler,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 Safari/537.36",
            BotKind::Headless,
        ),
        (
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
            BotKind::Headless,
        ),
        (
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
            BotKind::Headless,
        ),
        ("curl/8.5.0", BotKind::Tool),
        ("Wget/1.21.4", BotKind::Tool),
        ("python-requests/2.31.0", BotKind::Tool),
        ("Go-http-client/1.1", BotKind::Tool),
        ("okhttp/4.12.0", BotKind::Tool),
        ("Java/17.0.10", BotKind::Tool),
        ("axios/1.6.8", BotKind::Tool),
        ("HTTPie/3.2.2", BotKind::Tool),
        ("libwww-perl/6.72", BotKind::Tool),
        ("", BotKind::Empty),
        ("   ", BotKind::Empty),
        ("-", BotKind::Empty),
        ("Mozilla", BotKind::Empty),
    ];

    #[test]
    fn recognises_bots() {
        for &(ua, kind) in BOTS {
            assert_eq!(classify(ua), Err(kind), "{ua:?}");
        }
    }

    #[test]
    fn unknown_but_plausible_agents_are_visits() {
        assert_eq!(
            classify("Mozilla/5.0 (compatible; SomethingNew)"),
            Ok(UserAgentInfo::default())
        );
    }

    #[test]
    fn in_app_browsers_are_mobile_visits() {
        for ua in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21E219 [FBAN/FBIOS;FBAV/457.0.0.39.109;FBBV/577276813;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/579101960]",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 327.0.3.22.80 (iPhone15,2; iOS 17_4; en_US; en; scale=3.00; 1179x2556; 586926232)",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A.240405.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.54 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/460.0.0.48.109;]",
        ] {
            let info = classify(ua);
            assert_eq!(
                info.map(|i| (i.os, i.device)),
                Ok((
                    Some(
                        if ua.contains("Android") {
                            "Android"
                        } else {
                            "iOS"
                        }
                        .into()
                    ),
                    Some("Mobile".into())
                )),
                "{ua}"
            );
        }
    }

    #[test]
    fn versions_keep_major_and_minor() {
        assert_eq!(major_minor("124.0.6367.82").as_deref(), Some("124.0"));
        assert_eq!(major_minor("17.4").as_deref(), Some("17.4"));
        assert_eq!(major_minor("14").as_deref(), Some("14"));
        assert_eq!(major_minor(UNKNOWN), None);
        assert_eq!(major_minor(""), None);
    }

    /// Classifying is a pure function of the user agent: the same answer on every call, in any
    /// order, after the parsers are warm (what the collector's cache of classifications relies on).
    /// Its cost is measured by the collector benchmark, not here.
    #[test]
    fn classification_is_the_same_on_every_call() {
        warm_up();
        let agents: Vec<&str> = HUMANS
            .iter()
            .map(|h| h.0)
            .chain(BOTS.iter().map(|b| b.0))
            .collect();
        let first: Vec<_> = agents.iter().map(|ua| classify(ua)).collect();
        for round in 0..20 {
            for (i, ua) in agents.iter().enumerate().rev() {
                assert_eq!(classify(ua), first[i], "round {round}: {ua}");
            }
        }
    }
}
