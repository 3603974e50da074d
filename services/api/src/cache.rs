//! Hot query results cached in Redis for a short time. The key holds the site's data version,
//! which the aggregator raises with every commit that changes the site's numbers, so a cached
//! answer is never older than the data it was computed from (the TTL only bounds memory, and
//! staleness if a version bump was lost while Redis was away). Redis being down only costs speed.

use std::future::Future;

use fred::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// How long a cached answer lives.
const TTL_SECS: i64 = 60;

/// The answer to `query` about `site` from the cache, or computed by `compute` and cached.
/// `query` must name everything the answer depends on besides the data (endpoint, resolved UTC
/// range, metrics, filters, grouping).
pub async fn cached<T, F, Fut>(
    state: &AppState,
    site: &str,
    query: &str,
    compute: F,
) -> Result<T, ApiError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let version: Result<Option<i64>, _> = state.redis.get(state.live_keys.data_version(site)).await;
    let Ok(version) = version.map(|v| v.unwrap_or(0)) else {
        // Redis is away: answer from PostgreSQL.
        return compute().await;
    };
    let digest = hex::encode(Sha256::digest(query.as_bytes()));
    let key = state.live_keys.cached(site, version, &digest);
    if let Ok(Some(hit)) = state.redis.get::<Option<String>, _>(&key).await
        && let Ok(value) = serde_json::from_str(&hit)
    {
        metrics::counter!(beacon_metrics::API_CACHE.name, "result" => "hit").increment(1);
        return Ok(value);
    }
    metrics::counter!(beacon_metrics::API_CACHE.name, "result" => "miss").increment(1);
    let value = compute().await?;
    let Ok(text) = serde_json::to_string(&value) else {
        return Ok(value);
    };
    let _: Result<(), _> = state
        .redis
        .set(
            &key,
            text,
            Some(fred::types::Expiration::EX(TTL_SECS)),
            None,
            false,
        )
        .await;
    Ok(value)
}
