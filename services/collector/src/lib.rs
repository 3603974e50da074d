//! The collector: takes page views and events over HTTP, enriches them, and answers `202` only
//! once JetStream has stored them.

mod client_ip;
mod directory;
mod error;
mod track;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, header};
use axum::routing::post;
use beacon_jetstream::Publisher;
use beacon_runtime::{AdminState, CancellationToken, admin_router};
use beacon_store::Pool;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tower_http::cors::{Any, CorsLayer};

pub use client_ip::client_ip;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the collector needs from the outside world.
pub struct Deps {
    pub publisher: Publisher,
    pub pool: Pool,
    pub trusted_proxies: Vec<IpNet>,
    pub admin: AdminState,
}

pub(crate) struct AppState {
    publisher: Publisher,
    sites: directory::SiteDirectory,
    salts: directory::SaltCache,
    trusted_proxies: Vec<IpNet>,
}

/// All collector routes, with CORS for browsers and request metrics.
pub fn router(deps: Deps) -> Router {
    let state = Arc::new(AppState {
        publisher: deps.publisher,
        sites: directory::SiteDirectory::new(deps.pool.clone()),
        salts: directory::SaltCache::new(deps.pool),
        trusted_proxies: deps.trusted_proxies,
    });
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(86_400));
    Router::new()
        .route("/track", post(track::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors)
        .with_state(state)
        .merge(admin_router(deps.admin))
        .layer(axum::middleware::from_fn(
            beacon_runtime::http::track_http_metrics,
        ))
}

/// Serves until `shutdown` is cancelled, then finishes the requests in flight.
pub async fn run(
    deps: Deps,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "collector listening");
    axum::serve(
        listener,
        router(deps).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}
