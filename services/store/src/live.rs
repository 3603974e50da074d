//! Redis live counters: key layout and the connection. Redis is a cache of the last minutes,
//! never the source of truth for historical numbers.

use fred::prelude::*;

/// How far back "visitors online now" looks.
pub const LIVE_WINDOW_MS: i64 = 5 * 60 * 1000;

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

    /// Pattern matching every key of the namespace (for clean-up).
    pub fn pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}

/// Connects to Redis (lazily reconnecting on failure).
pub async fn connect(url: &str) -> Result<Client, fred::error::Error> {
    let config = Config::from_url(url)?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = std::time::Duration::from_secs(5);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 10_000, 2))
        .build()?;
    client.init().await?;
    Ok(client)
}
