//! The aggregator: a durable consumer that folds events into PostgreSQL rollups exactly once,
//! and keeps the Redis live counters.

mod handler;
mod live;
mod maintenance;
mod rollups;
mod session_cache;

use std::sync::Arc;

use beacon_jetstream::async_nats::jetstream;
use beacon_jetstream::{ConsumerKind, ConsumerPolicy, Topology};
use beacon_runtime::admin::spawn_admin_server;
use beacon_runtime::consumer::supervise_consumer;
use beacon_runtime::{AdminState, CancellationToken};
use beacon_store::{LiveKeys, Pool};
use tokio::net::TcpListener;

pub use handler::AggregateHandler;
pub use maintenance::{Maintenance, close_quiet_sessions};
pub use rollups::apply;
pub use session_cache::SessionCache;

pub struct Deps {
    pub js: jetstream::Context,
    pub topology: Topology,
    pub policy: ConsumerPolicy,
    pub pool: Pool,
    pub redis: fred::prelude::Client,
    pub live_keys: LiveKeys,
    pub maintenance: Maintenance,
    /// Visitors whose sessions are kept in memory (`BEACON_SESSION_CACHE`); 0 = none.
    pub session_cache: usize,
    pub admin: AdminState,
}

/// Consumes until `shutdown`; serves the admin routes on `admin` if given.
pub async fn run(
    deps: Deps,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let admin_server = admin
        .map(|listener| {
            spawn_admin_server("aggregator", listener, deps.admin.clone(), shutdown.clone())
        })
        .transpose()?;
    let sessions = Arc::new(SessionCache::new(deps.session_cache));
    let maintenance = tokio::spawn(deps.maintenance.run(
        deps.pool.clone(),
        sessions.clone(),
        shutdown.clone(),
    ));
    let handler = AggregateHandler::new(deps.pool, sessions, deps.redis, deps.live_keys);
    supervise_consumer(
        &deps.js,
        &deps.topology,
        ConsumerKind::Aggregator,
        &deps.policy,
        &handler,
        &shutdown,
    )
    .await;
    let _ = maintenance.await;
    if let Some(server) = admin_server {
        server.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}
