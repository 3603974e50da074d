//! Configuration from `BEACON_*` environment variables. Each variable is declared once below —
//! name, field, default, kind of value (which also checks its range) and help — and everything
//! else comes from that declaration: parsing with errors naming the variable, `beacon --help`,
//! `beacon config` (the effective values, secrets masked) and the README's table (a test compares).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

pub use crate::config_kinds::LogFormat;
use crate::config_kinds::{
    ANY_SPAN, Addr, Count, LogFormats, Namespace, Networks, OptionalFile, Span, SpanOrForever,
    TIMEOUT, Url, UrlList, ValueKind,
};

/// One variable and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// One `BEACON_*` variable as declared.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    /// What values it takes (from its kind).
    pub takes: fn() -> String,
    pub help: &'static str,
    /// Shown masked by `beacon config` (URLs may hold passwords).
    pub secret: bool,
}

/// Declares every setting: the `Config` struct, `SETTINGS`, and `Config::from_lookup`.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $name:literal, $default:literal, $kind:expr $(, $secret:ident)?,
            $help:literal;
    )*) => {
        /// Everything a Beacon process reads from its environment.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        /// Every variable, in the order of the README's table.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                name: $name,
                default: $default,
                takes: || $kind.describe(),
                help: $help,
                secret: settings!(@secret $($secret)?),
            },
        )*];

        impl Config {
            /// Reads variables through `lookup` (tests pass a map); unset ones take their default.
            pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
                Ok(Config {$(
                    $field: {
                        let raw = lookup($name).unwrap_or_else(|| $default.to_string());
                        $kind.parse(&raw).map_err(|problem| ConfigError { variable: $name, problem })?
                    },
                )*})
            }
        }
    };
    (@secret secret) => { true };
    (@secret) => { false };
}

