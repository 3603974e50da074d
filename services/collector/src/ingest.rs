//! The path every accepted hit takes, whatever endpoint it came in by: site check, bot filter,
//! in-flight budget, enrichment, durable publish.

use std::time::Duration;

use beacon_jetstream::{Confirmations, PublishError};
use beacon_pipeline::hit::{SenderFacts, VisitorIds};
use beacon_pipeline::visitor::visitor_id;
use beacon_runtime::retry::{RetryPolicy, retry_transient};
use beacon_schemas::{Event, EventId};

use crate::AppState;
use crate::error::Refusal;

pub use beacon_pipeline::hit::{Client, Hit};

/// What to do with a hit for a site that is not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSite {
    /// `400` naming the site (Beacon's own endpoints: the sender can fix it).
    Reject,
    /// Drop and count it, answer `202` (Plausible's behaviour: a tracker left on a site
    /// nobody registered must not see errors).
    Drop,
}

/// Events stored, and hits dropped (bots, unknown sites) — neither lost nor counted.
#[derive(Debug, Default)]
pub struct Outcome {
    pub accepted: Vec<EventId>,
    pub dropped: usize,
}

/// Filters, enriches and publishes; returns once JetStream stored every accepted event.
pub async fn ingest(
    state: &AppState,
    sender: &Client,
    hits: Vec<Hit>,
    unknown: UnknownSite,
) -> Result<Outcome, Refusal> {
    let mut outcome = Outcome::default();
    let single = hits.len() == 1;
    let mut kept = Vec::with_capacity(hits.len());
    for (index, hit) in hits.into_iter().enumerate() {
        let known = state.sites.contains(&hit.site).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read sites");
            Refusal::unavailable("site directory unavailable")
        })?;
        if !known {
            match unknown {
                UnknownSite::Reject => {
                    let field = if single {
                        "site".to_string()
                    } else {
                        format!("[{index}].site")
                    };
                    return Err(Refusal::field(
                        field,
                        format!(
                            "unknown site '{}'; register it with `beacon site add`",
                            hit.site
                        ),
                    ));
                }
                UnknownSite::Drop => {
                    metrics::counter!(beacon_metrics::COLLECTOR_DROPPED.name, "reason" => "unknown_site")
                        .increment(1);
                    outcome.dropped += 1;
                    continue;
                }
            }
        }
        let client = hit.client.as_ref().unwrap_or(sender);
        match state.user_agents.classify(&client.user_agent) {
            Ok(agent) => kept.push((index, hit, agent)),
            Err(kind) => {
                metrics::counter!(beacon_metrics::COLLECTOR_DROPPED.name, "reason" => bot_label(kind))
                    .increment(1);
                outcome.dropped += 1;
            }
        }
    }
    if kept.is_empty() {
        return Ok(outcome);
    }

    // Bounded work in flight: past the budget, say "later" at once instead of queueing.
    let permits = u32::try_from(kept.len()).unwrap_or(u32::MAX);
    let _permit = state.in_flight.try_acquire_many(permits).map_err(|_| {
        metrics::counter!(beacon_metrics::COLLECTOR_OVERLOADED.name).increment(1);
        Refusal::unavailable("collector is at capacity; retry later")
    })?;
    if !state.sink.is_connected() {
        return Err(Refusal::unavailable(
            "event stream unavailable; retry later",
        ));
    }

    let now = chrono::Utc::now();
    let salts = state.salts.salts_for(now.date_naive()).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read salts");
        Refusal::unavailable("salt store unavailable")
    })?;
    let now_ms = now.timestamp_millis();
    let events: Vec<Event> = kept
        .into_iter()
        .map(|(index, hit, agent)| {
            let client = hit.client.as_ref().unwrap_or(sender);
            let hash = |salt| visitor_id(salt, &hit.site, client.ip, &client.user_agent);
            let visitor = VisitorIds {
                today: hash(&salts.today),
                previous: salts.yesterday.as_ref().map(hash),
            };
            let facts = SenderFacts {
                agent,
                country: state.geo.as_ref().and_then(|geo| geo.country(client.ip)),
            };
            let event = hit.into_event(visitor, facts, now_ms);
            // The consumers' own check, here too: what they would dead-letter is refused now.
            // The endpoints checked every field they read; this catches what enrichment derived.
            event.validate().map(|()| event).map_err(|invalid| {
                tracing::warn!(error = %invalid, "enriched event is invalid");
                let field = if single {
                    invalid.field
                } else {
                    format!("[{index}].{}", invalid.field)
                };
                Refusal::field(field, invalid.problem)
            })
        })
        .collect::<Result<_, _>>()?;

    // Send everything, then wait for the acks (one round trip for the whole request); events
    // whose ack does not come are sent again with the same ids until JetStream confirms them or
    // the patience runs out, so the answer is definite whenever the stream comes back in time.
    let batch = Confirmations::new(&events);
    // The first round directly (almost every request ends there); the retry loop only after a
    // failure, so a healthy request pays for no backoff state.
    let confirmed = match state.sink.confirm(&batch).await {
        Err(e) if e.is_retryable() => {
            let policy = RetryPolicy {
                initial: Duration::from_millis(100),
                max_interval: Duration::from_secs(1),
                max_elapsed: Some(state.publish_patience),
            };
            retry_transient(
                "publishing events",
                policy,
                PublishError::is_retryable,
                || state.sink.confirm(&batch),
            )
            .await
        }
        first => first,
    };
    if let Err(e) = confirmed {
        let maybe_stored = batch.unconfirmed_sent();
        if maybe_stored > 0 {
            metrics::counter!(beacon_metrics::COLLECTOR_UNCONFIRMED.name)
                .increment(maybe_stored as u64);
            tracing::warn!(error = %e, maybe_stored, "publish not confirmed; giving up");
            return Err(Refusal::unconfirmed(maybe_stored, state.publish_patience));
        }
        return Err(publish_error(e));
    }
    metrics::counter!(beacon_metrics::COLLECTOR_ACCEPTED.name).increment(events.len() as u64);
    outcome.accepted = events.iter().map(|e| e.id).collect();
    Ok(outcome)
}

fn publish_error(e: PublishError) -> Refusal {
    if e.is_retryable() {
        tracing::warn!(error = %e, "publish failed");
        Refusal::unavailable("event stream unavailable; retry later")
    } else {
        Refusal::body(e.to_string())
    }
}

fn bot_label(kind: beacon_pipeline::user_agent::BotKind) -> &'static str {
    use beacon_pipeline::user_agent::BotKind;
    match kind {
        BotKind::Crawler => "crawler",
        BotKind::Headless => "headless",
        BotKind::Tool => "tool",
        BotKind::Empty => "no_user_agent",
    }
}
