//! Keeps one durable consumer running for a service: opens it, runs the consume loop, and starts
//! it again (with growing delays) whenever the message stream fails, until shutdown.

use std::time::Duration;

use beacon_jetstream::async_nats::jetstream::{self, consumer::PullConsumer};
use beacon_jetstream::{
    BatchHandler, ConsumerKind, ConsumerPolicy, DeadLetterer, Topology, pipeline_state,
    run_consumer,
};
use tokio_util::sync::CancellationToken;

use crate::retry::restart_delay;

/// Runs `handler` on the `kind` consumer of the namespace until `shutdown` is cancelled.
/// Returns after the batch in hand is finished and acknowledged.
pub async fn supervise_consumer<H: BatchHandler>(
    js: &jetstream::Context,
    topology: &Topology,
    kind: ConsumerKind,
    policy: &ConsumerPolicy,
    handler: &H,
    shutdown: &CancellationToken,
) {
    let name = topology.consumer_name(kind);
    tokio::join!(
        consume(js, topology, &name, policy, handler, shutdown),
        report_lag(js, topology, shutdown)
    );
    tracing::info!(consumer = %name, "consumer stopped");
}

async fn consume<H: BatchHandler>(
    js: &jetstream::Context,
    topology: &Topology,
    name: &str,
    policy: &ConsumerPolicy,
    handler: &H,
    shutdown: &CancellationToken,
) {
    let name = name.to_string();
    let dead_letters = DeadLetterer::new(js.clone(), topology, &name);
    let mut attempt = 0u32;
    while !shutdown.is_cancelled() {
        let result = match open(js, topology, &name).await {
            Ok(consumer) => {
                tracing::info!(consumer = %name, "consuming");
                run_consumer(&consumer, &name, policy, handler, &dead_letters, shutdown)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => break,
            Err(error) => {
                let delay = restart_delay(attempt);
                attempt = attempt.saturating_add(1);
                metrics::counter!(beacon_metrics::CONSUMER_RESTARTS.name, "consumer" => name.clone())
                    .increment(1);
                tracing::warn!(consumer = %name, %error, ?delay, "consumer stopped; starting again");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// How often the lag gauges are refreshed.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// Publishes the lag of every consumer of the stream (and the stream's size) as gauges until
/// shutdown: each consumer process reports them all, so a stopped consumer's lag still grows on
/// the dashboards and in the alerts while another process runs (alert on the maximum by
/// `consumer`).
async fn report_lag(js: &jetstream::Context, topology: &Topology, shutdown: &CancellationToken) {
    loop {
        match pipeline_state(js, topology).await {
            Ok(state) => {
                for c in &state.consumers {
                    let labels = [("consumer", c.name.clone())];
                    metrics::gauge!(beacon_metrics::CONSUMER_LAG_SECONDS.name, &labels)
                        .set(c.lag_seconds);
                    if let Some(ms) = c.complete_through_ms {
                        metrics::gauge!(beacon_metrics::CONSUMER_COMPLETE_THROUGH.name, &labels)
                            .set(ms as f64 / 1000.0);
                    }
                    metrics::gauge!(beacon_metrics::CONSUMER_PENDING.name, &labels)
                        .set(c.pending as f64);
                    metrics::gauge!(beacon_metrics::CONSUMER_ACK_PENDING.name, &labels)
                        .set(c.ack_pending as f64);
                    metrics::gauge!(beacon_metrics::CONSUMER_REDELIVERED.name, &labels)
                        .set(c.redelivered as f64);
                    metrics::gauge!(beacon_metrics::CONSUMER_WAITING.name, &labels)
                        .set(c.waiting as f64);
                    metrics::gauge!(beacon_metrics::CONSUMER_ACK_FLOOR.name, &labels)
                        .set(c.ack_floor as f64);
                }
                metrics::gauge!(beacon_metrics::STREAM_MESSAGES.name)
                    .set(state.stream.messages as f64);
                metrics::gauge!(beacon_metrics::STREAM_BYTES.name).set(state.stream.bytes as f64);
                metrics::gauge!(beacon_metrics::STREAM_LAST_SEQUENCE.name)
                    .set(state.stream.last_sequence as f64);
                metrics::gauge!(beacon_metrics::DEAD_LETTERS_STORED.name)
                    .set(state.dead_letters as f64);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read lag"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(LAG_EVERY) => {}
        }
    }
}

async fn open(
    js: &jetstream::Context,
    topology: &Topology,
    name: &str,
) -> Result<PullConsumer, String> {
    let stream = js
        .get_stream(topology.events_stream())
        .await
        .map_err(|e| e.to_string())?;
    stream.get_consumer(name).await.map_err(|e| e.to_string())
}
