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

/// How often the lag dashboard's history is sampled.
pub const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// One sample of the history: what the charts plot.
fn sample_of(state: &PipelineState) -> serde_json::Value {
    let consumers: Vec<serde_json::Value> = state
        .consumers
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "lag_seconds": c.lag_seconds,
                "pending": c.pending,
                "ack_pending": c.ack_pending,
                "redelivered": c.redelivered,
                "ack_floor": c.ack_floor,
            })
        })
        .collect();
    serde_json::json!({
        "last_sequence": state.stream.last_sequence,
        "dead_letters": state.dead_letters,
        "consumers": consumers,
    })
}

/// Samples the pipeline into `pipeline_samples` every [`SAMPLE_EVERY`] until shutdown, so the
/// lag dashboard's charts have the last hour even right after a reload or a restart. Each API
/// process samples; a slot is written once.
pub async fn sample_history(
    pool: beacon_store::Pool,
    js: beacon_jetstream::async_nats::jetstream::Context,
    topology: beacon_jetstream::Topology,
    shutdown: beacon_runtime::CancellationToken,
) {
    loop {
        let now = chrono::Utc::now();
        let slot_ms =
            now.timestamp_millis() - now.timestamp_millis() % SAMPLE_EVERY.as_millis() as i64;
        let at = chrono::DateTime::from_timestamp_millis(slot_ms).unwrap_or(now);
        match pipeline_state(&js, &topology).await {
            Ok(state) => {
                let recorded = match pool.get().await {
                    Ok(client) => {
                        beacon_store::pipeline_samples::record(&**client, at, &sample_of(&state))
                            .await
                    }
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = recorded {
                    tracing::debug!(error = %e, "cannot record a pipeline sample");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the pipeline's state"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

/// `GET /api/pipeline/history`: the samples of the last hour, oldest first (`at` in Unix ms).
pub async fn history(
    _: Operator,
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let since = chrono::Utc::now() - beacon_store::pipeline_samples::KEPT;
    let samples = beacon_store::pipeline_samples::since(&**client, since)
        .await
        .map_err(ApiError::unavailable)?;
    let samples: Vec<serde_json::Value> = samples
        .into_iter()
        .map(|(at, mut sample)| {
            sample["at"] = serde_json::json!(at.timestamp_millis());
            sample
        })
        .collect();
    Ok(Json(serde_json::json!({
        "every_seconds": SAMPLE_EVERY.as_secs(),
        "samples": samples,
    })))
}

/// Dead letters shown on the page: the newest ones.
const DEAD_LETTERS_SHOWN: usize = 50;

/// `GET /api/pipeline/dead-letters`: the newest dead letters with their reasons.
pub async fn dead_letters(
    _: Operator,
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut letters = beacon_jetstream::list_dead_letters(&state.js, &state.topology)
        .await
        .map_err(ApiError::unavailable)?;
    let total = letters.len();
    letters.sort_by_key(|l| std::cmp::Reverse(l.sequence));
    letters.truncate(DEAD_LETTERS_SHOWN);
    Ok(Json(
        serde_json::json!({ "total": total, "dead_letters": letters }),
    ))
}

/// `POST /api/pipeline/dead-letters/{sequence}/retry`: what `beacon dlq retry --seq` does (the
/// page's Retry button). Refused from another site's page.
pub async fn retry_dead_letter(
    _: Operator,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(sequence): axum::extract::Path<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !crate::dashboard::same_origin(&headers) {
        return Err(ApiError::forbidden("cross-site request refused"));
    }
    let retried = beacon_jetstream::retry_dead_letters(&state.js, &state.topology, Some(sequence))
        .await
        .map_err(ApiError::unavailable)?;
    match retried.into_iter().next() {
        Some(r) => Ok(Json(serde_json::json!({ "retried": r }))),
        None => Err(ApiError::not_found(format!("no dead letter {sequence}"))),
    }
}
