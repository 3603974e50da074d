//! Where a visit came from: the `source`, `referrer` and UTM dimensions, following Plausible's rules.
//!
//! - `source` is the first non-empty of the page URL's `utm_source`, `source` and `ref` query
//!   parameters (Plausible's order, `Plausible.Ingestion.Source.resolve/1`); a tagged value that
//!   names a known source (`google`, `fb`, `news.ycombinator.com`) is spelled the known way.
//!   Without a tag it is the referrer's host mapped through [`KNOWN_SOURCES`], or the host itself
//!   (without `www.`) when it is not a known one.
//! - `referrer` is the referrer's host (without `www.`) and path, without query, fragment or
//!   trailing `/`: `news.ycombinator.com/item`. It is kept even when a tag decided the source.
//! - A referrer from the site itself (same host, or a subdomain of it) or from `localhost`, and a
//!   referrer that is not an `http(s)` (or `android-app`) URL, count as no referrer at all.

use beacon_schemas::text::without_controls;
use url::Url;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// "Google", "Bing", "DuckDuckGo", "Facebook", "Twitter", "Reddit", …, or the referrer host
    /// (without `www.`) when it is not a known one, or the `utm_source` / `source` / `ref` tag.
    pub source: Option<String>,
    /// Normalised referrer for the "referrer" breakdown: host + path without query, `www.`
    /// stripped, e.g. "news.ycombinator.com/item"; `None` when same-site or absent.
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
}

/// Longest tag value kept, in characters.
pub const MAX_TAG_CHARS: usize = 200;

