//! Configuration from `BEACON_*` environment variables, each with a default that points at a
//! local server. A bad value stops the start with an error naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything a Beacon process reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub nats_url: String,
    pub postgres_url: String,
    pub mongo_url: String,
    pub redis_url: String,
    pub collector_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Peers whose `X-Forwarded-For` the collector believes.
    pub trusted_proxies: Vec<IpNet>,
    /// Prefix of every stream, subject, key, database and schema Beacon owns.
    pub namespace: String,
    /// How long the events stream keeps events replayable.
    pub stream_max_age: Duration,
    /// Window in which JetStream drops a re-sent event id.
    pub stream_duplicate_window: Duration,
    /// Time JetStream waits for a consumer's ack before redelivering.
    pub consumer_ack_wait: Duration,
    /// Failed deliveries after which a message is dead-lettered.
    pub consumer_max_deliver: i64,
    /// Unacknowledged messages outstanding per consumer, across all its processes.
    pub consumer_max_ack_pending: i64,
    /// Messages a consumer handles in one batch.
    pub consumer_batch: usize,
    /// Batches one process handles at once per consumer.
    pub consumer_concurrency: usize,
    /// Requests per second one client address may send to the collector; 0 = unlimited.
    pub rate_limit: u32,
    /// Events the collector may have waiting for JetStream acks at once.
    pub max_in_flight: u32,
    /// MaxMind-format database for client countries.
    pub geoip_db: Option<std::path::PathBuf>,
    /// Raw events older than this are deleted from the archive (TTL index); `None` keeps them.
    pub archive_retention: Option<Duration>,
    /// A visit nobody touched for this long is closed and counted in the visit rollups.
    pub session_close_after: Duration,
    /// Visitors whose sessions the aggregator keeps in memory; 0 = none.
    pub session_cache: usize,
    /// How long the aggregator remembers applied event ids (and keeps sessions) to recognise a
    /// redelivered or replayed event: the allowed lateness.
    pub dedup_window: Duration,
    /// 15-minute rollup rows of local days older than this are merged into day rows.
    pub rollup_fine_retention: Duration,
    /// Time a client has to send a request's head to the collector or the API.
    pub http_header_timeout: Duration,
    /// Time a whole request may take (a slower one is answered 408).
    pub http_request_timeout: Duration,
    /// Connections one HTTP listener keeps open at once.
    pub http_max_connections: usize,
    /// Time to connect to PostgreSQL and to wait for a pooled connection.
    pub postgres_timeout: Duration,
    /// Longest one PostgreSQL statement of a service may run.
    pub postgres_statement_timeout: Duration,
    /// Longest one Redis command may take.
    pub redis_timeout: Duration,
    /// Time to connect to MongoDB and to find a server for a write.
    pub mongo_timeout: Duration,
    /// Time to connect to NATS, for a JetStream request, and for a publish's ack.
    pub nats_timeout: Duration,
    pub log_format: LogFormat,
}

