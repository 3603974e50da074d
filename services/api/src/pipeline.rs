//! `GET /api/pipeline`: stream and consumer lag as JSON, for the consumer-lag dashboard, with the
//! replays, imports and exports running now.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use beacon_jetstream::{PipelineState, pipeline_state};
use beacon_store::backfill_runs::{self, BackfillRun};
use beacon_store::sites;
use serde::Serialize;

use crate::AppState;
use crate::auth::Owner;
use crate::error::ApiError;

/// The pipeline's state: stream, consumers, dead letters, and backfills running.
#[derive(Debug, Serialize)]
pub struct Pipeline {
    #[serde(flatten)]
    pub state: PipelineState,
    pub backfills: Vec<BackfillRun>,
}

pub async fn lag(
    Owner(owner): Owner,
    State(state): State<Arc<AppState>>,
) -> Result<Json<Pipeline>, ApiError> {
    let jetstream = pipeline_state(&state.js, &state.topology)
        .await
        .map_err(ApiError::unavailable)?;
    let client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let mut backfills = backfill_runs::running(&**client)
        .await
        .map_err(ApiError::unavailable)?;
    // A run names its site: an owner sees the runs of their own sites only, as nowhere else in
    // the API may one owner learn which domains another tracks.
    let owned: HashSet<String> = sites::list(&state.pool)
        .await
        .map_err(ApiError::unavailable)?
        .into_iter()
        .filter(|site| site.owner_id == Some(owner.id))
        .map(|site| site.domain)
        .collect();
    backfills.retain(|run| owned.contains(&run.site));
    Ok(Json(Pipeline {
        state: jetstream,
        backfills,
    }))
}
