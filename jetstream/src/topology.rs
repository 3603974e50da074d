//! Names and shape of everything Beacon owns in JetStream, created or updated idempotently.
//!
//! Per namespace `ns`:
//! - stream `{ns}-events`, subjects `{ns}.events.<site>` (site with `.` as `_`), file storage,
//!   limits retention with a max age, a duplicate window for `Nats-Msg-Id` de-duplication;
//! - stream `{ns}-dead-letters`, subjects `{ns}.dlq.<consumer>`;
//! - durable pull consumers `{ns}-archiver` and `{ns}-aggregator` on the events stream,
//!   explicit ack.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream::{DiscardPolicy, RetentionPolicy, StorageType},
};

use crate::policy::ConsumerPolicy;

/// The two durable consumers of the events stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerKind {
    Archiver,
    Aggregator,
}

impl ConsumerKind {
    pub const ALL: [ConsumerKind; 2] = [ConsumerKind::Archiver, ConsumerKind::Aggregator];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerKind::Archiver => "archiver",
            ConsumerKind::Aggregator => "aggregator",
        }
    }
}

/// Every JetStream name Beacon uses, derived from one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
}

impl Topology {
    /// `namespace` must already be validated (lower-case letters, digits, `_`, `-`).
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn events_stream(&self) -> String {
        format!("{}-events", self.namespace)
    }

    /// Subject of one site's events: lets a single site be replayed with a filter.
    pub fn events_subject(&self, site: &str) -> String {
        format!("{}.events.{}", self.namespace, site.replace('.', "_"))
    }

    pub fn events_subjects(&self) -> String {
        format!("{}.events.>", self.namespace)
    }

    pub fn dead_letter_stream(&self) -> String {
        format!("{}-dead-letters", self.namespace)
    }

    pub fn dead_letter_subject(&self, consumer: &str) -> String {
        format!("{}.dlq.{}", self.namespace, consumer)
    }

    pub fn dead_letter_subjects(&self) -> String {
        format!("{}.dlq.>", self.namespace)
    }

    pub fn consumer_name(&self, kind: ConsumerKind) -> String {
        format!("{}-{}", self.namespace, kind.as_str())
    }
}

/// The dead-letter stream's `Nats-Msg-Id` window: longer than the consumers' ack wait.
pub const DEAD_LETTER_DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// Retention and de-duplication settings of the events stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// How long events stay replayable from the stream (the archive keeps them longer).
    pub max_age: Duration,
    /// Window in which a re-sent `Nats-Msg-Id` is dropped as a duplicate. Short on purpose: the
    /// consumers are idempotent by event id, so this only keeps an immediate resend out of the
    /// stream, while nats-server keeps every id of the window in memory. With 2 minutes, at the
    /// collector's peak rates that was millions of ids, and the collector's p99 at half its peak
    /// went from 4–5 ms (1 s) to 57–67 ms (see `bench/results/collector.md`).
    pub duplicate_window: Duration,
    /// Copies of each message in a JetStream cluster (1 on a single server).
    pub replicas: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot create or update stream {stream}: {source}")]
    Stream {
        stream: String,
        source: async_nats::jetstream::context::CreateStreamError,
    },
    #[error(
        "stream {stream} keeps {existing} replicas, BEACON_STREAM_REPLICAS asks for {wanted}: \
         Beacon never changes a live stream's replicas (on nats-server 2.9 a stream scaled up in \
         place lost acknowledged messages in leader elections); see the README, moving to a cluster"
    )]
    Replicas {
        stream: String,
        existing: usize,
        wanted: usize,
    },
    #[error("cannot look up stream {stream}: {source}")]
    GetStream {
        stream: String,
        source: async_nats::jetstream::context::GetStreamError,
    },
    #[error("cannot create or update consumer {consumer}: {source}")]
    Consumer {
        consumer: String,
        source: async_nats::jetstream::stream::ConsumerError,
    },
}

