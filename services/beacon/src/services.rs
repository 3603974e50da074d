//! `beacon collector|archiver|aggregator|api|all`: connect, build each service's `Deps`, run
//! until SIGTERM/SIGINT, drain.

use beacon_runtime::shutdown::cancel_on_signals;
use beacon_runtime::{AdminState, CancellationToken, Config, Health, Probe, admin_router};
use metrics_handle::install;

use crate::wiring;

mod metrics_handle {
    use metrics_exporter_prometheus::PrometheusHandle;

    /// Installs the process-wide Prometheus recorder (once).
    pub fn install() -> Option<PrometheusHandle> {
        match beacon_runtime::telemetry::install_prometheus() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "metrics disabled");
                None
            }
        }
    }
}

fn start(config: &Config) -> CancellationToken {
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone());
    tracing::info!(namespace = %config.namespace, "starting");
    shutdown
}

pub async fn collector(config: Config) -> anyhow::Result<()> {
    let shutdown = start(&config);
    let metrics = install();
    let client = wiring::nats(&config).await?;
    wiring::jetstream(&config, &client).await?;
    let pool = wiring::postgres(&config).await?;
    let listener = wiring::bind(config.collector_addr, "BEACON_COLLECTOR_ADDR").await?;
    let health = Health::default()
        .with(Probe::nats(client.clone()))
        .with(wiring::postgres_probe(&pool));
    let deps = beacon_collector::Deps {
        publisher: wiring::publisher(&config, &client),
        pool,
        trusted_proxies: config.trusted_proxies.clone(),
        rate_limit: config.rate_limit,
        max_in_flight: config.max_in_flight,
        geo: wiring::geoip(&config)?,
        admin: AdminState {
            health,
            metrics,
            shutdown: shutdown.clone(),
        },
    };
    beacon_collector::run(deps, listener, shutdown).await?;
    client.flush().await?;
    Ok(())
}

pub async fn archiver(config: Config) -> anyhow::Result<()> {
    let shutdown = start(&config);
    let metrics = install();
    let client = wiring::nats(&config).await?;
    let js = wiring::jetstream(&config, &client).await?;
    let archive = wiring::archive(&config).await?;
    let listener = wiring::bind(config.admin_addr, "BEACON_ADMIN_ADDR").await?;
    let health = Health::default()
        .with(Probe::nats(client.clone()))
        .with(wiring::mongo_probe(&archive));
    let deps = beacon_archiver::Deps {
        js,
        topology: wiring::topology(&config),
        policy: wiring::consumer_policy(&config),
        archive,
        admin: AdminState {
            health,
            metrics,
            shutdown: shutdown.clone(),
        },
    };
    beacon_archiver::run(deps, Some(listener), shutdown).await?;
    client.flush().await?;
    Ok(())
}

pub async fn aggregator(config: Config) -> anyhow::Result<()> {
    let shutdown = start(&config);
    let metrics = install();
    let client = wiring::nats(&config).await?;
    let js = wiring::jetstream(&config, &client).await?;
    let pool = wiring::postgres(&config).await?;
    let redis = wiring::redis(&config).await?;
    let listener = wiring::bind(config.admin_addr, "BEACON_ADMIN_ADDR").await?;
    let health = Health::default()
        .with(Probe::nats(client.clone()))
        .with(wiring::postgres_probe(&pool))
        .with(wiring::redis_probe(&redis));
    let deps = beacon_aggregator::Deps {
        js,
        topology: wiring::topology(&config),
        policy: wiring::consumer_policy(&config),
        pool,
        redis,
        live_keys: wiring::live_keys(&config),
        admin: AdminState {
            health,
            metrics,
            shutdown: shutdown.clone(),
        },
    };
    beacon_aggregator::run(deps, Some(listener), shutdown).await?;
    client.flush().await?;
    Ok(())
}

