//! The exactly-once write: in one PostgreSQL transaction, claim the batch's event ids as applied,
//! then, under the batch's site locks, replace the sessions the new events changed and add the new
//! events' and sessions' deltas to the rollups. A redelivered event finds its id already applied
//! and changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use beacon_pipeline::rollup::Rollup;
use beacon_pipeline::session::{SESSION_GAP_MS, Session, plan, visitor_ids_of};
use beacon_schemas::Event;
use beacon_store::zones::Zones;
use beacon_store::{Pool, StoreError, rollups, sessions};
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::session_cache::{BatchRecord, SessionCache};

/// Applies the events not applied before; returns them (the ones this call applied). All or
/// nothing.
pub async fn apply(
    pool: &Pool,
    cache: &SessionCache,
    events: &[Event],
) -> Result<Vec<Event>, StoreError> {
    let mut steps = Steps::start();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;

    let mut sites: Vec<&str> = events.iter().map(|e| e.site.as_str()).collect();
    sites.sort_unstable();
    sites.dedup();
    let ids: Vec<Uuid> = events.iter().map(|e| e.id.as_uuid()).collect();
    let claim: [(&(dyn ToSql + Sync), Type); 1] = [(&ids, Type::UUID_ARRAY)];
    // Sent together, executed in this order: the ids claimed and the sites' time zones read,
    // then the site locks taken and (under them) the sites' generations raised. The claim needs
    // no site lock (the unique index settles two claims of one id), so a batch claims its ids,
    // and folds its new events into event-row deltas, while an earlier batch of the same site
    // still holds the lock.
    let claim_and_fold = async {
        let (new_ids, zones) = tokio::join!(
            tx.query_typed(
                "INSERT INTO applied_events (event_id) SELECT * FROM unnest($1::uuid[])
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                &claim,
            ),
            Zones::load(&*tx, &sites),
        );
        let new_ids: HashSet<Uuid> = new_ids?.iter().map(|row| row.get(0)).collect();
        let zones = zones?;
        let new_events: Vec<Event> = events
            .iter()
            .filter(|e| new_ids.contains(&e.id.as_uuid()))
            .cloned()
            .collect();
        let rollup = Rollup::of_events(&new_events, &zones);
        Ok::<_, StoreError>((new_events, zones, rollup))
    };
    let (claimed, generations) =
        tokio::join!(claim_and_fold, sessions::lock_for_change(&*tx, &sites));
    let (new_events, zones, mut rollup) = claimed?;
    let generations = generations?;
    steps.lap("claim");
    if new_events.is_empty() {
        commit_recorded(tx, cache, Vec::new(), generations).await?;
        return Ok(new_events);
    }

    // The rows' sketches are read (under the locks now held) while the sessions are looked up.
    let (before, sketches) = tokio::join!(
        stored_sessions(&*tx, cache, &generations, &new_events),
        rollups::read_sketches(&*tx, &rollup),
    );
    let (before, sketches) = (before?, sketches?);
    steps.lap("load");
    let transition = plan(before.iter().flat_map(SiteSessions::joinable), &new_events);
    steps.lap("plan");
    let reopened = transition.removed.iter().filter(|s| s.closed).count();
    if reopened > 0 {
        // A late event joined a visit already in the visit rollups (see ARCHITECTURE.md).
        metrics::counter!(beacon_metrics::AGGREGATOR_SESSIONS_REOPENED.name)
            .increment(reopened as u64);
    }
    rollup.take_out_reopened(&transition, &zones);
    // Sent one after the other without waiting: this process merges the rows' sketches, and
    // works out what its session cache will record, while PostgreSQL writes the sessions.
    let (replaced, written, (records, untouched)) = tokio::join!(
        sessions::replace(&*tx, &transition.removed, &transition.added),
        rollups::apply_read(&*tx, &rollup, sketches),
        async {
            let mut untouched = generations;
            let records: Vec<BatchRecord> = before
                .into_iter()
                .map(|site| {
                    untouched.remove(site.site);
                    BatchRecord::new(
                        site.site,
                        site.generation,
                        site.after_ms,
                        site.sessions,
                        &transition.removed,
                        &transition.added,
                    )
                })
                .collect();
            (records, untouched)
        },
    );
    replaced?;
    written?;
    steps.lap("sessions+rollups");
    commit_recorded(tx, cache, records, untouched).await?;
    steps.lap("commit");
    tracing::debug!(
        events = new_events.len(),
        rows = rollup.rows.len(),
        %steps,
        "batch applied"
    );
    Ok(new_events)
}

/// Commits, then records in the session cache what the commit left: `records` for the sites whose
/// sessions the batch changed, `unchanged` (site → generation) for the sites whose events were all
/// applied before. The cache's recording gate is held throughout (see
/// [`SessionCache::recording`]).
async fn commit_recorded(
    tx: beacon_store::postgres::Transaction<'_>,
    cache: &SessionCache,
    records: Vec<BatchRecord>,
    unchanged: HashMap<String, i64>,
) -> Result<(), StoreError> {
    let _recording = cache.recording().await;
    tx.commit().await?;
    for record in records {
        cache.record(record);
    }
    for (site, generation) in unchanged {
        cache.record_unchanged(&site, generation);
    }
    Ok(())
}

/// One site's stored sessions as the batch found them: every session of the batch's visitors
/// that ends after `after_ms` (the batch's first event on the site minus the session gap).
struct SiteSessions<'a> {
    site: &'a str,
    generation: i64,
    after_ms: i64,
    /// Sessions that start later than this cannot be joined by the batch's events either.
    before_ms: i64,
    sessions: HashMap<u64, Vec<Session>>,
}

impl SiteSessions<'_> {
    /// The sessions the batch's events can join: the ones loading by time span used to return.
    fn joinable(&self) -> impl Iterator<Item = &Session> {
        self.sessions
            .values()
            .flatten()
            .filter(|s| s.start_ms < self.before_ms)
    }
}

/// The stored sessions of the batch's visitors, site by site: from the cache where it can answer
/// at this transaction's generation, the others loaded.
async fn stored_sessions<'a>(
    tx: &impl tokio_postgres::GenericClient,
    cache: &SessionCache,
    generations: &HashMap<String, i64>,
    events: &'a [Event],
) -> Result<Vec<SiteSessions<'a>>, StoreError> {
    let mut span: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for e in events {
        let (first, last) = span
            .entry(e.site.as_str())
            .or_insert((e.timestamp_ms, e.timestamp_ms));
        *first = (*first).min(e.timestamp_ms);
        *last = (*last).max(e.timestamp_ms);
    }
    let mut sites = Vec::new();
    for (site, ids) in visitor_ids_of(events) {
        let (first, last) = span[site];
        let after_ms = first.saturating_sub(SESSION_GAP_MS);
        let generation = *generations
            .get(site)
            .ok_or_else(|| StoreError::Invalid(format!("no generation raised for site {site}")))?;
        let known = {
            let _recording = cache.recording().await;
            cache.known(site, generation, ids.iter().copied(), after_ms)
        };
        let mut sessions = known.sessions;
        if !known.missing.is_empty() {
            for visitor in &known.missing {
                sessions.insert(*visitor, Vec::new());
            }
            for s in sessions::load(tx, site, &known.missing, after_ms).await? {
                sessions.entry(s.visitor_id).or_default().push(s);
            }
        }
        sites.push(SiteSessions {
            site,
            generation,
            after_ms,
            before_ms: last.saturating_add(SESSION_GAP_MS),
            sessions,
        });
    }
    Ok(sites)
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
