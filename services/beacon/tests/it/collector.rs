//! The collector against real servers: enrichment in the stream, bots dropped, Plausible's
//! Events API, batches, the tracker script, rate limits, a broker outage, and no raw IP anywhere.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beacon_schemas::{Event, decode};
use serde_json::{Value, json};

use crate::common::{
    Beacon, Namespace, PrivateNats, beacon_ok, eventually, free_port, stream_events, wait_ready,
};

const ANDROID_CHROME: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
const MAC_SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// A `beacon collector` of the namespace, with example.com and shop.example.org registered.
pub struct Collector {
    pub url: String,
    pub process: Beacon,
    pub env: HashMap<String, String>,
}

/// Starts a collector with the namespace's environment plus `extra`, once it is ready.
pub async fn collector(
    ns: &Namespace,
    extra: &[(&str, &str)],
    http: &reqwest::Client,
) -> Collector {
    let mut env = ns.env();
    let port = free_port();
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{port}"));
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["site", "add", "example.com"]);
    beacon_ok(&env, &["site", "add", "shop.example.org"]);
    let url = format!("http://127.0.0.1:{port}");
    let mut process = Beacon::spawn(&env, &["collector"]);
    wait_ready(
        http,
        &format!("{url}/readyz"),
        &mut process,
        Duration::from_secs(60),
    )
    .await;
    Collector { url, process, env }
}

