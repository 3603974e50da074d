//! Plausible Stats API v1: `realtime/visitors`, `aggregate`, `timeseries`, `breakdown` — same
//! parameters, metric and property names, and response shapes, so Plausible clients keep working.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use beacon_store::sites::Site;
use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::{Owner, owned_site};
use crate::cache::cached;
use crate::error::{ApiError, ApiQuery};
use crate::filters::{display_value, parse_filters, parse_property, result_key};
use crate::grouping::Grouping;
use crate::imported::{ImportedQuery, Imports, parse_with_imported};
use crate::period::{Interval, Period, Range, check_series_length, parse_period, resolve_period};
use crate::report::{Filter, Group, Metric, Scope, compute};
use crate::rollup_query::GroupKey;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    site_id: Option<String>,
    period: Option<String>,
    date: Option<String>,
    metrics: Option<String>,
    filters: Option<String>,
    compare: Option<String>,
    interval: Option<String>,
    property: Option<String>,
    limit: Option<String>,
    page: Option<String>,
    with_imported: Option<String>,
}

/// What every stats request resolves first: whose site, which range, which metrics and filter.
struct Request {
    site: Site,
    range: Range,
    metrics: Vec<Metric>,
    filter: Option<Filter>,
    /// Add the imported layer where the query allows (`with_imported=true`).
    with_imported: bool,
}

impl Request {
    /// What the answer depends on besides the data: the resolved UTC range (not the period's
    /// name, whose meaning moves with the clock), the metrics, the filter and the imports.
    fn cache_key(&self) -> String {
        format!(
            "{}|{}|{:?}|{:?}|{}",
            self.range.from, self.range.to, self.metrics, self.filter, self.with_imported
        )
    }

    /// Adds the imported rows of `scope` to `groups` if asked and the query allows.
    async fn add_imports(
        &self,
        client: &impl tokio_postgres::GenericClient,
        scope: Scope<'_>,
        breakdown: Option<&str>,
        grouping: Grouping,
        groups: &mut BTreeMap<GroupKey, Group>,
    ) -> Result<Imports, ApiError> {
        if !self.with_imported {
            return Ok(Imports::NotRequested);
        }
        let query = ImportedQuery {
            site: scope.site,
            tz: scope.tz,
            from: scope.from,
            to: scope.to,
            breakdown,
            filter: scope.filter,
            grouping,
        };
        query.add_to(client, groups).await
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            site: &self.site.domain,
            tz: self.site.timezone,
            from: self.range.from,
            to: self.range.to,
            filter: self.filter.as_ref(),
        }
    }
}

/// The owner's site named by the parameter `name` (required), and the period resolved to a UTC
/// range of whole days in the site's zone.
pub async fn site_and_range(
    state: &AppState,
    owner: &Owner,
    name: &str,
    raw_site: Option<&str>,
    period: Option<&str>,
    date: Option<&str>,
) -> Result<(Site, Period, Range), ApiError> {
    let raw_site =
        raw_site.ok_or_else(|| ApiError::bad_request(format!("parameter `{name}` is required")))?;
    let site = owned_site(state, owner, raw_site).await?;
    let (period, date) = parse_period(period, date).map_err(|e| ApiError::bad_request(e.0))?;
    let today = date.unwrap_or_else(|| Utc::now().with_timezone(&site.timezone).date_naive());
    let range = resolve_period(period, today, site.timezone);
    Ok((site, period, range))
}

