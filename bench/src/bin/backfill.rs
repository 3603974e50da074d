//! Replay and import throughput beside the live aggregator's and the raw pull-and-ack rate of the
//! same stream, all measured in the same run.
//!
//! Each round publishes a site's events (history of the last days), measures a plain pull
//! consumer fetching and acking them (the raw rate), runs the live aggregator on them, then replays
//! the site's days from the stream (gather, rebuild, swap), and imports the same number of NDJSON
//! lines into a second site (parse, enrich, publish confirmed, record).
//!
//! `cargo run --release -p beacon-bench --bin backfill -- --events 100000 --rounds 3`

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use beacon_backfill::import::{ImportDeps, ImportRequest};
use beacon_backfill::{ReplayDeps, ReplayRequest, Source};
use beacon_jetstream::{ConsumerPolicy, Publisher, Topology};
use beacon_store::LiveKeys;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Events per round (replayed, and imported as lines).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Distinct visitors per round.
    #[arg(long, default_value_t = 10_000)]
    visitors: usize,
    /// Days the events spread over (ending two days ago).
    #[arg(long, default_value_t = 3)]
    days: i64,
}

const SITE: &str = "replay.bench";
const IMPORTED: &str = "import.bench";
const DAY_MS: i64 = 86_400_000;

/// Page views of `visitors` visitors spread over `days` days ending two days ago.
fn event(round: usize, n: usize, args: &Args, end_ms: i64) -> beacon_schemas::Event {
    let mut e = beacon_bench::sample_event(SITE, n);
    e.visitor_id = (n % args.visitors) as u64 + 1_000_000_000 * round as u64;
    let span = args.days * DAY_MS;
    e.timestamp_ms = end_ms - span + (n as i64 * 7_919 % span);
    e.id = beacon_schemas::EventId::new_at(e.timestamp_ms);
    e
}

