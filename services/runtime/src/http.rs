//! Middleware every listener shares: request metrics, labelled by the matched route (never the
//! raw path, which is unbounded), and closing a connection whose request body was refused unread.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer, Service};

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

/// A request refused before its body was read whole (`413` too large, `408` too slow) leaves
/// unread bytes on an HTTP/1.1 connection, so the server closes it after the answer. Saying
/// `Connection: close` in that answer keeps the client from sending its next request on a
/// connection that is about to close (it would fail with no answer at all).
///
/// A plain tower layer rather than `axum::middleware::from_fn`: that one boxes the inner service
/// and its future on every request, which measurably cost the collector's single-event rate
/// (`bench/results/collector.md`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CloseAfterRefusedBodyLayer;

impl<S> Layer<S> for CloseAfterRefusedBodyLayer {
    type Service = CloseAfterRefusedBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CloseAfterRefusedBody { inner }
    }
}

/// The service of [`CloseAfterRefusedBodyLayer`].
#[derive(Debug, Clone)]
pub struct CloseAfterRefusedBody<S> {
    inner: S,
}

impl<S, B, ResBody> Service<axum::http::Request<B>> for CloseAfterRefusedBody<S>
where
    S: Service<axum::http::Request<B>, Response = axum::http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ClosingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        ClosingFuture {
            http1: request.version() < Version::HTTP_2,
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`CloseAfterRefusedBody`], with `Connection: close` when it refused a body.
    pub struct ClosingFuture<F> {
        #[pin]
        inner: F,
        http1: bool,
    }
}

impl<F, ResBody, E> Future for ClosingFuture<F>
where
    F: Future<Output = Result<axum::http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        let refused = matches!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
        );
        if *this.http1 && refused {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
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
            .layer(CloseAfterRefusedBodyLayer);
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
