//! The pull-consume loop every Beacon consumer runs: batch up deliveries, let the caller decide,
//! carry out the decisions.
//!
//! Guarantees: a message is acked only after the handler returned `Ack` for it (so only after its
//! effects are stored); a message the handler cannot process is copied to the dead-letter stream
//! before it is terminated; on shutdown the batches in hand are finished and nothing more is
//! pulled. Everything else is redelivered by JetStream after `ack_wait`.
//!
//! Up to `concurrency` batches are handled at once, so that the next batch's work (decoding, and
//! whatever the handler can do before it must wait for the previous batch) overlaps the current
//! one's. Handlers must therefore be correct for batches in any order, as they already must be for
//! several processes sharing a consumer.

use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, consumer::PullConsumer};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::dead_letter::DeadLetterer;
use crate::delivery::{BatchHandler, Decision, Delivery};
use crate::policy::ConsumerPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("cannot start pulling: {0}")]
    Start(#[source] async_nats::jetstream::consumer::StreamError),
    #[error("message stream failed: {0}")]
    Stream(#[source] async_nats::jetstream::consumer::pull::MessagesError),
    #[error("message stream ended")]
    Ended,
}

/// Pulls and processes until `shutdown` is cancelled (then returns `Ok`) or the message stream
/// fails for good (then returns the error, and the caller decides whether to start again).
pub async fn run_consumer<H: BatchHandler>(
    consumer: &PullConsumer,
    name: &str,
    policy: &ConsumerPolicy,
    handler: &H,
    dead_letters: &DeadLetterer,
    shutdown: &CancellationToken,
) -> Result<(), ConsumeError> {
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(policy.max_batch)
        .expires(policy.pull_expiry)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(ConsumeError::Start)?;
    let concurrency = policy.concurrency.max(1);
    let mut batch = Vec::with_capacity(policy.max_batch);
    // Batches being handled; each yields itself and its decisions.
    let mut handling = FuturesUnordered::new();
    // A handled batch's acks go out while later batches are pulled and handled; at most one
    // batch is being settled at a time, and none is left unsettled when this returns.
    let mut settling: Option<tokio::task::JoinHandle<()>> = None;
    let settle_next = |(decided, decisions): (Vec<Delivery>, Vec<Decision>),
                       previous: Option<tokio::task::JoinHandle<()>>| {
        let (name, policy, dead_letters) = (name.to_owned(), policy.clone(), dead_letters.clone());
        tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            settle(name, policy, dead_letters, decided, decisions).await;
        })
    };
    let ended = loop {
        while handling.len() >= concurrency {
            if let Some(done) = handling.next().await {
                settling = Some(settle_next(done, settling.take()));
            }
        }
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            Some(done) = handling.next(), if !handling.is_empty() => {
                settling = Some(settle_next(done, settling.take()));
                continue;
            }
            next = messages.next() => next,
        };
        match first {
            None => break Err(ConsumeError::Ended),
            Some(Err(e)) => {
                if is_terminal(&e) {
                    break Err(ConsumeError::Stream(e));
                }
                tracing::warn!(consumer = name, error = %e, "transient pull error");
                continue;
            }
            Some(Ok(message)) => batch.push(Delivery::new(message)),
        }
        let deadline = tokio::time::Instant::now() + policy.linger;
        while batch.len() < policy.max_batch {
            let next = tokio::select! {
                Some(done) = handling.next(), if !handling.is_empty() => {
                    settling = Some(settle_next(done, settling.take()));
                    continue;
                }
                next = tokio::time::timeout_at(deadline, messages.next()) => next,
            };
            match next {
                Ok(Some(Ok(message))) => batch.push(Delivery::new(message)),
                Ok(Some(Err(e))) => {
                    tracing::warn!(consumer = name, error = %e, "pull error while filling a batch");
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(policy.max_batch));
        handling.push(async move {
            let decisions = decide(name, policy, handler, &full).await;
            (full, decisions)
        });
    };
    while let Some(done) = handling.next().await {
        settling = Some(settle_next(done, settling.take()));
    }
    if let Some(last) = settling {
        let _ = last.await;
    }
    ended
}

/// Runs the handler; while it works longer than half the ack wait, tells JetStream the batch is
/// in progress so it is not redelivered to another process meanwhile.
async fn handle_keeping_alive<H: BatchHandler>(
    policy: &ConsumerPolicy,
    handler: &H,
    batch: &[Delivery],
) -> Vec<Decision> {
    let every = (policy.ack_wait / 2).max(Duration::from_millis(100));
    let handling = handler.handle(batch);
    tokio::pin!(handling);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            decisions = &mut handling => return decisions,
            _ = ticker.tick() => {
                for delivery in batch {
                    delivery.in_progress().await;
                }
            }
        }
    }
}

