//! A generated traffic dataset with known ground truth, and the expected statistics computed
//! straight from it — independently of Beacon's pipeline code (own session split, own counting).
//!
//! Several sites in different zones (UTC, +05:30, New York), visitors returning on several days,
//! visits crossing 15-minute buckets and local midnight, landings from search, social, newsletters
//! and unknown sites, custom events with props, non-interactive events, engagement pings, bots.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

pub const SITES: &[(&str, Tz)] = &[
    ("gt-utc.test", Tz::UTC),
    ("gt-kolkata.test", chrono_tz::Asia::Kolkata),
    ("gt-ny.test", chrono_tz::America::New_York),
];

/// A human user agent and what Beacon must call it.
pub struct Agent {
    pub ua: &'static str,
    pub browser: &'static str,
    pub os: &'static str,
    pub device: &'static str,
}

pub const AGENTS: &[Agent] = &[
    Agent {
        ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        browser: "Safari",
        os: "Mac",
        device: "Desktop",
    },
    Agent {
        ua: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
        browser: "Chrome",
        os: "Android",
        device: "Mobile",
    },
    Agent {
        ua: "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        browser: "Firefox",
        os: "GNU/Linux",
        device: "Desktop",
    },
];

pub const BOT_UA: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// How a visit arrives, and the labels Beacon must give it.
pub struct Landing {
    pub query: &'static str,
    pub referrer: Option<&'static str>,
    pub source: &'static str,
    pub referrer_label: &'static str,
    pub utm: [&'static str; 5],
}

pub const LANDINGS: &[Landing] = &[
    Landing {
        query: "",
        referrer: None,
        source: "",
        referrer_label: "",
        utm: ["", "", "", "", ""],
    },
    Landing {
        query: "",
        referrer: Some("https://www.google.com/"),
        source: "Google",
        referrer_label: "google.com",
        utm: ["", "", "", "", ""],
    },
    Landing {
        query: "",
        referrer: Some("https://news.ycombinator.com/item?id=42"),
        source: "Hacker News",
        referrer_label: "news.ycombinator.com/item",
        utm: ["", "", "", "", ""],
    },
    Landing {
        query: "?utm_source=newsletter&utm_medium=email&utm_campaign=launch&utm_content=top&utm_term=beacon",
        referrer: None,
        source: "newsletter",
        referrer_label: "",
        // medium, source, campaign, content, term
        utm: ["email", "newsletter", "launch", "top", "beacon"],
    },
    Landing {
        query: "",
        referrer: Some("https://blog.example.org/posts/analytics"),
        source: "blog.example.org",
        referrer_label: "blog.example.org/posts/analytics",
        utm: ["", "", "", "", ""],
    },
];

pub const PAGES: &[&str] = &["/", "/pricing", "/blog/one", "/blog/two", "/docs"];
/// Address prefixes (/24) of the visitors, and the country the test fixture's GeoIP database
/// (geo-whois-asn-country) gives every host .10–.249 of each, as read with MaxMind's own Python
/// reader: the ground truth does not ask the collector's GeoIP code, so a bug there cannot agree
/// with itself.
pub const NETWORKS: &[(&str, &str)] = &[
    ("8.8.8", "US"),
    ("81.2.69", "GB"),
    ("1.1.1", "AU"),
    ("203.0.113", "AU"),
    ("5.255.255", "RU"),
];

/// One hit as sent to the collector, with what the expectation needs to know about it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub site: &'static str,
    pub ts_ms: i64,
    pub name: String,
    pub path: String,
    pub visitor: usize,
    /// The landing (index into [`LANDINGS`]) of a visit's first page view; `None` for hits
    /// that arrive from the site itself.
    pub landing: Option<usize>,
    pub bot: bool,
    pub interactive: bool,
    pub props: BTreeMap<String, String>,
    pub body: Value,
}

/// A tiny deterministic generator (xorshift64*), so the dataset is the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub struct Visitor {
    pub agent: usize,
    pub ip: String,
}

/// The generated traffic: `days` local days from `first_day` on every site.
pub struct Dataset {
    pub first_day: NaiveDate,
    pub days: u32,
    pub visitors: Vec<Visitor>,
    pub hits: Vec<Hit>,
}

const MIN: i64 = 60_000;

pub fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

