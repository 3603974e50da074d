//! The collector's whole HTTP edge in-process, with fake records and a fake stream: every answer
//! a client can get (202, 400 naming the field, 401/403, 413, 429, 503) in milliseconds, without
//! a server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use beacon_runtime::{AdminState, CancellationToken, Health, HttpLimits};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::fakes::{FakeRecords, FakeSink};
use crate::{Deps, router};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

struct Edge {
    router: Router,
    sink: Arc<FakeSink>,
    records: Arc<FakeRecords>,
}

fn edge_with(rate_limit: u32, max_in_flight: u32) -> Edge {
    let sink = Arc::new(FakeSink::default());
    let mut records = FakeRecords::with_sites(&["example.com", "shop.example"]);
    records
        .tokens
        .insert("bit_for_example".into(), "example.com".into());
    let records = Arc::new(records);
    let deps = Deps {
        sink: sink.clone(),
        records: records.clone(),
        trusted_proxies: vec![],
        rate_limit,
        max_in_flight,
        geo: None,
        admin: AdminState {
            health: Health::default(),
            metrics: None,
            shutdown: CancellationToken::new(),
        },
        http: HttpLimits::default(),
    };
    let router = router(deps).layer(MockConnectInfo(SocketAddr::from(([198, 51, 100, 7], 4000))));
    Edge {
        router,
        sink,
        records,
    }
}

fn edge() -> Edge {
    edge_with(0, 1000)
}

