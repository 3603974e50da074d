//! `GET /api/stats`: the summary of the original design (and the dashboard's own call), from the
//! rollups and the live counters.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use beacon_store::live::LiveStats;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Owner;
use crate::error::{ApiError, ApiQuery, OwnerRefusals};
use crate::filters::display_value;
use crate::grouping::Grouping;
use crate::report::{Metric, Scope, compute};
use crate::v1::{format_interval, ranked, series, site_and_range};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The site's domain.
    #[param(required = true, nullable = false, example = "example.com")]
    site: Option<String>,
    /// `day`, `7d`, `30d` (the default), `month`, `6mo`, `12mo` or `custom`.
    #[param(nullable = false)]
    period: Option<String>,
    /// Reference day `YYYY-MM-DD`, or `from,to` with `period=custom`.
    #[param(nullable = false)]
    date: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    site: String,
    timezone: String,
    period: String,
    from: String,
    to: String,
    #[schema(value_type = f64)]
    visitors: Value,
    #[schema(value_type = f64)]
    visits: Value,
    #[schema(value_type = f64)]
    pageviews: Value,
    #[schema(value_type = f64)]
    events: Value,
    #[schema(value_type = f64)]
    views_per_visit: Value,
    #[schema(value_type = f64)]
    bounce_rate: Value,
    #[schema(value_type = f64)]
    visit_duration: Value,
    /// `null` while Redis (the live counters) cannot be read: the statistics still answer.
    realtime_visitors: Option<u64>,
    live: Option<LiveStats>,
    timeseries: Vec<Point>,
    top_pages: Vec<Row>,
    top_sources: Vec<Row>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Point {
    /// Local start of the interval (`YYYY-MM-DD` or `YYYY-MM-DD HH:00:00`).
    date: String,
    #[schema(value_type = f64)]
    visitors: Value,
    #[schema(value_type = f64)]
    pageviews: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Row {
    name: String,
    #[schema(value_type = f64)]
    visitors: Value,
    #[schema(value_type = f64)]
    pageviews: Value,
}

const TOP: usize = 10;

/// The dashboard's summary: totals, the series, top pages and sources, and the live counters.
#[utoipa::path(get, path = "/api/stats", tag = "stats",
    params(StatsQuery), responses((status = 200, description = "The site's totals for the period and its live counters.", body = Summary), OwnerRefusals))]
pub async fn summary(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Summary>, ApiError> {
    let (site, period, range) = site_and_range(
        &state,
        &owner,
        "site",
        query.site.as_deref(),
        query.period.as_deref(),
        query.date.as_deref(),
    )
    .await?;
    const ALL_METRICS: [Metric; 7] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::Events,
        Metric::ViewsPerVisit,
        Metric::BounceRate,
        Metric::VisitDuration,
    ];
    let mut client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let snapshot = beacon_store::postgres::read_snapshot(&mut client)
        .await
        .map_err(ApiError::unavailable)?;
    let query = |grouping, breakdown, metrics: &'static [Metric], top| {
        let scope = Scope {
            site: &site.domain,
            tz: site.timezone,
            from: range.from,
            to: range.to,
            filter: None,
        };
        compute(&*snapshot, scope, breakdown, grouping, metrics, top)
    };
    let totals = query(Grouping::None, None, &ALL_METRICS, None)
        .await?
        .into_values()
        .next()
        .unwrap_or_default();
    let over_time = query(
        Grouping::Time(range.interval, site.timezone),
        None,
        &[Metric::Visitors],
        None,
    )
    .await?;
    let timeseries = series(&over_time, &range, range.interval)
        .into_iter()
        .map(|(t, group)| Point {
            date: format_interval(t, range.interval),
            visitors: group.value(Metric::Visitors),
            pageviews: group.value(Metric::Pageviews),
        })
        .collect();
    // The first TOP values of a property by visitors.
    let top = async |property: &'static str| {
        let groups = query(
            Grouping::Value,
            Some(property),
            &[Metric::Visitors],
            Some(TOP),
        )
        .await?;
        Ok::<_, ApiError>(
            ranked(groups, Metric::Visitors)
                .into_iter()
                .take(TOP)
                .map(|(value, group)| Row {
                    name: display_value(property, &value).to_string(),
                    visitors: group.value(Metric::Visitors),
                    pageviews: group.value(Metric::Pageviews),
                })
                .collect::<Vec<_>>(),
        )
    };
    let top_pages = top("event:page").await?;
    let top_sources = top("visit:source").await?;

    let live = beacon_store::live::read(
        &state.redis,
        &state.live_keys,
        &site.domain,
        Utc::now().timestamp_millis(),
        TOP,
    )
    .await
    .inspect_err(
        |e| tracing::warn!(error = %e, "live counters unavailable; answering without them"),
    )
    .ok();

    Ok(Json(Summary {
        site: site.domain,
        timezone: site.timezone.name().to_string(),
        period: query_period_name(period),
        from: range.first_day.to_string(),
        to: range.last_day.to_string(),
        visitors: totals.value(Metric::Visitors),
        visits: totals.value(Metric::Visits),
        pageviews: totals.value(Metric::Pageviews),
        events: totals.value(Metric::Events),
        views_per_visit: totals.value(Metric::ViewsPerVisit),
        bounce_rate: totals.value(Metric::BounceRate),
        visit_duration: totals.value(Metric::VisitDuration),
        realtime_visitors: live.as_ref().map(|l| l.visitors),
        live,
        timeseries,
        top_pages,
        top_sources,
    }))
}

fn query_period_name(period: crate::period::Period) -> String {
    use crate::period::Period::*;
    match period {
        Day => "day",
        Days7 => "7d",
        Days30 => "30d",
        Month => "month",
        Months6 => "6mo",
        Months12 => "12mo",
        Custom(..) => "custom",
    }
    .to_string()
}