/// One variable and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// Each variable, its default and what it means (printed by `beacon --help` and the README).
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "BEACON_NATS_URL",
        "nats://127.0.0.1:4222",
        "NATS server with JetStream",
    ),
    (
        "BEACON_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "PostgreSQL: sites, users, keys, rollups",
    ),
    (
        "BEACON_MONGO_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
        "MongoDB: the raw event archive",
    ),
    (
        "BEACON_REDIS_URL",
        "redis://127.0.0.1:6379",
        "Redis: live counters and query cache",
    ),
    (
        "BEACON_COLLECTOR_ADDR",
        "127.0.0.1:8080",
        "collector listen address",
    ),
    (
        "BEACON_API_ADDR",
        "127.0.0.1:8000",
        "API and dashboard listen address",
    ),
    (
        "BEACON_ADMIN_ADDR",
        "127.0.0.1:9090",
        "archiver/aggregator admin listener (port 0 picks one)",
    ),
    (
        "BEACON_TRUSTED_PROXIES",
        "",
        "comma-separated addresses/CIDRs whose X-Forwarded-For is believed",
    ),
    (
        "BEACON_NAMESPACE",
        "beacon",
        "prefix of everything Beacon owns on the shared servers",
    ),
    (
        "BEACON_STREAM_MAX_AGE",
        "30days",
        "how long the events stream keeps events",
    ),
    (
        "BEACON_STREAM_DUPLICATE_WINDOW",
        "1s",
        "JetStream drops an event re-sent with the same id within this window (the consumers are idempotent by id anyway)",
    ),
    (
        "BEACON_CONSUMER_ACK_WAIT",
        "30s",
        "time before an unacknowledged message is redelivered",
    ),
    (
        "BEACON_CONSUMER_MAX_DELIVER",
        "10",
        "failed deliveries before a message is dead-lettered",
    ),
    (
        "BEACON_CONSUMER_MAX_ACK_PENDING",
        "10000",
        "unacknowledged messages outstanding per consumer",
    ),
    (
        "BEACON_CONSUMER_BATCH",
        "4000",
        "most messages per consumer batch (a batch is one transaction; fewer, larger ones are cheaper per event)",
    ),
    (
        "BEACON_CONSUMER_CONCURRENCY",
        "2",
        "batches one process handles at once per consumer (the next overlaps the current one)",
    ),
    (
        "BEACON_ARCHIVE_RETENTION",
        "forever",
        "how long raw events stay in MongoDB (a duration, or forever)",
    ),
    (
        "BEACON_SESSION_CLOSE_AFTER",
        "30m",
        "quiet time after which a visit is closed and counted in the visit rollups",
    ),
    (
        "BEACON_SESSION_CACHE",
        "20000",
        "visitors whose sessions an aggregator keeps in memory instead of reading them back (about 2 KB each); 0 = none",
    ),
    (
        "BEACON_DEDUP_WINDOW",
        "7days",
        "how long applied event ids and sessions are kept (allowed lateness)",
    ),
    (
        "BEACON_ROLLUP_FINE_RETENTION",
        "35days",
        "how long 15-minute rollup rows are kept before old days are compacted into day rows",
    ),
    (
        "BEACON_RATE_LIMIT",
        "50",
        "collector requests per second per client address (0: no limit)",
    ),
    (
        "BEACON_MAX_IN_FLIGHT",
        "20000",
        "events the collector may have awaiting JetStream acks",
    ),
    (
        "BEACON_GEOIP_DB",
        "",
        "MaxMind-format country database (empty: countries unknown)",
    ),
    (
        "BEACON_HTTP_HEADER_TIMEOUT",
        "10s",
        "time a client has to send a request's head (collector, API, admin); slower ones are disconnected",
    ),
    (
        "BEACON_HTTP_REQUEST_TIMEOUT",
        "30s",
        "time a whole request may take, body included; slower ones are answered 408",
    ),
    (
        "BEACON_HTTP_MAX_CONNECTIONS",
        "10000",
        "connections one HTTP listener keeps open at once; more wait to be accepted",
    ),
    (
        "BEACON_POSTGRES_TIMEOUT",
        "10s",
        "time to connect to PostgreSQL and to wait for a pooled connection",
    ),
    (
        "BEACON_POSTGRES_STATEMENT_TIMEOUT",
        "60s",
        "longest one PostgreSQL statement of a service may run (migrations are not bound)",
    ),
    (
        "BEACON_REDIS_TIMEOUT",
        "2s",
        "longest one Redis command may take (also while reconnecting): live counters and the cache are skipped, statistics still answer",
    ),
    (
        "BEACON_MONGO_TIMEOUT",
        "10s",
        "time to connect to MongoDB and to find a server for a write (the URL's own settings win)",
    ),
    (
        "BEACON_NATS_TIMEOUT",
        "5s",
        "time to connect to NATS, for a JetStream request, and for a publish's ack (then the collector answers 503)",
    ),
    ("BEACON_LOG_FORMAT", "text", "text or json"),
];

