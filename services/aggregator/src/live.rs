//! Redis live counters, per site: visitors in the last minutes, page views per minute, top pages;
//! and the sites' data versions, which key the API's query cache.
//!
//! Idempotent under redelivery: visitors are a sorted set (member = visitor id, score = latest
//! event time, `ZADD GT`), so re-adding changes nothing; page-view counters are only incremented
//! for events PostgreSQL has just applied for the first time, so a redelivered event never
//! inflates them. A crash between the commit and this update leaves those events out of the
//! live counters (they are a cache of the last minutes, never the source of truth).

use std::collections::BTreeMap;

use beacon_schemas::Event;
use beacon_store::LiveKeys;
use beacon_store::live::{LIVE_WINDOW_MS, PAGEVIEW_MINUTES, minute_start};
use fred::prelude::*;
use fred::types::sorted_sets::Ordering;

/// Keys expire this long after their last write, so an idle site leaves nothing behind.
const KEY_TTL_SECS: i64 = (PAGEVIEW_MINUTES + 5) * 60;

/// Records events applied for the first time.
pub async fn record(
    client: &Client,
    keys: &LiveKeys,
    new_events: &[Event],
    now_ms: i64,
) -> Result<(), Error> {
    let oldest_visitor = now_ms - LIVE_WINDOW_MS;
    let oldest_minute = minute_start(now_ms) - (PAGEVIEW_MINUTES - 1) * 60_000;
    let mut visitors: BTreeMap<&str, Vec<(f64, String)>> = BTreeMap::new();
    let mut pageviews: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    let mut pages: BTreeMap<(&str, i64, &str), i64> = BTreeMap::new();
    for event in new_events.iter().filter(|e| !e.is_engagement()) {
        if event.timestamp_ms > oldest_visitor {
            visitors
                .entry(&event.site)
                .or_default()
                .push((event.timestamp_ms as f64, event.visitor_id.to_string()));
        }
        let minute = minute_start(event.timestamp_ms);
        if event.is_pageview() && minute >= oldest_minute && event.timestamp_ms <= now_ms {
            *pageviews.entry((&event.site, minute)).or_default() += 1;
            *pages
                .entry((&event.site, minute, &event.pathname))
                .or_default() += 1;
        }
    }
    let sites: std::collections::BTreeSet<&str> =
        new_events.iter().map(|e| e.site.as_str()).collect();
    if sites.is_empty() {
        return Ok(());
    }
    let pipeline = client.pipeline();
    // The sites' numbers changed: cached API answers of the old version are not read again.
    for site in sites {
        let () = pipeline.incr(keys.data_version(site)).await?;
    }
    for (site, members) in visitors {
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
            .zremrangebyscore(&key, f64::NEG_INFINITY, oldest_visitor as f64)
            .await?;
        let () = pipeline.expire(&key, KEY_TTL_SECS, None).await?;
    }
    for ((site, minute), n) in pageviews {
        let key = keys.pageviews(site, minute);
        let () = pipeline.incr_by(&key, n).await?;
        let () = pipeline.expire(&key, KEY_TTL_SECS, None).await?;
    }
    for ((site, minute, page), n) in pages {
        let key = keys.pages(site, minute);
        let () = pipeline.zincrby(&key, n as f64, page).await?;
        let () = pipeline.expire(&key, KEY_TTL_SECS, None).await?;
    }
    let _: Vec<Value> = pipeline.all().await?;
    Ok(())
}
