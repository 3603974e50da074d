//! Shared pieces of Beacon's benchmarks: a throwaway namespace on the local servers, generated
//! events, and a results file a person can read. Every benchmark measures its own baseline in the
//! same run and reports a ratio, never an absolute bar.

use std::time::{Duration, Instant};

use beacon_jetstream::async_nats::jetstream;
use beacon_jetstream::{ConsumerPolicy, Publisher, Topology, ensure_topology};
use beacon_schemas::{Enrichment, Event, EventId, SCHEMA_VERSION};

/// The allocator the `beacon` binary uses, so that a service run in-process here (the aggregator,
/// the archiver) allocates as it does in production; the baselines of the same process use it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn nats_url() -> String {
    env_or("BEACON_NATS_URL", "nats://127.0.0.1:4222")
}

pub fn mongo_url() -> String {
    env_or(
        "BEACON_MONGO_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    )
}

/// A namespace of its own so a benchmark never touches real data.
pub fn bench_namespace(label: &str) -> String {
    format!("bench_{label}_{}", std::process::id())
}

/// A realistic page view (20 pages, 1000 visitors, a referrer, two props).
pub fn sample_event(site: &str, n: usize) -> Event {
    let now = chrono::Utc::now().timestamp_millis();
    Event {
        v: SCHEMA_VERSION,
        id: EventId::new_at(now),
        site: site.to_string(),
        name: "pageview".to_string(),
        timestamp_ms: now,
        received_at_ms: now,
        url: format!("https://{site}/docs/page-{}?utm_source=newsletter", n % 20),
        hostname: site.to_string(),
        pathname: format!("/docs/page-{}", n % 20),
        referrer: Some("https://www.google.com/".to_string()),
        props: [
            ("plan".to_string(), "pro".to_string()),
            ("ab".to_string(), (n % 2).to_string()),
        ]
        .into(),
        visitor_id: (n % 1000) as u64,
        interactive: true,
        enrichment: Enrichment {
            source: Some("Google".into()),
            ..Enrichment::default()
        },
        previous_visitor_id: None,
        scroll_depth: None,
        engagement_ms: None,
        revenue: None,
    }
}

/// Creates the namespace's streams and consumers.
pub async fn prepare_stream(
    client: &async_nats::Client,
    namespace: &str,
    policy: &ConsumerPolicy,
) -> anyhow::Result<jetstream::Context> {
    let js = jetstream::new(client.clone());
    ensure_topology(
        &js,
        &Topology::new(namespace),
        &beacon_runtime::Config::defaults().stream_settings(),
        policy,
    )
    .await?;
    Ok(js)
}

/// Publishes events with many acks in flight; returns the elapsed time.
pub async fn publish_all(publisher: &Publisher, events: &[Event]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut pending = Vec::with_capacity(1024);
    for event in events {
        pending.push(publisher.send(event).await?);
        if pending.len() == 1024 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    Ok(started.elapsed())
}

/// Deletes the namespace's streams.
pub async fn drop_streams(js: &jetstream::Context, namespace: &str) {
    let topology = Topology::new(namespace);
    let _ = js.delete_stream(topology.events_stream()).await;
    let _ = js.delete_stream(topology.dead_letter_stream()).await;
}

/// Events per second.
pub fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Facts about the machine a result was measured on.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{cores} cores, {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

/// Writes `bench/results/NAME.md` (relative to the workspace) and prints it.
pub fn write_results(name: &str, markdown: &str) -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.md"));
    std::fs::write(&path, markdown)?;
    println!("{markdown}\nwritten to {}", path.display());
    Ok(())
}

/// The usual baseline: a plain pull consumer that fetches, decodes and acks the last `count`
/// messages of the stream (a durable named after `round`, deleted after).
pub async fn raw_pull_ack(
    stream: &jetstream::stream::Stream,
    batch: usize,
    count: usize,
    round: usize,
) -> anyhow::Result<Duration> {
    // Deliver exactly this round's messages: start at the round's first sequence.
    let info = stream
        .get_info()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let first = info.state.last_sequence + 1 - count as u64;
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(format!("raw-{round}")),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: first,
            },
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = std::time::Instant::now();
    let mut seen = 0;
    while seen < count {
        let mut messages = consumer
            .fetch()
            .max_messages(batch)
            .expires(Duration::from_millis(200))
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        while let Some(message) = futures::StreamExt::next(&mut messages).await {
            let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
            let _ = beacon_schemas::decode(&message.payload)?;
            message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            seen += 1;
        }
    }
    let elapsed = started.elapsed();
    stream.delete_consumer(&format!("raw-{round}")).await.ok();
    Ok(elapsed)
}

/// What an in-process aggregator run needs.
pub struct AggregatorRun<'a> {
    pub js: &'a jetstream::Context,
    pub topology: &'a Topology,
    pub policy: &'a ConsumerPolicy,
    pub pool: &'a beacon_store::Pool,
    pub redis: &'a fred::prelude::Client,
    pub namespace: &'a str,
    /// Visitors whose sessions it keeps in memory (`BEACON_SESSION_CACHE`).
    pub session_cache: usize,
}

/// Runs the aggregator in-process until it has acknowledged the stream up to `last_sequence`;
/// returns how long that took.
pub async fn aggregate_until(
    run: &AggregatorRun<'_>,
    last_sequence: u64,
) -> anyhow::Result<Duration> {
    let stream = run
        .js
        .get_stream(run.topology.events_stream())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(
            &run.topology
                .consumer_name(beacon_jetstream::ConsumerKind::Aggregator),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let shutdown = beacon_runtime::CancellationToken::new();
    let deps = beacon_aggregator::Deps {
        js: run.js.clone(),
        topology: run.topology.clone(),
        policy: run.policy.clone(),
        pool: run.pool.clone(),
        redis: run.redis.clone(),
        live_keys: beacon_store::LiveKeys::new(run.namespace),
        maintenance: beacon_aggregator::Maintenance {
            close_after: Duration::from_secs(1800),
            dedup_window: Duration::from_secs(7 * 86_400),
            fine_retention: Duration::from_secs(35 * 86_400),
        },
        session_cache: run.session_cache,
        admin: beacon_runtime::AdminState {
            health: beacon_runtime::Health::default(),
            metrics: None,
            shutdown: shutdown.clone(),
        },
    };
    let started = Instant::now();
    let running = tokio::spawn(beacon_aggregator::run(deps, None, shutdown.clone()));
    while consumer
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .ack_floor
        .stream_sequence
        < last_sequence
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    shutdown.cancel();
    running.await??;
    Ok(took)
}
