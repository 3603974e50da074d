//! The lag dashboard's history (migration V15): the pipeline's state every few seconds, for the
//! last hour, in PostgreSQL so the charts outlive a page reload and an API restart.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use crate::error::StoreError;

/// How long samples are kept.
pub const KEPT: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Records `sample` for the slot `at` (the first writer of a slot wins) and forgets samples older
/// than [`KEPT`].
pub async fn record(
    client: &impl GenericClient,
    at: DateTime<Utc>,
    sample: &serde_json::Value,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO pipeline_samples (at, sample) VALUES ($1, $2) ON CONFLICT (at) DO NOTHING",
            &[&at, sample],
        )
        .await?;
    client
        .execute(
            "DELETE FROM pipeline_samples WHERE at < $1",
            &[&(at - KEPT)],
        )
        .await?;
    Ok(())
}

/// The samples since `since`, oldest first.
pub async fn since(
    client: &impl GenericClient,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, serde_json::Value)>, StoreError> {
    let rows = client
        .query(
            "SELECT at, sample FROM pipeline_samples WHERE at >= $1 ORDER BY at",
            &[&since],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