async fn events_in_stream(ns: &Namespace) -> Vec<Event> {
    stream_events(ns)
        .await
        .into_iter()
        .map(|(_, payload)| decode(&payload).expect("decodes"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_reach_the_stream_enriched_and_bots_do_not() {
    let ns = Namespace::new("col_enrich");
    let http = reqwest::Client::new();
    let c = collector(&ns, &[], &http).await;

    let r = http
        .post(format!("{}/track", c.url))
        .header("user-agent", ANDROID_CHROME)
        .json(&json!({"url": "https://example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
                      "referrer": "https://www.google.com/search?q=secret", "props": {"plan": "pro"}}))
        .send()
        .await
        .expect("track");
    assert_eq!(r.status(), 202);

    // Plausible's tracker body, sent as text/plain, to two sites at once.
    let r = http
        .post(format!("{}/api/event", c.url))
        .header("user-agent", MAC_SAFARI)
        .header("content-type", "text/plain")
        .body(r#"{"n":"Signup","u":"https://example.com/join","d":"example.com,shop.example.org","r":"https://news.ycombinator.com/item?id=1","p":{"tier":"gold"}}"#)
        .send()
        .await
        .expect("event");
    assert_eq!(r.status(), 202);
    assert_eq!(r.text().await.expect("body"), "ok");

    let r = http
        .post(format!("{}/api/event", c.url))
        .header("user-agent", MAC_SAFARI)
        .body(r#"{"n":"engagement","u":"https://example.com/join","d":"example.com","sd":64,"e":5300}"#)
        .send()
        .await
        .expect("engagement");
    assert_eq!(r.status(), 202);

    for (path, body) in [
        ("/track", json!({"url": "https://example.com/"}).to_string()),
        (
            "/api/event",
            r#"{"n":"pageview","u":"https://example.com/"}"#.to_string(),
        ),
    ] {
        let r = http
            .post(format!("{}{path}", c.url))
            .header("user-agent", GOOGLEBOT)
            .body(body)
            .send()
            .await
            .expect("bot");
        assert_eq!(r.status(), 202, "{path}");
        assert_eq!(
            r.headers()
                .get("x-plausible-dropped")
                .map(|v| v.to_str().unwrap_or("")),
            Some("1"),
            "{path}"
        );
    }
    // A site nobody registered: Plausible's endpoint drops it quietly, Beacon's names the field.
    let r = http
        .post(format!("{}/api/event", c.url))
        .header("user-agent", MAC_SAFARI)
        .body(r#"{"n":"pageview","u":"https://elsewhere.net/"}"#)
        .send()
        .await
        .expect("unknown");
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers().contains_key("x-plausible-dropped")
        ),
        (202, true)
    );

    let events = events_in_stream(&ns).await;
    assert_eq!(events.len(), 4, "{events:#?}");
    let pageview = &events[0];
    assert_eq!(pageview.pathname, "/pricing");
    assert_eq!(
        pageview.referrer.as_deref(),
        Some("google.com/search"),
        "query string of the referrer is not kept"
    );
    let e = &pageview.enrichment;
    assert_eq!(
        e.source.as_deref(),
        Some("newsletter"),
        "utm_source wins over the referrer"
    );
    assert_eq!(
        (e.utm_medium.as_deref(), e.utm_campaign.as_deref()),
        (Some("email"), Some("spring"))
    );
    assert_eq!(
        (e.browser.as_deref(), e.os.as_deref(), e.device.as_deref()),
        (Some("Chrome"), Some("Android"), Some("Mobile"))
    );
    assert_eq!(pageview.props.get("plan").map(String::as_str), Some("pro"));
    assert_ne!(pageview.visitor_id, 0);

    let signups: Vec<_> = events.iter().filter(|e| e.name == "Signup").collect();
    assert_eq!(
        signups.iter().map(|e| e.site.as_str()).collect::<Vec<_>>(),
        ["example.com", "shop.example.org"]
    );
    assert_eq!(signups[0].enrichment.source.as_deref(), Some("Hacker News"));
    assert_eq!(signups[0].enrichment.device.as_deref(), Some("Desktop"));
    assert_ne!(
        signups[0].visitor_id, pageview.visitor_id,
        "another user agent is another visitor"
    );
    assert_ne!(
        signups[0].visitor_id, signups[1].visitor_id,
        "visitor ids are per site"
    );

    let engagement = &events[3];
    assert!(engagement.is_engagement());
    assert_eq!(
        (engagement.scroll_depth, engagement.engagement_ms),
        (Some(64), Some(5300))
    );
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_validated_whole_and_client_ids_make_retries_idempotent() {
    let ns = Namespace::new("col_batch");
    let http = reqwest::Client::new();
    let c = collector(&ns, &[], &http).await;
    let token = beacon_ok(&c.env, &["token", "create", "--site", "example.com"]);
    let token = token.trim();
    let id = "0192f3a4-5b6c-7d8e-9f01-23456789abcd";
    let batch = json!([
        {"url": "https://example.com/a", "id": id, "timestamp": "2026-01-02T03:04:05Z", "ip": "198.51.100.7", "user_agent": MAC_SAFARI},
        {"url": "https://example.com/b", "user_agent": MAC_SAFARI, "ip": "198.51.100.8"},
    ]);
    // Without the site's ingest token, the server-side fields are refused.
    for auth in [None, Some("bit_0000"), Some("not a bearer")] {
        let mut request = http.post(format!("{}/track/batch", c.url)).json(&batch);
        if let Some(auth) = auth {
            request = request.header("authorization", format!("Bearer {auth}"));
        }
        let r = request.send().await.expect("batch");
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().await.expect("json");
        let expected = if auth.is_none() {
            "[0].id"
        } else {
            "authorization"
        };
        assert_eq!(body["field"], expected, "{body}");
    }
    // A token is for its own site only.
    let other = beacon_ok(&c.env, &["token", "create", "--site", "shop.example.org"]);
    let r = http
        .post(format!("{}/track/batch", c.url))
        .bearer_auth(other.trim())
        .json(&batch)
        .send()
        .await
        .expect("batch");
    assert_eq!(r.status(), 403);
    for _ in 0..2 {
        let r = http
            .post(format!("{}/track/batch", c.url))
            .header("user-agent", "importer/1.0")
            .bearer_auth(token)
            .json(&batch)
            .send()
            .await
            .expect("batch");
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["accepted"], 2, "{body}");
    }
    let bad = json!([{"url": "https://example.com/a"}, {"url": 3}]);
    let r = http
        .post(format!("{}/track/batch", c.url))
        .json(&bad)
        .send()
        .await
        .expect("bad batch");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["field"], "[1].url", "{body}");

    let events = events_in_stream(&ns).await;
    let with_id = events.iter().filter(|e| e.id.to_string() == id).count();
    assert_eq!(
        with_id, 1,
        "the resent event with the same id was stored once"
    );
    assert_eq!(
        events.len(),
        3,
        "2 + the second copy of the event without id"
    );
    let first = events
        .iter()
        .find(|e| e.id.to_string() == id)
        .expect("event");
    assert_eq!(
        first.timestamp_ms, 1_767_323_045_000,
        "the sender's time is the event time"
    );
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_script_is_served_with_caching_headers() {
    let ns = Namespace::new("col_script");
    let http = reqwest::Client::new();
    let c = collector(&ns, &[], &http).await;
    for path in ["/beacon.js", "/js/script.js"] {
        let r = http
            .get(format!("{}{path}", c.url))
            .send()
            .await
            .expect("script");
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with("application/javascript")
        );
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap_or("")
                .contains("max-age")
        );
        let etag = r.headers()["etag"].to_str().expect("etag").to_string();
        assert!(r.text().await.expect("body").contains("/api/event"));
        let r = http
            .get(format!("{}{path}", c.url))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("again");
        assert_eq!(r.status(), 304, "{path}");
    }
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let ns = Namespace::new("col_rate");
    let http = reqwest::Client::new();
    let c = collector(&ns, &[("BEACON_RATE_LIMIT", "5")], &http).await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = http
            .post(format!("{}/track", c.url))
            .header("user-agent", MAC_SAFARI)
            .json(&json!({"url": "https://example.com/"}))
            .send()
            .await
            .expect("track");
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert!(limited > 0 && accepted >= 5, "{statuses:?}");
    assert_eq!(limited + accepted, 40, "{statuses:?}");
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_down_means_a_fast_503_and_recovery_without_restart() {
    let ns = Namespace::new("col_nats");
    let mut nats = PrivateNats::start();
    let http = reqwest::Client::new();
    let nats_url = nats.url();
    let mut c = collector(&ns, &[("BEACON_NATS_URL", nats_url.as_str())], &http).await;
    let send = || {
        http.post(format!("{}/track", c.url))
            .header("user-agent", MAC_SAFARI)
            .json(&json!({"url": "https://example.com/"}))
            .send()
    };
    assert_eq!(send().await.expect("up").status(), 202);

    nats.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let r = send().await.expect("answers while NATS is down");
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "503 came after {:?}",
            started.elapsed()
        );
    }

    nats.resume();
    eventually(
        "the collector to accept again",
        Duration::from_secs(30),
        || async { (send().await.map(|r| r.status() == 202).unwrap_or(false)).then_some(()) },
    )
    .await;
    c.process.assert_running();
    let _ = c.env.len();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn country_comes_from_the_configured_geoip_database() {
    let ns = Namespace::new("col_geo");
    let http = reqwest::Client::new();
    let db = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/npm/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb");
    assert!(
        db.exists(),
        "{} missing: scripts/test runs npm ci in tests/npm",
        db.display()
    );
    let db = db.to_string_lossy().to_string();
    let c = collector(
        &ns,
        &[
            ("BEACON_GEOIP_DB", db.as_str()),
            ("BEACON_TRUSTED_PROXIES", "127.0.0.1"),
        ],
        &http,
    )
    .await;
    for ip in ["8.8.8.8", "192.0.2.1"] {
        let r = http
            .post(format!("{}/track", c.url))
            .header("user-agent", MAC_SAFARI)
            .header("x-forwarded-for", ip)
            .json(&json!({"url": "https://example.com/"}))
            .send()
            .await
            .expect("track");
        assert_eq!(r.status(), 202);
    }
    let events = events_in_stream(&ns).await;
    let countries: Vec<_> = events
        .iter()
        .map(|e| e.enrichment.country.as_deref())
        .collect();
    // 8.8.8.8 is registered in the US; 192.0.2.1 is documentation space: unknown.
    assert_eq!(countries, [Some("US"), None]);
    drop(c);
}

/// Reads from `stream` until the server closes it or `within` passes; returns what arrived and
/// whether it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_by_the_header_and_request_timeouts() {
    use tokio::io::AsyncWriteExt;
    let ns = Namespace::new("col_slow");
    let http = reqwest::Client::new();
    let c = collector(
        &ns,
        &[
            ("BEACON_HTTP_HEADER_TIMEOUT", "1s"),
            ("BEACON_HTTP_REQUEST_TIMEOUT", "2s"),
        ],
        &http,
    )
    .await;
    let addr = c.url.trim_start_matches("http://").to_string();

    // A request head sent one byte at a time, slower than the header timeout allows in total.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let started = Instant::now();
    let head = b"POST /track HTTP/1.1\r\nHost: example.com\r\nX-Slow: ";
    let mut closed = false;
    for byte in head
        .iter()
        .chain(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter())
    {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    if !closed {
        closed = read_until_closed(&mut slow, Duration::from_secs(3)).await.1;
    }
    assert!(closed, "a trickling request head keeps its connection");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "cut off after {:?}",
        started.elapsed()
    );

    // A whole head, then a body that never completes: 408 once the request timeout passes.
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stalled
        .write_all(b"POST /track HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"url\":")
        .await
        .expect("write");
    let started = Instant::now();
    let (answer, _) = read_until_closed(&mut stalled, Duration::from_secs(6)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // The collector still serves everyone else.
    let r = http
        .post(format!("{}/track", c.url))
        .header("user-agent", MAC_SAFARI)
        .json(&json!({"url": "https://example.com/after"}))
        .send()
        .await
        .expect("track");
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_port_tells_only_liveness_and_keeps_metrics_private() {
    let ns = Namespace::new("col_public");
    let http = reqwest::Client::new();
    let c = collector(&ns, &[], &http).await;
    let health = http
        .get(format!("{}/healthz", c.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let text = health.text().await.expect("body");
    assert_eq!(
        text.trim(),
        "ok",
        "no dependency details on the public port"
    );
    let metrics = http
        .get(format!("{}/metrics", c.url))
        .send()
        .await
        .expect("metrics");
    assert_eq!(
        metrics.status(),
        404,
        "metrics are on the admin listener only"
    );
}
