//! Redis live counters: key layout and the connection. Redis is a cache of the last minutes,
//! never the source of truth for historical numbers.

use fred::prelude::*;

/// How far back "visitors online now" and "top pages right now" look.
pub const LIVE_WINDOW_MS: i64 = 5 * 60 * 1000;
/// How many minutes of page views per minute are kept.
pub const PAGEVIEW_MINUTES: i64 = 30;
const MINUTE_MS: i64 = 60_000;

/// Start of the minute holding `unix_ms`.
pub fn minute_start(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Key names under the namespace prefix.
#[derive(Debug, Clone)]
pub struct LiveKeys {
    prefix: String,
}

impl LiveKeys {
    pub fn new(namespace: &str) -> Self {
        Self {
            prefix: namespace.to_string(),
        }
    }

    /// Sorted set: member = visitor id, score = that visitor's latest event time (Unix ms).
    pub fn visitors(&self, site: &str) -> String {
        format!("{}:live:visitors:{site}", self.prefix)
    }

    /// Counter: page views whose event time is in the minute starting at `minute_ms`.
    pub fn pageviews(&self, site: &str, minute_ms: i64) -> String {
        format!("{}:live:pageviews:{site}:{minute_ms}", self.prefix)
    }

    /// Sorted set: member = page path, score = its page views in the minute at `minute_ms`.
    pub fn pages(&self, site: &str, minute_ms: i64) -> String {
        format!("{}:live:pages:{site}:{minute_ms}", self.prefix)
    }

    /// Patterns of `site`'s keys kept per minute or per answer (a normalised domain has no glob
    /// characters).
    pub fn site_patterns(&self, site: &str) -> [String; 3] {
        [
            format!("{}:live:pageviews:{site}:*", self.prefix),
            format!("{}:live:pages:{site}:*", self.prefix),
            format!("{}:cache:{site}:*", self.prefix),
        ]
    }

    /// Counter raised by the aggregator whenever the site's numbers change; part of every cache key.
    pub fn data_version(&self, site: &str) -> String {
        format!("{}:version:{site}", self.prefix)
    }

    /// A cached API answer for `site` at data version `version`.
    pub fn cached(&self, site: &str, version: i64, digest: &str) -> String {
        format!("{}:cache:{site}:{version}:{digest}", self.prefix)
    }

    /// Pattern matching every key of the namespace (for clean-up).
    pub fn pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}

/// Connects to Redis (lazily reconnecting on failure).
pub async fn connect(url: &str) -> Result<Client, fred::error::Error> {
    connect_with(url, DEFAULT_COMMAND_TIMEOUT).await
}

/// How long a Redis command may take by default: Redis is a cache here, never worth waiting for.
pub const DEFAULT_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`connect`] with every command bounded by `command_timeout` (also while the client is
/// reconnecting: callers get an error instead of waiting for Redis to come back).
pub async fn connect_with(
    url: &str,
    command_timeout: std::time::Duration,
) -> Result<Client, fred::error::Error> {
    let config = Config::from_url(url)?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = std::time::Duration::from_secs(5);
        })
        .with_performance_config(|c| {
            c.default_command_timeout = command_timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 10_000, 2))
        .build()?;
    client.init().await?;
    Ok(client)
}

/// Deletes every Redis key of `namespace` (live counters, data versions, cached answers). `DEL`
/// takes names, not patterns: the names come from `KEYS` first.
pub async fn drop_namespace(client: &Client, namespace: &str) -> Result<(), fred::error::Error> {
    let keys: Vec<String> = client
        .custom(fred::cmd!("KEYS"), vec![LiveKeys::new(namespace).pattern()])
        .await?;
    if !keys.is_empty() {
        let _: i64 = client.del(keys).await?;
    }
    Ok(())
}

/// Deletes `site`'s live counters, data version and cached answers; returns how many keys.
pub async fn delete_site(
    client: &Client,
    keys: &LiveKeys,
    site: &str,
) -> Result<i64, fred::error::Error> {
    let mut found: Vec<String> = vec![keys.visitors(site), keys.data_version(site)];
    for pattern in keys.site_patterns(site) {
        let matched: Vec<String> = client.custom(fred::cmd!("KEYS"), vec![pattern]).await?;
        found.extend(matched);
    }
    client.del(found).await
}

/// What the live counters say about a site right now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LiveStats {
    /// Distinct visitors with an event in the last five minutes.
    pub visitors: u64,
    /// Page views per minute, oldest first, the current minute last: `[unix_ms, count]`.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub pageviews_per_minute: Vec<(i64, u64)>,
    /// Pages by page views in the last five minutes, most viewed first: `[path, count]`.
    #[schema(value_type = Vec<Vec<Value>>)]
    pub top_pages: Vec<(String, u64)>,
}

/// Distinct visitors of `site` with an event in the five minutes before `now_ms`.
pub async fn visitors_now(
    client: &Client,
    keys: &LiveKeys,
    site: &str,
    now_ms: i64,
) -> Result<u64, fred::error::Error> {
    client
        .zcount(
            keys.visitors(site),
            (now_ms - LIVE_WINDOW_MS) as f64,
            f64::INFINITY,
        )
        .await
}

/// Reads the live counters of `site` as of `now_ms`.
pub async fn read(
    client: &Client,
    keys: &LiveKeys,
    site: &str,
    now_ms: i64,
    top: usize,
) -> Result<LiveStats, fred::error::Error> {
    let visitors = visitors_now(client, keys, site, now_ms).await?;
    let current = minute_start(now_ms);
    let minutes: Vec<i64> = (0..PAGEVIEW_MINUTES)
        .rev()
        .map(|back| current - back * MINUTE_MS)
        .collect();
    let counts: Vec<Option<u64>> = client
        .mget(
            minutes
                .iter()
                .map(|&m| keys.pageviews(site, m))
                .collect::<Vec<_>>(),
        )
        .await?;
    let pageviews_per_minute = minutes
        .iter()
        .zip(counts)
        .map(|(&m, c)| (m, c.unwrap_or(0)))
        .collect();

    let recent = LIVE_WINDOW_MS / MINUTE_MS;
    let mut per_page: std::collections::HashMap<String, u64> = Default::default();
    for &minute in &minutes[minutes.len() - recent as usize..] {
        let scores: Vec<(String, f64)> = client
            .zrangebyscore(keys.pages(site, minute), "-inf", "+inf", true, None)
            .await?;
        for (page, score) in scores {
            *per_page.entry(page).or_default() += score as u64;
        }
    }
    let mut top_pages: Vec<(String, u64)> = per_page.into_iter().collect();
    top_pages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_pages.truncate(top);
    Ok(LiveStats {
        visitors,
        pageviews_per_minute,
        top_pages,
    })
}