fn default_of(variable: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|(name, _, _)| *name == variable)
        .map(|(_, d, _)| *d)
        .unwrap_or("")
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).unwrap_or_else(|| default_of(name).to_string());
        Ok(Config {
            nats_url: url(&get, "BEACON_NATS_URL", &["nats", "tls", "ws", "wss"])?,
            postgres_url: url(&get, "BEACON_POSTGRES_URL", &["postgres", "postgresql"])?,
            mongo_url: url(&get, "BEACON_MONGO_URL", &["mongodb", "mongodb+srv"])?,
            redis_url: url(&get, "BEACON_REDIS_URL", &["redis", "rediss"])?,
            collector_addr: addr(&get, "BEACON_COLLECTOR_ADDR")?,
            api_addr: addr(&get, "BEACON_API_ADDR")?,
            admin_addr: addr(&get, "BEACON_ADMIN_ADDR")?,
            trusted_proxies: proxies(&get("BEACON_TRUSTED_PROXIES"))?,
            namespace: namespace(&get("BEACON_NAMESPACE"))?,
            stream_max_age: duration(&get, "BEACON_STREAM_MAX_AGE")?,
            stream_duplicate_window: match duration(&get, "BEACON_STREAM_DUPLICATE_WINDOW")? {
                // JetStream would read 0 as its own default of 2 minutes.
                Duration::ZERO => {
                    return Err(err(
                        "BEACON_STREAM_DUPLICATE_WINDOW",
                        "must be longer than 0 (JetStream reads 0 as 2 minutes)",
                    ));
                }
                window => window,
            },
            rate_limit: u32::try_from(number(&get, "BEACON_RATE_LIMIT", 0, 1_000_000)?)
                .unwrap_or(50),
            max_in_flight: u32::try_from(number(&get, "BEACON_MAX_IN_FLIGHT", 1, 10_000_000)?)
                .unwrap_or(20_000),
            geoip_db: geoip(&get("BEACON_GEOIP_DB"))?,
            consumer_ack_wait: duration(&get, "BEACON_CONSUMER_ACK_WAIT")?,
            consumer_max_deliver: number(&get, "BEACON_CONSUMER_MAX_DELIVER", 1, 1_000)?,
            consumer_max_ack_pending: number(
                &get,
                "BEACON_CONSUMER_MAX_ACK_PENDING",
                1,
                1_000_000,
            )?,
            consumer_batch: usize::try_from(number(&get, "BEACON_CONSUMER_BATCH", 1, 10_000)?)
                .unwrap_or(4000),
            consumer_concurrency: usize::try_from(number(
                &get,
                "BEACON_CONSUMER_CONCURRENCY",
                1,
                16,
            )?)
            .unwrap_or(2),
            archive_retention: match get("BEACON_ARCHIVE_RETENTION").as_str() {
                "forever" | "" => None,
                _ => Some(duration(&get, "BEACON_ARCHIVE_RETENTION")?),
            },
            session_close_after: duration(&get, "BEACON_SESSION_CLOSE_AFTER")?,
            session_cache: usize::try_from(number(&get, "BEACON_SESSION_CACHE", 0, 100_000_000)?)
                .unwrap_or(20_000),
            dedup_window: duration(&get, "BEACON_DEDUP_WINDOW")?,
            rollup_fine_retention: duration(&get, "BEACON_ROLLUP_FINE_RETENTION")?,
            http_header_timeout: positive(&get, "BEACON_HTTP_HEADER_TIMEOUT")?,
            http_request_timeout: positive(&get, "BEACON_HTTP_REQUEST_TIMEOUT")?,
            http_max_connections: usize::try_from(number(
                &get,
                "BEACON_HTTP_MAX_CONNECTIONS",
                1,
                10_000_000,
            )?)
            .unwrap_or(10_000),
            postgres_timeout: positive(&get, "BEACON_POSTGRES_TIMEOUT")?,
            postgres_statement_timeout: positive(&get, "BEACON_POSTGRES_STATEMENT_TIMEOUT")?,
            redis_timeout: positive(&get, "BEACON_REDIS_TIMEOUT")?,
            mongo_timeout: positive(&get, "BEACON_MONGO_TIMEOUT")?,
            nats_timeout: positive(&get, "BEACON_NATS_TIMEOUT")?,
            log_format: match get("BEACON_LOG_FORMAT").as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(err(
                        "BEACON_LOG_FORMAT",
                        format!("'{other}' is neither 'text' nor 'json'"),
                    ));
                }
            },
        })
    }
}

fn err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

