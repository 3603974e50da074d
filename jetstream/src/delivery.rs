//! What a consumer's handler sees and answers: one delivered message, and the decision about it.

use std::future::Future;

use async_nats::jetstream::{self, AckKind};

/// What the handler wants done with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its effects are stored: acknowledge.
    Ack,
    /// A transient failure: deliver again after a delay that grows with each delivery
    /// (dead-lettered once `max_deliver` deliveries have failed).
    Retry { reason: String },
    /// It can never be processed: copy to the dead-letter stream with the reason, then terminate.
    DeadLetter { reason: String },
}

/// One delivered message.
pub struct Delivery {
    pub(crate) message: jetstream::Message,
    /// Position in the events stream (stable across redeliveries).
    pub stream_sequence: u64,
    /// 1 on first delivery, then 2, 3, …
    pub delivered: i64,
}

impl Delivery {
    pub(crate) fn new(message: jetstream::Message) -> Self {
        let (stream_sequence, delivered) = message
            .info()
            .map(|info| (info.stream_sequence, info.delivered))
            .unwrap_or((0, 1));
        Self {
            message,
            stream_sequence,
            delivered,
        }
    }

    pub fn payload(&self) -> &[u8] {
        &self.message.message.payload
    }

    pub fn subject(&self) -> &str {
        self.message.message.subject.as_str()
    }

    /// Tells JetStream work on this message is still going on (resets its ack timer).
    pub async fn in_progress(&self) {
        if let Err(e) = self.message.ack_with(AckKind::Progress).await {
            tracing::warn!(error = %e, "cannot send in-progress");
        }
    }
}

/// The caller's policy: decides per message; `decisions[i]` belongs to `batch[i]`.
pub trait BatchHandler: Send + Sync {
    fn handle(&self, batch: &[Delivery]) -> impl Future<Output = Vec<Decision>> + Send;
}
