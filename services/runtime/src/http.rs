//! Middleware every listener shares: request metrics, labelled by the matched route (never the
//! raw path, which is unbounded), and closing a connection whose request body was refused unread.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, Version, header};
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

/// `axum::middleware::from_fn(close_after_refused_body)`: a request refused before its body was
/// read whole (`413` too large, `408` too slow) leaves unread bytes on an HTTP/1.1 connection, so
/// the server closes it after the answer. Saying `Connection: close` in that answer keeps the
/// client from sending its next request on a connection that is about to close (it would fail
/// with no answer at all).
pub async fn close_after_refused_body(request: Request, next: Next) -> Response {
    let http1 = request.version() < Version::HTTP_2;
    let mut response = next.run(request).await;
    let refused = matches!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    );
    if http1 && refused {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn a_refused_body_closes_the_connection_and_nothing_else_does() {
        let app = Router::new()
            .route("/big", post(|| async { StatusCode::PAYLOAD_TOO_LARGE }))
            .route("/ok", post(|| async { StatusCode::ACCEPTED }))
            .layer(axum::middleware::from_fn(close_after_refused_body));
        let send = |path: &str, version| {
            let request = Request::post(path)
                .version(version)
                .body(Body::empty())
                .expect("request");
            app.clone().oneshot(request)
        };
        let big = send("/big", Version::HTTP_11).await.expect("answer");
        assert_eq!(big.headers()[header::CONNECTION], "close");
        let ok = send("/ok", Version::HTTP_11).await.expect("answer");
        assert!(ok.headers().get(header::CONNECTION).is_none());
        // HTTP/2 has no Connection header (it is a protocol error there).
        let h2 = send("/big", Version::HTTP_2).await.expect("answer");
        assert!(h2.headers().get(header::CONNECTION).is_none());
    }
}