fn is_terminal(e: &async_nats::jetstream::consumer::pull::MessagesError) -> bool {
    use async_nats::jetstream::consumer::pull::MessagesErrorKind as K;
    matches!(e.kind(), K::ConsumerDeleted | K::NoResponders)
}

/// The handler's decisions for a batch, one per message.
async fn decide<H: BatchHandler>(
    name: &str,
    policy: &ConsumerPolicy,
    handler: &H,
    batch: &[Delivery],
) -> Vec<Decision> {
    let started = Instant::now();
    let mut decisions = handle_keeping_alive(policy, handler, batch).await;
    if decisions.len() != batch.len() {
        tracing::error!(
            consumer = name,
            "handler returned {} decisions for {} messages",
            decisions.len(),
            batch.len()
        );
        decisions.resize(
            batch.len(),
            Decision::Retry {
                reason: "handler returned no decision".into(),
            },
        );
    }
    metrics::histogram!(beacon_metrics::CONSUMER_BATCH_DURATION.name, "consumer" => name.to_string())
        .record(started.elapsed().as_secs_f64());
    metrics::histogram!(beacon_metrics::CONSUMER_BATCH_SIZE.name, "consumer" => name.to_string())
        .record(batch.len() as f64);

    // One log line per batch, not per message: a store outage fails whole batches.
    if let Some(reason) = decisions.iter().find_map(|d| match d {
        Decision::Retry { reason } => Some(reason.clone()),
        _ => None,
    }) {
        let retries = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Retry { .. }))
            .count();
        tracing::warn!(consumer = name, retries, of = batch.len(), %reason, "batch will be retried in part or whole");
    }
    tracing::debug!(consumer = name, size = batch.len(), handled = ?started.elapsed(), "batch decided");
    decisions
}

/// Carries out the decisions: acks, delayed naks, dead letters.
async fn settle(
    name: String,
    policy: ConsumerPolicy,
    dead_letters: DeadLetterer,
    batch: Vec<Delivery>,
    decisions: Vec<Decision>,
) {
    // Acks (and naks) go out together rather than one awaited publish after another.
    let outcomes = futures::future::join_all(
        batch
            .iter()
            .zip(decisions)
            .map(|(delivery, decision)| apply(&policy, &dead_letters, delivery, decision)),
    )
    .await;
    let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for outcome in outcomes {
        *counts.entry(outcome).or_default() += 1;
    }
    for (outcome, n) in counts {
        metrics::counter!(beacon_metrics::CONSUMER_MESSAGES.name, "consumer" => name.clone(), "outcome" => outcome)
            .increment(n);
    }
}

async fn apply(
    policy: &ConsumerPolicy,
    dead_letters: &DeadLetterer,
    delivery: &Delivery,
    decision: Decision,
) -> &'static str {
    let message = &delivery.message;
    let (kind, outcome) = match decision {
        Decision::Ack => (AckKind::Ack, "ack"),
        Decision::Retry { reason } if delivery.delivered >= policy.max_deliver => {
            let reason = format!(
                "failed {} deliveries; last error: {reason}",
                delivery.delivered
            );
            dead_letter(policy, dead_letters, delivery, &reason).await
        }
        Decision::Retry { .. } => (
            AckKind::Nak(Some(policy.retry_delay(delivery.delivered))),
            "retry",
        ),
        Decision::DeadLetter { reason } => {
            dead_letter(policy, dead_letters, delivery, &reason).await
        }
    };
    if let Err(e) = message.ack_with(kind).await {
        // The message will simply be redelivered after ack_wait; handlers are idempotent.
        tracing::warn!(seq = delivery.stream_sequence, error = %e, "cannot send ack");
    }
    outcome
}

async fn dead_letter(
    policy: &ConsumerPolicy,
    dead_letters: &DeadLetterer,
    delivery: &Delivery,
    reason: &str,
) -> (AckKind, &'static str) {
    match dead_letters.send(delivery, reason).await {
        Ok(()) => {
            tracing::warn!(seq = delivery.stream_sequence, %reason, "dead-lettered");
            (AckKind::Term, "dead_letter")
        }
        Err(e) => {
            tracing::error!(seq = delivery.stream_sequence, error = %e, "cannot dead-letter; will retry");
            (
                AckKind::Nak(Some(policy.retry_delay(delivery.delivered))),
                "retry",
            )
        }
    }
}
