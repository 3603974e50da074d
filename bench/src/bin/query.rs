//! Stats API query latency for a site with 10 million events over 30 days: aggregate, time series
//! and breakdowns, unfiltered and with one filter, through the real HTTP API (in-process) and
//! PostgreSQL, with the query cache bypassed (every request computes) and with it (repeats).
//! The baseline measured in the same run is the HTTP round trip of `/healthz`.
//!
//! `cargo run --release -p beacon-bench --bin query -- --events 10000000`

use std::time::{Duration, Instant};

use anyhow::Context as _;
use beacon_jetstream::Topology;
use beacon_pipeline::rollup::{Rollup, UtcCalendar};
use beacon_pipeline::session::Session;
use beacon_runtime::{AdminState, CancellationToken, Health};
use beacon_schemas::Event;
use beacon_store::{LiveKeys, rollups, sites, users};
use clap::Parser;
use fred::prelude::*;

#[derive(Parser)]
struct Args {
    /// Events over the whole range.
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Distinct visitors per day.
    #[arg(long, default_value_t = 60_000)]
    daily_visitors: u64,
    /// Requests per query kind and cache mode.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Keep the loaded PostgreSQL schema afterwards (to inspect query plans); its name is printed.
    #[arg(long)]
    keep: bool,
}

const SITE: &str = "bench.example";
const BUCKET_MS: i64 = 15 * 60 * 1000;
const PAGES: usize = 60;
const SOURCES: [&str; 8] = [
    "",
    "Google",
    "Bing",
    "Hacker News",
    "Reddit",
    "newsletter",
    "GitHub",
    "DuckDuckGo",
];
const COUNTRIES: [&str; 10] = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "NL", "ES"];
const BROWSERS: [&str; 5] = ["Chrome", "Safari", "Firefox", "Edge", "Opera"];
const OSES: [&str; 4] = ["Windows", "Mac", "iOS", "Android"];
const DEVICES: [&str; 3] = ["Desktop", "Mobile", "Tablet"];

/// A small deterministic generator (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Skewed towards 0: the top values get most of the traffic, as real pages and sources do.
    fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n as u64);
        let b = self.below(n as u64);
        a.min(b) as usize
    }
}

fn event(rng: &mut Rng, day: i64, ts: i64, daily_visitors: u64) -> Event {
    let visitor = rng.below(daily_visitors);
    // Visit properties follow the visitor, so a visitor's events agree with each other.
    let v = visitor as usize;
    let mut e = beacon_bench::sample_event(SITE, 0);
    e.id = beacon_schemas::EventId::new_at(ts);
    e.timestamp_ms = ts;
    e.received_at_ms = ts;
    e.visitor_id = visitor ^ ((day as u64) << 40);
    e.pathname = format!("/page/{}", rng.skewed(PAGES));
    e.url = format!("https://{SITE}{}", e.pathname);
    e.props.clear();
    let source = SOURCES[v % SOURCES.len()];
    e.enrichment.source = (!source.is_empty()).then(|| source.to_string());
    e.enrichment.country = Some(COUNTRIES[(v / 7) % COUNTRIES.len()].into());
    e.enrichment.browser = Some(BROWSERS[(v / 3) % BROWSERS.len()].into());
    e.enrichment.os = Some(OSES[(v / 5) % OSES.len()].into());
    e.enrichment.device = Some(DEVICES[(v / 11) % DEVICES.len()].into());
    if rng.below(20) == 0 {
        e.name = "Signup".into();
    }
    e
}

