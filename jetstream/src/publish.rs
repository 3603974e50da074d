//! Durable publishing of events: `Nats-Msg-Id` = event id, and an awaited JetStream ack.
//!
//! The send and the server's ack are separate steps (as in nats.rs' examples): many publishes can be
//! in flight at once, and a caller that answers a client waits for the ack before saying "accepted".

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture};
use beacon_schemas::{CodecError, Event, encode};

use crate::topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event cannot be encoded; retrying will not help.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// The message could not be handed to NATS (disconnected, buffer full).
    #[error("cannot send to JetStream: {0}")]
    Send(String),
    /// JetStream did not confirm the write (no stream, timeout, storage full).
    #[error("JetStream did not acknowledge: {0}")]
    Ack(String),
}

impl PublishError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, PublishError::Encode(_))
    }
}

/// Publishes events to the events stream.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    topology: Topology,
}

impl Publisher {
    /// `ack_timeout` bounds how long one publish waits for the server before failing.
    pub fn new(client: async_nats::Client, topology: Topology, ack_timeout: Duration) -> Self {
        let js = jetstream::ContextBuilder::new()
            .timeout(ack_timeout)
            .build(client);
        Self { js, topology }
    }

    /// False while the NATS connection is down: callers can refuse work at once instead of
    /// waiting for an ack timeout.
    pub fn is_connected(&self) -> bool {
        self.js.client().connection_state() == async_nats::connection::State::Connected
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Sends the event; the returned future resolves when JetStream has stored it.
    pub async fn send(&self, event: &Event) -> Result<PublishAckFuture, PublishError> {
        let payload = encode(event)?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
        self.js
            .publish_with_headers(
                self.topology.events_subject(&event.site),
                headers,
                payload.into(),
            )
            .await
            .map_err(|e| PublishError::Send(e.to_string()))
    }

    /// Sends the event and waits until JetStream has stored it (or recognised it as a duplicate
    /// of an event it already stored, which is just as durable).
    pub async fn publish(&self, event: &Event) -> Result<u64, PublishError> {
        let ack = self
            .send(event)
            .await?
            .await
            .map_err(|e| PublishError::Ack(e.to_string()))?;
        Ok(ack.sequence)
    }
}
