//! The generated dataset pushed through the real pipeline (`beacon all`); every metric, time
//! series and breakdown the API exposes, for several ranges and three time zones, must equal what
//! the test computes from the input on its own.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{Days, Utc};
use serde_json::Value;

use crate::common::{
    Beacon, Namespace, add_owned_site, beacon_ok, eventually, free_port, wait_ready,
};
use crate::dataset::{Hit, SITES, generate};
use crate::owner_access::add_user_with_password;
use crate::truth_checks::verify;

/// The dataset owner's dashboard password.
pub const TRUTH_PASSWORD: &str = "correct horse battery staple";

/// Fields drop in order: the process stops before the namespace is cleaned up.
pub struct Pipeline {
    /// `beacon all`, or `beacon collector` when the roles run apart ([`start_split_pipeline`]).
    pub process: Beacon,
    /// `beacon api`, `beacon archiver`, `beacon aggregator` when the roles run apart.
    pub roles: Vec<Beacon>,
    pub env: HashMap<String, String>,
    pub collector: String,
    pub api: String,
    pub key: String,
    /// Ingest token of each site: the dataset's hits set `ip`, `user_agent`, `timestamp`, `id`.
    pub tokens: HashMap<String, String>,
    pub ns: Namespace,
}

pub fn geoip_db() -> String {
    let db = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "tests/npm/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb",
    );
    assert!(
        db.exists(),
        "{} missing: scripts/test runs npm ci in tests/npm",
        db.display()
    );
    db.to_string_lossy().to_string()
}

/// `beacon all` with the dataset's sites, owned by one owner whose API key is returned.
pub async fn start_pipeline(label: &str, http: &reqwest::Client) -> Pipeline {
    start_pipeline_with(label, http, &[]).await
}

/// [`start_pipeline`] with some variables set.
pub async fn start_pipeline_with(
    label: &str,
    http: &reqwest::Client,
    settings: &[(&str, &str)],
) -> Pipeline {
    start(label, http, settings, false).await
}

/// [`start_pipeline`] with each role in a process of its own (`roles`: api, archiver,
/// aggregator), so a test can stop one.
pub async fn start_split_pipeline(label: &str, http: &reqwest::Client) -> Pipeline {
    start(label, http, &[], true).await
}

async fn start(
    label: &str,
    http: &reqwest::Client,
    settings: &[(&str, &str)],
    split: bool,
) -> Pipeline {
    let ns = Namespace::new(label);
    let mut env = ns.env();
    let (c, a) = (free_port(), free_port());
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{c}"));
    env.insert("BEACON_API_ADDR".into(), format!("127.0.0.1:{a}"));
    env.insert("BEACON_GEOIP_DB".into(), geoip_db());
    env.insert("BEACON_RATE_LIMIT".into(), "100000".into());
    env.insert("BEACON_SESSION_CLOSE_AFTER".into(), "4s".into());
    for (name, value) in settings {
        env.insert(name.to_string(), value.to_string());
    }
    beacon_ok(&env, &["migrate"]);
    add_user_with_password(&env, "truth@example.com", TRUTH_PASSWORD);
    let key = beacon_ok(&env, &["key", "create", "--user", "truth@example.com"])
        .trim()
        .to_string();
    for (site, tz) in SITES {
        add_truth_site(&env, site, tz.name(), "truth@example.com");
    }
    let tokens = site_tokens(&env);
    let collector = format!("http://127.0.0.1:{c}");
    let api = format!("http://127.0.0.1:{a}");
    let ready = Duration::from_secs(60);
    let (mut process, mut roles) = if split {
        let roles = ["api", "archiver", "aggregator"].map(|role| Beacon::spawn(&env, &[role]));
        (Beacon::spawn(&env, &["collector"]), Vec::from(roles))
    } else {
        (Beacon::spawn(&env, &["all"]), Vec::new())
    };
    wait_ready(http, &format!("{collector}/readyz"), &mut process, ready).await;
    let api_process = roles.first_mut().unwrap_or(&mut process);
    wait_ready(http, &format!("{api}/readyz"), api_process, ready).await;
    Pipeline {
        ns,
        env,
        collector,
        api,
        key,
        tokens,
        process,
        roles,
    }
}

/// Registers a dataset site for `owner` with the goals truth_checks.rs computes conversions for
/// (`Signup` and `/blog/*`; `Scrolled` is left out on purpose).
pub fn add_truth_site(env: &HashMap<String, String>, site: &str, tz: &str, owner: &str) {
    add_owned_site(env, site, tz, owner);
    beacon_ok(env, &["goal", "add", "--site", site, "--event", "Signup"]);
    beacon_ok(env, &["goal", "add", "--site", site, "--page", "/blog/*"]);
}

/// `beacon token create` for each of the dataset's sites.
pub fn site_tokens(env: &HashMap<String, String>) -> HashMap<String, String> {
    SITES
        .iter()
        .map(|(site, _)| {
            let token = beacon_ok(env, &["token", "create", "--site", site]);
            (site.to_string(), token.trim().to_string())
        })
        .collect()
}

/// Sends the hits in time order through `/track/batch`.
pub async fn send_hits(
    http: &reqwest::Client,
    collector: &str,
    tokens: &HashMap<String, String>,
    hits: &[Hit],
) {
    let mut sorted: Vec<&Hit> = hits.iter().collect();
    sorted.sort_by_key(|h| h.ts_ms);
    for chunk in sorted.chunks(500) {
        let bodies: Vec<&Value> = chunk.iter().map(|h| &h.body).collect();
        send_chunk(http, collector, tokens, &bodies).await;
    }
}