async fn resolve(state: &AppState, owner: &Owner, params: &Params) -> Result<Request, ApiError> {
    let (site, _, range) = site_and_range(
        state,
        owner,
        "site_id",
        params.site_id.as_deref(),
        params.period.as_deref(),
        params.date.as_deref(),
    )
    .await?;
    let metrics = params
        .metrics
        .as_deref()
        .unwrap_or("visitors")
        .split(',')
        .map(Metric::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let filter = parse_filters(params.filters.as_deref())?;
    let with_imported = parse_with_imported(params.with_imported.as_deref())?;
    Ok(Request {
        site,
        range,
        metrics,
        filter,
        with_imported,
    })
}

/// `GET /api/v1/stats/realtime/visitors`: a bare number.
pub async fn realtime_visitors(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<u64>, ApiError> {
    let raw_site = params
        .site_id
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("parameter `site_id` is required"))?;
    let site = owned_site(&state, &owner, raw_site).await?;
    let visitors = beacon_store::live::visitors_now(
        &state.redis,
        &state.live_keys,
        &site.domain,
        Utc::now().timestamp_millis(),
    )
    .await
    .map_err(ApiError::unavailable)?;
    Ok(Json(visitors))
}

fn percent_change(metric: Metric, old: &Value, new: &Value) -> Value {
    let (old, new) = (old.as_f64().unwrap_or(0.0), new.as_f64().unwrap_or(0.0));
    if metric == Metric::BounceRate {
        return json!((new - old).round() as i64);
    }
    if old == 0.0 {
        return json!(if new > 0.0 { 100 } else { 0 });
    }
    json!(((new - old) / old * 100.0).round() as i64)
}

/// `GET /api/v1/stats/aggregate`, with `compare=previous_period`.
pub async fn aggregate(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<Value>, ApiError> {
    let req = resolve(&state, &owner, &params).await?;
    let compare = match params.compare.as_deref() {
        None | Some("") => false,
        Some("previous_period") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "compare '{other}' is not supported; use compare=previous_period"
            )));
        }
    };
    let key = format!("aggregate|{}|{compare}", req.cache_key());
    let value = cached(&state, &req.site.domain, &key, || async {
        let mut client = state.pool.get().await.map_err(ApiError::unavailable)?;
        let snapshot = beacon_store::postgres::read_snapshot(&mut client)
            .await
            .map_err(ApiError::unavailable)?;
        let totals = |from, to| {
            let (client, req) = (&*snapshot, &req);
            async move {
                let scope = Scope {
                    site: &req.site.domain,
                    tz: req.site.timezone,
                    from,
                    to,
                    filter: req.filter.as_ref(),
                };
                let mut groups =
                    compute(client, scope, None, Grouping::None, &req.metrics, None).await?;
                let imports = req
                    .add_imports(client, scope, None, Grouping::None, &mut groups)
                    .await?;
                let total = groups.into_values().next().unwrap_or_default();
                Ok::<(Group, Imports), ApiError>((total, imports))
            }
        };
        let (current, imports) = totals(req.range.from, req.range.to).await?;
        let previous = if compare {
            let length = req.range.to - req.range.from;
            Some(totals(req.range.from - length, req.range.from).await?.0)
        } else {
            None
        };
        let mut results = Map::new();
        for &metric in &req.metrics {
            let value = current.value(metric);
            let mut entry = Map::new();
            if let Some(previous) = &previous {
                entry.insert(
                    "change".into(),
                    percent_change(metric, &previous.value(metric), &value),
                );
            }
            entry.insert("value".into(), value);
            results.insert(metric.name().into(), Value::Object(entry));
        }
        let mut answer = Map::new();
        answer.insert("results".into(), Value::Object(results));
        imports.annotate(&mut answer);
        Ok(Value::Object(answer))
    })
    .await?;
    Ok(Json(value))
}

fn parse_interval(interval: Option<&str>, default: Interval) -> Result<Interval, ApiError> {
    Ok(match interval {
        None | Some("") => default,
        Some("hour") => Interval::Hour,
        Some("date") | Some("day") => Interval::Day,
        Some("month") => Interval::Month,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid value for interval: '{other}'; use hour, date or month"
            )));
        }
    })
}

/// Local starts of every interval of the range, so the series has no holes.
pub fn interval_starts(range: &Range, interval: Interval) -> Vec<NaiveDateTime> {
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default();
    let end = midnight(range.last_day + Days::new(1));
    let mut t = match interval {
        Interval::Month => midnight(range.first_day.with_day0(0).unwrap_or(range.first_day)),
        _ => midnight(range.first_day),
    };
    let mut starts = Vec::new();
    while t < end {
        starts.push(t);
        t = match interval {
            Interval::Hour => t + TimeDelta::hours(1),
            Interval::Day => t + Days::new(1),
            Interval::Month => t + Months::new(1),
        };
    }
    starts
}

