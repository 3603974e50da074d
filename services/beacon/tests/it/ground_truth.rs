//! The generated dataset pushed through the real pipeline (`beacon all`); every metric, time
//! series and breakdown the API exposes, for several ranges and three time zones, must equal what
//! the test computes from the input on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{Days, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};

use crate::common::{Beacon, Namespace, beacon_ok, eventually, free_port, wait_ready};
use crate::dataset::{
    AGENTS, Dataset, ExpectedVisit, Hit, LANDINGS, SITES, generate, local_midnight, metrics,
    visits_of,
};

/// Fields drop in order: the process stops before the namespace is cleaned up.
pub struct Pipeline {
    pub process: Beacon,
    pub env: HashMap<String, String>,
    pub collector: String,
    pub api: String,
    pub key: String,
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
    let ns = Namespace::new(label);
    let mut env = ns.env();
    let (c, a) = (free_port(), free_port());
    env.insert("BEACON_COLLECTOR_ADDR".into(), format!("127.0.0.1:{c}"));
    env.insert("BEACON_API_ADDR".into(), format!("127.0.0.1:{a}"));
    env.insert("BEACON_GEOIP_DB".into(), geoip_db());
    env.insert("BEACON_RATE_LIMIT".into(), "100000".into());
    env.insert("BEACON_SESSION_CLOSE_AFTER".into(), "4s".into());
    beacon_ok(&env, &["migrate"]);
    beacon_ok(&env, &["user", "add", "truth@example.com"]);
    let key = beacon_ok(&env, &["key", "create", "--user", "truth@example.com"])
        .trim()
        .to_string();
    for (site, tz) in SITES {
        beacon_ok(
            &env,
            &[
                "site",
                "add",
                site,
                "--timezone",
                tz.name(),
                "--owner",
                "truth@example.com",
            ],
        );
    }
    let mut process = Beacon::spawn(&env, &["all"]);
    let collector = format!("http://127.0.0.1:{c}");
    let api = format!("http://127.0.0.1:{a}");
    let ready = Duration::from_secs(60);
    wait_ready(http, &format!("{collector}/readyz"), &mut process, ready).await;
    wait_ready(http, &format!("{api}/readyz"), &mut process, ready).await;
    Pipeline {
        ns,
        env,
        collector,
        api,
        key,
        process,
    }
}

/// Sends the hits in time order through `/track/batch`.
pub async fn send_hits(http: &reqwest::Client, collector: &str, hits: &[Hit]) {
    let mut sorted: Vec<&Hit> = hits.iter().collect();
    sorted.sort_by_key(|h| h.ts_ms);
    for chunk in sorted.chunks(500) {
        let bodies: Vec<&Value> = chunk.iter().map(|h| &h.body).collect();
        send_chunk(http, collector, &bodies).await;
    }
}

/// Sends one `/track/batch` body, retrying while the collector answers 503 (hits carry their
/// ids, so a retry cannot count anything twice).
pub async fn send_chunk(http: &reqwest::Client, collector: &str, bodies: &[&Value]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let response = http
            .post(format!("{collector}/track/batch"))
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

/// Waits until the aggregator has applied every counted hit.
pub async fn wait_applied(pool: &beacon_store::Pool, expected: usize) {
    eventually(
        "the aggregator to apply every hit",
        Duration::from_secs(120),
        || {
            let pool = pool.clone();
            async move {
                let client = pool.get().await.ok()?;
                let n: i64 = client
                    .query_one("SELECT count(*) FROM applied_events", &[])
                    .await
                    .ok()?
                    .get(0);
                (n as usize >= expected).then_some(())
            }
        },
    )
    .await;
}

/// What the test knows about the visit properties of a visit's first hit.
fn labeller(dataset: &Dataset) -> impl Fn(&Hit) -> BTreeMap<&'static str, String> + '_ {
    let geo = beacon_collector::GeoIp::open(std::path::Path::new(&geoip_db())).expect("geoip");
    let countries: HashMap<&str, String> = dataset
        .visitors
        .iter()
        .map(|v| {
            (
                v.ip.as_str(),
                geo.country(v.ip.parse().expect("ip")).unwrap_or_default(),
            )
        })
        .collect();
    move |hit: &Hit| {
        let landing = &LANDINGS[hit.landing.unwrap_or(0)];
        let visitor = &dataset.visitors[hit.visitor];
        let agent = &AGENTS[visitor.agent];
        let mut props = BTreeMap::from([
            ("visit:source", landing.source.to_string()),
            ("visit:referrer", landing.referrer_label.to_string()),
            ("visit:browser", agent.browser.to_string()),
            ("visit:os", agent.os.to_string()),
            ("visit:device", agent.device.to_string()),
            ("visit:country", countries[visitor.ip.as_str()].clone()),
        ]);
        for (name, value) in [
            "visit:utm_medium",
            "visit:utm_source",
            "visit:utm_campaign",
            "visit:utm_content",
            "visit:utm_term",
        ]
        .into_iter()
        .zip(landing.utm)
        {
            props.insert(name, value.to_string());
        }
        props
    }
}

/// The expected world of one site: its counted hits and visits.
pub struct SiteTruth<'a> {
    pub hits: Vec<&'a Hit>,
    pub visits: Vec<ExpectedVisit>,
}