pub fn generate(seed: u64, first_day: NaiveDate, days: u32, visitors_per_site: usize) -> Dataset {
    // Each visitor has an address of their own: the networks in turn, hosts .10 to .249 in each.
    assert!(
        visitors_per_site <= NETWORKS.len() * 240,
        "{visitors_per_site} visitors need more addresses than the dataset's networks hold"
    );
    let mut rng = Rng::new(seed);
    let visitors: Vec<Visitor> = (0..visitors_per_site)
        .map(|i| Visitor {
            agent: i % AGENTS.len(),
            ip: format!(
                "{}.{}",
                NETWORKS[i % NETWORKS.len()].0,
                10 + i / NETWORKS.len()
            ),
        })
        .collect();
    let mut hits = Vec::new();
    for &(site, tz) in SITES {
        for day in 0..days {
            let date = first_day + chrono::Days::new(u64::from(day));
            let midnight = local_midnight(tz, date).timestamp_millis();
            for (v, visitor) in visitors.iter().enumerate() {
                if !rng.chance(60) {
                    continue;
                }
                // One or two visits a day; the second at least two hours after the first. Some
                // start just before local midnight so they cross into the next day.
                let visits = 1 + rng.below(2) as i64;
                for k in 0..visits {
                    let start = if rng.chance(15) {
                        midnight + 24 * 60 * MIN - (5 + rng.below(20) as i64) * MIN
                    } else {
                        midnight + (k * 12 * 60 + rng.below(10 * 60) as i64) * MIN
                    };
                    let bot = rng.chance(5);
                    visit(&mut rng, &mut hits, site, v, visitor, start, bot);
                }
            }
        }
    }
    Dataset {
        first_day,
        days,
        visitors,
        hits,
    }
}