/// Status, `Retry-After`, and the body as JSON (`Value::Null` when it is not JSON).
async fn post(
    edge: &Edge,
    path: &str,
    body: impl Into<Body>,
    token: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::post(path)
        .header("user-agent", BROWSER)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = edge
        .router
        .clone()
        .oneshot(request.body(body.into()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry_after, json)
}

fn published(edge: &Edge) -> usize {
    edge.sink.published.lock().expect("published").len()
}

#[tokio::test]
async fn a_page_view_is_published_enriched_and_answered_202() {
    let edge = edge();
    let body =
        json!({"url": "https://example.com/pricing?utm_source=news", "props": {"plan": "pro"}});
    let (status, _, answer) = post(&edge, "/track", body.to_string(), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let events = edge.sink.published.lock().expect("published").clone();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(answer["id"], json!(event.id.to_string()));
    assert_eq!(
        (event.site.as_str(), event.pathname.as_str()),
        ("example.com", "/pricing")
    );
    assert_eq!(event.enrichment.utm_source.as_deref(), Some("news"));
    assert_eq!(event.enrichment.browser.as_deref(), Some("Chrome"));
    assert_eq!(event.props.get("plan").map(String::as_str), Some("pro"));

    // Plausible's endpoint, two sites in `d`: one event each.
    let (status, _, _) = post(
        &edge,
        "/api/event",
        r#"{"n":"pageview","u":"https://example.com/","d":"example.com,shop.example"}"#,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(published(&edge), 3);
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_nothing_is_published() {
    let edge = edge();
    let cases: [(&str, String, &str); 7] = [
        ("/track", json!({"site": "example.com"}).to_string(), "url"),
        (
            "/track",
            json!({"url": "https://example.com/", "name": "x\u{0}y"}).to_string(),
            "name",
        ),
        (
            "/track",
            json!({"url": "https://unknown.example/"}).to_string(),
            "site",
        ),
        (
            "/track",
            json!({"url": "https://example.com/", "props": (0..31)
                .map(|i| (format!("k{i}"), json!("v")))
                .collect::<serde_json::Map<_, _>>()})
            .to_string(),
            "props",
        ),
        (
            "/track/batch",
            json!([{"url": "https://example.com/"}, {"url": 7}]).to_string(),
            "[1].url",
        ),
        (
            "/api/event",
            r#"{"n":"x\u0000y","u":"https://example.com/"}"#.into(),
            "n",
        ),
        (
            "/api/event",
            format!(
                r#"{{"n":"pageview","u":"https://example.com/","d":"{}"}}"#,
                (0..11)
                    .map(|i| format!("s{i}.example"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "d",
        ),
    ];
    for (path, body, field) in cases {
        let (status, _, answer) = post(&edge, path, body.clone(), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        let named = answer["field"] == json!(field) || answer["errors"].get(field).is_some();
        assert!(named, "{path} {body}: {answer} does not name {field}");
    }
    assert_eq!(published(&edge), 0);
}

#[tokio::test]
async fn server_side_fields_need_the_sites_token() {
    let edge = edge();
    let forged = json!({"url": "https://example.com/", "ip": "203.0.113.9", "user_agent": BROWSER});
    let (status, _, answer) = post(&edge, "/track", forged.to_string(), None).await;
    assert_eq!(
        (status, &answer["field"]),
        (StatusCode::UNAUTHORIZED, &json!("ip"))
    );
    let elsewhere = json!({"url": "https://shop.example/", "ip": "203.0.113.9"});
    let (status, _, answer) = post(
        &edge,
        "/track",
        elsewhere.to_string(),
        Some("bit_for_example"),
    )
    .await;
    assert_eq!(
        (status, &answer["field"]),
        (StatusCode::FORBIDDEN, &json!("site"))
    );
    let (status, _, answer) = post(&edge, "/track", forged.to_string(), Some("bit_nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(published(&edge), 0);
    let (status, _, _) = post(&edge, "/track", forged.to_string(), Some("bit_for_example")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(published(&edge), 1);
}

#[tokio::test]
async fn bodies_over_the_limits_are_413() {
    let edge = edge();
    let single =
        json!({"url": format!("https://example.com/{}", "a".repeat(crate::MAX_BODY_BYTES))});
    let (status, _, _) = post(&edge, "/track", single.to_string(), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let batch = vec![b' '; crate::MAX_BATCH_BODY_BYTES + 1];
    let (status, _, _) = post(&edge, "/track/batch", batch, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(published(&edge), 0);
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    // One request a second, bursts of two.
    let edge = edge_with(1, 1000);
    let body = json!({"url": "https://example.com/"}).to_string();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, retry_after, _) = post(&edge, "/track", body.clone(), None).await;
        statuses.push((status, retry_after));
    }
    assert_eq!(statuses[0].0, StatusCode::ACCEPTED);
    assert_eq!(statuses[1].0, StatusCode::ACCEPTED);
    assert_eq!(
        statuses[2],
        (StatusCode::TOO_MANY_REQUESTS, Some("1".into()))
    );
    assert_eq!(published(&edge), 2);
}

#[tokio::test]
async fn an_unreachable_stream_or_database_is_a_503_with_retry_after() {
    let edge = edge();
    let body = json!({"url": "https://example.com/"}).to_string();
    edge.sink.disconnected.store(true, Ordering::SeqCst);
    let (status, retry_after, answer) = post(&edge, "/track", body.clone(), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    edge.sink.disconnected.store(false, Ordering::SeqCst);

    // A database that was never read and is down: the site cannot be checked.
    let cold = edge_with(0, 1000);
    cold.records.down.store(true, Ordering::SeqCst);
    let (status, retry_after, _) = post(&cold, "/track", body, None).await;
    assert_eq!(
        (status, retry_after.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
    );
    assert_eq!(published(&edge) + published(&cold), 0);
}

#[tokio::test]
async fn past_the_in_flight_budget_is_a_503_at_once() {
    let edge = edge_with(0, 1);
    let batch = json!([{"url": "https://example.com/a"}, {"url": "https://example.com/b"}]);
    let (status, retry_after, answer) = post(&edge, "/track/batch", batch.to_string(), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("capacity")),
        "{answer}"
    );
    assert_eq!(published(&edge), 0);
}

/// The document and the router come from the same list: every documented operation is served
/// (no router `404`/`405`), and no route is added outside that list.
#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_served() {
    let document = crate::openapi();
    let mut operations = Vec::new();
    for (path, item) in &document.paths.paths {
        for (method, operation) in [("GET", &item.get), ("POST", &item.post)] {
            if operation.is_some() {
                operations.push((method, path.clone()));
            }
        }
    }
    assert!(operations.len() >= 5, "{operations:?}");
    let edge = edge();
    for (method, path) in &operations {
        let request = Request::builder()
            .method(*method)
            .uri(path.as_str())
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request");
        let status = edge
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("answer")
            .status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but answers {status}"
        );
    }
    let source = include_str!("lib.rs");
    assert!(
        [".route(", ".route_service(", ".nest("]
            .iter()
            .all(|call| !source.contains(call)),
        "a route added outside `routes()` would be missing from the document"
    );
}
