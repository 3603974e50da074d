//! `GET /api/pipeline`: stream and consumer lag as JSON, for the consumer-lag dashboard, with the
//! replays, imports and exports running now. For operators only: it tells of every tenant's
//! traffic.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use beacon_jetstream::{PipelineState, pipeline_state};
use beacon_store::backfill_runs::{self, BackfillRun};
use serde::Serialize;

use crate::AppState;
use crate::auth::Operator;
use crate::error::ApiError;

/// The pipeline's state: stream, consumers, dead letters, and backfills running.
#[derive(Debug, Serialize)]
pub struct Pipeline {
    #[serde(flatten)]
    pub state: PipelineState,
    pub backfills: Vec<BackfillRun>,
}

pub async fn lag(
    _: Operator,
    State(state): State<Arc<AppState>>,
) -> Result<Json<Pipeline>, ApiError> {
    let jetstream = pipeline_state(&state.js, &state.topology)
        .await
        .map_err(ApiError::unavailable)?;
    let client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let backfills = backfill_runs::running(&**client)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(Pipeline {
        state: jetstream,
        backfills,
    }))
}
