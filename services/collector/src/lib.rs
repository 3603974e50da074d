//! The collector: takes page views and events over HTTP, enriches them, and answers `202` only
//! once JetStream has stored them.

mod assets;
mod client_ip;
mod directory;
mod document;
#[cfg(test)]
mod edge_tests;
mod error;
#[cfg(test)]
mod fakes;
mod geo;
mod ingest;
mod plausible;
mod request;
mod seams;
mod tokens;
mod track;
mod user_agents;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, header};
use beacon_runtime::admin::public_health_router;
use beacon_runtime::{AdminState, CancellationToken, HttpLimits};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use tokio::net::TcpListener;
use tower_http::cors::{Any, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use client_ip::client_ip;
pub use document::openapi;
pub use geo::GeoIp;
pub use seams::{EventSink, PostgresRecords, Records};

/// Largest accepted request body of a single event.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest accepted body of `POST /track/batch`.
pub const MAX_BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What the collector needs from the outside world.
pub struct Deps {
    /// Where accepted events go (JetStream's [`beacon_jetstream::Publisher`] in production).
    pub sink: Arc<dyn EventSink>,
    /// Sites, salts and ingest tokens ([`PostgresRecords`] in production).
    pub records: Arc<dyn Records>,
    pub trusted_proxies: Vec<IpNet>,
    /// Requests per second per client address; 0 = unlimited.
    pub rate_limit: u32,
    /// Events that may await JetStream acks at once; beyond it, `503` at once.
    pub max_in_flight: u32,
    pub geo: Option<GeoIp>,
    pub admin: AdminState,
    /// Timeouts and the connection bound of the listener.
    pub http: HttpLimits,
}

pub(crate) struct AppState {
    sink: Arc<dyn EventSink>,
    sites: directory::SiteDirectory,
    tokens: tokens::IngestTokens,
    salts: directory::SaltCache,
    trusted_proxies: Vec<IpNet>,
    rate_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    in_flight: tokio::sync::Semaphore,
    /// How long a request waits for JetStream to confirm its events, re-sending meanwhile.
    publish_patience: std::time::Duration,
    geo: Option<GeoIp>,
    user_agents: user_agents::UserAgents,
}

/// All collector routes, with CORS for browsers and request metrics.
pub fn router(deps: Deps) -> Router {
    router_with_state(deps).0
}

fn router_with_state(deps: Deps) -> (Router, Arc<AppState>) {
    beacon_pipeline::user_agent::warm_up();
    // Bursts of twice the rate are fine (a page load fires a few events at once).
    let rate_limiter = NonZeroU32::new(deps.rate_limit).map(|rate| {
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
    });
    let state = Arc::new(AppState {
        sink: deps.sink,
        sites: directory::SiteDirectory::new(deps.records.clone()),
        tokens: tokens::IngestTokens::new(deps.records.clone()),
        salts: directory::SaltCache::new(deps.records),
        trusted_proxies: deps.trusted_proxies,
        rate_limiter,
        in_flight: tokio::sync::Semaphore::new(deps.max_in_flight as usize),
        // Half the request timeout: the definite answer reaches the client before its `408`.
        publish_patience: deps.http.request_timeout / 2,
        user_agents: user_agents::UserAgents::new(),
        geo: deps.geo,
    });
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(std::time::Duration::from_secs(86_400));
    let router = routes()
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors)
        .with_state(state.clone())
        .merge(public_health_router(deps.admin))
        .layer(axum::middleware::from_fn(
            beacon_runtime::http::track_http_metrics,
        ))
        .into();
    (router, state)
}

/// Every route of the collector: each is in the OpenAPI document ([`openapi`]) because the
/// router and the document are built together, here.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    let (schemas, paths, batch) = routes!(track::track_batch);
    OpenApiRouter::new()
        .routes(routes!(track::track))
        .routes((
            schemas,
            paths,
            batch.layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
        ))
        .routes(routes!(plausible::event))
        .routes(routes!(assets::tracker))
        .routes(routes!(assets::plausible_tracker))
}

/// Serves until `shutdown` is cancelled, then finishes the requests in flight.
pub async fn run(
    deps: Deps,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "collector listening");
    let limits = deps.http;
    let (router, state) = router_with_state(deps);
    // The rate limiter remembers every address it saw; forget the idle ones regularly.
    let token = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            }
            if let Some(limiter) = &state.rate_limiter {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    });
    beacon_runtime::serve(listener, router, limits, shutdown).await
}
