//! Archiver throughput against the MongoDB server's own `insert_many` rate for the same documents,
//! measured in the same run (the ceiling the archiver can approach on this machine).
//!
//! `cargo run --release -p beacon-bench --bin archiver -- --events 20000`

use std::time::{Duration, Instant};

use anyhow::Context as _;
use beacon_jetstream::async_nats::jetstream::consumer::PullConsumer;
use beacon_jetstream::{ConsumerKind, ConsumerPolicy, Publisher, Topology};
use beacon_runtime::{AdminState, CancellationToken, Health};
use beacon_store::Archive;
use beacon_store::archive::event_document;
use clap::Parser;
use mongodb::bson::doc;

#[derive(Parser)]
struct Args {
    /// Events per round.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Rounds (each measures the ceiling, then the archiver).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Batch size of both the ceiling's insert_many and the archiver's consumer.
    #[arg(long, default_value_t = 500)]
    batch: usize,
}

/// The ceiling: `insert_many(ordered=false)` of the same documents in the same batch size, into
/// a collection with the same indexes as the archive, which grows round by round as the archive does.
async fn ceiling(
    scratch: &Archive,
    documents: &[mongodb::bson::Document],
    batch: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for chunk in documents.chunks(batch) {
        scratch
            .events()
            .insert_many(chunk.to_vec())
            .ordered(false)
            .await?;
    }
    Ok(started.elapsed())
}

/// The archiver, in-process, from a full stream to the last ack.
async fn archiver(
    js: &beacon_jetstream::async_nats::jetstream::Context,
    namespace: &str,
    archive: &Archive,
    policy: &ConsumerPolicy,
    last_seq: u64,
) -> anyhow::Result<Duration> {
    let topology = Topology::new(namespace);
    let shutdown = CancellationToken::new();
    let deps = beacon_archiver::Deps {
        js: js.clone(),
        topology: topology.clone(),
        policy: policy.clone(),
        archive: archive.clone(),
        admin: AdminState {
            health: Health::default(),
            metrics: None,
            shutdown: shutdown.clone(),
        },
    };
    let mut consumer: PullConsumer = js
        .get_stream(topology.events_stream())
        .await?
        .get_consumer(&topology.consumer_name(ConsumerKind::Archiver))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let running = tokio::spawn(beacon_archiver::run(deps, None, shutdown.clone()));
    loop {
        // Progress is read from JetStream, so polling costs the MongoDB server nothing.
        if consumer.info().await?.ack_floor.stream_sequence >= last_seq {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    running.await??;
    Ok(elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let namespace = beacon_bench::bench_namespace("archiver");
    let client = async_nats::connect(beacon_bench::nats_url())
        .await
        .context("NATS")?;
    let policy = ConsumerPolicy {
        max_batch: args.batch,
        ..beacon_runtime::Config::defaults().consumer_policy()
    };
    let js = beacon_bench::prepare_stream(&client, &namespace, &policy).await?;
    let archive = Archive::connect(&beacon_bench::mongo_url(), &namespace).await?;
    archive.ensure_indexes(None).await.context("MongoDB")?;
    let scratch =
        Archive::connect(&beacon_bench::mongo_url(), &format!("{namespace}_ceiling")).await?;
    scratch.ensure_indexes(None).await?;
    let publisher = Publisher::new(
        client.clone(),
        Topology::new(&namespace),
        Duration::from_secs(10),
    );

    let mut rows = Vec::new();
    let mut last_seq = 0u64;
    for round in 1..=args.rounds {
        let events: Vec<_> = (0..args.events)
            .map(|n| beacon_bench::sample_event("bench.example", n))
            .collect();
        let documents: Vec<_> = events.iter().map(event_document).collect();
        let ceiling = ceiling(&scratch, &documents, args.batch).await?;
        beacon_bench::publish_all(&publisher, &events).await?;
        last_seq += events.len() as u64;
        let consumed = archiver(&js, &namespace, &archive, &policy, last_seq).await?;
        let stored = archive.events().count_documents(doc! {}).await?;
        anyhow::ensure!(
            stored == last_seq,
            "archive holds {stored} documents, expected {last_seq}"
        );
        let (c, a) = (
            beacon_bench::rate(args.events, ceiling),
            beacon_bench::rate(args.events, consumed),
        );
        println!(
            "round {round}: ceiling {c:.0}/s, archiver {a:.0}/s, ratio {:.2}",
            a / c
        );
        rows.push((c, a));
    }
    archive.drop_namespace().await.ok();
    scratch.drop_namespace().await.ok();
    beacon_bench::drop_streams(&js, &namespace).await;

    let mut table = String::new();
    for (i, (c, a)) in rows.iter().enumerate() {
        table.push_str(&format!(
            "| {} | {c:.0} | {a:.0} | {:.0}% |\n",
            i + 1,
            100.0 * a / c
        ));
    }
    let (sum_c, sum_a) = rows
        .iter()
        .fold((0.0, 0.0), |(x, y), (c, a)| (x + c, y + a));
    let markdown = format!(
        "# Archiver throughput vs. the MongoDB server's own insert_many\n\n\
         Machine: {}. Events per round: {}, batch size {}. MongoDB server: `{}`.\n\n\
         The ceiling inserts the same documents directly with `insert_many(ordered=false)` in batches of\n\
         the same size, into a collection with the archive's indexes that grows as the archive does;\n\
         the archiver runs in-process from a full stream until JetStream reports the\n\
         last message acknowledged (decode, insert, ack — the whole path). Bar: 80% of the ceiling.\n\n\
         | round | ceiling (docs/s) | archiver (events/s) | archiver / ceiling |\n|---|---|---|---|\n{table}\
         | mean | {:.0} | {:.0} | {:.0}% |\n\n\
         Run: `cargo run --release -p beacon-bench --bin archiver -- --events {} --rounds {}`\n",
        beacon_bench::machine(),
        args.events,
        args.batch,
        beacon_bench::mongo_url(),
        sum_c / rows.len() as f64,
        sum_a / rows.len() as f64,
        100.0 * sum_a / sum_c,
        args.events,
        args.rounds,
    );
    beacon_bench::write_results("archiver", &markdown)
}
