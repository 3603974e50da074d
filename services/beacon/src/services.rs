//! `beacon collector|archiver|aggregator|api|all`: connect, build each service's `Deps`, run
//! until SIGTERM/SIGINT, drain.

use beacon_runtime::admin::spawn_admin_server;
use beacon_runtime::shutdown::cancel_on_signals;
use beacon_runtime::{AdminState, CancellationToken, Config, Health, Probe};
use beacon_store::{Archive, Pool};

use crate::wiring;

/// Installs the process-wide Prometheus recorder (once).
fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    match beacon_runtime::telemetry::install_prometheus() {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "metrics disabled");
            None
        }
    }
}

/// The process-wide pieces every service command starts with.
struct Process {
    config: Config,
    shutdown: CancellationToken,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    client: async_nats::Client,
    js: beacon_jetstream::async_nats::jetstream::Context,
}

impl Process {
    async fn start(config: Config) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        cancel_on_signals(shutdown.clone());
        tracing::info!(namespace = %config.namespace, "starting");
        let metrics = install_metrics();
        let client = wiring::nats(&config).await?;
        let js = wiring::jetstream(&config, &client).await?;
        Ok(Self {
            config,
            shutdown,
            metrics,
            client,
            js,
        })
    }

    fn admin(&self, health: Health) -> AdminState {
        AdminState {
            health: health.with(Probe::nats(self.client.clone())),
            metrics: self.metrics.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    fn collector(&self, pool: &Pool, admin: AdminState) -> anyhow::Result<beacon_collector::Deps> {
        let config = &self.config;
        Ok(beacon_collector::Deps {
            sink: std::sync::Arc::new(wiring::publisher(config, &self.client)),
            records: std::sync::Arc::new(beacon_collector::PostgresRecords(pool.clone())),
            trusted_proxies: config.trusted_proxies.clone(),
            rate_limit: config.rate_limit,
            max_in_flight: config.max_in_flight,
            geo: wiring::geoip(config)?,
            admin,
            http: wiring::http_limits(config),
        })
    }

    fn api(
        &self,
        pool: &Pool,
        redis: &fred::prelude::Client,
        admin: AdminState,
    ) -> beacon_api::Deps {
        beacon_api::Deps {
            pool: pool.clone(),
            redis: redis.clone(),
            live_keys: wiring::live_keys(&self.config),
            js: self.js.clone(),
            topology: wiring::topology(&self.config),
            admin,
            http: wiring::http_limits(&self.config),
            documents: vec![beacon_collector::openapi()],
        }
    }

    fn archiver(&self, archive: Archive, admin: AdminState) -> beacon_archiver::Deps {
        beacon_archiver::Deps {
            js: self.js.clone(),
            topology: wiring::topology(&self.config),
            policy: self.config.consumer_policy(),
            archive,
            admin,
        }
    }

    fn aggregator(
        &self,
        pool: &Pool,
        redis: &fred::prelude::Client,
        admin: AdminState,
    ) -> beacon_aggregator::Deps {
        beacon_aggregator::Deps {
            js: self.js.clone(),
            topology: wiring::topology(&self.config),
            policy: self.config.consumer_policy(),
            pool: pool.clone(),
            redis: redis.clone(),
            live_keys: wiring::live_keys(&self.config),
            maintenance: beacon_aggregator::Maintenance {
                close_after: self.config.session_close_after,
                dedup_window: self.config.dedup_window,
                fine_retention: self.config.rollup_fine_retention,
            },
            session_cache: self.config.session_cache,
            admin,
        }
    }

    async fn finish(self) -> anyhow::Result<()> {
        self.client.flush().await?;
        Ok(())
    }
}

pub async fn collector(config: Config) -> anyhow::Result<()> {
    let p = Process::start(config).await?;
    let pool = wiring::postgres(&p.config).await?;
    let listener = wiring::bind(p.config.collector_addr, "BEACON_COLLECTOR_ADDR").await?;
    let admin_listener = wiring::bind(p.config.admin_addr, "BEACON_ADMIN_ADDR").await?;
    let admin = p.admin(Health::default().with(wiring::postgres_probe(&pool)));
    let admin_server = spawn_admin_server(
        "collector",
        admin_listener,
        admin.clone(),
        p.shutdown.clone(),
    )?;
    let deps = p.collector(&pool, admin)?;
    beacon_collector::run(deps, listener, p.shutdown.clone()).await?;
    p.shutdown.cancel();
    admin_server.await??;
    p.finish().await
}

pub async fn archiver(config: Config) -> anyhow::Result<()> {
    let p = Process::start(config).await?;
    let archive = wiring::archive(&p.config).await?;
    let listener = wiring::bind(p.config.admin_addr, "BEACON_ADMIN_ADDR").await?;
    let deps = p.archiver(
        archive.clone(),
        p.admin(Health::default().with(wiring::mongo_probe(&archive))),
    );
    beacon_archiver::run(deps, Some(listener), p.shutdown.clone()).await?;
    p.finish().await
}

pub async fn aggregator(config: Config) -> anyhow::Result<()> {
    let p = Process::start(config).await?;
    let pool = wiring::postgres(&p.config).await?;
    let redis = wiring::redis(&p.config).await?;
    let listener = wiring::bind(p.config.admin_addr, "BEACON_ADMIN_ADDR").await?;
    let health = Health::default()
        .with(wiring::postgres_probe(&pool))
        .with(wiring::redis_probe(&redis));
    let deps = p.aggregator(&pool, &redis, p.admin(health));
    beacon_aggregator::run(deps, Some(listener), p.shutdown.clone()).await?;
    p.finish().await
}

pub async fn api(config: Config) -> anyhow::Result<()> {
    let p = Process::start(config).await?;
    let pool = wiring::postgres(&p.config).await?;
    let redis = wiring::redis(&p.config).await?;
    let listener = wiring::bind(p.config.api_addr, "BEACON_API_ADDR").await?;
    let admin_listener = wiring::bind(p.config.admin_addr, "BEACON_ADMIN_ADDR").await?;
    let health = Health::default()
        .with(wiring::postgres_probe(&pool))
        .with(wiring::redis_probe(&redis));
    let admin = p.admin(health);
    let admin_server =
        spawn_admin_server("api", admin_listener, admin.clone(), p.shutdown.clone())?;
    let deps = p.api(&pool, &redis, admin);
    beacon_api::run(deps, listener, p.shutdown.clone()).await?;
    p.shutdown.cancel();
    admin_server.await??;
    p.finish().await
}

/// All four services in one process, sharing connections; one health covering every dependency.
pub async fn all(config: Config) -> anyhow::Result<()> {
    let p = Process::start(config).await?;
    let pool = wiring::postgres(&p.config).await?;
    let redis = wiring::redis(&p.config).await?;
    let archive = wiring::archive(&p.config).await?;
    let collector_listener = wiring::bind(p.config.collector_addr, "BEACON_COLLECTOR_ADDR").await?;
    let api_listener = wiring::bind(p.config.api_addr, "BEACON_API_ADDR").await?;
    let admin_listener = wiring::bind(p.config.admin_addr, "BEACON_ADMIN_ADDR").await?;
    let admin = p.admin(
        Health::default()
            .with(wiring::postgres_probe(&pool))
            .with(wiring::redis_probe(&redis))
            .with(wiring::mongo_probe(&archive)),
    );
    let shutdown = p.shutdown.clone();
    let services = [
        tokio::spawn(beacon_collector::run(
            p.collector(&pool, admin.clone())?,
            collector_listener,
            shutdown.clone(),
        )),
        tokio::spawn(beacon_api::run(
            p.api(&pool, &redis, admin.clone()),
            api_listener,
            shutdown.clone(),
        )),
        tokio::spawn(beacon_archiver::run(
            p.archiver(archive, admin.clone()),
            None,
            shutdown.clone(),
        )),
        tokio::spawn(beacon_aggregator::run(
            p.aggregator(&pool, &redis, admin.clone()),
            None,
            shutdown.clone(),
        )),
        spawn_admin_server("beacon", admin_listener, admin, shutdown.clone())?,
    ];

    // If any service stops on its own (a failed listener), stop the others too.
    let mut first_error = None;
    for handle in services {
        let result = handle.await;
        shutdown.cancel();
        let outcome = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => anyhow::Error::from(e),
            Err(e) => anyhow::Error::from(e),
        };
        tracing::error!(error = %outcome, "service failed");
        first_error.get_or_insert(outcome);
    }
    p.finish().await?;
    first_error.map_or(Ok(()), Err)
}