impl TopologyError {
    /// False for a request NATS will refuse however often it is made (a change of replicas);
    /// true for the rest (JetStream not up yet, a leader being elected).
    pub fn is_transient(&self) -> bool {
        use async_nats::jetstream::ErrorCode;
        use async_nats::jetstream::context::CreateStreamErrorKind;
        match self {
            TopologyError::Replicas { .. } => false,
            // More than one replica asked of a server that is not in a cluster.
            TopologyError::Stream { source, .. } => !matches!(
                source.kind(),
                CreateStreamErrorKind::JetStream(ref error)
                    if error.error_code() == ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED
            ),
            _ => true,
        }
    }
}

/// Creates or updates both streams and both durable consumers. Safe to run any number of times,
/// from any number of processes at once.
pub async fn ensure_topology(
    js: &jetstream::Context,
    topology: &Topology,
    settings: &StreamSettings,
    policy: &ConsumerPolicy,
) -> Result<(), TopologyError> {
    let events = jetstream::stream::Config {
        name: topology.events_stream(),
        subjects: vec![topology.events_subjects()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_age: settings.max_age,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        description: Some("Beacon accepted events (MessagePack envelopes)".into()),
        ..Default::default()
    };
    create_or_update_stream(js, events).await?;

    let dead_letters = jetstream::stream::Config {
        name: topology.dead_letter_stream(),
        subjects: vec![topology.dead_letter_subjects()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        // Dead letters wait for an operator; keep them a year.
        max_age: Duration::from_secs(365 * 24 * 3600),
        // Dead-lettering a message again after a crash (a redelivery after the ack wait) is
        // recognised by its id; dead letters are few, so a long window costs nothing.
        duplicate_window: DEAD_LETTER_DUPLICATE_WINDOW,
        num_replicas: settings.replicas,
        description: Some("Beacon events no consumer could process, with the reason".into()),
        ..Default::default()
    };
    create_or_update_stream(js, dead_letters).await?;

    let stream_name = topology.events_stream();
    let stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|source| TopologyError::GetStream {
            stream: stream_name.clone(),
            source,
        })?;
    for kind in ConsumerKind::ALL {
        let name = topology.consumer_name(kind);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!("Beacon {}", kind.as_str())),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: policy.ack_wait,
            // Unlimited on the server: the consume loop dead-letters after `policy.max_deliver`
            // failures itself, so a message is never silently abandoned after a crash.
            max_deliver: -1,
            max_ack_pending: policy.max_ack_pending,
            filter_subject: topology.events_subjects(),
            ..Default::default()
        };
        // On NATS 2.9 a create with an existing durable name updates the updatable fields.
        stream
            .create_consumer(config)
            .await
            .map_err(|source| TopologyError::Consumer {
                consumer: name.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Creates the stream, or updates the settings that may change; an existing stream keeps its
/// replicas, and a different number asked for is an error rather than a scaling in place.
async fn create_or_update_stream(
    js: &jetstream::Context,
    config: jetstream::stream::Config,
) -> Result<(), TopologyError> {
    let stream = config.name.clone();
    match js.get_stream(&stream).await {
        Ok(existing) => {
            let existing = existing.cached_info().config.num_replicas.max(1);
            if existing != config.num_replicas.max(1) {
                return Err(TopologyError::Replicas {
                    stream,
                    existing,
                    wanted: config.num_replicas,
                });
            }
        }
        Err(e) if is_not_found(&e) => {}
        Err(source) => return Err(TopologyError::GetStream { stream, source }),
    }
    js.create_or_update_stream(config)
        .await
        .map_err(|source| TopologyError::Stream { stream, source })?;
    Ok(())
}

fn is_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::context::GetStreamErrorKind;
    matches!(
        e.kind(),
        GetStreamErrorKind::JetStream(ref error)
            if error.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_and_subject_safe() {
        let t = Topology::new("t1");
        assert_eq!(t.events_stream(), "t1-events");
        assert_eq!(
            t.events_subject("shop.example.com"),
            "t1.events.shop_example_com"
        );
        assert_eq!(t.events_subjects(), "t1.events.>");
        assert_eq!(t.consumer_name(ConsumerKind::Archiver), "t1-archiver");
        assert_eq!(t.dead_letter_subject("t1-archiver"), "t1.dlq.t1-archiver");
    }
}