settings! {
    nats_url: String = "BEACON_NATS_URL", "nats://127.0.0.1:4222", UrlList(&["nats", "tls", "ws", "wss"]), secret,
        "NATS with JetStream; the servers of a cluster separated by commas";
    postgres_url: String = "BEACON_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres", Url(&["postgres", "postgresql"]), secret,
        "sites, salts, rollups";
    mongo_url: String = "BEACON_MONGO_URL", "mongodb://127.0.0.1:27017/?directConnection=true", Url(&["mongodb", "mongodb+srv"]), secret,
        "raw event archive";
    redis_url: String = "BEACON_REDIS_URL", "redis://127.0.0.1:6379", Url(&["redis", "rediss"]), secret,
        "live counters";
    collector_addr: SocketAddr = "BEACON_COLLECTOR_ADDR", "127.0.0.1:8080", Addr,
        "collector listen address";
    api_addr: SocketAddr = "BEACON_API_ADDR", "127.0.0.1:8000", Addr,
        "API listen address";
    admin_addr: SocketAddr = "BEACON_ADMIN_ADDR", "127.0.0.1:9090", Addr,
        "admin listener (`/healthz`, `/readyz`, `/metrics`) of every service (one for `all`); give each process on a machine its own port, or 0 to pick a free one";
    /// Peers whose `X-Forwarded-For` the collector believes.
    trusted_proxies: Vec<IpNet> = "BEACON_TRUSTED_PROXIES", "", Networks,
        "addresses/CIDRs whose `X-Forwarded-For` is believed";
    /// Prefix of every stream, subject, key, database and schema Beacon owns.
    namespace: String = "BEACON_NAMESPACE", "beacon", Namespace,
        "prefix of every stream, consumer, subject, Redis key, MongoDB database and PostgreSQL schema";
    /// How long the events stream keeps events replayable.
    stream_max_age: Duration = "BEACON_STREAM_MAX_AGE", "30days", ANY_SPAN,
        "how long the events stream keeps events replayable";
    /// Window in which JetStream drops a re-sent event id.
    stream_duplicate_window: Duration = "BEACON_STREAM_DUPLICATE_WINDOW", "1s", Span { nonzero: true, max: None },
        "JetStream drops an event re-sent with the same id within this window; the consumers count an id once however late it comes, so this only keeps immediate resends out of the stream. nats-server holds every id of the window in memory: 2 minutes made the collector's tail ten times longer (`bench/results/collector.md`)";
    /// Copies of each stored event in a JetStream cluster.
    stream_replicas: usize = "BEACON_STREAM_REPLICAS", "1", Count { min: 1, max: 5 },
        "copies of the streams' messages in a JetStream cluster (1 on a single server, 3 in a cluster); taken when a stream is created: an existing stream's replicas are never changed in place (README: moving to a cluster)";
    /// Requests per second one client address may send to the collector; 0 = unlimited.
    rate_limit: u32 = "BEACON_RATE_LIMIT", "50", Count { min: 0, max: 1_000_000 },
        "collector requests per second per client address (bursts of twice that); `0` = no limit";
    /// Events the collector may have waiting for JetStream acks at once.
    max_in_flight: u32 = "BEACON_MAX_IN_FLIGHT", "20000", Count { min: 1, max: 10_000_000 },
        "events the collector may have awaiting JetStream acks; beyond it `503` at once";
    /// MaxMind-format database for client countries.
    geoip_db: Option<PathBuf> = "BEACON_GEOIP_DB", "", OptionalFile,
        "MaxMind-format country database (`.mmdb`); empty = countries unknown";
    /// Time JetStream waits for a consumer's ack before redelivering.
    consumer_ack_wait: Duration = "BEACON_CONSUMER_ACK_WAIT", "30s", Span { nonzero: true, max: None },
        "time before an unacknowledged message is redelivered";
    /// Failed deliveries after which a message is dead-lettered.
    consumer_max_deliver: i64 = "BEACON_CONSUMER_MAX_DELIVER", "10", Count { min: 1, max: 1_000 },
        "failed deliveries before a message goes to the dead-letter stream";
    /// Unacknowledged messages outstanding per consumer, across all its processes.
    consumer_max_ack_pending: i64 = "BEACON_CONSUMER_MAX_ACK_PENDING", "10000", Count { min: 1, max: 1_000_000 },
        "unacknowledged messages per consumer, across its processes";
    /// Messages a consumer handles in one batch.
    consumer_batch: usize = "BEACON_CONSUMER_BATCH", "4000", Count { min: 1, max: 10_000 },
        "most messages per consumer batch; a batch is one transaction, so larger batches cost less per event (a batch fills within 50 ms or at this size)";
    /// Batches one process handles at once per consumer.
    consumer_concurrency: usize = "BEACON_CONSUMER_CONCURRENCY", "2", Count { min: 1, max: 16 },
        "batches one process handles at once per consumer: the next batch is decoded and its ids claimed while the current one commits";
    /// A visit nobody touched for this long is closed and counted in the visit rollups.
    session_close_after: Duration = "BEACON_SESSION_CLOSE_AFTER", "30m", ANY_SPAN,
        "a visit nobody touched for this long is closed into the visit rollups (until then the API reads it from `sessions`)";
    /// Visitors whose sessions the aggregator keeps in memory; 0 = none.
    session_cache: usize = "BEACON_SESSION_CACHE", "20000", Count { min: 0, max: 100_000_000 },
        "visitors whose sessions an aggregator keeps in memory instead of reading them back from PostgreSQL (used while it is the only writer of a site's sessions, see ARCHITECTURE.md; about 2 KB of memory each); `0` = none";
    /// How long the aggregator remembers applied event ids (and keeps sessions) to recognise a
    /// redelivered or replayed event: the allowed lateness.
    dedup_window: Duration = "BEACON_DEDUP_WINDOW", "7days", ANY_SPAN,
        "how long applied event ids and closed visits are kept: a redelivered or replayed event within it changes nothing";
    /// 15-minute rollup rows of local days older than this are merged into day rows.
    rollup_fine_retention: Duration = "BEACON_ROLLUP_FINE_RETENTION", "35days", ANY_SPAN,
        "15-minute rollup rows of older local days are compacted into one row per day (`beacon compact` does it on demand)";
    /// Raw events older than this are deleted from the archive (TTL index); `None` keeps them.
    archive_retention: Option<Duration> = "BEACON_ARCHIVE_RETENTION", "forever", SpanOrForever,
        "raw events older than this are deleted from MongoDB (TTL index), e.g. `400days`";
    /// Time a client has to send a request's head to the collector or the API.
    http_header_timeout: Duration = "BEACON_HTTP_HEADER_TIMEOUT", "10s", TIMEOUT,
        "time a client has to send a request's head to the collector, the API or an admin listener; a slower one (one byte every few seconds) is disconnected";
    /// Time a whole request may take (a slower one is answered 408).
    http_request_timeout: Duration = "BEACON_HTTP_REQUEST_TIMEOUT", "30s", TIMEOUT,
        "time a whole request may take, body included; a slower one is answered `408`";
    /// Connections one HTTP listener keeps open at once.
    http_max_connections: usize = "BEACON_HTTP_MAX_CONNECTIONS", "10000", Count { min: 1, max: 10_000_000 },
        "connections the collector's and the API's listener each keep open at once; more wait in the listen backlog";
    /// Time to connect to PostgreSQL and to wait for a pooled connection.
    postgres_timeout: Duration = "BEACON_POSTGRES_TIMEOUT", "10s", TIMEOUT,
        "time to connect to PostgreSQL and to wait for a free pooled connection";
    /// Longest one PostgreSQL statement of a service may run.
    postgres_statement_timeout: Duration = "BEACON_POSTGRES_STATEMENT_TIMEOUT", "60s", TIMEOUT,
        "`statement_timeout` of the services' PostgreSQL sessions (migrations are not bound)";
    /// Longest one Redis command may take.
    redis_timeout: Duration = "BEACON_REDIS_TIMEOUT", "2s", TIMEOUT,
        "longest one Redis command may take, also while reconnecting: while Redis is away the aggregator keeps counting (live counters skipped), the API answers statistics with `realtime_visitors` and `live` as `null`";
    /// Time to connect to MongoDB and to find a server for a write.
    mongo_timeout: Duration = "BEACON_MONGO_TIMEOUT", "10s", TIMEOUT,
        "time to connect to MongoDB and to find a server for a write (a URL's own `connectTimeoutMS` / `serverSelectionTimeoutMS` win)";
    /// Time to connect to NATS, for a JetStream request, and for a publish's ack.
    nats_timeout: Duration = "BEACON_NATS_TIMEOUT", "5s", TIMEOUT,
        "time to connect to NATS, for a JetStream request, and for a publish's ack (past it the collector sends again with the same id, for up to half `BEACON_HTTP_REQUEST_TIMEOUT`)";
    log_format: LogFormat = "BEACON_LOG_FORMAT", "text", LogFormats,
        "`text` or `json`";
}

