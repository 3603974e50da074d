//! `/healthz`, `/readyz` and `/metrics` on every service's admin listener (`BEACON_ADMIN_ADDR`);
//! the public ports keep a bare liveness answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::health::Health;

#[derive(Clone)]
pub struct AdminState {
    pub health: Health,
    /// `None` when no recorder is installed (library tests).
    pub metrics: Option<PrometheusHandle>,
    /// Cancelled when the process starts draining: `/readyz` turns 503.
    pub shutdown: CancellationToken,
}

pub fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// What the public ports (collector, API) answer about health: a bare liveness `/healthz` and
/// `/readyz` (503 while draining). Dependency details and `/metrics` are for operators only,
/// on the admin listener: the internet learns nothing of the servers behind Beacon. Both are in
/// the service's OpenAPI document (tag `health`).
pub fn public_health_router(state: AdminState) -> OpenApiRouter {
    public_health_routes().with_state(state)
}

/// The routes of [`public_health_router`] before their state: their document without a server.
pub fn public_health_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(public_healthz))
        .routes(routes!(readyz))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn public_healthz() -> &'static str {
    "ok\n"
}

async fn healthz(State(state): State<AdminState>) -> Response {
    let report = state.health.check().await;
    let status = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// Whether the process takes new work: `503` once it drains for a shutdown.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses(
    (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
    (status = 503, description = "`draining`", body = String, content_type = "text/plain"),
))]
async fn readyz(State(state): State<AdminState>) -> Response {
    if state.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let body = state
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

/// Serves the admin routes on `listener` until `shutdown` (the archiver's and aggregator's own
/// listener; the HTTP services merge [`admin_router`] into theirs instead).
pub fn spawn_admin_server(
    name: &'static str,
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    tracing::info!(addr = %listener.local_addr()?, "{name} admin listening");
    let router = admin_router(state);
    Ok(tokio::spawn(async move {
        crate::serve(listener, router, crate::HttpLimits::default(), shutdown).await
    }))
}
