//! Stream and consumer state for the consumer-lag dashboard, `beacon lag` and the lag gauges.

use async_nats::jetstream::{self, consumer::PullConsumer};
use serde::Serialize;

use crate::stored_time::{first_stored_from, unix_ms};
use crate::topology::{ConsumerKind, Topology};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PipelineState {
    pub stream: StreamLag,
    pub consumers: Vec<ConsumerLag>,
    pub dead_letters: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StreamLag {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsumerLag {
    pub name: String,
    /// Messages in the stream not yet delivered to this consumer.
    pub pending: u64,
    /// Delivered but not yet acknowledged.
    pub ack_pending: usize,
    pub redelivered: usize,
    /// Pull requests waiting for messages (idle consumers).
    pub waiting: usize,
    pub last_delivered: u64,
    pub ack_floor: u64,
    /// Age (seconds) of the oldest event the consumer has not acknowledged; 0 when caught up.
    pub lag_seconds: f64,
    /// When the newest event of the unbroken acknowledged prefix was stored (Unix ms): what the
    /// consumer produces is complete up to then. `None` before its first acknowledgement.
    pub complete_through_ms: Option<i64>,
}

/// Reads the current state of the events stream, both consumers and the dead-letter stream.
pub async fn pipeline_state(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<PipelineState, async_nats::Error> {
    let mut stream = js.get_stream(topology.events_stream()).await?;
    let info = stream.info().await?;
    let stream_lag = StreamLag {
        name: info.config.name.clone(),
        messages: info.state.messages,
        bytes: info.state.bytes,
        first_sequence: info.state.first_sequence,
        last_sequence: info.state.last_sequence,
    };
    let now_ms = unix_ms(time::OffsetDateTime::now_utc());
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut consumers = Vec::new();
    for kind in ConsumerKind::ALL {
        let name = topology.consumer_name(kind);
        let mut consumer: PullConsumer = stream.get_consumer(&name).await?;
        let info = consumer.info().await?;
        let floor = info.ack_floor.stream_sequence;
        let oldest_unacked = if floor < last {
            first_stored_from(&stream, (floor + 1).max(first), last).await
        } else {
            None
        };
        let complete_through_ms = if floor >= first && floor > 0 {
            first_stored_from(&stream, floor, floor).await
        } else {
            None
        };
        consumers.push(ConsumerLag {
            name,
            pending: info.num_pending,
            ack_pending: info.num_ack_pending,
            redelivered: info.num_redelivered,
            waiting: info.num_waiting,
            last_delivered: info.delivered.stream_sequence,
            ack_floor: floor,
            lag_seconds: oldest_unacked.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0),
            complete_through_ms,
        });
    }
    let mut dlq = js.get_stream(topology.dead_letter_stream()).await?;
    let dead_letters = dlq.info().await?.state.messages;
    Ok(PipelineState {
        stream: stream_lag,
        consumers,
        dead_letters,
    })
}
