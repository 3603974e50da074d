//! Keeps one durable consumer running for a service: opens it, runs the consume loop, and starts
//! it again (with growing delays) whenever the message stream fails, until shutdown.

use beacon_jetstream::async_nats::jetstream::{self, consumer::PullConsumer};
use beacon_jetstream::{
    BatchHandler, ConsumerKind, ConsumerPolicy, DeadLetterer, Topology, run_consumer,
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
                metrics::counter!("beacon_consumer_restarts_total", "consumer" => name.clone())
                    .increment(1);
                tracing::warn!(consumer = %name, %error, ?delay, "consumer stopped; starting again");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::info!(consumer = %name, "consumer stopped");
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
