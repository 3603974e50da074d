//! HTTP request metrics, labelled by the matched route (never the raw path, which is unbounded).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// `axum::middleware::from_fn(track_http_metrics)`: counts and times every request.
pub async fn track_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(beacon_metrics::HTTP_REQUESTS.name, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(beacon_metrics::HTTP_REQUEST_DURATION.name, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