pub fn site_truth<'a>(
    dataset: &'a Dataset,
    site: &str,
    label: &dyn Fn(&Hit) -> BTreeMap<&'static str, String>,
) -> SiteTruth<'a> {
    let hits: Vec<&Hit> = dataset
        .hits
        .iter()
        .filter(|h| h.site == site && !h.bot)
        .collect();
    let visits = visits_of(&hits, label);
    SiteTruth { hits, visits }
}

impl SiteTruth<'_> {
    fn in_range(&self, from: i64, to: i64) -> (Vec<&Hit>, Vec<&ExpectedVisit>) {
        let hits = self
            .hits
            .iter()
            .copied()
            .filter(|h| (from..to).contains(&h.ts_ms))
            .collect();
        let visits = self
            .visits
            .iter()
            .filter(|v| (from..to).contains(&v.start_ms))
            .collect();
        (hits, visits)
    }
}

fn visit_metrics(visits: &[&ExpectedVisit]) -> BTreeMap<&'static str, Value> {
    let n = visits.len() as i64;
    let ratio = |x: i64| if n > 0 { x as f64 / n as f64 } else { 0.0 };
    let visitors: BTreeSet<usize> = visits.iter().map(|v| v.visitor).collect();
    let pageviews: i64 = visits.iter().map(|v| v.pageviews).sum();
    let events: i64 = visits.iter().map(|v| v.events).sum();
    let bounces = visits.iter().filter(|v| v.bounce).count() as i64;
    let duration: i64 = visits.iter().map(|v| v.end_ms - v.start_ms).sum();
    BTreeMap::from([
        ("visitors", json!(visitors.len())),
        ("visits", json!(n)),
        ("pageviews", json!(pageviews)),
        ("events", json!(pageviews + events)),
        (
            "bounce_rate",
            json!((ratio(bounces) * 100.0).round() as i64),
        ),
        (
            "visit_duration",
            json!((ratio(duration) / 1000.0).round() as i64),
        ),
        (
            "views_per_visit",
            json!((ratio(pageviews) * 100.0).round() / 100.0),
        ),
    ])
}

const ALL_METRICS: &str =
    "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";
const VISIT_PROPERTIES: &[&str] = &[
    "visit:source",
    "visit:referrer",
    "visit:utm_medium",
    "visit:utm_source",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:country",
    "visit:browser",
    "visit:os",
    "visit:device",
    "visit:entry_page",
    "visit:exit_page",
];

fn shown(property: &str, value: &str) -> String {
    match (property, value) {
        ("visit:source", "") => "Direct / None".into(),
        (_, "") => "(none)".into(),
        (_, v) => v.into(),
    }
}

struct Checker<'a> {
    http: &'a reqwest::Client,
    api: &'a str,
    key: &'a str,
    mismatches: Vec<String>,
    checked: usize,
}

