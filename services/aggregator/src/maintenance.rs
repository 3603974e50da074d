//! The aggregator's periodic work beside the consumer: close quiet visits (adding them to the visit
//! rollups), forget applied event ids and sessions older than the dedup window, and compact the
//! rollup rows of old days.

use std::sync::Arc;
use std::time::Duration;

use beacon_pipeline::rollup::Rollup;
use beacon_runtime::CancellationToken;
use beacon_store::zones::Zones;
use beacon_store::{Pool, StoreError, rollups, sessions};

use crate::session_cache::SessionCache;

/// Sessions closed per transaction, so a backfill's many visits close in bounded steps.
const CLOSE_BATCH: i64 = 2_000;

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
                Ok(n) => metrics::counter!("beacon_aggregator_sessions_closed_total").increment(n),
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
pub async fn close_quiet_sessions(
    pool: &Pool,
    cache: &SessionCache,
    close_after: Duration,
) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let sites = sessions::sites_with_idle_sessions(&**client, close_after).await?;
    let mut closed = 0;
    for site in sites {
        loop {
            let tx = client.transaction().await?;
            let generations = sessions::lock_for_change(&*tx, &[site.as_str()]).await?;
            let quiet = sessions::close_idle(&*tx, &site, close_after, CLOSE_BATCH).await?;
            let zones = Zones::load(&*tx, &[site.as_str()]).await?;
            rollups::apply(&*tx, &Rollup::of_closed(&quiet, &zones)).await?;
            tx.commit().await?;
            if let Some(&generation) = generations.get(&site) {
                cache.record_closed(&site, generation, &quiet);
            }
            closed += quiet.len() as u64;
            if (quiet.len() as i64) < CLOSE_BATCH {
                break;
            }
        }
    }
    Ok(closed)
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