/// Referrer hosts with a known source name: `(host, name)`. A host matches an entry when it is the
/// entry or a subdomain of it (`l.facebook.com` → `facebook.com`), the most specific entry winning
/// (`mail.google.com` is Gmail, `docs.google.com` is Google). `name.*` stands for `name.` followed
/// by any country or generic top-level domain: `google.de`, `google.co.uk`, `google.com.au`.
/// Entries starting with `android-app://` match Android app referrers exactly. Names are spelled
/// as Plausible's referrer database spells them (`Youtube`, `Yahoo!`, `StackOverflow`).
pub const KNOWN_SOURCES: &[(&str, &str)] = &[
    // Search
    ("google.*", "Google"),
    (
        "android-app://com.google.android.googlequicksearchbox",
        "Google",
    ),
    ("bing.com", "Bing"),
    ("ntp.msn.com", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("yahoo.com", "Yahoo!"),
    ("yahoo.co.jp", "Yahoo!"),
    ("yandex.*", "Yandex"),
    ("ya.ru", "Yandex"),
    ("baidu.com", "Baidu"),
    ("ecosia.org", "Ecosia"),
    ("search.brave.com", "Brave"),
    ("qwant.com", "Qwant"),
    ("startpage.com", "Startpage"),
    ("naver.com", "Naver"),
    ("seznam.cz", "Seznam"),
    ("sogou.com", "Sogou"),
    // AI assistants
    ("chatgpt.com", "ChatGPT"),
    ("chat.openai.com", "ChatGPT"),
    ("perplexity.ai", "Perplexity"),
    // Social and communities
    ("facebook.com", "Facebook"),
    ("fb.me", "Facebook"),
    ("android-app://com.facebook.katana", "Facebook"),
    ("instagram.com", "Instagram"),
    ("android-app://com.instagram.android", "Instagram"),
    ("threads.net", "Threads"),
    ("twitter.com", "Twitter"),
    ("t.co", "Twitter"),
    ("x.com", "Twitter"),
    ("android-app://com.twitter.android", "Twitter"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("android-app://com.linkedin.android", "LinkedIn"),
    ("reddit.com", "Reddit"),
    ("android-app://com.reddit.frontpage", "Reddit"),
    ("youtube.com", "Youtube"),
    ("youtu.be", "Youtube"),
    ("pinterest.*", "Pinterest"),
    ("tiktok.com", "TikTok"),
    ("news.ycombinator.com", "Hacker News"),
    ("github.com", "GitHub"),
    ("medium.com", "Medium"),
    ("stackoverflow.com", "StackOverflow"),
    ("quora.com", "Quora"),
    ("wikipedia.org", "Wikipedia"),
    ("linktr.ee", "Linktree"),
    // Messaging and mail
    ("t.me", "Telegram"),
    ("telegram.org", "Telegram"),
    ("android-app://org.telegram.messenger", "Telegram"),
    ("whatsapp.com", "WhatsApp"),
    ("android-app://com.whatsapp", "WhatsApp"),
    ("discord.com", "Discord"),
    ("discordapp.com", "Discord"),
    ("slack.com", "Slack"),
    ("android-app://com.slack", "Slack"),
    ("mail.google.com", "Gmail"),
    ("android-app://com.google.android.gm", "Gmail"),
];

/// Shorthands seen in `utm_source` tags (from Plausible's `custom_sources.json`), lower case.
const TAG_ALIASES: &[(&str, &str)] = &[
    ("fb", "Facebook"),
    ("fb-ads", "Facebook"),
    ("fbads", "Facebook"),
    ("facebook-ads", "Facebook"),
    ("facebook_ads", "Facebook"),
    ("ig", "Instagram"),
    ("yt", "Youtube"),
    ("yt-ads", "Youtube"),
    ("adwords", "Google"),
    ("gads", "Google"),
    ("googleads", "Google"),
    ("google-ads", "Google"),
    ("google_ads", "Google"),
    ("google ads", "Google"),
    ("twitter-ads", "Twitter"),
    ("reddit-ads", "Reddit"),
    ("tiktokads", "TikTok"),
    ("hn", "Hacker News"),
];

const ANDROID_APP: &str = "android-app://";

/// `page_url` is the page's absolute URL, `referrer` the document.referrer as sent, `site_host` the
/// page's host without www. A referrer from the same site (same host, or a subdomain of the
/// site's host) is not a source.
pub fn attribute(page_url: &str, referrer: Option<&str>, site_host: &str) -> Attribution {
    let tags = Tags::from_page_url(page_url);
    let site = site_host.trim().trim_end_matches('.').to_ascii_lowercase();
    let referred = referrer.and_then(|raw| Referred::parse(raw, strip_www(&site)));

    let tagged = tags
        .utm_source
        .as_deref()
        .or(tags.source.as_deref())
        .or(tags.reference.as_deref());
    let source = match (tagged, &referred) {
        (Some(tag), _) => Some(tag_source(tag)),
        (None, Some(referred)) => Some(referred.source()),
        (None, None) => None,
    };

    Attribution {
        source,
        referrer: referred.map(|r| r.normalised),
        utm_source: tags.utm_source,
        utm_medium: tags.utm_medium,
        utm_campaign: tags.utm_campaign,
        utm_content: tags.utm_content,
        utm_term: tags.utm_term,
    }
}

#[derive(Default)]
struct Tags {
    utm_source: Option<String>,
    utm_medium: Option<String>,
    utm_campaign: Option<String>,
    utm_content: Option<String>,
    utm_term: Option<String>,
    source: Option<String>,
    reference: Option<String>,
}

impl Tags {
    fn from_page_url(page_url: &str) -> Tags {
        let mut tags = Tags::default();
        let Ok(url) = Url::parse(page_url.trim()) else {
            return tags;
        };
        for (key, value) in url.query_pairs() {
            let slot = match key.as_ref() {
                "utm_source" => &mut tags.utm_source,
                "utm_medium" => &mut tags.utm_medium,
                "utm_campaign" => &mut tags.utm_campaign,
                "utm_content" => &mut tags.utm_content,
                "utm_term" => &mut tags.utm_term,
                "source" => &mut tags.source,
                "ref" => &mut tags.reference,
                _ => continue,
            };
            // The first non-empty occurrence of a parameter wins.
            if slot.is_none() {
                *slot = clean_tag(&value);
            }
        }
        tags
    }
}

/// Control characters (a decoded `%00`, `%0A`) made spaces ([`without_controls`]), trimmed, at
/// most [`MAX_TAG_CHARS`] characters; `None` when empty.
fn clean_tag(value: &str) -> Option<String> {
    let value = without_controls(value);
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let end = value
        .char_indices()
        .nth(MAX_TAG_CHARS)
        .map_or(value.len(), |(at, _)| at);
    Some(value[..end].trim_end().to_owned())
}

/// A tag naming a known source is spelled the known way (`google`, `GOOGLE` → `Google`; `fb` →
/// `Facebook`; `news.ycombinator.com` → `Hacker News`); anything else is kept as written.
fn tag_source(tag: &str) -> String {
    let lower = tag.to_ascii_lowercase();
    let known = TAG_ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map(|(_, name)| *name)
        .or_else(|| {
            KNOWN_SOURCES
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(&lower))
                .map(|(_, name)| *name)
        })
        .or_else(|| {
            lower
                .contains('.')
                .then(|| known_host(strip_www(&lower)))
                .flatten()
        });
    known.map_or_else(|| tag.to_owned(), str::to_owned)
}

/// A referrer from another site.
struct Referred {
    /// Host without `www.`, lower case; for an Android app, `android-app://<package>`.
    host: String,
    /// Host, then the path without a trailing `/`.
    normalised: String,
}

impl Referred {
    /// `site` is the site's host, lower case, without `www.`.
    fn parse(raw: &str, site: &str) -> Option<Referred> {
        let url = Url::parse(raw.trim()).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        let host = match url.scheme() {
            "http" | "https" => {
                let host = strip_www(host.trim_end_matches('.'));
                if host.is_empty() || host == "localhost" || same_site(host, site) {
                    return None;
                }
                host.to_owned()
            }
            "android-app" if !host.is_empty() => format!("{ANDROID_APP}{host}"),
            _ => return None,
        };
        let path = url.path().trim_end_matches('/');
        let normalised = format!("{host}{path}");
        Some(Referred { host, normalised })
    }

    fn source(&self) -> String {
        known_host(&self.host).map_or_else(|| self.host.clone(), str::to_owned)
    }
}

/// `host` is the site or one of its subdomains (both lower case, without `www.`).
fn same_site(host: &str, site: &str) -> bool {
    !site.is_empty()
        && host
            .strip_suffix(site)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

fn strip_www(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// The known source name of a lower-case host (see [`KNOWN_SOURCES`]).
fn known_host(host: &str) -> Option<&'static str> {
    if host.starts_with(ANDROID_APP) {
        return KNOWN_SOURCES
            .iter()
            .find(|(entry, _)| *entry == host)
            .map(|(_, name)| *name);
    }
    // The host, then each parent domain: most specific first.
    let mut candidate = host;
    loop {
        if let Some((_, name)) = KNOWN_SOURCES
            .iter()
            .find(|(entry, _)| entry_matches(entry, candidate))
        {
            return Some(name);
        }
        candidate = candidate.split_once('.')?.1;
    }
}

fn entry_matches(entry: &str, domain: &str) -> bool {
    match entry.strip_suffix('*') {
        // "google." + a top-level domain: "de", "com", "co.uk", "com.au".
        Some(stem) => domain.strip_prefix(stem).is_some_and(|tld| {
            let mut labels = tld.split('.');
            match (labels.next(), labels.next(), labels.next()) {
                (Some(top), None, None) => is_label(top),
                (Some(second), Some(top), None) => matches!(second, "co" | "com") && is_label(top),
                _ => false,
            }
        }),
        None => entry == domain,
    }
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "https://example.com/pricing";
    const SITE: &str = "example.com";

    fn from(referrer: &str) -> Attribution {
        attribute(PAGE, Some(referrer), SITE)
    }

    fn source_of(referrer: &str) -> Option<String> {
        from(referrer).source
    }

    #[test]
    fn search_engines_are_named() {
        let google = from("https://www.google.com/");
        assert_eq!(google.source.as_deref(), Some("Google"));
        assert_eq!(google.referrer.as_deref(), Some("google.com"));
        for referrer in [
            "https://www.google.co.uk/",
            "https://www.google.de/search?q=beacon",
            "https://google.com.au/",
            "https://news.google.com/articles/xyz",
        ] {
            assert_eq!(source_of(referrer).as_deref(), Some("Google"), "{referrer}");
        }
        assert_eq!(
            source_of("https://www.bing.com/search?q=x").as_deref(),
            Some("Bing")
        );
        assert_eq!(
            source_of("https://duckduckgo.com/").as_deref(),
            Some("DuckDuckGo")
        );
        assert_eq!(
            source_of("https://yandex.ru/search/?text=x").as_deref(),
            Some("Yandex")
        );
        assert_eq!(
            source_of("https://search.brave.com/search?q=x").as_deref(),
            Some("Brave")
        );
        assert_eq!(
            source_of("https://www.ecosia.org/").as_deref(),
            Some("Ecosia")
        );
        // More specific entries win over the wildcard.
        assert_eq!(
            source_of("https://mail.google.com/mail/u/0/").as_deref(),
            Some("Gmail")
        );
        // Look-alikes are not Google.
        assert_eq!(
            source_of("https://google.evil.com/").as_deref(),
            Some("google.evil.com")
        );
        assert_eq!(
            source_of("https://notgoogle.com/").as_deref(),
            Some("notgoogle.com")
        );
    }

    #[test]
    fn social_sites_are_named() {
        for (referrer, name) in [
            ("https://www.facebook.com/", "Facebook"),
            ("https://m.facebook.com/", "Facebook"),
            (
                "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com",
                "Facebook",
            ),
            ("https://lm.facebook.com/", "Facebook"),
            ("https://t.co/AbC123", "Twitter"),
            ("https://x.com/someone/status/1", "Twitter"),
            ("https://www.linkedin.com/feed/", "LinkedIn"),
            ("https://lnkd.in/abc", "LinkedIn"),
            ("https://old.reddit.com/r/rust/", "Reddit"),
            ("https://www.youtube.com/watch?v=x", "Youtube"),
            ("https://www.pinterest.co.uk/pin/1/", "Pinterest"),
            ("https://en.m.wikipedia.org/wiki/Rust", "Wikipedia"),
            ("https://chatgpt.com/", "ChatGPT"),
            ("https://github.com/owner/repo", "GitHub"),
        ] {
            assert_eq!(source_of(referrer).as_deref(), Some(name), "{referrer}");
        }
        let hn = from("https://news.ycombinator.com/item?id=1#c2");
        assert_eq!(hn.source.as_deref(), Some("Hacker News"));
        assert_eq!(hn.referrer.as_deref(), Some("news.ycombinator.com/item"));
    }

    #[test]
    fn same_site_referrers_are_not_sources() {
        for referrer in [
            "https://example.com/",
            "https://www.example.com/blog/post",
            "http://EXAMPLE.com/other",
            "https://blog.example.com/post",
            "https://a.b.example.com/",
            "http://localhost:3000/",
        ] {
            assert_eq!(from(referrer), Attribution::default(), "{referrer}");
        }
        // A site whose name merely ends the same way is another site.
        assert_eq!(
            source_of("https://myexample.com/").as_deref(),
            Some("myexample.com")
        );
        // The site host may be given with www. or in upper case.
        assert_eq!(
            attribute(PAGE, Some("https://blog.example.com/"), "WWW.Example.com"),
            Attribution::default()
        );
    }

    #[test]
    fn unknown_hosts_are_their_own_source() {
        let attribution = from("https://www.markosaric.com/blog/?utm=x#top");
        assert_eq!(attribution.source.as_deref(), Some("markosaric.com"));
        assert_eq!(attribution.referrer.as_deref(), Some("markosaric.com/blog"));
        let port = from("http://intranet.corp:8080/wiki/");
        assert_eq!(port.source.as_deref(), Some("intranet.corp"));
        assert_eq!(port.referrer.as_deref(), Some("intranet.corp/wiki"));
    }

    #[test]
    fn utm_source_wins_over_source_and_ref_and_referrer() {
        let page = "https://example.com/?ref=producthunt&source=newsletter&utm_source=twitter\
                    &utm_medium=social&utm_campaign=launch&utm_content=%20banner%20&utm_term=";
        let attribution = attribute(page, Some("https://www.google.com/"), SITE);
        assert_eq!(
            attribution,
            Attribution {
                source: Some("Twitter".into()),
                referrer: Some("google.com".into()),
                utm_source: Some("twitter".into()),
                utm_medium: Some("social".into()),
                utm_campaign: Some("launch".into()),
                utm_content: Some("banner".into()),
                utm_term: None,
            }
        );
        let page = "https://example.com/?ref=producthunt&source=newsletter";
        assert_eq!(
            attribute(page, None, SITE).source.as_deref(),
            Some("newsletter")
        );
        // An empty tag falls through to the next one.
        let page = "https://example.com/?utm_source=+&source=&ref=producthunt";
        assert_eq!(
            attribute(page, None, SITE).source.as_deref(),
            Some("producthunt")
        );
    }

    #[test]
    fn ref_param_sets_the_source() {
        let attribution = attribute(
            "https://example.com/?ref=Product+Hunt",
            Some("https://blog.example.com/"),
            SITE,
        );
        assert_eq!(attribution.source.as_deref(), Some("Product Hunt"));
        assert_eq!(attribution.referrer, None);
        assert_eq!(attribution.utm_source, None);
    }

    #[test]
    fn tags_naming_known_sources_are_spelled_the_known_way() {
        for (tag, name) in [
            ("google", "Google"),
            ("GOOGLE", "Google"),
            ("fb", "Facebook"),
            ("ig", "Instagram"),
            ("hacker news", "Hacker News"),
            ("news.ycombinator.com", "Hacker News"),
            ("www.reddit.com", "Reddit"),
        ] {
            let page = format!("https://example.com/?utm_source={tag}");
            let attribution = attribute(&page, None, SITE);
            assert_eq!(attribution.source.as_deref(), Some(name), "{tag}");
            assert_eq!(attribution.utm_source.as_deref(), Some(tag));
        }
    }

    #[test]
    fn tags_are_trimmed_and_capped() {
        let long = "é".repeat(MAX_TAG_CHARS + 50);
        let page = format!("https://example.com/?utm_campaign={long}");
        let campaign = attribute(&page, None, SITE)
            .utm_campaign
            .unwrap_or_default();
        assert_eq!(campaign.chars().count(), MAX_TAG_CHARS);
        assert_eq!(clean_tag("  spring sale \t"), Some("spring sale".into()));
        assert_eq!(clean_tag(" \n "), None);
    }

    #[test]
    fn decoded_control_characters_in_tags_become_spaces() {
        let page = "https://example.com/?utm_source=%00&utm_medium=e%00mail&utm_campaign=a%0A%0Db";
        let a = attribute(page, None, SITE);
        assert_eq!(
            a.utm_source, None,
            "a tag of control characters only is no tag"
        );
        assert_eq!(a.source, None);
        assert_eq!(a.utm_medium.as_deref(), Some("e mail"));
        assert_eq!(a.utm_campaign.as_deref(), Some("a b"));
    }

    #[test]
    fn garbage_referrers_are_ignored() {
        for referrer in [
            "",
            "   ",
            "not a url",
            "/relative/path",
            "about:blank",
            "data:text/html,hi",
            "file:///etc/passwd",
            "ftp://files.example.org/",
            "chrome-extension://abcdef/popup.html",
            "https://",
        ] {
            assert_eq!(from(referrer), Attribution::default(), "{referrer:?}");
        }
        // A page URL that does not parse only loses its tags.
        assert_eq!(
            attribute("::garbage::", Some("https://duckduckgo.com/"), SITE)
                .source
                .as_deref(),
            Some("DuckDuckGo")
        );
    }

    #[test]
    fn android_app_referrers() {
        let gmail = from("android-app://com.google.android.gm");
        assert_eq!(gmail.source.as_deref(), Some("Gmail"));
        assert_eq!(
            gmail.referrer.as_deref(),
            Some("android-app://com.google.android.gm")
        );
        assert_eq!(
            source_of("android-app://com.google.android.googlequicksearchbox/").as_deref(),
            Some("Google")
        );
        assert_eq!(
            source_of("android-app://org.example.reader").as_deref(),
            Some("android-app://org.example.reader")
        );
    }

    #[test]
    fn table_entries_are_lower_case_and_well_formed() {
        for (entry, name) in KNOWN_SOURCES {
            assert_eq!(*entry, entry.to_ascii_lowercase(), "{entry}");
            assert!(!entry.starts_with("www."), "{entry}");
            assert!(!name.is_empty());
        }
    }
}
