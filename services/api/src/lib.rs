//! The API: statistics for site owners (read from the PostgreSQL rollups and the Redis live
//! counters) as Plausible's Stats API v1 and Beacon's summary, the owner's dashboard with its
//! sign-in, and the pipeline's lag for operators.

mod auth;
mod cache;
mod dashboard;
mod document;
mod error;
mod filters;
mod goals;
pub mod grouping;
mod imported;
pub mod period;
mod pipeline;
mod report;
pub mod rollup_query;
mod sign_in_throttle;
mod stats;
pub mod tiling;
mod top_values;
mod v1;

use std::sync::Arc;

use axum::Router;
use beacon_jetstream::Topology;
use beacon_jetstream::async_nats::jetstream;
use beacon_runtime::admin::public_health_router;
use beacon_runtime::{AdminState, CancellationToken, HttpLimits};
use beacon_store::{LiveKeys, Pool};
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use document::openapi;
pub use period::{Interval, Period, PeriodError, resolve_period};

pub struct Deps {
    pub pool: Pool,
    pub redis: fred::prelude::Client,
    pub live_keys: LiveKeys,
    pub js: jetstream::Context,
    pub topology: Topology,
    pub admin: AdminState,
    /// Timeouts and the connection bound of the listener.
    pub http: HttpLimits,
    /// Other services' OpenAPI documents (the collector's), served with the API's.
    pub documents: Vec<utoipa::openapi::OpenApi>,
}

pub(crate) struct AppState {
    pool: Pool,
    redis: fred::prelude::Client,
    live_keys: LiveKeys,
    js: jetstream::Context,
    topology: Topology,
    sign_in_throttle: sign_in_throttle::SignInThrottle,
    /// The OpenAPI document served, as JSON.
    document: String,
}

pub fn router(deps: Deps) -> Router {
    let state = Arc::new(AppState {
        pool: deps.pool,
        redis: deps.redis,
        live_keys: deps.live_keys,
        js: deps.js,
        topology: deps.topology,
        sign_in_throttle: Default::default(),
        document: document::served(deps.documents),
    });
    routes()
        .with_state(state)
        .merge(public_health_router(deps.admin))
        .layer(axum::middleware::from_fn(
            beacon_runtime::http::track_http_metrics,
        ))
        .into()
}

/// Every route of the API: each is in the OpenAPI document because the router and the document
/// are built together, here.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(dashboard::dashboard))
        .routes(routes!(dashboard::login_page, dashboard::login))
        .routes(routes!(dashboard::logout))
        .routes(routes!(dashboard::pipeline_page))
        .routes(routes!(dashboard::dashboard_js))
        .routes(routes!(dashboard::dashboard_css))
        .routes(routes!(dashboard::pipeline_js))
        .routes(routes!(dashboard::openapi))
        .routes(routes!(dashboard::my_sites))
        .routes(routes!(stats::summary))
        .routes(routes!(v1::realtime_visitors))
        .routes(routes!(v1::aggregate))
        .routes(routes!(v1::timeseries))
        .routes(routes!(v1::breakdown))
        .routes(routes!(pipeline::lag))
        .routes(routes!(pipeline::history))
        .routes(routes!(pipeline::dead_letters))
        .routes(routes!(pipeline::retry_dead_letter))
}

/// Serves until `shutdown` is cancelled, then finishes the requests in flight.
pub async fn run(
    deps: Deps,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    let limits = deps.http;
    let sampler = tokio::spawn(pipeline::sample_history(
        deps.pool.clone(),
        deps.js.clone(),
        deps.topology.clone(),
        shutdown.clone(),
    ));
    let served = beacon_runtime::serve(listener, router(deps), limits, shutdown).await;
    let _ = sampler.await;
    served
}
