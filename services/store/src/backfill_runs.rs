//! Replays, imports and exports as they run (migration V12): a row each, its progress kept up to
//! date by a heartbeat, deleted at the end; what `beacon lag` and `/api/pipeline` show.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use crate::error::StoreError;

/// A heartbeat older than this means the run is gone (killed); it is no longer shown.
pub const STALE_AFTER_SECS: i64 = 60;

/// One run, as operators see it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BackfillRun {
    pub kind: String,
    pub site: String,
    pub done: i64,
    pub total: Option<i64>,
    /// What `done` counts: `events`, `bytes`.
    pub unit: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Records a run that starts; returns its id. Rows of runs that died a day ago go.
pub async fn start(
    client: &impl GenericClient,
    kind: &str,
    site: &str,
    unit: &str,
    total: Option<i64>,
) -> Result<i64, StoreError> {
    client
        .execute(
            "DELETE FROM backfill_runs WHERE updated_at < now() - interval '1 day'",
            &[],
        )
        .await?;
    let row = client
        .query_one(
            "INSERT INTO backfill_runs (kind, site, unit, total) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[&kind, &site, &unit, &total],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The run's progress now.
pub async fn heartbeat(
    client: &impl GenericClient,
    id: i64,
    done: i64,
    total: Option<i64>,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE backfill_runs SET done = $2, total = coalesce($3, total), updated_at = now()
             WHERE id = $1",
            &[&id, &done, &total],
        )
        .await?;
    Ok(())
}

/// The run ended (well or not).
pub async fn finish(client: &impl GenericClient, id: i64) -> Result<(), StoreError> {
    client
        .execute("DELETE FROM backfill_runs WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

/// The runs whose heartbeat is recent, oldest first.
pub async fn running(client: &impl GenericClient) -> Result<Vec<BackfillRun>, StoreError> {
    let rows = client
        .query(
            "SELECT kind, site, done, total, unit, started_at, updated_at FROM backfill_runs
             WHERE updated_at > now() - make_interval(secs => $1::int8)
             ORDER BY started_at",
            &[&STALE_AFTER_SECS],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(BackfillRun {
                kind: r.try_get(0)?,
                site: r.try_get(1)?,
                done: r.try_get(2)?,
                total: r.try_get(3)?,
                unit: r.try_get(4)?,
                started_at: r.try_get(5)?,
                updated_at: r.try_get(6)?,
            })
        })
        .collect()
}