impl Config {
    /// Every variable at its declared default (tests and benchmarks start from it).
    pub fn defaults() -> Self {
        Self::from_lookup(|_| None).expect("the declared defaults are valid (a test checks)")
    }

    /// The consumers' pull, batch and retry policy.
    pub fn consumer_policy(&self) -> beacon_jetstream::ConsumerPolicy {
        beacon_jetstream::ConsumerPolicy::new(
            self.consumer_batch,
            self.consumer_concurrency,
            self.consumer_ack_wait,
            self.consumer_max_deliver,
            self.consumer_max_ack_pending,
        )
    }

    /// The events stream's retention and de-duplication.
    pub fn stream_settings(&self) -> beacon_jetstream::StreamSettings {
        beacon_jetstream::StreamSettings {
            max_age: self.stream_max_age,
            duplicate_window: self.stream_duplicate_window,
            replicas: self.stream_replicas,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// `name=value` of every variable as `lookup` sees it, with passwords in URLs masked, and
/// `(default)` after those not set.
pub fn effective(lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    SETTINGS
        .iter()
        .map(|s| match lookup(s.name) {
            Some(value) if s.secret => format!("{}={}", s.name, mask_password(&value)),
            Some(value) => format!("{}={value}", s.name),
            None => format!("{}={}  (default)", s.name, s.default),
        })
        .collect()
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
fn mask_password(value: &str) -> String {
    // A list of servers: each URL masked on its own, when every item is one (a `,` inside a
    // password makes an item that is not, and then the whole value is masked as one URL).
    let items: Vec<&str> = value.split(',').collect();
    if items.len() > 1 && items.iter().all(|item| item.contains("://")) {
        return items
            .iter()
            .map(|item| mask_one_password(item))
            .collect::<Vec<_>>()
            .join(",");
    }
    mask_one_password(value)
}

fn mask_one_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The credentials end at the last `@`: a password may hold a raw `/`, `?` or `@` that a
    // stricter parse would take for the path, and masking a little too much is harmless.
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let (userinfo, host_and_rest) = rest.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{host_and_rest}"),
        None => url.to_string(),
    }
}

/// The variables as plain text, for `beacon --help`.
pub fn help_text() -> String {
    let mut out =
        String::from("Environment (each BEACON_* variable, its default, what it takes):\n");
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "empty"
        } else {
            s.default
        };
        out += &format!(
            "  {}  [default: {default}; {}]\n      {}\n",
            s.name,
            (s.takes)(),
            s.help.replace('`', "")
        );
    }
    out
}

