//! Durable publishing of events: `Nats-Msg-Id` = event id, and an awaited JetStream ack.
//!
//! The send and the server's ack are separate steps (as in nats.rs' examples): many publishes can be
//! in flight at once, and a caller that answers a client waits for the ack before saying "accepted".

use std::sync::Mutex;
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
    Send(#[source] async_nats::jetstream::context::PublishError),
    /// JetStream did not confirm the write (no stream, timeout, storage full).
    #[error("JetStream did not acknowledge: {0}")]
    Ack(#[source] async_nats::jetstream::context::PublishError),
    /// The connection to NATS is down; nothing was sent.
    #[error("not connected to NATS")]
    Disconnected,
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
    /// The context's connection, kept to read its state (`Context::client` clones it each time).
    client: async_nats::Client,
    topology: Topology,
}

impl Publisher {
    /// `ack_timeout` bounds how long one publish waits for the server before failing.
    pub fn new(client: async_nats::Client, topology: Topology, ack_timeout: Duration) -> Self {
        let js = jetstream::ContextBuilder::new()
            .timeout(ack_timeout)
            .build(client.clone());
        Self {
            js,
            client,
            topology,
        }
    }

    /// False while the NATS connection is down: callers can refuse work at once instead of
    /// waiting for an ack timeout.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
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
            .map_err(PublishError::Send)
    }

    /// One round of publishing `batch`: sends every event JetStream has not confirmed yet and waits
    /// for the acks. `Ok` once every event is confirmed. Call it again after an error (through the
    /// retry module): a repeat carries the same `Nats-Msg-Id`, so an event stored by an earlier
    /// round whose ack was lost is recognised as a duplicate, not stored twice. While the connection
    /// is down nothing is sent (a message the client buffered could reach the stream after the
    /// caller gave up).
    pub async fn confirm(&self, batch: &Confirmations<'_>) -> Result<(), PublishError> {
        let mut acks = Vec::new();
        for (index, event) in batch.events.iter().enumerate() {
            if batch.progress(index) == Progress::Confirmed {
                continue;
            }
            if !self.is_connected() {
                return Err(PublishError::Disconnected);
            }
            let ack = self.send(event).await?;
            batch.set(index, Progress::Sent);
            acks.push((index, ack));
        }
        let mut failure = None;
        for (index, ack) in acks {
            match ack.await {
                Ok(_) => batch.set(index, Progress::Confirmed),
                Err(e) => failure = Some(PublishError::Ack(e)),
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Sends the event and waits until JetStream has stored it (or recognised it as a duplicate
    /// of an event it already stored, which is just as durable).
    pub async fn publish(&self, event: &Event) -> Result<u64, PublishError> {
        let ack = self.send(event).await?.await.map_err(PublishError::Ack)?;
        Ok(ack.sequence)
    }
}

/// Where each event of a batch stands while [`Publisher::confirm`] publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Never handed to NATS: certainly not stored.
    Unsent,
    /// Handed to NATS without a confirmation: it may have been stored.
    Sent,
    /// JetStream confirmed it.
    Confirmed,
}

/// A batch of events being published until JetStream confirms every one of them.
pub struct Confirmations<'a> {
    events: &'a [Event],
    progress: Mutex<Vec<Progress>>,
}

impl<'a> Confirmations<'a> {
    pub fn new(events: &'a [Event]) -> Self {
        Self {
            events,
            progress: Mutex::new(vec![Progress::Unsent; events.len()]),
        }
    }

    /// The events of the batch.
    pub fn events(&self) -> &[Event] {
        self.events
    }

    /// Events handed to NATS whose storage was never confirmed: after giving up, these may or
    /// may not be in the stream, and the caller must say so.
    pub fn unconfirmed_sent(&self) -> usize {
        self.lock().iter().filter(|p| **p == Progress::Sent).count()
    }

    fn progress(&self, index: usize) -> Progress {
        self.lock()[index]
    }

    fn set(&self, index: usize, progress: Progress) {
        self.lock()[index] = progress;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Progress>> {
        // The lock is never held across an await or a panic point; recover the data regardless.
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
