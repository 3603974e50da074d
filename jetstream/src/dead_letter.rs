//! Copies messages no consumer can process to the dead-letter stream, with why and from where.

use async_nats::HeaderMap;
use async_nats::jetstream;

use crate::delivery::Delivery;
use crate::publish::PublishError;
use crate::topology::Topology;

/// Header: why the message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "Beacon-Dead-Letter-Reason";
/// Header: the consumer that gave up on it.
pub const DEAD_LETTER_CONSUMER: &str = "Beacon-Dead-Letter-Consumer";
/// Header: its sequence in the events stream.
pub const DEAD_LETTER_STREAM_SEQ: &str = "Beacon-Dead-Letter-Stream-Seq";
/// Header: the subject it was published on.
pub const DEAD_LETTER_SUBJECT: &str = "Beacon-Dead-Letter-Subject";

/// Writes dead letters for one consumer.
#[derive(Clone)]
pub struct DeadLetterer {
    js: jetstream::Context,
    subject: String,
    consumer: String,
}

impl DeadLetterer {
    pub fn new(js: jetstream::Context, topology: &Topology, consumer: &str) -> Self {
        Self {
            js,
            subject: topology.dead_letter_subject(consumer),
            consumer: consumer.to_string(),
        }
    }

    /// Stores the original payload with the reason; returns once JetStream acknowledged it.
    /// Dead-lettering the same message twice (after a crash) is de-duplicated by its id.
    pub async fn send(&self, delivery: &Delivery, reason: &str) -> Result<(), PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}:{}", self.consumer, delivery.stream_sequence).as_str(),
        );
        // Header values cannot hold line breaks (nor, safely, any control character); keep the
        // reason on one line, printable and bounded.
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(1000)
            .collect();
        headers.insert(DEAD_LETTER_REASON, reason.as_str());
        headers.insert(DEAD_LETTER_CONSUMER, self.consumer.as_str());
        headers.insert(
            DEAD_LETTER_STREAM_SEQ,
            delivery.stream_sequence.to_string().as_str(),
        );
        headers.insert(DEAD_LETTER_SUBJECT, delivery.subject());
        let ack = self
            .js
            .publish_with_headers(
                self.subject.clone(),
                headers,
                delivery.payload().to_vec().into(),
            )
            .await
            .map_err(PublishError::Send)?;
        ack.await.map_err(PublishError::Ack)?;
        metrics::counter!(beacon_metrics::DEAD_LETTERED.name, "consumer" => self.consumer.clone())
            .increment(1);
        Ok(())
    }
}
