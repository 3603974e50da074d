//! The exactly-once write: in one PostgreSQL transaction, under the batch's site locks, mark the
//! batch's event ids as applied, replace the sessions the new events changed, and add the new
//! events' and sessions' deltas to the rollups. A redelivered event finds its id already applied
//! and changes nothing.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use beacon_pipeline::rollup::Rollup;
use beacon_pipeline::session::{Session, plan, visitor_ids_of};
use beacon_schemas::Event;
use beacon_store::zones::Zones;
use beacon_store::{Pool, StoreError, rollups, sessions};
use tokio_postgres::types::Type;
use uuid::Uuid;

/// Applies the events not applied before; returns them (the ones this call applied). All or
/// nothing.
pub async fn apply(pool: &Pool, events: &[Event]) -> Result<Vec<Event>, StoreError> {
    let mut steps = Steps::start();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;

    let mut sites: Vec<&str> = events.iter().map(|e| e.site.as_str()).collect();
    sites.sort_unstable();
    sites.dedup();
    rollups::lock_sites(&*tx, &sites).await?;
    steps.lap("lock");

    let ids: Vec<Uuid> = events.iter().map(|e| e.id.as_uuid()).collect();
    let new_ids: HashSet<Uuid> = tx
        .query_typed(
            "INSERT INTO applied_events (event_id) SELECT * FROM unnest($1::uuid[])
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            &[(&ids, Type::UUID_ARRAY)],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    steps.lap("dedup");
    let new_events: Vec<Event> = events
        .iter()
        .filter(|e| new_ids.contains(&e.id.as_uuid()))
        .cloned()
        .collect();
    if new_events.is_empty() {
        tx.commit().await?;
        return Ok(new_events);
    }

    let stored = stored_sessions(&*tx, &new_events).await?;
    steps.lap("load");
    let transition = plan(&stored, &new_events);
    steps.lap("plan");
    let reopened = transition.removed.iter().filter(|s| s.closed).count();
    if reopened > 0 {
        // A late event joined a visit already in the visit rollups (see ARCHITECTURE.md).
        metrics::counter!("beacon_aggregator_sessions_reopened_total").increment(reopened as u64);
    }
    let zones = Zones::load(&*tx, &sites).await?;
    // PostgreSQL writes the sessions while this process folds the deltas (two cores at work).
    let (replaced, (rollup, fold)) = tokio::join!(
        sessions::replace(&*tx, &transition.removed, &transition.added),
        async {
            let started = Instant::now();
            let rollup = Rollup::of_batch(&new_events, &transition, &zones);
            (rollup, started.elapsed())
        },
    );
    replaced?;
    steps.lap("sessions");
    rollups::apply(&*tx, &rollup).await?;
    steps.lap("rollups");
    tx.commit().await?;
    steps.lap("commit");
    tracing::debug!(
        events = new_events.len(),
        rows = rollup.rows.len(),
        ?fold,
        %steps,
        "batch applied"
    );
    Ok(new_events)
}

/// The stored sessions the new events can join, site by site.
async fn stored_sessions(
    tx: &impl tokio_postgres::GenericClient,
    events: &[Event],
) -> Result<Vec<Session>, StoreError> {
    let mut span: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for e in events {
        let (first, last) = span
            .entry(e.site.as_str())
            .or_insert((e.timestamp_ms, e.timestamp_ms));
        *first = (*first).min(e.timestamp_ms);
        *last = (*last).max(e.timestamp_ms);
    }
    let mut stored = Vec::new();
    for (site, ids) in visitor_ids_of(events) {
        let ids: Vec<u64> = ids.into_iter().collect();
        let (first, last) = span[site];
        stored.extend(sessions::load(tx, site, &ids, first, last).await?);
    }
    Ok(stored)
}

/// Time per step of one batch, for the debug log (`RUST_LOG=beacon_aggregator=debug`): where a
/// batch's time goes.
struct Steps {
    last: Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl Steps {
    fn start() -> Self {
        Self {
            last: Instant::now(),
            laps: Vec::with_capacity(8),
        }
    }

    fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.laps.push((step, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (step, took)) in self.laps.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{step}={:.1}ms", took.as_secs_f64() * 1e3)?;
        }
        Ok(())
    }
}
