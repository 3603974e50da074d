//! The archiver: a durable consumer that writes every accepted event exactly once into the
//! MongoDB archive (`_id` = event id, so a redelivered event is a duplicate key, not a copy).

mod handler;

use beacon_jetstream::async_nats::jetstream;
use beacon_jetstream::{ConsumerKind, ConsumerPolicy, Topology};
use beacon_runtime::admin::spawn_admin_server;
use beacon_runtime::consumer::supervise_consumer;
use beacon_runtime::{AdminState, CancellationToken};
use beacon_store::Archive;
use tokio::net::TcpListener;

pub use handler::ArchiveHandler;

pub struct Deps {
    pub js: jetstream::Context,
    pub topology: Topology,
    pub policy: ConsumerPolicy,
    pub archive: Archive,
    pub admin: AdminState,
}

/// Consumes until `shutdown`; serves `/healthz`, `/readyz`, `/metrics` on `admin` if given
/// (in `beacon all` one shared admin listener serves every service instead).
pub async fn run(
    deps: Deps,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let admin_server = admin
        .map(|listener| {
            spawn_admin_server("archiver", listener, deps.admin.clone(), shutdown.clone())
        })
        .transpose()?;
    let handler = ArchiveHandler::new(deps.archive);
    supervise_consumer(
        &deps.js,
        &deps.topology,
        ConsumerKind::Archiver,
        &deps.policy,
        &handler,
        &shutdown,
    )
    .await;
    if let Some(server) = admin_server {
        server.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}