fn url(
    get: &impl Fn(&'static str) -> String,
    variable: &'static str,
    schemes: &[&str],
) -> Result<String, ConfigError> {
    let value = get(variable);
    let scheme = value.split_once("://").map(|(s, _)| s).unwrap_or("");
    if schemes.contains(&scheme) {
        Ok(value)
    } else {
        Err(err(
            variable,
            format!(
                "'{value}' is not a URL with a scheme of {}",
                schemes.join(", ")
            ),
        ))
    }
}

fn addr(
    get: &impl Fn(&'static str) -> String,
    variable: &'static str,
) -> Result<SocketAddr, ConfigError> {
    let value = get(variable);
    value.parse().map_err(|_| {
        err(
            variable,
            format!("'{value}' is not an address like 127.0.0.1:8080"),
        )
    })
}

/// A timeout: longer than zero (zero would refuse everything, or mean "none") and at most a
/// day (PostgreSQL takes a statement timeout of at most 24.8 days in milliseconds, and a longer
/// wait is no bound).
fn positive(
    get: &impl Fn(&'static str) -> String,
    variable: &'static str,
) -> Result<Duration, ConfigError> {
    match duration(get, variable)? {
        Duration::ZERO => Err(err(variable, "must be longer than 0")),
        d if d > MAX_TIMEOUT => Err(err(variable, "must be at most 1day")),
        d => Ok(d),
    }
}

const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

fn duration(
    get: &impl Fn(&'static str) -> String,
    variable: &'static str,
) -> Result<Duration, ConfigError> {
    let value = get(variable);
    humantime::parse_duration(&value).map_err(|e| {
        err(
            variable,
            format!("'{value}' is not a duration like 30days: {e}"),
        )
    })
}

fn number(
    get: &impl Fn(&'static str) -> String,
    variable: &'static str,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let value = get(variable);
    match value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(
            variable,
            format!("'{value}' is not a whole number from {min} to {max}"),
        )),
    }
}

fn geoip(value: &str) -> Result<Option<std::path::PathBuf>, ConfigError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let path = std::path::PathBuf::from(value.trim());
    if path.is_file() {
        Ok(Some(path))
    } else {
        Err(err(
            "BEACON_GEOIP_DB",
            format!("'{value}' is not a readable file"),
        ))
    }
}

fn proxies(value: &str) -> Result<Vec<IpNet>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    err(
                        "BEACON_TRUSTED_PROXIES",
                        format!("'{item}' is not an IP address or CIDR"),
                    )
                })
        })
        .collect()
}

fn namespace(value: &str) -> Result<String, ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 40
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(value.to_string())
    } else {
        Err(err(
            "BEACON_NAMESPACE",
            format!(
                "'{value}' must be 1-40 characters: a lower-case letter, then lower-case letters, digits or '_'"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_point_at_local_servers() {
        let config = with(&[]).expect("defaults are valid");
        assert_eq!(config.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(config.namespace, "beacon");
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.stream_max_age, Duration::from_secs(30 * 86_400));
        assert_eq!(config.stream_duplicate_window, Duration::from_secs(1));
        assert_eq!(config.session_cache, 20_000);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.consumer_ack_wait, Duration::from_secs(30));
        assert_eq!(config.archive_retention, None);
        let config = with(&[("BEACON_ARCHIVE_RETENTION", "90days")]).expect("valid");
        assert_eq!(
            config.archive_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("BEACON_NATS_URL", "localhost:4222"),
            ("BEACON_POSTGRES_URL", "mysql://x"),
            ("BEACON_COLLECTOR_ADDR", "localhost"),
            ("BEACON_TRUSTED_PROXIES", "10.0.0.0/8, nope"),
            ("BEACON_NAMESPACE", "Has.Dots"),
            ("BEACON_NAMESPACE", "1abc"),
            ("BEACON_STREAM_MAX_AGE", "forever"),
            ("BEACON_STREAM_DUPLICATE_WINDOW", "0s"),
            ("BEACON_SESSION_CACHE", "-5"),
            ("BEACON_LOG_FORMAT", "xml"),
            ("BEACON_CONSUMER_MAX_DELIVER", "0"),
            ("BEACON_RATE_LIMIT", "-1"),
            ("BEACON_GEOIP_DB", "/no/such/file.mmdb"),
            ("BEACON_CONSUMER_BATCH", "many"),
            ("BEACON_CONSUMER_CONCURRENCY", "0"),
            ("BEACON_ARCHIVE_RETENTION", "a while"),
            ("BEACON_HTTP_HEADER_TIMEOUT", "0s"),
            ("BEACON_HTTP_MAX_CONNECTIONS", "0"),
            ("BEACON_POSTGRES_STATEMENT_TIMEOUT", "30days"),
            ("BEACON_REDIS_TIMEOUT", "soon"),
            ("BEACON_NATS_TIMEOUT", "2days"),
        ];
        for (variable, value) in cases {
            let error = with(&[(variable, value)]).expect_err(value);
            assert_eq!(error.variable, variable, "{value}");
            assert!(error.to_string().starts_with(variable));
        }
    }

    #[test]
    fn trusted_proxies_take_addresses_and_cidrs() {
        let config =
            with(&[("BEACON_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1,::1")]).expect("valid");
        assert_eq!(config.trusted_proxies.len(), 3);
        assert!(
            config.trusted_proxies[1]
                .contains(&"192.168.1.1".parse::<std::net::IpAddr>().expect("ip"))
        );
    }
}