/// Writes the rollup rows of `args.events` events, bucket by bucket, as the aggregator would
/// after closing each bucket's visits.
/// Returns the number of rows written and the page views of days 1.. (the 29 days that
/// `period=30d` ending today covers).
async fn load(pool: &beacon_store::Pool, args: &Args, first_ms: i64) -> anyhow::Result<(u64, i64)> {
    let buckets = args.days * 96;
    let per_bucket = args.events / buckets as usize;
    let mut rng = Rng(7);
    let mut rows = 0u64;
    let mut pageviews_in_range = 0i64;
    let started = Instant::now();
    for b in 0..buckets {
        let start = first_ms + b * BUCKET_MS;
        let day = b / 96;
        let mut rollup = Rollup::default();
        let mut visits: std::collections::HashMap<u64, Session> = Default::default();
        for i in 0..per_bucket {
            let ts = start + (i as i64 * BUCKET_MS) / per_bucket as i64;
            let e = event(&mut rng, day, ts, args.daily_visitors);
            rollup.add_event(&e, &UtcCalendar);
            if day >= 1 && e.is_pageview() {
                pageviews_in_range += 1;
            }
            let s = Session::of_event(&e);
            visits
                .entry(e.visitor_id)
                .and_modify(|v| v.absorb(&s))
                .or_insert(s);
        }
        let closed: Vec<Session> = visits.into_values().collect();
        rollup.merge(&Rollup::of_closed(&closed, &UtcCalendar));
        rows += rollup.rows.len() as u64;
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        rollups::apply(&*tx, &rollup).await?;
        tx.commit().await?;
        if b % 96 == 95 {
            eprintln!(
                "day {} loaded ({rows} rows, {:.0}s)",
                b / 96 + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok((rows, pageviews_in_range))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Times `requests` GETs of `path`; with `bust`, the site's data version is raised before each
/// so the cache never answers.
async fn measure(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    requests: usize,
    bust: Option<(&Client, &str)>,
) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        if let Some((redis, version_key)) = bust {
            let _: i64 = redis.incr(version_key).await?;
        }
        let started = Instant::now();
        let response = http.get(url).bearer_auth(key).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        times.push(started.elapsed());
        anyhow::ensure!(
            status.is_success(),
            "{url}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let namespace = beacon_bench::bench_namespace("query");
    let postgres_url = beacon_bench::env_or(
        "BEACON_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let redis_url = beacon_bench::env_or("BEACON_REDIS_URL", "redis://127.0.0.1:6379");
    beacon_store::postgres::migrate(&postgres_url, &namespace).await?;
    let pool = beacon_store::postgres::pool(&postgres_url, &namespace, 8)?;
    let owner = users::add_user(&pool, "bench@example.com", None, false).await?;
    let key = users::create_key(&pool, &owner).await?;
    sites::add(&pool, SITE, chrono_tz::Tz::UTC, Some(&owner)).await?;

    // The 30 days end yesterday (UTC), so `period=30d` with today's date covers them.
    let today = chrono::Utc::now().date_naive();
    let first_day = today - chrono::Days::new(args.days as u64);
    let first_ms = first_day
        .and_hms_opt(0, 0, 0)
        .context("midnight")?
        .and_utc()
        .timestamp_millis();
    let loading = Instant::now();
    let (rows, expected_pageviews) = load(&pool, &args, first_ms).await?;
    let load_secs = loading.elapsed().as_secs_f64();
    let client = pool.get().await?;
    let size: String = client
        .query_one(
            "SELECT pg_size_pretty(pg_total_relation_size('rollups'))",
            &[],
        )
        .await?
        .get(0);
    client.execute("ANALYZE rollups", &[]).await?;
    drop(client);

    let redis = beacon_store::live::connect(&redis_url).await?;
    let nats = async_nats::connect(beacon_bench::nats_url()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let deps = beacon_api::Deps {
        pool: pool.clone(),
        redis: redis.clone(),
        live_keys: LiveKeys::new(&namespace),
        js: async_nats::jetstream::new(nats),
        topology: Topology::new(&namespace),
        admin: AdminState {
            health: Health::default(),
            metrics: None,
            shutdown: shutdown.clone(),
        },
        http: beacon_runtime::HttpLimits::default(),
        documents: Vec::new(),
    };
    let server = tokio::spawn(beacon_api::run(deps, listener, shutdown.clone()));
    let http = reqwest::Client::new();
    let version_key = LiveKeys::new(&namespace).data_version(SITE);
    let date = today.format("%Y-%m-%d");
    let common = format!("site_id={SITE}&period=30d&date={date}");
    let queries = [
        (
            "aggregate",
            format!(
                "/api/v1/stats/aggregate?{common}&metrics=visitors,visits,pageviews,bounce_rate,visit_duration"
            ),
        ),
        (
            "timeseries (daily)",
            format!("/api/v1/stats/timeseries?{common}&metrics=visitors,pageviews"),
        ),
        (
            "breakdown event:page",
            format!(
                "/api/v1/stats/breakdown?{common}&property=event:page&metrics=visitors,pageviews&limit=10"
            ),
        ),
        (
            "breakdown event:page, all pages (limit 100)",
            format!(
                "/api/v1/stats/breakdown?{common}&property=event:page&metrics=visitors,pageviews"
            ),
        ),
        (
            "breakdown visit:source",
            format!(
                "/api/v1/stats/breakdown?{common}&property=visit:source&metrics=visitors,visits,bounce_rate"
            ),
        ),
        (
            "aggregate, filter visit:source",
            format!(
                "/api/v1/stats/aggregate?{common}&metrics=visitors,visits,bounce_rate&filters=visit:source%3D%3DGoogle"
            ),
        ),
        (
            "timeseries, filter event:page",
            format!(
                "/api/v1/stats/timeseries?{common}&metrics=visitors,pageviews&filters=event:page%3D%3D/page/1"
            ),
        ),
    ];
    // The answers are the real numbers, not fast nonsense.
    let check: serde_json::Value = http
        .get(format!("{api}{}", queries[0].1))
        .bearer_auth(&key)
        .send()
        .await?
        .json()
        .await?;
    let pageviews = check["results"]["pageviews"]["value"]
        .as_i64()
        .unwrap_or(-1);
    anyhow::ensure!(
        pageviews == expected_pageviews,
        "aggregate says {pageviews} page views, {expected_pageviews} were loaded: {check}"
    );
    // Visitor ids differ per day: about 29 days × the distinct visitors of a day.
    let per_day = args.daily_visitors as f64
        * (1.0 - (-(args.events as f64 / args.days as f64) / args.daily_visitors as f64).exp());
    let visitors = check["results"]["visitors"]["value"]
        .as_f64()
        .unwrap_or(0.0);
    let error = (visitors - 29.0 * per_day).abs() / (29.0 * per_day);
    anyhow::ensure!(
        error < 0.02,
        "visitors {visitors}, expected about {:.0}",
        29.0 * per_day
    );
    println!(
        "check: {pageviews} page views, {visitors} visitors (expected about {:.0})",
        29.0 * per_day
    );
    // The top 10 pages, read with the sketches of only the pages that can rank there, are the
    // first 10 of the full list (which reads every page's sketches).
    let get = |path: &str| {
        let request = http.get(format!("{api}{path}")).bearer_auth(&key);
        async move { anyhow::Ok(request.send().await?.json::<serde_json::Value>().await?) }
    };
    let top = get(&queries[2].1).await?;
    let all = get(&queries[3].1).await?;
    let first_ten: Vec<&serde_json::Value> = all["results"]
        .as_array()
        .map(|rows| rows.iter().take(10).collect())
        .unwrap_or_default();
    anyhow::ensure!(
        all["results"].as_array().map(Vec::len) == Some(PAGES)
            && top["results"]
                .as_array()
                .map(|rows| rows.iter().collect::<Vec<_>>())
                == Some(first_ten),
        "the top 10 pages {top} are not the first 10 of all pages {all}"
    );
    let (health_p50, health_p99) =
        measure(&http, &format!("{api}/healthz"), &key, args.requests, None).await?;
    let mut table = String::new();
    for (name, path) in &queries {
        let url = format!("{api}{path}");
        let (cold50, cold99) = measure(
            &http,
            &url,
            &key,
            args.requests,
            Some((&redis, version_key.as_str())),
        )
        .await?;
        let (warm50, warm99) = measure(&http, &url, &key, args.requests, None).await?;
        println!(
            "{name}: computed p50 {cold50:.1} ms p99 {cold99:.1} ms; cached p50 {warm50:.1} ms p99 {warm99:.1} ms"
        );
        table.push_str(&format!(
            "| {name} | {cold50:.1} | {cold99:.1} | {} | {warm50:.1} | {warm99:.1} |\n",
            if cold99 < 50.0 { "yes" } else { "**no**" }
        ));
    }
    shutdown.cancel();
    server.await??;
    if args.keep {
        println!("kept schema {namespace}");
    } else {
        beacon_store::postgres::drop_namespace(&postgres_url, &namespace)
            .await
            .ok();
    }
    let _ = beacon_store::live::drop_namespace(&redis, &namespace).await;

    let markdown = format!(
        "# Stats API query latency: 30 days, {} events\n\n\
         Machine: {}. Site `{SITE}` (UTC) with {} events over {} days ({} distinct visitors a day,\n\
         {PAGES} pages, 8 sources, 10 countries), loaded as rollup rows the way the aggregator writes\n\
         them (15-minute buckets, visitor sketches, closed visits): {rows} rows, {size}, loaded in\n\
         {load_secs:.0} s. Requests go through the real API in-process over HTTP to PostgreSQL, one at\n\
         a time, {} per line. *Computed*: the site's data version is raised before every request, so\n\
         the Redis cache never answers; *cached*: the same request repeated. Baseline in the same run:\n\
         `/healthz` over HTTP, p50 {health_p50:.2} ms, p99 {health_p99:.2} ms. Bar: p99 under 50 ms for\n\
         unfiltered and single-filter queries (computed).\n\n\
         | query (period=30d) | computed p50 (ms) | computed p99 (ms) | p99 < 50 ms | cached p50 (ms) | cached p99 (ms) |\n\
         |---|---|---|---|---|---|\n{table}\n\
         Run: `cargo run --release -p beacon-bench --bin query -- --events {}`\n",
        args.events,
        beacon_bench::machine(),
        args.events,
        args.days,
        args.daily_visitors,
        args.requests,
        args.events,
    );
    beacon_bench::write_results("query", &markdown)
}
