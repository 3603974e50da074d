//! Real browsers against the collector: headless Chromium (Debian's `chromium`) loads a page on
//! 127.0.0.1 with Beacon's tracker — and, in a second test, Plausible's published tracker package —
//! navigates within a single-page app and fires a custom event; the events must be in the stream.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use beacon_schemas::{Event, decode};

use crate::common::{
    Beacon, Namespace, beacon_ok, eventually, free_port, stream_events, wait_ready,
};

/// A desktop Chrome user agent: headless Chromium's own ("HeadlessChrome") is dropped as a bot.
const CHROME_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

pub fn chromium() -> PathBuf {
    let path = std::env::var("BEACON_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new("which")
        .arg(&path)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "Chromium is needed for the browser tests: apt-get install chromium (scripts/test does)"
    );
    PathBuf::from(path)
}

/// Loads `url` in headless Chromium until its timers ran `budget_ms` of virtual time.
fn run_page(url: &str, user_agent: &str, budget_ms: u32) -> String {
    let profile = tempdir();
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-automation",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--user-agent={user_agent}"))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn tempdir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("profile dir");
    dir
}

/// Serves `pages` (path → HTML) and the Plausible package's module on an origin of their own.
async fn serve_pages(pages: Vec<(&'static str, String)>) -> u16 {
    let port = free_port();
    let mut router = Router::new();
    for (path, html) in pages {
        router = router.route(path, get(move || async move { Html(html) }));
    }
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/npm/node_modules/@plausible-analytics/tracker/plausible.js");
    router = router.route(
        "/plausible.js",
        get(move || {
            let module = module.clone();
            async move {
                let js = std::fs::read_to_string(&module).unwrap_or_else(|_| {
                    panic!(
                        "{} missing: scripts/test runs npm ci in tests/npm",
                        module.display()
                    )
                });
                ([("content-type", "application/javascript")], js)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// The collector's port, its admin listener's port (`/metrics`), and the process.
async fn start_collector(ns: &Namespace, http: &reqwest::Client) -> (u16, u16, Beacon) {
    let mut env = ns.env();
    let (port, admin) = (free_port(), free_port());
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{port}"));
    env.insert("BEACON_ADMIN_ADDR".into(), format!("127.0.0.1:{admin}"));
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["site", "add", "example.com"]);
    let mut process = Beacon::spawn(&env, &["collector"]);
    wait_ready(
        http,
        &format!("http://127.0.0.1:{port}/readyz"),
        &mut process,
        Duration::from_secs(60),
    )
    .await;
    (port, admin, process)
}

async fn wait_for_events(ns: &Namespace, at_least: usize) -> Vec<Event> {
    eventually(
        "the browser's events in the stream",
        Duration::from_secs(20),
        || async {
            let events: Vec<Event> = stream_events(ns)
                .await
                .into_iter()
                .map(|(_, p)| decode(&p).expect("decodes"))
                .collect();
            (events.len() >= at_least).then_some(events)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_tracker_records_pageviews_spa_navigation_and_custom_events() {
    let ns = Namespace::new("browser_beacon");
    let http = reqwest::Client::new();
    let (collector, _admin, _process) = start_collector(&ns, &http).await;
    let page = format!(
        r#"<!doctype html><html><head>
<script>window.beacon = window.beacon || function () {{ (window.beacon.q = window.beacon.q || []).push(arguments) }}</script>
<script defer data-domain="example.com" data-allow-automation src="http://127.0.0.1:{collector}/beacon.js"></script>
</head><body><h1>shop</h1><script>
setTimeout(function () {{ history.pushState({{}}, "", "/checkout?step=2"); }}, 400);
setTimeout(function () {{ beacon("Signup", {{ props: {{ plan: "pro" }} }}); }}, 800);
</script></body></html>"#
    );
    let site = serve_pages(vec![("/shop", page)]).await;
    run_page(&format!("http://127.0.0.1:{site}/shop"), CHROME_UA, 3000);

    let events = wait_for_events(&ns, 3).await;
    let views: Vec<_> = events
        .iter()
        .filter(|e| e.is_pageview())
        .map(|e| e.pathname.as_str())
        .collect();
    assert_eq!(views, ["/shop", "/checkout"], "{events:#?}");
    let signup = events
        .iter()
        .find(|e| e.name == "Signup")
        .expect("custom event");
    assert_eq!(signup.props.get("plan").map(String::as_str), Some("pro"));
    assert_eq!(signup.site, "example.com");
    assert_eq!(signup.enrichment.browser.as_deref(), Some("Chrome"));
    assert!(
        events.iter().all(|e| e.visitor_id == events[0].visitor_id),
        "one browser, one visitor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_announcing_itself_is_dropped_as_a_bot() {
    let ns = Namespace::new("browser_headless");
    let http = reqwest::Client::new();
    let (collector, admin, _process) = start_collector(&ns, &http).await;
    let page = format!(
        r#"<!doctype html><script defer data-domain="example.com" data-allow-automation src="http://127.0.0.1:{collector}/beacon.js"></script>"#
    );
    let site = serve_pages(vec![("/", page)]).await;
    run_page(
        &format!("http://127.0.0.1:{site}/"),
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
        2000,
    );
    // The page view did arrive, and was dropped as a headless browser.
    eventually(
        "the collector to count the headless page view as dropped",
        Duration::from_secs(20),
        || async {
            let text = http
                .get(format!("http://127.0.0.1:{admin}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .any(|l| {
                    l.starts_with(beacon_metrics::COLLECTOR_DROPPED.name)
                        && l.contains(r#"reason="headless""#)
                        && !l.ends_with(" 0")
                })
                .then_some(())
        },
    )
    .await;
    assert!(
        stream_events(&ns).await.is_empty(),
        "HeadlessChrome is not a visitor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plausibles_own_tracker_package_works_against_beacon() {
    let ns = Namespace::new("browser_plausible");
    let http = reqwest::Client::new();
    let (collector, _admin, _process) = start_collector(&ns, &http).await;
    let page = format!(
        r#"<!doctype html><html><body><script type="module">
import {{ init, track }} from "/plausible.js";
init({{ domain: "example.com", endpoint: "http://127.0.0.1:{collector}/api/event", captureOnLocalhost: true }});
setTimeout(() => history.pushState({{}}, "", "/pricing"), 400);
setTimeout(() => track("Purchase", {{ props: {{ tier: "gold" }}, revenue: {{ amount: 19.9, currency: "EUR" }} }}), 800);
</script></body></html>"#
    );
    let site = serve_pages(vec![("/landing", page)]).await;
    run_page(&format!("http://127.0.0.1:{site}/landing"), CHROME_UA, 3000);

    let events = wait_for_events(&ns, 3).await;
    let views: Vec<_> = events
        .iter()
        .filter(|e| e.is_pageview())
        .map(|e| e.pathname.as_str())
        .collect();
    assert_eq!(views, ["/landing", "/pricing"], "{events:#?}");
    let purchase = events
        .iter()
        .find(|e| e.name == "Purchase")
        .expect("custom event");
    assert_eq!(purchase.props.get("tier").map(String::as_str), Some("gold"));
    let revenue = purchase.revenue.as_ref().expect("revenue");
    assert_eq!(
        (revenue.amount.as_str(), revenue.currency.as_str()),
        ("19.9", "EUR")
    );
}