/// Sends hits through `/track/batch`, one body per site with that site's ingest token,
/// retrying while the collector answers 503 (hits carry their ids, so a retry cannot count
/// anything twice).
pub async fn send_chunk(
    http: &reqwest::Client,
    collector: &str,
    tokens: &HashMap<String, String>,
    bodies: &[&Value],
) {
    let mut by_site: std::collections::BTreeMap<&str, Vec<&Value>> = Default::default();
    for body in bodies {
        by_site
            .entry(body["site"].as_str().expect("a dataset hit names its site"))
            .or_default()
            .push(body);
    }
    for (site, bodies) in by_site {
        send_site_chunk(http, collector, &tokens[site], &bodies).await;
    }
}

async fn send_site_chunk(http: &reqwest::Client, collector: &str, token: &str, bodies: &[&Value]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let response = http
            .post(format!("{collector}/track/batch"))
            .bearer_auth(token)
            .json(&bodies)
            .send()
            .await
            .expect("collector answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status == 503 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(status, 202, "{text}");
        return;
    }
}

/// `SELECT count(*) …` on `pool`; `None` while the database cannot answer.
pub async fn count(pool: &beacon_store::Pool, sql: &str) -> Option<i64> {
    let client = pool.get().await.ok()?;
    Some(client.query_one(sql, &[]).await.ok()?.get(0))
}

/// Waits until the aggregator has applied every counted hit.
pub async fn wait_applied(pool: &beacon_store::Pool, expected: usize) {
    eventually(
        "the aggregator to apply every hit",
        Duration::from_secs(120),
        || async {
            let n = count(pool, "SELECT count(*) FROM applied_events").await?;
            (n as usize >= expected).then_some(())
        },
    )
    .await;
}

/// Waits until every visit has closed into the rollups.
pub async fn wait_visits_closed(pool: &beacon_store::Pool) {
    eventually("every visit to close", Duration::from_secs(60), || async {
        let open = count(pool, "SELECT count(*) FROM sessions WHERE NOT closed").await?;
        (open == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_breakdown_equals_the_ground_truth() {
    let http = reqwest::Client::new();
    let mut pipeline = start_pipeline("truth", &http).await;
    let first_day = Utc::now().date_naive() - Days::new(12);
    let dataset = generate(20261126, first_day, 3, 30);
    let counted = dataset.hits.iter().filter(|h| !h.bot).count();
    assert!(dataset.hits.iter().any(|h| h.bot), "the dataset has bots");
    send_hits(&http, &pipeline.collector, &pipeline.tokens, &dataset.hits).await;
    wait_applied(&pipeline.ns.pg().await, counted).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    pipeline.process.assert_running();

    // First while the latest visits are still open (counted from the sessions table), then once
    // every visit has closed into the rollups.
    let pool = pipeline.ns.pg().await;
    let open = count(&pool, "SELECT count(*) FROM sessions WHERE NOT closed").await;
    assert!(
        open > Some(0),
        "some visits are still open for the first check"
    );
    verify(
        &http,
        &pipeline.api,
        &pipeline.key,
        &dataset,
        "while visits are open",
        true,
    )
    .await;
    wait_visits_closed(&pool).await;
    verify(
        &http,
        &pipeline.api,
        &pipeline.key,
        &dataset,
        "after every visit closed",
        true,
    )
    .await;

    // Compaction deletes the old days' 15-minute rows, keeping their day rows: every daily number
    // stays.
    let rows = "SELECT count(*) FROM rollups";
    let before = count(&pool, rows).await.expect("rows");
    let said = beacon_ok(&pipeline.env, &["compact", "--older-than", "1day"]);
    let after = count(&pool, rows).await.expect("rows");
    assert!(
        after * 3 < before,
        "compaction left {after} of {before} rows: {said}"
    );
    verify(
        &http,
        &pipeline.api,
        &pipeline.key,
        &dataset,
        "after compaction",
        false,
    )
    .await;
    let again = beacon_ok(&pipeline.env, &["compact", "--older-than", "1day"]);
    assert!(again.contains("compacted 0 site-days"), "{again}");

    // Week and month rows rebuilt from the day rows (what migration V5 does for older history)
    // are, byte for byte, the rows the aggregator wrote.
    let written = calendar_rows(&pool).await;
    assert!(
        written.iter().any(|r| r.starts_with("week"))
            && written.iter().any(|r| r.starts_with("month")),
        "the aggregator wrote week and month rows"
    );
    let mut client = pool.get().await.expect("connection");
    for &(site, _) in SITES {
        let tx = client.transaction().await.expect("transaction");
        beacon_store::rollups::lock_sites(&*tx, &[site])
            .await
            .expect("lock");
        beacon_store::calendar_rows::rebuild(&*tx, site)
            .await
            .expect("rebuild");
        tx.commit().await.expect("commit");
    }
    assert_eq!(calendar_rows(&pool).await, written);
    // And the one-time step after the migrations builds them where only day rows exist.
    client
        .batch_execute(
            "DELETE FROM rollups WHERE span IN ('week', 'month'); DELETE FROM data_migrations",
        )
        .await
        .expect("forget week and month rows");
    beacon_ok(&pipeline.env, &["migrate"]);
    assert_eq!(calendar_rows(&pool).await, written);
    pipeline.process.assert_running();
    drop(pipeline);
}

/// Every week and month row, counters and sketch bytes, as text.
async fn calendar_rows(pool: &beacon_store::Pool) -> Vec<String> {
    let client = pool.get().await.expect("connection");
    client
        .query(
            "SELECT concat_ws(' ', span, site, property, value, bucket, pageviews, events, visits,
                 bounces, duration_ms, md5(visitors))
             FROM rollups WHERE span IN ('week', 'month') ORDER BY 1",
            &[],
        )
        .await
        .expect("calendar rows")
        .iter()
        .map(|row| row.get(0))
        .collect()
}
