//! How a consumer pulls, batches and retries: the settings every consumer and the topology share.

use std::time::Duration;

/// How a consumer pulls, batches and retries.
#[derive(Debug, Clone)]
pub struct ConsumerPolicy {
    /// Most messages handed to the handler at once.
    pub max_batch: usize,
    /// Most batches being handled at once by one process (at least 1).
    pub concurrency: usize,
    /// How long to wait for a batch to fill once its first message arrived.
    pub linger: Duration,
    /// Lifetime of one pull request on the server (renewed continuously while consuming).
    pub pull_expiry: Duration,
    /// Time JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Deliveries after which a message that still fails goes to the dead-letter stream.
    pub max_deliver: i64,
    /// Most unacknowledged messages outstanding across all processes sharing the consumer.
    pub max_ack_pending: i64,
    /// First retry delay; doubled for each further delivery up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl ConsumerPolicy {
    /// A policy with the operator's choices (the `BEACON_CONSUMER_*` settings, which hold the
    /// defaults) and the loop's own constants: batches linger 50 ms, pull requests live 30 s, a
    /// failed message waits 500 ms, then twice as long each time, at most a minute.
    pub fn new(
        max_batch: usize,
        concurrency: usize,
        ack_wait: Duration,
        max_deliver: i64,
        max_ack_pending: i64,
    ) -> Self {
        Self {
            max_batch,
            concurrency,
            linger: Duration::from_millis(50),
            pull_expiry: Duration::from_secs(30),
            ack_wait,
            max_deliver,
            max_ack_pending,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
        }
    }

    /// Delay before the next delivery of a message that failed on its `delivered`-th delivery.
    pub fn retry_delay(&self, delivered: i64) -> Duration {
        let doublings = u32::try_from(delivered.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        self.retry_base
            .saturating_mul(1 << doublings)
            .min(self.retry_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let p = ConsumerPolicy {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..ConsumerPolicy::new(10, 1, Duration::from_secs(30), 10, 100)
        };
        assert_eq!(p.retry_delay(1), Duration::from_millis(100));
        assert_eq!(p.retry_delay(2), Duration::from_millis(200));
        assert_eq!(p.retry_delay(4), Duration::from_millis(800));
        assert_eq!(p.retry_delay(5), Duration::from_secs(1));
        assert_eq!(p.retry_delay(1000), Duration::from_secs(1));
        assert_eq!(p.retry_delay(0), Duration::from_millis(100));
    }
}