pub async fn api(config: Config) -> anyhow::Result<()> {
    let shutdown = start(&config);
    let metrics = install();
    let client = wiring::nats(&config).await?;
    let js = wiring::jetstream(&config, &client).await?;
    let pool = wiring::postgres(&config).await?;
    let redis = wiring::redis(&config).await?;
    let listener = wiring::bind(config.api_addr, "BEACON_API_ADDR").await?;
    let health = Health::default()
        .with(Probe::nats(client.clone()))
        .with(wiring::postgres_probe(&pool))
        .with(wiring::redis_probe(&redis));
    let deps = beacon_api::Deps {
        pool,
        redis,
        live_keys: wiring::live_keys(&config),
        js,
        topology: wiring::topology(&config),
        admin: AdminState {
            health,
            metrics,
            shutdown: shutdown.clone(),
        },
    };
    beacon_api::run(deps, listener, shutdown).await?;
    Ok(())
}

/// All four services in one process, sharing connections; one health covering every dependency.
pub async fn all(config: Config) -> anyhow::Result<()> {
    let shutdown = start(&config);
    let metrics = install();
    let client = wiring::nats(&config).await?;
    let js = wiring::jetstream(&config, &client).await?;
    let pool = wiring::postgres(&config).await?;
    let redis = wiring::redis(&config).await?;
    let archive = wiring::archive(&config).await?;
    let collector_listener = wiring::bind(config.collector_addr, "BEACON_COLLECTOR_ADDR").await?;
    let api_listener = wiring::bind(config.api_addr, "BEACON_API_ADDR").await?;
    let admin_listener = wiring::bind(config.admin_addr, "BEACON_ADMIN_ADDR").await?;
    let health = Health::default()
        .with(Probe::nats(client.clone()))
        .with(wiring::postgres_probe(&pool))
        .with(wiring::redis_probe(&redis))
        .with(wiring::mongo_probe(&archive));
    let admin = AdminState {
        health,
        metrics,
        shutdown: shutdown.clone(),
    };
    let topology = wiring::topology(&config);

    let collector = tokio::spawn(beacon_collector::run(
        beacon_collector::Deps {
            publisher: wiring::publisher(&config, &client),
            pool: pool.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            rate_limit: config.rate_limit,
            max_in_flight: config.max_in_flight,
            geo: wiring::geoip(&config)?,
            admin: admin.clone(),
        },
        collector_listener,
        shutdown.clone(),
    ));
    let api = tokio::spawn(beacon_api::run(
        beacon_api::Deps {
            pool: pool.clone(),
            redis: redis.clone(),
            live_keys: wiring::live_keys(&config),
            js: js.clone(),
            topology: topology.clone(),
            admin: admin.clone(),
        },
        api_listener,
        shutdown.clone(),
    ));
    let archiver = tokio::spawn(beacon_archiver::run(
        beacon_archiver::Deps {
            js: js.clone(),
            topology: topology.clone(),
            policy: wiring::consumer_policy(&config),
            archive,
            admin: admin.clone(),
        },
        None,
        shutdown.clone(),
    ));
    let aggregator = tokio::spawn(beacon_aggregator::run(
        beacon_aggregator::Deps {
            js,
            topology,
            policy: wiring::consumer_policy(&config),
            pool,
            redis,
            live_keys: wiring::live_keys(&config),
            admin: admin.clone(),
        },
        None,
        shutdown.clone(),
    ));
    let admin_router = admin_router(admin);
    let admin_token = shutdown.clone();
    tracing::info!(addr = %admin_listener.local_addr()?, "admin listening");
    let admin_server = tokio::spawn(async move {
        axum::serve(admin_listener, admin_router)
            .with_graceful_shutdown(admin_token.cancelled_owned())
            .await
    });

    // If any service stops on its own (a failed listener), stop the others too.
    let results = [collector, api, archiver, aggregator, admin_server];
    let mut first_error = None;
    for handle in results {
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
    client.flush().await?;
    first_error.map_or(Ok(()), Err)
}
