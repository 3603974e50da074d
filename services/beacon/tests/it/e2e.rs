//! End to end through the real `beacon` binary: HTTP in, numbers out of MongoDB, PostgreSQL and
//! the stats API.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use mongodb::bson::doc;
use serde_json::{Value, json};

use crate::common::{Beacon, Namespace, beacon_ok, eventually, free_port, wait_ready};

struct Running {
    collector: String,
    api: String,
    /// API key of example.com's owner.
    key: String,
    /// The admin listener (`/metrics`) when one process runs everything.
    admin: Option<String>,
    processes: Vec<Beacon>,
}

fn addresses(env: &mut HashMap<String, String>) -> (String, String) {
    let (c, a) = (free_port(), free_port());
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{c}"));
    env.insert("BEACON_API_ADDR".into(), format!("127.0.0.1:{a}"));
    (
        format!("http://127.0.0.1:{c}"),
        format!("http://127.0.0.1:{a}"),
    )
}

async fn start(ns: &Namespace, commands: &[&str], http: &reqwest::Client) -> Running {
    let mut env = ns.env();
    let (collector, api) = addresses(&mut env);
    let admin = (commands == ["all"]).then(|| {
        let port = free_port();
        env.insert("BEACON_ADMIN_ADDR".into(), format!("127.0.0.1:{port}"));
        format!("http://127.0.0.1:{port}")
    });
    beacon_ok(&env, &["migrate"]);
    // The owner of the test's sites also runs the pipeline: an operator.
    beacon_ok(&env, &["user", "add", "owner@example.com", "--operator"]);
    let key = beacon_ok(&env, &["key", "create", "--user", "owner@example.com"])
        .trim()
        .to_string();
    beacon_ok(
        &env,
        &[
            "site",
            "add",
            "example.com",
            "--timezone",
            "Asia/Kolkata",
            "--owner",
            "owner@example.com",
        ],
    );
    let mut processes: Vec<Beacon> = commands.iter().map(|c| Beacon::spawn(&env, &[c])).collect();
    let ready = Duration::from_secs(60);
    for (i, command) in commands.iter().enumerate() {
        match *command {
            "all" => {
                wait_ready(
                    http,
                    &format!("{collector}/readyz"),
                    &mut processes[i],
                    ready,
                )
                .await;
                wait_ready(http, &format!("{api}/readyz"), &mut processes[i], ready).await;
            }
            "collector" => {
                wait_ready(
                    http,
                    &format!("{collector}/readyz"),
                    &mut processes[i],
                    ready,
                )
                .await
            }
            "api" => wait_ready(http, &format!("{api}/readyz"), &mut processes[i], ready).await,
            _ => {}
        }
    }
    Running {
        collector,
        api,
        key,
        admin,
        processes,
    }
}

/// A real browser's user agent; `n` varies the version (7 values: 7 visitors from one address).
pub fn desktop_firefox(n: usize) -> String {
    format!("Mozilla/5.0 (X11; Linux x86_64; rv:12{n}.0) Gecko/20100101 Firefox/12{n}.0")
}

async fn send_pageviews(http: &reqwest::Client, collector: &str, n: usize) -> Vec<String> {
    let sends = (0..n).map(|i| {
        let http = http.clone();
        let url = format!("{collector}/track");
        async move {
            let response = http
                .post(url)
                .header("user-agent", desktop_firefox(i % 7))
                .json(&json!({ "url": format!("https://example.com/page/{}", i % 5), "referrer": "https://www.google.com/" }))
                .send()
                .await
                .expect("collector answers");
            assert_eq!(response.status(), 202, "event {i}");
            let body: Value = response.json().await.expect("json");
            body["id"].as_str().expect("id").to_string()
        }
    });
    join_all(sends).await
}

async fn mongo_count(ns: &Namespace) -> u64 {
    ns.archive()
        .await
        .events()
        .count_documents(doc! {})
        .await
        .expect("count")
}

async fn rollup_sum(ns: &Namespace) -> i64 {
    let pool = ns.pg().await;
    let client = pool.get().await.expect("pg");
    client
        .query_one("SELECT coalesce(sum(pageviews), 0)::int8 FROM rollups WHERE property = '' AND span = '15m' AND site = 'example.com'", &[])
        .await
        .expect("sum")
        .get(0)
}

async fn api_pageviews(http: &reqwest::Client, api: &str, key: &str) -> Value {
    http.get(format!("{api}/api/stats?site=example.com&period=day"))
        .bearer_auth(key)
        .send()
        .await
        .expect("api answers")
        .json()
        .await
        .expect("json")
}