pub fn format_interval(t: NaiveDateTime, interval: Interval) -> String {
    match interval {
        Interval::Hour => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// `GET /api/v1/stats/timeseries`.
pub async fn timeseries(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<Value>, ApiError> {
    let req = resolve(&state, &owner, &params).await?;
    let interval = parse_interval(params.interval.as_deref(), req.range.interval)?;
    check_series_length(&req.range, interval).map_err(|e| ApiError::bad_request(e.0))?;
    let key = format!("timeseries|{}|{interval:?}", req.cache_key());
    let value = cached(&state, &req.site.domain, &key, || async {
        let mut client = state.pool.get().await.map_err(ApiError::unavailable)?;
        let snapshot = beacon_store::postgres::read_snapshot(&mut client)
            .await
            .map_err(ApiError::unavailable)?;
        let grouping = Grouping::Time(interval, req.site.timezone);
        let mut groups =
            compute(&*snapshot, req.scope(), None, grouping, &req.metrics, None).await?;
        let imports = req
            .add_imports(&*snapshot, req.scope(), None, grouping, &mut groups)
            .await?;
        let results: Vec<Value> = series(&groups, &req.range, interval)
            .into_iter()
            .map(|(t, group)| {
                let mut row = Map::new();
                row.insert("date".into(), json!(format_interval(t, interval)));
                for &metric in &req.metrics {
                    let empty = matches!(metric, Metric::BounceRate | Metric::VisitDuration)
                        && !group.has_visits();
                    let value = if empty {
                        Value::Null
                    } else {
                        group.value(metric)
                    };
                    row.insert(metric.name().into(), value);
                }
                Value::Object(row)
            })
            .collect();
        let mut answer = Map::new();
        answer.insert("results".into(), Value::Array(results));
        imports.annotate(&mut answer);
        Ok(Value::Object(answer))
    })
    .await?;
    Ok(Json(value))
}

/// Every interval of the range with its group (empty where nothing happened).
pub fn series(
    groups: &BTreeMap<GroupKey, Group>,
    range: &Range,
    interval: Interval,
) -> Vec<(NaiveDateTime, Group)> {
    interval_starts(range, interval)
        .into_iter()
        .map(|t| {
            let group = groups.get(&GroupKey::Time(t)).cloned().unwrap_or_default();
            (t, group)
        })
        .collect()
}

fn parse_positive(
    name: &str,
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("{name} must be a whole number from 1 to {max}"))
            }),
    }
}

/// `GET /api/v1/stats/breakdown`.
pub async fn breakdown(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<Value>, ApiError> {
    let req = resolve(&state, &owner, &params).await?;
    let requested = params.property.as_deref().ok_or_else(|| {
        ApiError::bad_request("The `property` parameter is required for breakdown")
    })?;
    let property = parse_property(requested)?;
    let limit = parse_positive("limit", params.limit.as_deref(), 100, 1000)?;
    let page = parse_positive("page", params.page.as_deref(), 1, usize::MAX)?;
    let key = format!("breakdown|{}|{property}|{limit}|{page}", req.cache_key());
    let value = cached(&state, &req.site.domain, &key, || async {
        let mut client = state.pool.get().await.map_err(ApiError::unavailable)?;
        let snapshot = beacon_store::postgres::read_snapshot(&mut client)
            .await
            .map_err(ApiError::unavailable)?;
        // Imported rows can lift a value the native rows rank low: rank them all then.
        let top = (!req.with_imported).then(|| page.saturating_mul(limit));
        let mut groups = compute(
            &*snapshot,
            req.scope(),
            Some(&property),
            Grouping::Value,
            &req.metrics,
            top,
        )
        .await?;
        let imports = req
            .add_imports(
                &*snapshot,
                req.scope(),
                Some(&property),
                Grouping::Value,
                &mut groups,
            )
            .await?;
        let rows = ranked(groups, req.metrics[0]);
        let key = result_key(requested);
        let results: Vec<Value> = rows
            .into_iter()
            .skip((page - 1).saturating_mul(limit))
            .take(limit)
            .map(|(value, group)| {
                let mut row = Map::new();
                row.insert(key.into(), json!(display_value(&property, &value)));
                for &metric in &req.metrics {
                    row.insert(metric.name().into(), group.value(metric));
                }
                Value::Object(row)
            })
            .collect();
        let mut answer = Map::new();
        answer.insert("results".into(), Value::Array(results));
        imports.annotate(&mut answer);
        Ok(Value::Object(answer))
    })
    .await?;
    Ok(Json(value))
}

/// Groups by value, highest `metric` first (ties by value), without empty groups.
pub fn ranked(groups: BTreeMap<GroupKey, Group>, metric: Metric) -> Vec<(String, Group)> {
    let mut rows: Vec<(String, Group, f64)> = groups
        .into_iter()
        .filter_map(|(key, group)| match key {
            GroupKey::Value(v) => {
                let score = group.value(metric).as_f64().unwrap_or(0.0);
                Some((v, group, score))
            }
            _ => None,
        })
        .filter(|(_, group, _)| !group.is_empty())
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    rows.into_iter().map(|(v, g, _)| (v, g)).collect()
}