fn ndjson_line(n: usize, args: &Args, end_ms: i64) -> String {
    let span = args.days * DAY_MS;
    serde_json::json!({
        "url": format!("https://{IMPORTED}/docs/page-{}?utm_source=newsletter", n % 20),
        "referrer": "https://www.google.com/",
        "props": {"plan": "pro", "ab": n % 2},
        "timestamp": end_ms - span + (n as i64 * 7_919 % span),
        "ip": format!("10.{}.{}.{}", n % 7, (n / 7) % 250, (n % args.visitors) % 250),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
    })
    .to_string()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let namespace = beacon_bench::bench_namespace("backfill");
    let postgres_url = beacon_bench::env_or(
        "BEACON_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let redis_url = beacon_bench::env_or("BEACON_REDIS_URL", "redis://127.0.0.1:6379");
    let client = async_nats::connect(beacon_bench::nats_url())
        .await
        .context("NATS")?;
    let policy = ConsumerPolicy {
        ..beacon_runtime::Config::defaults().consumer_policy()
    };
    let js = beacon_bench::prepare_stream(&client, &namespace, &policy).await?;
    beacon_store::postgres::migrate(&postgres_url, &namespace).await?;
    let pool = beacon_store::postgres::pool(&postgres_url, &namespace, 8)?;
    for site in [SITE, IMPORTED] {
        beacon_store::sites::add(&pool, site, chrono_tz::Tz::UTC, None).await?;
    }
    let redis = beacon_store::live::connect(&redis_url).await?;
    let topology = Topology::new(&namespace);
    let publisher = Publisher::new(client.clone(), topology.clone(), Duration::from_secs(10));
    let stream = js
        .get_stream(topology.events_stream())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let archive = beacon_store::Archive::connect(&beacon_bench::mongo_url(), &namespace).await?;
    let scratch = std::env::temp_dir().join(format!("{namespace}.ndjson"));
    let today = chrono::Utc::now().date_naive();
    let end_ms = (today - chrono::Days::new(2))
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis());

    let mut rows = Vec::new();
    for round in 1..=args.rounds {
        let events: Vec<_> = (0..args.events)
            .map(|n| event(round, n, &args, end_ms))
            .collect();
        beacon_bench::publish_all(&publisher, &events).await?;
        let raw = beacon_bench::raw_pull_ack(&stream, 1000, args.events, round).await?;
        let live = aggregate(&js, &topology, &policy, &pool, &redis, &namespace).await?;

        let deps = ReplayDeps {
            pool: pool.clone(),
            js: js.clone(),
            topology: topology.clone(),
            archive: archive.clone(),
            redis: Some((redis.clone(), LiveKeys::new(&namespace))),
            dedup_window: Duration::from_secs(7 * 86_400),
            session_close_after: Duration::from_secs(1800),
            rollup_fine_retention: Duration::from_secs(35 * 86_400),
        };
        let request = ReplayRequest {
            site: Some(SITE.into()),
            since: (today - chrono::Days::new(args.days as u64 + 3)).to_string(),
            until: Some(today.to_string()),
            source: Source::Stream,
            dry_run: false,
            progress: false,
        };
        let started = Instant::now();
        let report = beacon_backfill::replay(&deps, &request).await?;
        let replayed = started.elapsed();
        let counted = report.sites[0].swapped.events;
        let locked = report.sites[0].swapped.locked_seconds;
        println!(
            "round {round}: under the lock: {}",
            report.sites[0].swapped.locked_steps
        );
        anyhow::ensure!(
            counted as usize == round * args.events,
            "the replay counted {counted} events, expected {}",
            round * args.events
        );

        let mut file = std::io::BufWriter::new(std::fs::File::create(&scratch)?);
        for n in 0..args.events {
            writeln!(
                file,
                "{}",
                ndjson_line(n + round * args.events, &args, end_ms)
            )?;
        }
        file.flush()?;
        drop(file);
        let import_deps = ImportDeps {
            pool: pool.clone(),
            publisher: publisher.clone(),
            country: None,
        };
        let started = Instant::now();
        let summary = beacon_backfill::import::import(
            &import_deps,
            &ImportRequest {
                files: vec![scratch.clone()],
                site: IMPORTED.into(),
                format: beacon_backfill::import::EventFormat::Ndjson,
                progress: false,
                max_rate: None,
            },
        )
        .await?;
        let imported = started.elapsed();
        anyhow::ensure!(summary.imported as usize == args.events, "{summary:?}");
        // The imported events go through the aggregator before the next round (not timed here).
        aggregate(&js, &topology, &policy, &pool, &redis, &namespace).await?;

        let (r, l) = (
            beacon_bench::rate(args.events, raw),
            beacon_bench::rate(args.events, live),
        );
        let p = beacon_bench::rate(counted as usize, replayed);
        let i = beacon_bench::rate(args.events, imported);
        println!(
            "round {round}: raw {r:.0}/s, live aggregator {l:.0}/s, replay of {counted} events {p:.0}/s (site locked {locked:.2} s), import {i:.0} lines/s"
        );
        rows.push((r, l, p, i, counted, locked));
    }
    let _ = std::fs::remove_file(&scratch);
    beacon_store::postgres::drop_namespace(&postgres_url, &namespace)
        .await
        .ok();
    let _ = beacon_store::live::drop_namespace(&redis, &namespace).await;
    beacon_bench::drop_streams(&js, &namespace).await;

    let mut table = String::new();
    for (n, (r, l, p, i, counted, locked)) in rows.iter().enumerate() {
        table.push_str(&format!(
            "| {} | {r:.0} | {l:.0} | {counted} | {p:.0} | {:.1}× | {locked:.2} | {i:.0} | {:.1}× |\n",
            n + 1,
            p / l,
            i / l,
        ));
    }
    let markdown = format!(
        "# Replay and import throughput beside the live aggregator\n\n\
         Machine: {}. Each round publishes {} page views of {} visitors spread over {} days\n\
         of one site, then measures in turn: a plain pull consumer fetching, decoding and acking\n\
         them (raw); the live aggregator applying them (stream → PostgreSQL rollups, sessions,\n\
         Redis); `replay` of every day of that site from the stream (gather, rebuild, swap in one\n\
         transaction: the site's events of all rounds so far, so the replayed count grows); and\n\
         `import` of as many NDJSON lines into a second site (parse, enrich, publish with confirmed\n\
         acks, record the ids). Replay and import rates are per second of their wall time;\n\
         imported events then go through the aggregator like live ones (not timed).\n\n\
         | round | raw pull+ack (msgs/s) | live aggregator (events/s) | events replayed | replay (events/s) | replay / live | site locked (s) | import (lines/s) | import / live |\n\
         |---|---|---|---|---|---|---|---|---|\n{table}\n\
         \"Site locked\" is how long the swap held the site's aggregation lock (tail read, applied check,\n\
         rebuild, delete and write, commit): the longest a live batch of that site waited.\n\n\
         Run: `cargo run --release -p beacon-bench --bin backfill -- --events {} --rounds {} --visitors {} --days {}`\n",
        beacon_bench::machine(),
        args.events,
        args.visitors,
        args.days,
        args.events,
        args.rounds,
        args.visitors,
        args.days,
    );
    beacon_bench::write_results("backfill", &markdown)
}

/// Runs the live aggregator in-process until it has acknowledged everything in the stream.
async fn aggregate(
    js: &beacon_jetstream::async_nats::jetstream::Context,
    topology: &Topology,
    policy: &ConsumerPolicy,
    pool: &beacon_store::Pool,
    redis: &fred::prelude::Client,
    namespace: &str,
) -> anyhow::Result<Duration> {
    let last = js
        .get_stream(topology.events_stream())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .get_info()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .state
        .last_sequence;
    let run = beacon_bench::AggregatorRun {
        js,
        topology,
        policy,
        pool,
        redis,
        namespace,
        session_cache: 20_000,
    };
    beacon_bench::aggregate_until(&run, last).await
}
