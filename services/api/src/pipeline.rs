//! `GET /api/pipeline`: stream and consumer lag as JSON, for the consumer-lag dashboard.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use beacon_jetstream::{PipelineState, pipeline_state};

use crate::AppState;
use crate::auth::Owner;
use crate::error::ApiError;

pub async fn lag(
    _owner: Owner,
    State(state): State<Arc<AppState>>,
) -> Result<Json<PipelineState>, ApiError> {
    pipeline_state(&state.js, &state.topology)
        .await
        .map(Json)
        .map_err(ApiError::unavailable)
}
