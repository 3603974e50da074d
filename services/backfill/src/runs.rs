//! A run's row in `backfill_runs` while it goes (what `beacon lag` and `/api/pipeline` show), its
//! progress copied from the [`Progress`] every two seconds. Best effort: a run whose row cannot be
//! written still runs (the failure is logged).

use std::sync::Arc;
use std::time::Duration;

use beacon_store::{Pool, backfill_runs};

use crate::progress::Progress;

/// How often the row is brought up to date.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// A run being shown; [`Tracked::finish`] removes its row.
pub struct Tracked {
    pool: Pool,
    id: Option<i64>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Tracked {
    pub async fn start(
        pool: &Pool,
        kind: &str,
        site: &str,
        unit: &str,
        progress: Arc<Progress>,
    ) -> Self {
        let total = progress.total().and_then(|t| i64::try_from(t).ok());
        let id = match pool.get().await {
            Ok(client) => backfill_runs::start(&**client, kind, site, unit, total)
                .await
                .map_err(|e| tracing::warn!(error = %e, "cannot record the run for beacon lag"))
                .ok(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the run for beacon lag");
                None
            }
        };
        let heartbeat = id.map(|id| {
            let pool = pool.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    let done = i64::try_from(progress.done()).unwrap_or(i64::MAX);
                    let total = progress.total().and_then(|t| i64::try_from(t).ok());
                    if let Ok(client) = pool.get().await {
                        let _ = backfill_runs::heartbeat(&**client, id, done, total).await;
                    }
                }
            })
        });
        Self {
            pool: pool.clone(),
            id,
            heartbeat,
        }
    }

    /// The run ended: its row goes.
    pub async fn finish(self) {
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.abort();
        }
        if let (Some(id), Ok(client)) = (self.id, self.pool.get().await) {
            let _ = backfill_runs::finish(&**client, id).await;
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // An error path that never called `finish`: at least the heartbeat stops, and the row is
        // ignored once stale.
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.abort();
        }
    }
}
