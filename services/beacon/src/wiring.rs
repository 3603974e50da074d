//! Building each service's dependencies from the configuration, with bounded, logged retries.

use anyhow::Context as _;
use beacon_jetstream::async_nats::jetstream;
use beacon_jetstream::{Publisher, Topology, ensure_topology};
use beacon_runtime::retry::{RetryPolicy, retry, retry_transient};
use beacon_runtime::{Config, HttpLimits, Probe};
use beacon_store::{Archive, LiveKeys, Pool};

/// Timeouts and the connection bound of the collector's and the API's listeners.
pub fn http_limits(config: &Config) -> HttpLimits {
    HttpLimits {
        header_read_timeout: config.http_header_timeout,
        request_timeout: config.http_request_timeout,
        max_connections: config.http_max_connections,
    }
}

pub fn topology(config: &Config) -> Topology {
    Topology::new(&config.namespace)
}

pub async fn nats(config: &Config) -> anyhow::Result<async_nats::Client> {
    // One server, or the servers of a cluster separated by commas: the client connects to one
    // and moves to another when it goes away.
    let servers = config
        .nats_url
        .split(',')
        .map(|url| url.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .context("BEACON_NATS_URL")?;
    retry("connecting to NATS", RetryPolicy::STARTUP, || {
        async_nats::ConnectOptions::new()
            .name("beacon")
            .connection_timeout(config.nats_timeout)
            .request_timeout(Some(config.nats_timeout))
            .connect(servers.clone())
    })
    .await
    .with_context(|| {
        format!(
            "cannot connect to NATS at {} (BEACON_NATS_URL)",
            config.nats_url
        )
    })
}

/// The JetStream context, with the topology ensured.
pub async fn jetstream(
    config: &Config,
    client: &async_nats::Client,
) -> anyhow::Result<jetstream::Context> {
    let js = jetstream::new(client.clone());
    let topology = topology(config);
    let settings = config.stream_settings();
    let policy = config.consumer_policy();
    retry_transient(
        "ensuring the JetStream topology",
        RetryPolicy::STARTUP,
        beacon_jetstream::TopologyError::is_transient,
        || ensure_topology(&js, &topology, &settings, &policy),
    )
    .await
    .context("cannot create the JetStream streams and consumers")?;
    Ok(js)
}

pub fn publisher(config: &Config, client: &async_nats::Client) -> Publisher {
    // How long a publish waits for JetStream's ack before the collector answers 503.
    Publisher::new(client.clone(), topology(config), config.nats_timeout)
}

/// A pool on the namespace's schema, migrated.
pub async fn postgres(config: &Config) -> anyhow::Result<Pool> {
    retry("migrating PostgreSQL", RetryPolicy::STARTUP, || {
        beacon_store::postgres::migrate(&config.postgres_url, &config.namespace)
    })
    .await
    .context("cannot migrate PostgreSQL (BEACON_POSTGRES_URL)")?;
    let timeouts = beacon_store::postgres::Timeouts {
        connect: config.postgres_timeout,
        pool_wait: config.postgres_timeout,
        statement: Some(config.postgres_statement_timeout),
    };
    beacon_store::postgres::pool_with(&config.postgres_url, &config.namespace, 16, timeouts)
        .context("BEACON_POSTGRES_URL")
}

pub async fn archive(config: &Config) -> anyhow::Result<Archive> {
    let archive = Archive::connect_with(&config.mongo_url, &config.namespace, config.mongo_timeout)
        .await
        .context("BEACON_MONGO_URL")?;
    retry("creating MongoDB indexes", RetryPolicy::STARTUP, || {
        archive.ensure_indexes(config.archive_retention)
    })
    .await
    .context("cannot reach MongoDB (BEACON_MONGO_URL)")?;
    Ok(archive)
}

pub async fn redis(config: &Config) -> anyhow::Result<fred::prelude::Client> {
    retry("connecting to Redis", RetryPolicy::STARTUP, || {
        beacon_store::live::connect_with(&config.redis_url, config.redis_timeout)
    })
    .await
    .context("cannot connect to Redis (BEACON_REDIS_URL)")
}

pub fn live_keys(config: &Config) -> LiveKeys {
    LiveKeys::new(&config.namespace)
}

pub fn postgres_probe(pool: &Pool) -> Probe {
    let pool = pool.clone();
    Probe::new("postgres", move || {
        let pool = pool.clone();
        async move {
            beacon_store::postgres::ping(&pool)
                .await
                .map_err(|e| e.to_string())
        }
    })
}

pub fn mongo_probe(archive: &Archive) -> Probe {
    let archive = archive.clone();
    Probe::new("mongodb", move || {
        let archive = archive.clone();
        async move { archive.ping().await.map_err(|e| e.to_string()) }
    })
}

pub fn redis_probe(client: &fred::prelude::Client) -> Probe {
    use fred::prelude::ClientLike;
    let client = client.clone();
    Probe::new("redis", move || {
        let client = client.clone();
        async move {
            client
                .ping::<String>(None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
}

pub async fn bind(
    addr: std::net::SocketAddr,
    variable: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({variable})"))
}

pub fn geoip(config: &Config) -> anyhow::Result<Option<beacon_collector::GeoIp>> {
    config
        .geoip_db
        .as_deref()
        .map(|path| {
            beacon_collector::GeoIp::open(path)
                .with_context(|| format!("cannot read {} (BEACON_GEOIP_DB)", path.display()))
        })
        .transpose()
}
