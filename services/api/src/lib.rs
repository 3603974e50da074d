//! The API: statistics for site owners (read from the PostgreSQL rollups and the Redis live
//! counters) as Plausible's Stats API v1 and Beacon's summary, the owner's dashboard with its
//! sign-in, and the pipeline's lag for operators.

mod auth;
mod cache;
mod dashboard;
mod error;
mod filters;
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
use axum::routing::{get, post};
use beacon_jetstream::Topology;
use beacon_jetstream::async_nats::jetstream;
use beacon_runtime::admin::public_health_router;
use beacon_runtime::{AdminState, CancellationToken, HttpLimits};
use beacon_store::{LiveKeys, Pool};
use tokio::net::TcpListener;

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
}

pub(crate) struct AppState {
    pool: Pool,
    redis: fred::prelude::Client,
    live_keys: LiveKeys,
    js: jetstream::Context,
    topology: Topology,
    sign_in_throttle: sign_in_throttle::SignInThrottle,
}

pub fn router(deps: Deps) -> Router {
    let state = Arc::new(AppState {
        pool: deps.pool,
        redis: deps.redis,
        live_keys: deps.live_keys,
        js: deps.js,
        topology: deps.topology,
        sign_in_throttle: Default::default(),
    });
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/login", get(dashboard::login_page).post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/pipeline", get(dashboard::pipeline_page))
        .route("/assets/dashboard.js", get(dashboard::dashboard_js))
        .route("/assets/dashboard.css", get(dashboard::dashboard_css))
        .route("/assets/pipeline.js", get(dashboard::pipeline_js))
        .route("/api/openapi.json", get(dashboard::openapi))
        .route("/api/sites", get(dashboard::my_sites))
        .route("/api/stats", get(stats::summary))
        .route(
            "/api/v1/stats/realtime/visitors",
            get(v1::realtime_visitors),
        )
        .route("/api/v1/stats/aggregate", get(v1::aggregate))
        .route("/api/v1/stats/timeseries", get(v1::timeseries))
        .route("/api/v1/stats/breakdown", get(v1::breakdown))
        .route("/api/pipeline", get(pipeline::lag))
        .route("/api/pipeline/history", get(pipeline::history))
        .route("/api/pipeline/dead-letters", get(pipeline::dead_letters))
        .route(
            "/api/pipeline/dead-letters/{sequence}/retry",
            post(pipeline::retry_dead_letter),
        )
        .with_state(state)
        .merge(public_health_router(deps.admin))
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
