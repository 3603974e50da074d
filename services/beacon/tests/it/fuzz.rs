//! Random and hostile bodies against the collector's endpoints (in-process, real NATS and
//! PostgreSQL): the answer is always 2xx or 4xx, never a 5xx or a panic.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use beacon_jetstream::Publisher;
use beacon_runtime::{AdminState, CancellationToken, Health};
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

use crate::common::{Namespace, nats_url};

const FIELDS: &[&str] = &[
    "n",
    "name",
    "u",
    "url",
    "d",
    "domain",
    "site",
    "r",
    "referrer",
    "p",
    "props",
    "m",
    "i",
    "interactive",
    "h",
    "$",
    "revenue",
    "sd",
    "e",
    "id",
    "timestamp",
    "ip",
    "user_agent",
    "amount",
    "currency",
];

fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String(
            "https://example.com/a?utm_source=x#frag".into()
        )),
        Just(Value::String("example.com,www.example.com, ,..".into())),
        Just(Value::String("x".repeat(5000))),
        Just(Value::String("{\"plan\":{\"deep\":[1,2]}}".into())),
        Just(Value::String("pageview".into())),
        Just(Value::String("engagement".into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(FIELDS).prop_map(str::to_string),
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        hostile_value().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(hostile_value(), 0..5)
            .prop_map(|v| Value::Array(v).to_string().into_bytes()),
    ]
}

#[test]
fn hostile_bodies_get_only_2xx_or_4xx() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ns = Namespace::new("fuzz");
    let router = runtime.block_on(async {
        let client = async_nats::connect(nats_url()).await.expect("NATS");
        ns.ensure_topology(&beacon_runtime::Config::defaults().consumer_policy())
            .await;
        let pool = ns.pg().await;
        beacon_store::sites::add(&pool, "example.com", chrono_tz::Tz::UTC, None)
            .await
            .expect("site");
        let deps = beacon_collector::Deps {
            sink: std::sync::Arc::new(Publisher::new(
                client,
                ns.topology(),
                Duration::from_secs(5),
            )),
            records: std::sync::Arc::new(beacon_collector::PostgresRecords(pool)),
            trusted_proxies: vec![],
            rate_limit: 0,
            max_in_flight: 10_000,
            geo: None,
            admin: AdminState {
                health: Health::default(),
                metrics: None,
                shutdown: CancellationToken::new(),
            },
            http: beacon_runtime::HttpLimits::default(),
        };
        beacon_collector::router(deps)
            .layer(MockConnectInfo(SocketAddr::from(([198, 51, 100, 1], 4000))))
    });
    let config = ProptestConfig {
        // `BEACON_PROPTEST_CASES=N` for a long run (bench/results/fuzz.md).
        cases: std::env::var("BEACON_PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(400),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(path in proptest::sample::select(&["/track", "/api/event", "/track/batch"][..]), body in body(),
                       text_plain in any::<bool>())| {
        let request = Request::post(path)
            .header("content-type", if text_plain { "text/plain" } else { "application/json" })
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0")
            .body(Body::from(body.clone()))
            .expect("request");
        let response = runtime.block_on(router.clone().oneshot(request)).expect("infallible");
        let status = response.status().as_u16();
        prop_assert!((200..500).contains(&status), "{path} answered {status} to {:?}", String::from_utf8_lossy(&body));
    });
}
