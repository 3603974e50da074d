//! Operator tools over the dead-letter stream: list what is there and why; re-publish after a fix.

use async_nats::HeaderMap;
use async_nats::jetstream;
use serde::Serialize;

use crate::dead_letter::{
    DEAD_LETTER_CONSUMER, DEAD_LETTER_REASON, DEAD_LETTER_STREAM_SEQ, DEAD_LETTER_SUBJECT,
};
use crate::topology::Topology;

/// One dead letter as the operator sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Sequence in the dead-letter stream (what `retry --seq` takes).
    pub sequence: u64,
    pub time: String,
    pub consumer: String,
    /// Sequence of the original message in the events stream.
    pub stream_sequence: u64,
    pub subject: String,
    pub reason: String,
    pub bytes: usize,
}

/// What `retry` did with one dead letter.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Retried {
    pub sequence: u64,
    pub reason: String,
    /// Where the re-published message landed in the events stream.
    pub new_stream_sequence: u64,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

async fn stored(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<Vec<jetstream::message::StreamMessage>, async_nats::Error> {
    let mut stream = js.get_stream(topology.dead_letter_stream()).await?;
    let state = stream.info().await?.state.clone();
    let mut messages = Vec::new();
    if state.messages == 0 {
        return Ok(messages);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        // Deleted sequences (already retried) are gaps.
        if let Ok(message) = stream.get_raw_message(sequence).await {
            messages.push(message);
        }
    }
    Ok(messages)
}

/// Every dead letter, oldest first.
pub async fn list_dead_letters(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<Vec<DeadLetter>, async_nats::Error> {
    Ok(stored(js, topology)
        .await?
        .into_iter()
        .map(|m| DeadLetter {
            sequence: m.sequence,
            time: m.time.to_string(),
            consumer: header(&m.headers, DEAD_LETTER_CONSUMER),
            stream_sequence: header(&m.headers, DEAD_LETTER_STREAM_SEQ)
                .parse()
                .unwrap_or(0),
            subject: header(&m.headers, DEAD_LETTER_SUBJECT),
            reason: header(&m.headers, DEAD_LETTER_REASON),
            bytes: m.payload.len(),
        })
        .collect())
}

/// Re-publishes dead letters (all, or the one at `only`) to their original subject, then removes
/// them from the dead-letter stream. Consumers that had already processed the event ignore the
/// copy (their writes are idempotent by event id).
pub async fn retry_dead_letters(
    js: &jetstream::Context,
    topology: &Topology,
    only: Option<u64>,
) -> Result<Vec<Retried>, async_nats::Error> {
    let stream = js.get_stream(topology.dead_letter_stream()).await?;
    let mut retried = Vec::new();
    for message in stored(js, topology).await? {
        if only.is_some_and(|seq| seq != message.sequence) {
            continue;
        }
        let subject = header(&message.headers, DEAD_LETTER_SUBJECT);
        if !subject.starts_with(&format!("{}.events.", topology.namespace())) {
            return Err(format!("dead letter {} has no original subject", message.sequence).into());
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("dlq-retry:{}", message.sequence).as_str(),
        );
        let ack = js
            .publish_with_headers(subject, headers, message.payload.clone())
            .await?
            .await?;
        stream.delete_message(message.sequence).await?;
        retried.push(Retried {
            sequence: message.sequence,
            reason: header(&message.headers, DEAD_LETTER_REASON),
            new_stream_sequence: ack.sequence,
        });
    }
    Ok(retried)
}
