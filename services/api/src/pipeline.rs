//! `GET /api/pipeline`: stream and consumer lag as JSON, for the consumer-lag dashboard, with the
//! replays, imports and exports running now. For operators only: it tells of every tenant's
//! traffic.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use beacon_jetstream::{DeadLetter, Retried};
use beacon_jetstream::{PipelineState, pipeline_state};
use beacon_store::backfill_runs::{self, BackfillRun};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Operator;
use crate::error::{ApiError, ErrorBody, OperatorRefusals};

/// The pipeline's state: stream, consumers, dead letters, and backfills running.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pipeline {
    #[serde(flatten)]
    pub state: PipelineState,
    pub backfills: Vec<BackfillRun>,
}

/// Stream and consumer lag, dead letters, and the backfills running (operators only).
#[utoipa::path(get, path = "/api/pipeline", tag = "pipeline",
    responses((status = 200, description = "The stream, its consumers and the running backfills.", body = Pipeline), OperatorRefusals))]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Sample {
    /// When it was taken (Unix ms).
    #[serde(default)]
    pub at: i64,
    pub last_sequence: u64,
    pub dead_letters: u64,
    pub consumers: Vec<ConsumerSample>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsumerSample {
    pub name: String,
    pub lag_seconds: f64,
    pub pending: u64,
    pub ack_pending: u64,
    pub redelivered: u64,
    pub ack_floor: u64,
}

fn sample_of(state: &PipelineState) -> Sample {
    Sample {
        at: 0,
        last_sequence: state.stream.last_sequence,
        dead_letters: state.dead_letters,
        consumers: state
            .consumers
            .iter()
            .map(|c| ConsumerSample {
                name: c.name.clone(),
                lag_seconds: c.lag_seconds,
                pending: c.pending,
                ack_pending: c.ack_pending as u64,
                redelivered: c.redelivered as u64,
                ack_floor: c.ack_floor,
            })
            .collect(),
    }
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
                    Ok(client) => match serde_json::to_value(sample_of(&state)) {
                        Ok(sample) => {
                            beacon_store::pipeline_samples::record(&**client, at, &sample).await
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot encode a pipeline sample");
                            Ok(())
                        }
                    },
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

/// The lag dashboard's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// Seconds between samples.
    pub every_seconds: u64,
    /// The last hour, oldest first.
    pub samples: Vec<Sample>,
}

/// The lag dashboard's history: the pipeline sampled every 5 s, the last hour (operators only).
#[utoipa::path(get, path = "/api/pipeline/history", tag = "pipeline",
    responses((status = 200, description = "Samples of the last hour, oldest first.", body = History), OperatorRefusals))]
pub async fn history(
    _: Operator,
    State(state): State<Arc<AppState>>,
) -> Result<Json<History>, ApiError> {
    let client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let since = chrono::Utc::now() - beacon_store::pipeline_samples::KEPT;
    let samples = beacon_store::pipeline_samples::since(&**client, since)
        .await
        .map_err(ApiError::unavailable)?;
    // A row written by another version that does not read as a sample is left out.
    let samples = samples
        .into_iter()
        .filter_map(|(at, sample)| {
            let mut sample: Sample = serde_json::from_value(sample).ok()?;
            sample.at = at.timestamp_millis();
            Some(sample)
        })
        .collect();
    Ok(Json(History {
        every_seconds: SAMPLE_EVERY.as_secs(),
        samples,
    }))
}

/// Dead letters shown on the page: the newest ones.
const DEAD_LETTERS_SHOWN: usize = 50;

/// The newest dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    /// All dead letters kept.
    pub total: usize,
    /// The newest 50, newest first.
    pub dead_letters: Vec<DeadLetter>,
}

/// The newest dead letters with their reasons (operators only).
#[utoipa::path(get, path = "/api/pipeline/dead-letters", tag = "pipeline",
    responses((status = 200, description = "The newest dead letters, newest first.", body = DeadLetters), OperatorRefusals))]
pub async fn dead_letters(
    _: Operator,
    State(state): State<Arc<AppState>>,
) -> Result<Json<DeadLetters>, ApiError> {
    let mut letters = beacon_jetstream::list_dead_letters(&state.js, &state.topology)
        .await
        .map_err(ApiError::unavailable)?;
    let total = letters.len();
    letters.sort_by_key(|l| std::cmp::Reverse(l.sequence));
    letters.truncate(DEAD_LETTERS_SHOWN);
    Ok(Json(DeadLetters {
        total,
        dead_letters: letters,
    }))
}

/// What a retry did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryAnswer {
    pub retried: Retried,
}

/// Republishes one dead letter to the events stream, as `beacon dlq retry --seq` (the page's
/// Retry button; operators only). Refused from another site's page.
#[utoipa::path(post, path = "/api/pipeline/dead-letters/{sequence}/retry", tag = "pipeline",
    params(("sequence" = u64, Path, description = "The dead letter's sequence in the dead-letter stream.")),
    responses(
        (status = 200, description = "How many dead letters were published again.", body = RetryAnswer),
        (status = 400, description = "`sequence` is not a whole number.", body = String, content_type = "text/plain"),
        (status = 404, description = "No such dead letter.", body = ErrorBody),
        OperatorRefusals,
    ))]
pub async fn retry_dead_letter(
    _: Operator,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(sequence): axum::extract::Path<u64>,
) -> Result<Json<RetryAnswer>, ApiError> {
    if !crate::dashboard::same_origin(&headers) {
        return Err(ApiError::forbidden("cross-site request refused"));
    }
    let retried = beacon_jetstream::retry_dead_letters(&state.js, &state.topology, Some(sequence))
        .await
        .map_err(ApiError::unavailable)?;
    match retried.into_iter().next() {
        Some(retried) => Ok(Json(RetryAnswer { retried })),
        None => Err(ApiError::not_found(format!("no dead letter {sequence}"))),
    }
}
