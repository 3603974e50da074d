//! Aggregator throughput (stream → committed rollups, sessions and live counters) against the raw
//! rate of pulling and acking the same stream, measured in the same run; and the process's memory
//! round after round (it must stay flat).
//!
//! `cargo run --release -p beacon-bench --bin aggregator -- --events 50000 --rounds 5`

use std::time::Duration;

use anyhow::Context as _;
use beacon_jetstream::{ConsumerPolicy, Publisher, Topology};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Events per round.
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// Rounds (each measures the raw rate, then the aggregator).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The aggregator's batch size (`BEACON_CONSUMER_BATCH`).
    #[arg(long, default_value_t = 4000)]
    batch: usize,
    /// The raw consumer's batch size (its fetch size); the raw rate is best near 1,000.
    #[arg(long, default_value_t = 1000)]
    raw_batch: usize,
    /// Distinct visitors per round. At least the batch size, so that (as on a busy site) the
    /// events of one batch come from different visitors: the most session writes per event.
    #[arg(long, default_value_t = 10_000)]
    visitors: usize,
    /// Batches the aggregator handles at once (`BEACON_CONSUMER_CONCURRENCY`).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Visitors whose sessions the aggregator keeps in memory (`BEACON_SESSION_CACHE`).
    #[arg(long, default_value_t = 20_000)]
    session_cache: usize,
}

/// A page view of one of `visitors` visitors, in visits of a page a minute.
fn event(round: usize, n: usize, visitors: usize) -> beacon_schemas::Event {
    let mut e = beacon_bench::sample_event("bench.example", n);
    let visitor = (n % visitors) as u64;
    e.visitor_id = visitor + 1_000_000_000 * round as u64;
    e.timestamp_ms -= 3_600_000 - (n / visitors) as i64 * 60_000;
    e.id = beacon_schemas::EventId::new_at(e.timestamp_ms);
    e
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.visitors >= args.batch,
        "--visitors must be at least --batch (a batch of events from distinct visitors)"
    );
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let namespace = beacon_bench::bench_namespace("aggregator");
    let postgres_url = beacon_bench::env_or(
        "BEACON_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let redis_url = beacon_bench::env_or("BEACON_REDIS_URL", "redis://127.0.0.1:6379");
    let client = async_nats::connect(beacon_bench::nats_url())
        .await
        .context("NATS")?;
    let policy = ConsumerPolicy {
        max_batch: args.batch,
        concurrency: args.concurrency,
        ..beacon_runtime::Config::defaults().consumer_policy()
    };
    let js = beacon_bench::prepare_stream(&client, &namespace, &policy).await?;
    beacon_store::postgres::migrate(&postgres_url, &namespace).await?;
    let pool = beacon_store::postgres::pool(&postgres_url, &namespace, 8)?;
    let redis = beacon_store::live::connect(&redis_url).await?;
    let topology = Topology::new(&namespace);
    let publisher = Publisher::new(client.clone(), topology.clone(), Duration::from_secs(10));
    let stream = js
        .get_stream(topology.events_stream())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rows = Vec::new();
    let mut last_seq = 0u64;
    for round in 1..=args.rounds {
        let events: Vec<_> = (0..args.events)
            .map(|n| event(round, n, args.visitors))
            .collect();
        beacon_bench::publish_all(&publisher, &events).await?;
        last_seq += events.len() as u64;
        let raw = beacon_bench::raw_pull_ack(&stream, args.raw_batch, args.events, round).await?;

        let run = beacon_bench::AggregatorRun {
            js: &js,
            topology: &topology,
            policy: &policy,
            pool: &pool,
            redis: &redis,
            namespace: &namespace,
            session_cache: args.session_cache,
        };
        let aggregated = beacon_bench::aggregate_until(&run, last_seq).await?;

        let total: i64 = pool
            .get()
            .await?
            .query_one(
                "SELECT coalesce(sum(pageviews), 0)::int8 FROM rollups WHERE property = '' AND span = '15m'",
                &[],
            )
            .await?
            .get(0);
        anyhow::ensure!(
            total == last_seq as i64,
            "rollups count {total} page views, expected {last_seq}"
        );
        let (r, a) = (
            beacon_bench::rate(args.events, raw),
            beacon_bench::rate(args.events, aggregated),
        );
        let rss = rss_mib();
        println!(
            "round {round}: raw pull+ack {r:.0}/s, aggregator {a:.0}/s, ratio {:.2}, RSS {rss:.0} MiB",
            a / r
        );
        rows.push((r, a, rss));
    }
    beacon_store::postgres::drop_namespace(&postgres_url, &namespace)
        .await
        .ok();
    let _ = beacon_store::live::drop_namespace(&redis, &namespace).await;
    beacon_bench::drop_streams(&js, &namespace).await;

    let mut table = String::new();
    for (i, (r, a, rss)) in rows.iter().enumerate() {
        table.push_str(&format!(
            "| {} | {r:.0} | {a:.0} | {:.0}% | {rss:.0} |\n",
            i + 1,
            100.0 * a / r
        ));
    }
    let (sum_r, sum_a) = rows
        .iter()
        .fold((0.0, 0.0), |(x, y), (r, a, _)| (x + r, y + a));
    let markdown = format!(
        "# Aggregator throughput vs. raw pull-and-ack of the same stream\n\n\
         Machine: {}. Events per round: {}; the aggregator's batches {} events, {} handled at once; PostgreSQL,\n\
         Redis and NATS on the same machine. Each round publishes its events, then a plain durable\n\
         pull consumer fetches ({} at a time), decodes and acks all of them (the raw rate), then the aggregator runs in-process on the\n\
         same messages until JetStream reports the last one acknowledged: dedup ids, sessions,\n\
         rollup rows with visitor sketches and live counters committed, then acked. Events are page\n\
         views of {} visitors per round in visits of a page a minute (no two events of a batch from\n\
         the same visitor, as on a busy site). A fresh aggregator each round, keeping the sessions\n\
         of up to {} visitors in memory. Bar: 30% of the raw rate,\n\
         memory flat across rounds (RSS of the whole benchmark process, after each round).\n\n\
         | round | raw pull+ack (msgs/s) | aggregator (events/s) | aggregator / raw | RSS (MiB) |\n\
         |---|---|---|---|---|\n{table}\
         | mean | {:.0} | {:.0} | {:.0}% | |\n\n\
         Run: `cargo run --release -p beacon-bench --bin aggregator -- --events {} --rounds {} --batch {} --concurrency {} --raw-batch {} --visitors {} --session-cache {}`\n",
        beacon_bench::machine(),
        args.events,
        args.batch,
        args.concurrency,
        args.raw_batch,
        args.visitors,
        args.session_cache,
        sum_r / rows.len() as f64,
        sum_a / rows.len() as f64,
        100.0 * sum_a / sum_r,
        args.events,
        args.rounds,
        args.batch,
        args.concurrency,
        args.raw_batch,
        args.visitors,
        args.session_cache,
    );
    beacon_bench::write_results("aggregator", &markdown)
}