/// The variables as the README's Markdown table.
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | default | takes | meaning |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "empty".to_string()
        } else {
            format!("`{}`", s.default)
        };
        out += &format!(
            "| `{}` | {default} | {} | {} |\n",
            s.name,
            (s.takes)(),
            s.help
        );
    }
    out
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

    #[test]
    fn the_readme_table_is_the_declaration() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let begin = readme
            .find("<!-- settings: generated")
            .and_then(|at| readme[at..].find('\n').map(|n| at + n + 1))
            .expect("the README marks the settings table");
        let end = readme.find("<!-- settings: end -->").expect("end marker");
        let expected = markdown_table();
        if std::env::var_os("BEACON_BLESS").is_some() {
            let updated = format!("{}{expected}{}", &readme[..begin], &readme[end..]);
            std::fs::write(&path, updated).expect("write README.md");
            return;
        }
        assert!(
            readme[begin..end] == expected,
            "README.md's settings table differs from the declaration in config.rs: \
             run BEACON_BLESS=1 cargo test -p beacon-runtime"
        );
    }

    #[test]
    fn every_default_is_valid_and_every_setting_documented() {
        with(&[]).expect("the defaults parse");
        for s in SETTINGS {
            assert!(s.name.starts_with("BEACON_"), "{}", s.name);
            assert!(s.help.len() > 10, "{} has help", s.name);
            assert!(!(s.takes)().is_empty());
        }
    }

    #[test]
    fn the_effective_configuration_masks_passwords() {
        let lines = effective(|name| {
            (name == "BEACON_POSTGRES_URL")
                .then(|| "postgres://beacon:hunter2@db:5432/beacon".to_string())
        });
        let pg = lines
            .iter()
            .find(|l| l.starts_with("BEACON_POSTGRES_URL="))
            .expect("listed");
        assert_eq!(
            pg,
            "BEACON_POSTGRES_URL=postgres://beacon:***@db:5432/beacon"
        );
        assert!(!lines.join("\n").contains("hunter2"));
        assert!(
            lines
                .iter()
                .any(|l| l == "BEACON_NAMESPACE=beacon  (default)")
        );
        assert_eq!(
            mask_password("redis://:s3cret@cache:6379"),
            "redis://:***@cache:6379"
        );
        assert_eq!(
            mask_password("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        // A password written without percent-encoding is masked whole.
        assert_eq!(
            mask_password("postgres://me:a/b?c@d@db:5432/x?sslmode=require"),
            "postgres://me:***@db:5432/x?sslmode=require"
        );
        // A list of servers keeps every server, each password masked; a `,` in a password
        // leaves nothing of it shown either.
        assert_eq!(
            mask_password("nats://u:pw1@a:4222,nats://u:pw2@b:4222"),
            "nats://u:***@a:4222,nats://u:***@b:4222"
        );
        assert_eq!(mask_password("nats://u:p,w@a:4222"), "nats://u:***@a:4222");
    }
}
