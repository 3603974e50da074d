//! What the aggregator does with a batch: decode, apply the new events' deltas to PostgreSQL in
//! one transaction together with their ids, then update the live counters, then ack.

use std::collections::HashMap;
use std::sync::Arc;

use beacon_jetstream::{BatchHandler, Decision, Delivery};
use beacon_runtime::isolate::{Attempted, isolate};
use beacon_schemas::{Event, EventId};
use beacon_store::{Failure, LiveKeys, Pool, StoreError};

use crate::session_cache::SessionCache;
use crate::{live, rollups};

/// Most transactions one batch may take while its failing events are searched for: one poison
/// event in 4,000 takes about 25; what is not found within the limit is retried later.
const MAX_APPLY_CALLS: usize = 64;

pub struct AggregateHandler {
    pool: Pool,
    sessions: Arc<SessionCache>,
    redis: fred::prelude::Client,
    live_keys: LiveKeys,
}

impl AggregateHandler {
    pub fn new(
        pool: Pool,
        sessions: Arc<SessionCache>,
        redis: fred::prelude::Client,
        live_keys: LiveKeys,
    ) -> Self {
        Self {
            pool,
            sessions,
            redis,
            live_keys,
        }
    }
}

impl BatchHandler for AggregateHandler {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Decision> {
        let mut decisions = vec![Decision::Ack; batch.len()];
        // One entry per distinct event id: a batch can hold the same event twice (a redelivery
        // racing its first delivery); it must count once.
        let mut events: Vec<Event> = Vec::with_capacity(batch.len());
        let mut positions: HashMap<EventId, Vec<usize>> = HashMap::new();
        for (i, delivery) in batch.iter().enumerate() {
            let event = match beacon_schemas::decode(delivery.payload()) {
                Ok(event) => event,
                Err(e) => {
                    decisions[i] = Decision::DeadLetter {
                        reason: e.to_string(),
                    };
                    continue;
                }
            };
            if let Err(e) = event.validate() {
                decisions[i] = Decision::DeadLetter {
                    reason: e.to_string(),
                };
                continue;
            }
            let slots = positions.entry(event.id).or_default();
            if slots.is_empty() {
                events.push(event);
            }
            slots.push(i);
        }
        if events.is_empty() {
            return decisions;
        }

        // A batch is one transaction; when it fails on its data, the halves are applied apart
        // until the event that fails stands alone, so the events beside it are not held back.
        let parts = isolate(
            events.len(),
            MAX_APPLY_CALLS,
            |part| rollups::apply(&self.pool, &self.sessions, &events[part]),
            |e: &StoreError| e.failure() != Failure::Transient,
        )
        .await;
        let mut new_events = Vec::with_capacity(events.len());
        for (part, outcome) in parts {
            let decision = match outcome {
                Attempted::Applied(applied) => {
                    new_events.extend(applied);
                    continue;
                }
                Attempted::Failed(e) => {
                    let reason = e.to_string();
                    match e.failure() {
                        // This event alone makes PostgreSQL refuse the transaction.
                        Failure::Data if part.len() == 1 => {
                            tracing::warn!(event = %events[part.start].id, %reason, "event refused by PostgreSQL; dead-lettering it");
                            Decision::DeadLetter { reason }
                        }
                        _ => {
                            tracing::warn!(events = part.len(), %reason, "cannot apply rollups");
                            Decision::Retry { reason }
                        }
                    }
                }
                Attempted::Untried => Decision::Retry {
                    reason: "not applied: another part of the batch failed first".into(),
                },
            };
            for event in &events[part] {
                for &i in &positions[&event.id] {
                    decisions[i] = decision.clone();
                }
            }
        }
        metrics::counter!(beacon_metrics::AGGREGATOR_APPLIED.name)
            .increment(new_events.len() as u64);
        metrics::counter!(beacon_metrics::AGGREGATOR_ALREADY_APPLIED.name)
            .increment((events.len() - new_events.len()) as u64);

        // Freshness: from the collector's acceptance to the commit the API reads.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let freshness = metrics::histogram!(beacon_metrics::AGGREGATOR_FRESHNESS.name);
        for event in &new_events {
            freshness.record((now_ms - event.received_at_ms).max(0) as f64 / 1000.0);
        }

        // Live counters are best effort: Redis being down must not stop the rollups, which are
        // the source of truth.
        if let Err(e) = live::record(&self.redis, &self.live_keys, &new_events, now_ms).await {
            metrics::counter!(beacon_metrics::AGGREGATOR_LIVE_ERRORS.name).increment(1);
            tracing::warn!(error = %e, "cannot update live counters");
        }
        decisions
    }
}