#[allow(clippy::too_many_arguments)]
fn visit(
    rng: &mut Rng,
    hits: &mut Vec<Hit>,
    site: &'static str,
    v: usize,
    visitor: &Visitor,
    start: i64,
    bot: bool,
) {
    let landing_index = rng.below(LANDINGS.len() as u64) as usize;
    let landing = &LANDINGS[landing_index];
    let ua = if bot {
        BOT_UA
    } else {
        AGENTS[visitor.agent].ua
    };
    let pageviews = 1 + rng.below(4);
    let mut t = start + rng.below(1000) as i64;
    let mut previous_url: Option<String> = None;
    for i in 0..pageviews {
        let path = PAGES[rng.below(PAGES.len() as u64) as usize];
        let url = if i == 0 {
            format!("https://{site}{path}{}", landing.query)
        } else {
            format!("https://{site}{path}")
        };
        let referrer = if i == 0 {
            landing.referrer.map(str::to_string)
        } else {
            previous_url.clone()
        };
        let mut pageview = hit(
            site,
            t,
            "pageview",
            path,
            &url,
            referrer,
            v,
            ua,
            &visitor.ip,
            bot,
            true,
            BTreeMap::new(),
        );
        pageview.landing = (i == 0).then_some(landing_index);
        hits.push(pageview);
        if rng.chance(20) {
            let plan = if rng.chance(50) { "pro" } else { "free" };
            let props = BTreeMap::from([("plan".to_string(), plan.to_string())]);
            t += 1 + rng.below(30_000) as i64;
            hits.push(hit(
                site,
                t,
                "Signup",
                path,
                &url,
                None,
                v,
                ua,
                &visitor.ip,
                bot,
                true,
                props,
            ));
        }
        if rng.chance(10) {
            t += 1 + rng.below(30_000) as i64;
            hits.push(hit(
                site,
                t,
                "Scrolled",
                path,
                &url,
                None,
                v,
                ua,
                &visitor.ip,
                bot,
                false,
                BTreeMap::new(),
            ));
        }
        previous_url = Some(url);
        // Gaps up to 20 minutes: well inside a visit, often across a 15-minute bucket.
        t += (10 + rng.below(20 * 60) as i64) * 1000;
    }
    if rng.chance(30) {
        let url = previous_url.unwrap_or_default();
        let path = url.split_once(site).map_or("/", |(_, p)| p).to_string();
        hits.push(hit(
            site,
            t,
            "engagement",
            &path,
            &url,
            None,
            v,
            ua,
            &visitor.ip,
            bot,
            false,
            BTreeMap::new(),
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn hit(
    site: &'static str,
    ts_ms: i64,
    name: &str,
    path: &str,
    url: &str,
    referrer: Option<String>,
    visitor: usize,
    ua: &str,
    ip: &str,
    bot: bool,
    interactive: bool,
    props: BTreeMap<String, String>,
) -> Hit {
    let mut body = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "site": site,
        "name": name,
        "url": url,
        "timestamp": ts_ms,
        "ip": ip,
        "user_agent": ua,
        "interactive": interactive,
    });
    if let Some(r) = referrer {
        body["referrer"] = json!(r);
    }
    if !props.is_empty() {
        body["props"] = json!(props);
    }
    Hit {
        site,
        ts_ms,
        name: name.to_string(),
        path: path.to_string(),
        visitor,
        landing: None,
        bot,
        interactive,
        props,
        body,
    }
}

/// A visit as the expectation sees it.
#[derive(Debug, Clone)]
pub struct ExpectedVisit {
    pub visitor: usize,
    pub start_ms: i64,
    pub end_ms: i64,
    pub pageviews: i64,
    pub events: i64,
    pub bounce: bool,
    pub props: BTreeMap<&'static str, String>,
}

/// The counted hits of a site (bots dropped) and their visits, by the plain definition: a
/// visitor's hits sorted by time, cut where two neighbours are 30 minutes or more apart.
pub fn visits_of(
    hits: &[&Hit],
    label: &dyn Fn(&Hit) -> BTreeMap<&'static str, String>,
) -> Vec<ExpectedVisit> {
    let mut by_visitor: BTreeMap<usize, Vec<&Hit>> = BTreeMap::new();
    for h in hits {
        by_visitor.entry(h.visitor).or_default().push(h);
    }
    let mut visits = Vec::new();
    for (visitor, mut hs) in by_visitor {
        hs.sort_by_key(|h| h.ts_ms);
        let mut current: Vec<&Hit> = Vec::new();
        let mut close = |current: &mut Vec<&Hit>| {
            let counted: Vec<&&Hit> = current.iter().filter(|h| h.name != "engagement").collect();
            if let Some(first) = counted.first() {
                let pages: Vec<&&Hit> = counted
                    .iter()
                    .copied()
                    .filter(|h| h.name == "pageview")
                    .collect();
                let interactions = counted.iter().filter(|h| h.interactive).count();
                let mut props = label(first);
                props.insert(
                    "visit:entry_page",
                    pages.first().map_or(String::new(), |h| h.path.clone()),
                );
                props.insert(
                    "visit:exit_page",
                    pages.last().map_or(String::new(), |h| h.path.clone()),
                );
                visits.push(ExpectedVisit {
                    visitor,
                    start_ms: current[0].ts_ms,
                    end_ms: current[current.len() - 1].ts_ms,
                    pageviews: pages.len() as i64,
                    events: (counted.len() - pages.len()) as i64,
                    bounce: interactions <= 1,
                    props,
                });
            }
            current.clear();
        };
        for h in hs {
            if let Some(last) = current.last()
                && h.ts_ms - last.ts_ms >= 30 * MIN
            {
                close(&mut current);
            }
            current.push(h);
        }
        close(&mut current);
    }
    visits
}

/// Plausible's numbers for a set of event hits and visits, rounded the way the API rounds.
pub fn metrics(hits: &[&Hit], visits: &[&ExpectedVisit]) -> BTreeMap<&'static str, Value> {
    let counted: Vec<&&Hit> = hits.iter().filter(|h| h.name != "engagement").collect();
    let visitors: BTreeSet<usize> = counted.iter().map(|h| h.visitor).collect();
    let pageviews = counted.iter().filter(|h| h.name == "pageview").count() as i64;
    let n = visits.len() as i64;
    let ratio = |x: i64| if n > 0 { x as f64 / n as f64 } else { 0.0 };
    let bounces = visits.iter().filter(|v| v.bounce).count() as i64;
    let duration: i64 = visits.iter().map(|v| v.end_ms - v.start_ms).sum();
    let visit_pageviews: i64 = visits.iter().map(|v| v.pageviews).sum();
    BTreeMap::from([
        ("visitors", json!(visitors.len())),
        ("pageviews", json!(pageviews)),
        ("events", json!(counted.len())),
        ("visits", json!(n)),
        (
            "bounce_rate",
            json!((ratio(bounces) * 100.0).round() as i64),
        ),
        (
            "visit_duration",
            json!((ratio(duration) / 1000.0).round() as i64),
        ),
        (
            "views_per_visit",
            json!((ratio(visit_pageviews) * 100.0).round() / 100.0),
        ),
    ])
}
