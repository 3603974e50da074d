//! The tracker script, served from the binary with cache headers and an ETag, at Beacon's path
//! and at Plausible's (`/js/script.js`) so existing snippets keep working.

use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::document::TrackerScript;

pub const TRACKER: &str = include_str!("../assets/beacon.js");

static ETAG: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    TRACKER.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
});

/// The tracker script, at Beacon's path.
#[utoipa::path(get, path = "/beacon.js", tag = "collector", security(()),
    responses(TrackerScript))]
pub async fn tracker(headers: HeaderMap) -> Response {
    serve_tracker(headers)
}

/// The tracker script, at Plausible's path, so existing snippets keep working.
#[utoipa::path(get, path = "/js/script.js", tag = "collector", security(()),
    responses(TrackerScript))]
pub async fn plausible_tracker(headers: HeaderMap) -> Response {
    serve_tracker(headers)
}

fn serve_tracker(headers: HeaderMap) -> Response {
    let etag = ETAG.as_str();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, TRACKER).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600, must-revalidate"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::TRACKER;

    #[test]
    fn tracker_is_under_1_5_kb_gzipped() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(TRACKER.as_bytes()).expect("gzip");
        let size = gz.finish().expect("gzip").len();
        assert!(size < 1536, "beacon.js is {size} bytes gzipped");
    }

    #[test]
    fn tracker_sets_no_cookies_and_posts_plausible_bodies() {
        assert!(!TRACKER.contains("document.cookie"));
        assert!(TRACKER.contains("/api/event"));
        assert!(TRACKER.contains("keepalive"));
    }
}
