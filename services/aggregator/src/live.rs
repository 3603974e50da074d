//! Redis live counters: the visitors seen in the last minutes, per site.
//!
//! A sorted set per site, member = visitor id, score = the visitor's latest event time. `ZADD GT`
//! only ever raises a score, so applying the same event twice changes nothing.

use std::collections::BTreeMap;

use beacon_schemas::Event;
use beacon_store::LiveKeys;
use beacon_store::live::LIVE_WINDOW_MS;
use fred::prelude::*;
use fred::types::sorted_sets::Ordering;

/// Keys expire this long after their last write, so an idle site leaves nothing behind.
const KEY_TTL_SECS: i64 = 15 * 60;

pub async fn record(
    client: &Client,
    keys: &LiveKeys,
    events: &[Event],
    now_ms: i64,
) -> Result<(), Error> {
    let oldest = now_ms - LIVE_WINDOW_MS;
    let mut per_site: BTreeMap<&str, Vec<(f64, String)>> = BTreeMap::new();
    for event in events
        .iter()
        .filter(|e| e.timestamp_ms > oldest && e.name != "engagement")
    {
        per_site
            .entry(&event.site)
            .or_default()
            .push((event.timestamp_ms as f64, event.visitor_id.to_string()));
    }
    if per_site.is_empty() {
        return Ok(());
    }
    let pipeline = client.pipeline();
    for (site, members) in per_site {
        let key = keys.visitors(site);
        let () = pipeline
            .zadd(
                &key,
                None,
                Some(Ordering::GreaterThan),
                false,
                false,
                members,
            )
            .await?;
        let () = pipeline
            .zremrangebyscore(&key, f64::NEG_INFINITY, oldest as f64)
            .await?;
        let () = pipeline.expire(&key, KEY_TTL_SECS, None).await?;
    }
    let _: Vec<Value> = pipeline.all().await?;
    Ok(())
}