/// Sends `n` events and checks every store holds exactly `n`.
async fn assert_every_event_counted_once(
    ns: &Namespace,
    running: &mut Running,
    http: &reqwest::Client,
    n: usize,
) {
    let ids = send_pageviews(http, &running.collector, n).await;
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), n, "event ids are unique");

    let wait = Duration::from_secs(60);
    eventually("MongoDB to hold every event", wait, || async {
        (mongo_count(ns).await >= n as u64).then_some(())
    })
    .await;
    eventually("the rollup to count every event", wait, || async {
        (rollup_sum(ns).await >= n as i64).then_some(())
    })
    .await;
    // Give a double count the chance to show before the exact assertions.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for p in &mut running.processes {
        p.assert_running();
    }
    assert_eq!(
        mongo_count(ns).await,
        n as u64,
        "archive holds each event exactly once"
    );
    let archived: Vec<String> = ns
        .archive()
        .await
        .events()
        .distinct("_id", doc! {})
        .await
        .expect("distinct ids")
        .into_iter()
        .filter_map(|b| b.as_str().map(str::to_string))
        .collect();
    let mut expected: Vec<String> = ids.clone();
    expected.sort();
    let mut archived_sorted = archived;
    archived_sorted.sort();
    assert_eq!(
        archived_sorted, expected,
        "archive holds exactly the accepted ids"
    );
    assert_eq!(
        rollup_sum(ns).await,
        n as i64,
        "rollup counts each event exactly once"
    );

    let stats = api_pageviews(http, &running.api, &running.key).await;
    assert_eq!(stats["pageviews"], json!(n), "{stats}");
    assert_eq!(stats["site"], json!("example.com"));
    let series_total: i64 = stats["timeseries"]
        .as_array()
        .expect("timeseries")
        .iter()
        .map(|p| p["pageviews"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(series_total, n as i64, "timeseries adds up: {stats}");
    // 7 distinct user agents from one address: 7 visitors right now.
    assert_eq!(stats["realtime_visitors"], json!(7), "{stats}");

    // The lag views agree: everything delivered and acknowledged by both consumers.
    let lag: Value =
        serde_json::from_str(&beacon_ok(&ns.env(), &["lag", "--json"])).expect("lag json");
    let pipeline: Value = http
        .get(format!("{}/api/pipeline", running.api))
        .bearer_auth(&running.key)
        .send()
        .await
        .expect("pipeline")
        .json()
        .await
        .expect("json");
    for view in [&lag, &pipeline] {
        assert_eq!(view["stream"]["last_sequence"], json!(n), "{view}");
        assert_eq!(view["dead_letters"], json!(0), "{view}");
        let consumers = view["consumers"].as_array().expect("consumers");
        assert_eq!(consumers.len(), 2, "{view}");
        for c in consumers {
            assert_eq!(c["pending"], json!(0), "{view}");
            assert_eq!(c["ack_pending"], json!(0), "{view}");
            assert_eq!(c["ack_floor"], json!(n), "{view}");
        }
    }
}

/// Every `beacon_*` family the admin listener exports is in the metrics catalogue, with its help.
async fn assert_metrics_catalogued(http: &reqwest::Client, admin: &str) {
    let text = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("admin listener")
        .text()
        .await
        .expect("metrics");
    let families: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("beacon_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| beacon_metrics::find(base).is_some())
                })
                .unwrap_or(name)
        })
        .collect();
    assert!(families.len() >= 10, "only {families:?} exported");
    for family in families {
        assert!(
            beacon_metrics::find(family).is_some(),
            "{family} is exported but not in the catalogue"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no help text"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_all_counts_every_event_once() {
    let ns = Namespace::new("e2e_all");
    let http = reqwest::Client::new();
    let mut running = start(&ns, &["all"], &http).await;
    assert_every_event_counted_once(&ns, &mut running, &http, 60).await;
    assert_metrics_catalogued(&http, running.admin.as_deref().expect("admin listener")).await;
    let status = running.processes[0].terminate();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}\n{}",
        running.processes[0].log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_separate_services_count_every_event_once() {
    let ns = Namespace::new("e2e_four");
    let http = reqwest::Client::new();
    let mut running = start(&ns, &["collector", "archiver", "aggregator", "api"], &http).await;
    assert_every_event_counted_once(&ns, &mut running, &http, 60).await;
    for p in &mut running.processes {
        let status = p.terminate();
        assert!(
            status.success(),
            "{} exits cleanly on SIGTERM: {status}\n{}",
            p.what,
            p.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_400_and_the_collector_keeps_running() {
    let ns = Namespace::new("e2e_bad");
    let http = reqwest::Client::new();
    let running = start(&ns, &["collector"], &http).await;
    let track = format!("{}/track", running.collector);
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("not json", "{oops".into(), 400, None),
        ("empty", String::new(), 400, None),
        (
            "missing url",
            r#"{"site":"example.com"}"#.into(),
            400,
            Some("url"),
        ),
        (
            "url of wrong type",
            r#"{"url": 42}"#.into(),
            400,
            Some("url"),
        ),
        (
            "relative url",
            r#"{"url": "/just/a/path"}"#.into(),
            400,
            Some("url"),
        ),
        (
            "unknown site",
            r#"{"url": "https://unknown.example.org/"}"#.into(),
            400,
            Some("site"),
        ),
        (
            "props not an object",
            r#"{"url": "https://example.com/", "props": [1]}"#.into(),
            400,
            Some("props"),
        ),
        (
            "a lone surrogate escape",
            "{\"url\": \"https://example.com/\u{fffd}\"}".replace('\u{fffd}', "\\udc80"),
            400,
            None,
        ),
        (
            "too large",
            format!(
                r#"{{"url": "https://example.com/{}"}}"#,
                "a".repeat(100_000)
            ),
            413,
            None,
        ),
    ];
    let mut cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = cases
        .into_iter()
        .map(|(what, body, status, field)| (what, body.into_bytes(), status, field))
        .collect();
    // Bytes that are not UTF-8 at all (0xff never occurs in UTF-8), inside a string value.
    let mut invalid = br#"{"url": "https://example.com/"#.to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe]);
    invalid.extend_from_slice(br#""}"#);
    assert!(std::str::from_utf8(&invalid).is_err());
    cases.push(("invalid UTF-8 bytes", invalid, 400, None));
    for (what, body, status, field) in cases {
        let response = http.post(&track).body(body).send().await.expect("answer");
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: JSON error body: {e}"));
        assert!(
            body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        if let Some(field) = field {
            assert_eq!(body["field"], json!(field), "{what}: {body}");
        }
    }
    let response = http
        .post(&track)
        .json(&json!({"url": "https://example.com/after"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        response.status(),
        202,
        "a good event after the bad ones is accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_reads_only_their_own_sites() {
    let ns = Namespace::new("e2e_tenants");
    let http = reqwest::Client::new();
    let running = start(&ns, &["api"], &http).await;
    let env = ns.env();
    beacon_ok(&env, &["user", "add", "rival@example.org"]);
    let rival = beacon_ok(&env, &["key", "create", "--user", "rival@example.org"])
        .trim()
        .to_string();
    beacon_ok(
        &env,
        &[
            "site",
            "add",
            "rival.example.org",
            "--owner",
            "rival@example.org",
        ],
    );
    beacon_ok(&env, &["site", "add", "orphan.example.net"]);

    let get = |path: String, key: Option<String>| {
        let request = http.get(format!("{}{path}", running.api));
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        async move {
            let response = request.send().await.expect("api answers");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json body");
            (status, body)
        }
    };
    let stats = |site: &str| format!("/api/stats?site={site}&period=day");

    assert_eq!(
        get(stats("example.com"), Some(running.key.clone())).await.0,
        200
    );
    assert_eq!(
        get(stats("rival.example.org"), Some(rival.clone())).await.0,
        200
    );
    for (site, key) in [
        ("rival.example.org", &running.key),
        ("example.com", &rival),
        ("orphan.example.net", &rival),
    ] {
        let (status, body) = get(stats(site), Some(key.clone())).await;
        assert_eq!(status, 404, "{site}: {body}");
        assert_eq!(
            body["error"],
            json!(format!("site '{site}' not found")),
            "same answer as a missing site"
        );
    }
    let (missing, _) = get(stats("no-such-site.example"), Some(rival.clone())).await;
    assert_eq!(missing, 404);
    for key in [
        None,
        Some("bk_wrong".to_string()),
        Some(format!("{}x", running.key)),
    ] {
        let (status, body) = get(stats("example.com"), key.clone()).await;
        assert_eq!(status, 401, "{key:?}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("API key")),
            "{body}"
        );
        assert_eq!(get("/api/pipeline".into(), key).await.0, 401);
    }
    // The pipeline tells of every tenant's traffic: an owner who is not an operator gets 403.
    let (status, body) = get("/api/pipeline".into(), Some(rival.clone())).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("operator")),
        "{body}"
    );
    assert_eq!(
        get("/api/pipeline".into(), Some(running.key.clone()))
            .await
            .0,
        200
    );

    // Keys and passwords are stored hashed only.
    let mut with_password = std::process::Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["user", "add", "pw@example.com", "--password-stdin"])
        .envs(&env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    with_password
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse battery\n")
        .expect("write");
    assert!(with_password.wait().expect("wait").success());
    let pool = ns.pg().await;
    let pg = pool.get().await.expect("pg");
    let dump: String = pg
        .query_one("SELECT string_agg(k::text, ' ') || (SELECT string_agg(u::text, ' ') FROM users u) FROM api_keys k", &[])
        .await
        .expect("dump")
        .get(0);
    for secret in [
        running.key.as_str(),
        rival.as_str(),
        "correct horse battery",
    ] {
        assert!(!dump.contains(secret), "a secret is stored in clear");
    }
    let hash: String = pg
        .query_one(
            "SELECT password_hash FROM users WHERE email = 'pw@example.com'",
            &[],
        )
        .await
        .expect("user")
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}