impl Checker<'_> {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(self.key)
            .send()
            .await
            .expect("api answers");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    fn compare(&mut self, what: &str, actual: &Value, expected: &BTreeMap<&'static str, Value>) {
        for (metric, value) in expected {
            self.checked += 1;
            if actual.get(*metric) != Some(value) {
                self.mismatches.push(format!(
                    "{what} {metric}: API {:?}, expected {value}",
                    actual.get(*metric)
                ));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_breakdown_equals_the_ground_truth() {
    let http = reqwest::Client::new();
    let mut pipeline = start_pipeline("truth", &http).await;
    let first_day = Utc::now().date_naive() - Days::new(12);
    let dataset = generate(20261126, first_day, 3, 30);
    let counted = dataset.hits.iter().filter(|h| !h.bot).count();
    assert!(dataset.hits.iter().any(|h| h.bot), "the dataset has bots");
    send_hits(&http, &pipeline.collector, &dataset.hits).await;
    wait_applied(&pipeline.ns.pg().await, counted).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    pipeline.process.assert_running();

    // First while the latest visits are still open (counted from the sessions table), then once
    // every visit has closed into the rollups.
    let pool = pipeline.ns.pg().await;
    let open: i64 = pool
        .get()
        .await
        .expect("pg")
        .query_one("SELECT count(*) FROM sessions WHERE NOT closed", &[])
        .await
        .expect("count")
        .get(0);
    assert!(open > 0, "some visits are still open for the first check");
    verify(
        &http,
        &pipeline.api,
        &pipeline.key,
        &dataset,
        "while visits are open", true)
    .await;
    eventually("every visit to close", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let client = pool.get().await.ok()?;
            let open: i64 = client
                .query_one("SELECT count(*) FROM sessions WHERE NOT closed", &[])
                .await
                .ok()?
                .get(0);
            (open == 0).then_some(())
        }
    })
    .await;
    verify(
        &http,
        &pipeline.api,
        &pipeline.key,
        &dataset,
        "after every visit closed", true)
    .await;

    // Compaction merges the old days' 15-minute rows into day rows: every daily number stays.
    let rows = |pool: beacon_store::Pool| async move {
        let n: i64 = pool
            .get()
            .await
            .expect("pg")
            .query_one("SELECT count(*) FROM rollups", &[])
            .await
            .expect("count")
            .get(0);
        n
    };
    let before = rows(pool.clone()).await;
    let said = beacon_ok(&pipeline.env, &["compact", "--older-than", "1day"]);
    let after = rows(pool.clone()).await;
    assert!(after * 3 < before, "compaction left {after} of {before} rows: {said}");
    verify(&http, &pipeline.api, &pipeline.key, &dataset, "after compaction", false).await;
    let again = beacon_ok(&pipeline.env, &["compact", "--older-than", "1day"]);
    assert!(again.contains("compacted 0 site-days"), "{again}");
    pipeline.process.assert_running();
    drop(pipeline);
}

/// Checks every metric, series and breakdown of every dataset site against the ground truth.
/// `hourly`: also check hourly series of single days (not after compaction, which keeps days only).
pub async fn verify(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    dataset: &Dataset,
    when: &str,
    hourly: bool,
) {
    let first_day = dataset.first_day;
    let label = labeller(dataset);
    let mut checker = Checker {
        http,
        api,
        key,
        mismatches: Vec::new(),
        checked: 0,
    };
    let last_day = first_day + Days::new(u64::from(dataset.days));
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    for &(site, tz) in SITES {
        let truth = site_truth(dataset, site, &label);
        assert!(
            truth.visits.iter().any(|v| {
                let start = tz.timestamp_millis_opt(v.start_ms).unwrap().date_naive();
                tz.timestamp_millis_opt(v.end_ms).unwrap().date_naive() != start
            }),
            "{site}: some visit crosses local midnight"
        );
        let mut ranges: Vec<(String, NaiveDate, NaiveDate, &str)> = (0..=dataset.days)
            .map(|i| {
                let d = first_day + Days::new(u64::from(i));
                (
                    format!("period=day&date={}", day(d)),
                    d,
                    d,
                    if hourly { "hour" } else { "date" },
                )
            })
            .collect();
        ranges.push((
            format!("period=custom&date={},{}", day(first_day), day(last_day)),
            first_day,
            last_day,
            "date",
        ));
        let week_end = first_day + Days::new(4);
        ranges.push((
            format!("period=7d&date={}", day(week_end)),
            week_end - Days::new(6),
            week_end,
            "date",
        ));

        for (period, first, last, interval) in &ranges {
            let from = local_midnight(tz, *first).timestamp_millis();
            let to = local_midnight(tz, *last + Days::new(1)).timestamp_millis();
            let (hits, visits) = truth.in_range(from, to);
            let what = format!("{site} {period}");

            let aggregate = checker
                .get(&format!(
                    "/api/v1/stats/aggregate?site_id={site}&{period}&metrics={ALL_METRICS}"
                ))
                .await;
            let values: serde_json::Map<String, Value> = aggregate["results"]
                .as_object()
                .expect("results")
                .iter()
                .map(|(k, v)| (k.clone(), v["value"].clone()))
                .collect();
            checker.compare(
                &format!("{what} aggregate"),
                &Value::Object(values),
                &metrics(&hits, &visits),
            );

            // Time series: every local interval of the range.
            let series = checker
                .get(&format!(
                    "/api/v1/stats/timeseries?site_id={site}&{period}&interval={interval}&metrics=visitors,pageviews,visits,bounce_rate"
                ))
                .await;
            let points = series["results"].as_array().expect("results").clone();
            let mut starts = Vec::new();
            let mut d = *first;
            while d <= *last {
                if *interval == "hour" {
                    for h in 0..24 {
                        let t = tz
                            .from_local_datetime(&d.and_hms_opt(h, 0, 0).unwrap())
                            .earliest()
                            .unwrap();
                        starts.push((
                            t.format("%Y-%m-%d %H:%M:%S").to_string(),
                            t.timestamp_millis(),
                        ));
                    }
                } else {
                    starts.push((day(d), local_midnight(tz, d).timestamp_millis()));
                }
                d = d + Days::new(1);
            }
            if points.len() != starts.len() {
                checker.mismatches.push(format!(
                    "{what} timeseries has {} points, expected {}",
                    points.len(),
                    starts.len()
                ));
            }
            for (i, (label, start)) in starts.iter().enumerate() {
                let end = starts.get(i + 1).map_or(to, |s| s.1);
                let (h, v) = truth.in_range(*start, end);
                let mut expected = metrics(&h, &v);
                expected
                    .retain(|k, _| ["visitors", "pageviews", "visits", "bounce_rate"].contains(k));
                expected.insert("date", json!(label));
                let point = points.get(i).cloned().unwrap_or_default();
                checker.compare(&format!("{what} timeseries {label}"), &point, &expected);
            }

            // Breakdowns by every visit property.
            for property in VISIT_PROPERTIES {
                let body = checker
                    .get(&format!("/api/v1/stats/breakdown?site_id={site}&{period}&property={property}&metrics={ALL_METRICS}&limit=1000"))
                    .await;
                let key = property.trim_start_matches("visit:");
                let actual: BTreeMap<String, Value> = body["results"]
                    .as_array()
                    .expect("results")
                    .iter()
                    .map(|row| {
                        (
                            row[key].as_str().unwrap_or_default().to_string(),
                            row.clone(),
                        )
                    })
                    .collect();
                let mut groups: BTreeMap<String, Vec<&ExpectedVisit>> = BTreeMap::new();
                for v in &visits {
                    groups
                        .entry(shown(property, &v.props[property]))
                        .or_default()
                        .push(v);
                }
                let names: BTreeSet<&String> = actual.keys().collect();
                if names != groups.keys().collect() {
                    checker.mismatches.push(format!(
                        "{what} breakdown {property}: values {names:?}, expected {:?}",
                        groups.keys().collect::<Vec<_>>()
                    ));
                }
                for (value, group) in &groups {
                    let row = actual.get(value).cloned().unwrap_or_default();
                    checker.compare(
                        &format!("{what} breakdown {property}={value}"),
                        &row,
                        &visit_metrics(group),
                    );
                }
            }

            // Breakdowns by event properties.
            let event_properties: [(&str, &str, &dyn Fn(&Hit) -> Option<String>); 3] = [
                ("event:page", "page", &|h: &Hit| Some(h.path.clone())),
                ("event:goal", "goal", &|h: &Hit| Some(h.name.clone())),
                ("event:props:plan", "plan", &|h: &Hit| {
                    h.props.get("plan").cloned()
                }),
            ];
            for (property, key, value_of) in event_properties {
                let body = checker
                    .get(&format!("/api/v1/stats/breakdown?site_id={site}&{period}&property={property}&metrics=visitors,pageviews,events&limit=1000"))
                    .await;
                let actual: BTreeMap<String, Value> = body["results"]
                    .as_array()
                    .expect("results")
                    .iter()
                    .map(|row| {
                        (
                            row[key].as_str().unwrap_or_default().to_string(),
                            row.clone(),
                        )
                    })
                    .collect();
                let mut groups: BTreeMap<String, Vec<&Hit>> = BTreeMap::new();
                for h in hits.iter().copied().filter(|h| h.name != "engagement") {
                    if let Some(v) = value_of(h) {
                        groups.entry(v).or_default().push(h);
                    }
                }
                let names: BTreeSet<&String> = actual.keys().collect();
                if names != groups.keys().collect() {
                    checker.mismatches.push(format!(
                        "{what} breakdown {property}: values {names:?}, expected {:?}",
                        groups.keys().collect::<Vec<_>>()
                    ));
                }
                for (value, group) in &groups {
                    let mut expected = metrics(group, &[]);
                    expected.retain(|k, _| ["visitors", "pageviews", "events"].contains(k));
                    let row = actual.get(value).cloned().unwrap_or_default();
                    checker.compare(
                        &format!("{what} breakdown {property}={value}"),
                        &row,
                        &expected,
                    );
                }
            }

            // A filter answers like the matching breakdown row.
            let filtered = checker
                .get(&format!("/api/v1/stats/aggregate?site_id={site}&{period}&metrics=visitors,visits,bounce_rate&filters=visit:source%3D%3DGoogle"))
                .await;
            let google: Vec<&ExpectedVisit> = visits
                .iter()
                .copied()
                .filter(|v| v.props["visit:source"] == "Google")
                .collect();
            let mut expected = visit_metrics(&google);
            expected.retain(|k, _| ["visitors", "visits", "bounce_rate"].contains(k));
            let values: serde_json::Map<String, Value> = filtered["results"]
                .as_object()
                .expect("results")
                .iter()
                .map(|(k, v)| (k.clone(), v["value"].clone()))
                .collect();
            checker.compare(
                &format!("{what} filtered by source"),
                &Value::Object(values),
                &expected,
            );
        }

        // The dashboard's summary agrees too.
        let (period, first, last, _) = &ranges[ranges.len() - 2];
        let from = local_midnight(tz, *first).timestamp_millis();
        let to = local_midnight(tz, *last + Days::new(1)).timestamp_millis();
        let (hits, visits) = truth.in_range(from, to);
        let summary = checker
            .get(&format!("/api/stats?site={site}&{period}"))
            .await;
        let mut expected = metrics(&hits, &visits);
        expected.remove("events");
        checker.compare(&format!("{site} /api/stats"), &summary, &expected);
        let top_source = &summary["top_sources"][0];
        let mut by_source: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for v in &visits {
            by_source
                .entry(shown("visit:source", &v.props["visit:source"]))
                .or_default()
                .insert(v.visitor);
        }
        let best = by_source.values().map(BTreeSet::len).max().unwrap_or(0);
        checker.compare(
            &format!("{site} /api/stats top source"),
            top_source,
            &BTreeMap::from([("visitors", json!(best))]),
        );
    }

    assert!(
        checker.checked > 1000,
        "only {} numbers checked",
        checker.checked
    );
    assert!(
        checker.mismatches.is_empty(),
        "{when}: {} of {} numbers differ from the ground truth, e.g.:\n{}",
        checker.mismatches.len(),
        checker.checked,
        checker
            .mismatches
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
