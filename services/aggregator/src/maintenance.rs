//! The aggregator's periodic work beside the consumer: close quiet visits (adding them to the visit
//! rollups), forget applied event ids and sessions older than the dedup window, and compact the
//! rollup rows of old days.

use std::sync::Arc;
use std::time::Duration;

use beacon_pipeline::rollup::Rollup;
use beacon_runtime::CancellationToken;
use beacon_runtime::isolate::{Attempted, isolate};
use beacon_store::zones::Zones;
use beacon_store::{Failure, Pool, StoreError, rollups, sessions};

use crate::session_cache::SessionCache;

/// Sessions closed per transaction, so a backfill's many visits close in bounded steps.
const CLOSE_BATCH: i64 = 2_000;
/// Most transactions one step may take while the visits that fail it are searched for.
const MAX_CLOSE_CALLS: usize = 64;

#[derive(Debug, Clone, Copy)]
pub struct Maintenance {
    pub close_after: Duration,
    pub dedup_window: Duration,
    /// 15-minute rows of local days older than this are compacted into day rows.
    pub fine_retention: Duration,
}

impl Maintenance {
    /// Runs until `shutdown`. Safe with any number of aggregators: closing takes the site's
    /// aggregation lock and only closes sessions still open.
    pub async fn run(self, pool: Pool, cache: Arc<SessionCache>, shutdown: CancellationToken) {
        let every =
            (self.close_after / 2).clamp(Duration::from_millis(200), Duration::from_secs(30));
        let mut last_prune = None::<std::time::Instant>;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match close_quiet_sessions(&pool, &cache, self.close_after).await {
                Ok(n) => {
                    metrics::counter!(beacon_metrics::AGGREGATOR_SESSIONS_CLOSED.name).increment(n)
                }
                Err(e) => tracing::warn!(error = %e, "cannot close quiet sessions"),
            }
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                match self.hourly(&pool).await {
                    Ok(()) => last_prune = Some(std::time::Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "cannot prune or compact"),
                }
            }
        }
    }
}

impl Maintenance {
    async fn hourly(&self, pool: &Pool) -> Result<(), StoreError> {
        prune(pool, self.dedup_window).await?;
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(self.fine_retention).unwrap_or(chrono::Duration::MAX);
        let done = beacon_store::compaction::compact(pool, before).await?;
        if done.days > 0 {
            tracing::info!(
                days = done.days,
                rows_deleted = done.rows_deleted,
                "compacted rollups"
            );
        }
        Ok(())
    }
}

/// Closes every session quiet for `close_after`; returns how many. `cache` learns what was closed.
///
/// Site by site, in steps of [`CLOSE_BATCH`]. A step that PostgreSQL refuses on its data is
/// split until the visit that causes it stands alone; that visit is quarantined with the reason
/// (it stays open and counted, and closing skips it), and the others close. One site's failure
/// does not keep the other sites' visits open; an outage ends the pass (the next tick retries).
pub async fn close_quiet_sessions(
    pool: &Pool,
    cache: &SessionCache,
    close_after: Duration,
) -> Result<u64, StoreError> {
    let sites = sessions::sites_with_idle_sessions(&**pool.get().await?, close_after).await?;
    let mut closed = 0;
    let mut outage = None;
    for site in sites {
        match close_site(pool, cache, &site, close_after).await {
            Ok(n) => closed += n,
            Err(e) if e.failure() == Failure::Transient => {
                outage = Some(e);
                break;
            }
            Err(e) => tracing::error!(site, error = %e, "cannot close the site's quiet visits"),
        }
    }
    match outage {
        Some(e) if closed == 0 => Err(e),
        Some(e) => {
            tracing::warn!(error = %e, closed, "closing stopped part way");
            Ok(closed)
        }
        None => Ok(closed),
    }
}

/// Closes the quiet visits of one site; see [`close_quiet_sessions`].
async fn close_site(
    pool: &Pool,
    cache: &SessionCache,
    site: &str,
    close_after: Duration,
) -> Result<u64, StoreError> {
    let mut closed = 0;
    loop {
        let keys =
            sessions::idle_keys(&**pool.get().await?, site, close_after, CLOSE_BATCH).await?;
        let parts = isolate(
            keys.len(),
            MAX_CLOSE_CALLS,
            |part| close_these(pool, cache, site, &keys[part], close_after),
            |e: &StoreError| e.failure() != Failure::Transient,
        )
        .await;
        let mut step_closed = 0;
        for (part, outcome) in parts {
            match outcome {
                Attempted::Applied(n) => step_closed += n,
                Attempted::Failed(e) if part.len() == 1 && e.failure() == Failure::Data => {
                    let key = keys[part.start];
                    let reason = e.to_string();
                    tracing::error!(site, visitor = key.0, start_ms = key.1, %reason, "quarantining a visit that cannot be closed");
                    sessions::quarantine(&**pool.get().await?, site, key, &reason).await?;
                    metrics::counter!(beacon_metrics::AGGREGATOR_SESSIONS_QUARANTINED.name)
                        .increment(1);
                }
                Attempted::Failed(e) if e.failure() == Failure::Transient => return Err(e),
                Attempted::Failed(e) => {
                    tracing::error!(site, sessions = part.len(), error = %e, "cannot close visits; will try again");
                }
                Attempted::Untried => {}
            }
        }
        closed += step_closed;
        // Go on while full steps still close something (a step of visits that all failed is
        // not tried again within this pass).
        if (keys.len() as i64) < CLOSE_BATCH || step_closed == 0 {
            return Ok(closed);
        }
    }
}

/// One transaction: close `keys` (those still quiet) and add them to the visit rows.
async fn close_these(
    pool: &Pool,
    cache: &SessionCache,
    site: &str,
    keys: &[sessions::SessionKey],
    close_after: Duration,
) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let generations = sessions::lock_for_change(&*tx, &[site]).await?;
    let quiet = sessions::close_idle(&*tx, site, keys, close_after).await?;
    let zones = Zones::load(&*tx, &[site]).await?;
    rollups::apply(&*tx, &Rollup::of_closed(&quiet, &zones)).await?;
    tx.commit().await?;
    if let Some(&generation) = generations.get(site) {
        cache.record_closed(site, generation, &quiet);
    }
    Ok(quiet.len() as u64)
}

/// Forgets applied ids and closed sessions older than the window. Sessions go site by site under
/// the site's lock, raising its generation (aggregators' cached sessions of the site are then
/// read again).
async fn prune(pool: &Pool, window: Duration) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let secs = window.as_secs_f64();
    client
        .execute(
            "DELETE FROM applied_events WHERE applied_at < now() - make_interval(secs => $1)",
            &[&secs],
        )
        .await?;
    let cutoff_ms = chrono::Utc::now().timestamp_millis()
        - i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 2);
    const OLD: &str = "closed AND end_ms < $1 AND touched_at < now() - make_interval(secs => $2)";
    let sites: Vec<String> = client
        .query(
            &format!("SELECT DISTINCT site FROM sessions WHERE {OLD}"),
            &[&cutoff_ms, &secs],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for site in sites {
        let tx = client.transaction().await?;
        sessions::lock_for_change(&*tx, &[site.as_str()]).await?;
        tx.execute(
            &format!("DELETE FROM sessions WHERE site = $3 AND {OLD}"),
            &[&cutoff_ms, &secs, &site],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
