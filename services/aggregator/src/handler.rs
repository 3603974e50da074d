//! What the aggregator does with a batch: decode, apply the new events' deltas to PostgreSQL in
//! one transaction together with their ids, then update the live counters, then ack.

use std::collections::HashMap;
use std::sync::Arc;

use beacon_jetstream::{BatchHandler, Decision, Delivery};
use beacon_schemas::{Event, EventId};
use beacon_store::{LiveKeys, Pool};

use crate::session_cache::SessionCache;
use crate::{live, rollups};

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

        let new_events = match rollups::apply(&self.pool, &self.sessions, &events).await {
            Ok(new_events) => new_events,
            Err(e) => {
                tracing::warn!(error = %e, "cannot apply rollups");
                let reason = e.to_string();
                for slots in positions.values() {
                    for &i in slots {
                        decisions[i] = Decision::Retry {
                            reason: reason.clone(),
                        };
                    }
                }
                return decisions;
            }
        };
        metrics::counter!("beacon_aggregator_applied_total").increment(new_events.len() as u64);
        metrics::counter!("beacon_aggregator_already_applied_total")
            .increment((events.len() - new_events.len()) as u64);

        // Live counters are best effort: Redis being down must not stop the rollups, which are
        // the source of truth.
        let now_ms = chrono::Utc::now().timestamp_millis();
        if let Err(e) = live::record(&self.redis, &self.live_keys, &new_events, now_ms).await {
            metrics::counter!("beacon_aggregator_live_errors_total").increment(1);
            tracing::warn!(error = %e, "cannot update live counters");
        }
        decisions
    }
}
