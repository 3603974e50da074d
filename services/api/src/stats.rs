//! `GET /api/stats`: the summary of the original design, from the rollups and the live counters.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use beacon_pipeline::domain::normalize_domain;
use beacon_store::live::LIVE_WINDOW_MS;
use beacon_store::sites;
use chrono::{NaiveDateTime, Utc};
use fred::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::period::{parse_period, resolve_period};

#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    site: Option<String>,
    period: Option<String>,
    date: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    site: String,
    timezone: String,
    period: String,
    from: String,
    to: String,
    pageviews: i64,
    events: i64,
    realtime_visitors: u64,
    timeseries: Vec<Point>,
}

#[derive(Debug, Serialize)]
pub struct Point {
    /// Local start of the interval (`YYYY-MM-DD` or `YYYY-MM-DD HH:00:00`).
    date: String,
    pageviews: i64,
}

pub async fn summary(
    Owner(owner): Owner,
    State(state): State<Arc<AppState>>,
    Query(query): Query<StatsQuery>,
) -> Result<Json<Summary>, ApiError> {
    let raw_site = query
        .site
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("parameter `site` is required"))?;
    let domain = normalize_domain(raw_site)
        .map_err(|e| ApiError::bad_request(format!("site '{raw_site}' {e}")))?;
    let (period, date) = parse_period(query.period.as_deref(), query.date.as_deref())
        .map_err(|e| ApiError::bad_request(e.0))?;
    let site = sites::find(&state.pool, &domain)
        .await
        .map_err(ApiError::unavailable)?
        // Someone else's site is indistinguishable from a missing one.
        .filter(|site| site.owner_id == Some(owner.id))
        .ok_or_else(|| ApiError::not_found(format!("site '{domain}' not found")))?;
    let today = date.unwrap_or_else(|| Utc::now().with_timezone(&site.timezone).date_naive());
    let range = resolve_period(period, today, site.timezone);

    let client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let totals = client
        .query_one(
            "SELECT coalesce(sum(pageviews), 0)::int8, coalesce(sum(events), 0)::int8
             FROM rollup_counts WHERE site = $1 AND bucket >= $2 AND bucket < $3",
            &[&site.domain, &range.from, &range.to],
        )
        .await
        .map_err(ApiError::unavailable)?;
    let unit = range.interval.as_sql();
    let rows = client
        .query(
            &format!(
                "SELECT date_trunc('{unit}', bucket AT TIME ZONE $4) AS local, sum(pageviews)::int8
                 FROM rollup_counts WHERE site = $1 AND bucket >= $2 AND bucket < $3
                 GROUP BY local ORDER BY local"
            ),
            &[&site.domain, &range.from, &range.to, &site.timezone.name()],
        )
        .await
        .map_err(ApiError::unavailable)?;
    let date_format = if unit == "hour" {
        "%Y-%m-%d %H:%M:%S"
    } else {
        "%Y-%m-%d"
    };
    let timeseries = rows
        .iter()
        .map(|row| {
            let local: NaiveDateTime = row.get(0);
            Point {
                date: local.format(date_format).to_string(),
                pageviews: row.get(1),
            }
        })
        .collect();

    let now_ms = Utc::now().timestamp_millis();
    let realtime_visitors: u64 = state
        .redis
        .zcount(
            state.live_keys.visitors(&site.domain),
            (now_ms - LIVE_WINDOW_MS) as f64,
            f64::INFINITY,
        )
        .await
        .map_err(ApiError::unavailable)?;

    Ok(Json(Summary {
        site: site.domain,
        timezone: site.timezone.name().to_string(),
        period: query.period.unwrap_or_else(|| "30d".into()),
        from: range.first_day.to_string(),
        to: range.last_day.to_string(),
        pageviews: totals.get(0),
        events: totals.get(1),
        realtime_visitors,
        timeseries,
    }))
}
