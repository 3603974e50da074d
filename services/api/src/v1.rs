//! Plausible Stats API v1: `realtime/visitors`, `aggregate`, `timeseries`, `breakdown` — same
//! parameters, metric and property names, and response shapes, so Plausible clients keep working.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use beacon_store::goals::Goal;
use beacon_store::sites::Site;
use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Owner, owned_site};
use crate::cache::cached;
use crate::error::{ApiError, ApiQuery, OwnerRefusals};
use crate::filters::{GOAL, display_value, parse_filters, parse_property, result_key};
use crate::goals;
use crate::grouping::Grouping;
use crate::imported::{ImportedQuery, Imports, ImportsNote, parse_with_imported};
use crate::period::{Interval, Period, Range, check_series_length, parse_period, resolve_period};
use crate::report::{Filter, Group, Metric, Scope, compute};
use crate::rollup_query::GroupKey;

/// The parameters of every stats query (Plausible's names and meanings).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// The site's domain, as registered with `beacon site add`.
    #[param(required = true, nullable = false, example = "example.com")]
    site_id: Option<String>,
    /// `day`, `7d`, `30d` (the default), `month`, `6mo`, `12mo` or `custom`; days are days in
    /// the site's time zone.
    #[param(nullable = false)]
    period: Option<String>,
    /// Reference day `YYYY-MM-DD` (default today in the site's zone), or `from,to` with
    /// `period=custom`.
    #[param(nullable = false)]
    date: Option<String>,
    /// Comma-separated: visitors (the default), visits, pageviews, views_per_visit, bounce_rate,
    /// visit_duration, events, conversion_rate (with an `event:goal` filter or breakdown).
    #[param(nullable = false, example = "visitors,pageviews")]
    metrics: Option<String>,
    /// One property filter: `property==value`, `property!=value`, `a|b` alternatives, `*`
    /// wildcards on pages.
    #[param(nullable = false)]
    filters: Option<String>,
    /// `true`: add the daily aggregates imported from another tool (`beacon import`) where the
    /// query allows: no filter, or a filter on the breakdown's property, on a property the imports
    /// keep, by day or month (never hourly). Otherwise they are left out whole and `warning` says
    /// so. Imported visitors are the other tool's daily unique visitors, summed over the days
    /// (`meta.imports_note`).
    #[param(nullable = false)]
    with_imported: Option<String>,
}

/// `compare` of the aggregate.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareParams {
    /// `previous_period`: each metric's change against the period of the same length before.
    #[param(nullable = false)]
    compare: Option<String>,
}

/// `interval` of the time series.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntervalParams {
    /// `hour`, `date` or `month`. Default: hour for day, month for 6mo and 12mo, else date.
    #[param(nullable = false)]
    interval: Option<String>,
}

/// What a breakdown groups by, and its page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BreakdownParams {
    /// event:page, event:goal, event:name, event:hostname, event:props:KEY, visit:source,
    /// visit:referrer, visit:utm_medium, visit:utm_source, visit:utm_campaign, visit:utm_content,
    /// visit:utm_term, visit:device, visit:browser, visit:browser_version, visit:os,
    /// visit:os_version, visit:country, visit:entry_page, visit:exit_page.
    #[param(required = true, nullable = false, example = "event:page")]
    property: Option<String>,
    /// Rows per page, 1 to 1,000 (default 100).
    #[param(nullable = false)]
    limit: Option<String>,
    /// Page of rows, from 1.
    #[param(nullable = false)]
    page: Option<String>,
}

/// The site of a realtime query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RealtimeParams {
    /// The site's domain, as registered with `beacon site add`.
    #[param(required = true, nullable = false, example = "example.com")]
    site_id: Option<String>,
}

/// A metric's value: a count, or a ratio (`views_per_visit`), a percentage (`bounce_rate`) or
/// seconds (`visit_duration`).
pub type MetricValue = Value;

/// `GET /api/v1/stats/aggregate`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AggregateAnswer {
    /// Each metric asked for, by name.
    pub results: BTreeMap<String, AggregateValue>,
    #[serde(flatten)]
    pub imports: ImportsNote,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AggregateValue {
    #[schema(value_type = f64)]
    pub value: MetricValue,
    /// Percent change against the previous period (percentage points for bounce_rate); only
    /// with `compare`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<i64>,
}

/// `GET /api/v1/stats/timeseries`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimeseriesAnswer {
    pub results: Vec<TimeseriesRow>,
    #[serde(flatten)]
    pub imports: ImportsNote,
}

/// One interval: its local start and each metric asked for (`null` for bounce_rate and
/// visit_duration where there were no visits).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimeseriesRow {
    /// Local start of the interval: `YYYY-MM-DD`, or `YYYY-MM-DD HH:MM:SS` by the hour.
    pub date: String,
    #[serde(flatten)]
    #[schema(value_type = BTreeMap<String, Option<f64>>)]
    pub metrics: BTreeMap<String, MetricValue>,
}

/// `GET /api/v1/stats/breakdown`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BreakdownAnswer {
    /// One row per value, highest first metric first: the value under the property's name
    /// (`page`, `source`, `goal`, the custom property's key, …) and each metric asked for.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<BTreeMap<String, Value>>,
    #[serde(flatten)]
    pub imports: ImportsNote,
}

/// What every stats request resolves first: whose site, which range, which metrics and filter.
struct Request {
    site: Site,
    range: Range,
    metrics: Vec<Metric>,
    /// The filter as the rollups read it (an `event:goal` filter resolved to its goals' rows).
    filter: Option<Filter>,
    /// The goals an `event:goal` filter named (`None`: no filter on goals). `conversion_rate`
    /// is defined with one.
    goal_filter: Option<Vec<Goal>>,
    /// The site's configured goals, read only for a query about goals.
    goals: Vec<Goal>,
    /// Add the imported layer where the query allows (`with_imported=true`).
    with_imported: bool,
}

impl Request {
    /// What the answer depends on besides the data: the resolved UTC range (not the period's
    /// name, whose meaning moves with the clock), the metrics, the filter and the imports.
    fn cache_key(&self) -> String {
        format!(
            "{}|{}|{:?}|{:?}|{:?}|{}",
            self.range.from,
            self.range.to,
            self.metrics,
            self.filter,
            self.goals,
            self.with_imported
        )
    }

    /// The metrics the rollups compute: all but `conversion_rate`, a ratio of two of them
    /// (visitors when it was the only one).
    fn counted_metrics(&self) -> Vec<Metric> {
        let counted: Vec<Metric> = self
            .metrics
            .iter()
            .copied()
            .filter(|&m| m != Metric::ConversionRate)
            .collect();
        if counted.is_empty() {
            vec![Metric::Visitors]
        } else {
            counted
        }
    }

    /// A group of what the filter selects: a page goal's conversions are its page views (the
    /// goals of one filter are all of one kind).
    fn filtered(&self, group: Group) -> Group {
        match self.goal_filter.as_deref() {
            Some([goal, ..]) => goals::completions(goal, group),
            _ => group,
        }
    }

    fn wants_conversion_rate(&self) -> bool {
        self.metrics.contains(&Metric::ConversionRate)
    }

    /// `conversion_rate` is defined for a goal: without an `event:goal` filter, a `400`.
    fn check_conversion_rate_has_goal(&self) -> Result<(), ApiError> {
        if self.wants_conversion_rate() && self.goal_filter.is_none() {
            return Err(goals::needs_goal());
        }
        Ok(())
    }

    /// The whole of `scope` as [`Self::base_visitors`] counts it when a conversion rate is asked
    /// for; an empty group otherwise (nothing is read).
    async fn base_total(
        &self,
        client: &impl tokio_postgres::GenericClient,
        scope: Scope<'_>,
    ) -> Result<Group, ApiError> {
        if !self.wants_conversion_rate() {
            return Ok(Group::default());
        }
        let groups = self.base_visitors(client, scope, Grouping::None).await?;
        Ok(groups.into_values().next().unwrap_or_default())
    }

    /// The visitors of `scope` without its goal filter, imports added where asked: what a
    /// conversion rate is a share of.
    async fn base_visitors(
        &self,
        client: &impl tokio_postgres::GenericClient,
        scope: Scope<'_>,
        grouping: Grouping,
    ) -> Result<BTreeMap<GroupKey, Group>, ApiError> {
        let scope = Scope {
            filter: if self.goal_filter.is_some() {
                None
            } else {
                scope.filter
            },
            ..scope
        };
        let mut groups = compute(client, scope, None, grouping, &[Metric::Visitors], None).await?;
        self.add_imports(client, scope, None, grouping, &mut groups)
            .await?;
        Ok(groups)
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

/// `by_goal`: the query breaks down by `event:goal`, so it needs the site's goals even without a
/// goal filter.
async fn resolve(
    state: &AppState,
    owner: &Owner,
    params: &StatsParams,
    by_goal: bool,
) -> Result<Request, ApiError> {
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
    // Only a query about goals reads them: the others answer from the cache without it.
    let on_goals = goals::is_goal_filter(filter.as_ref());
    let goals = if on_goals || by_goal {
        let client = state.pool.get().await.map_err(ApiError::unavailable)?;
        beacon_store::goals::list(&**client, &site.domain)
            .await
            .map_err(ApiError::unavailable)?
    } else {
        Vec::new()
    };
    let (filter, goal_filter) = match filter {
        Some(f) if on_goals => {
            let chosen = goals::named(&goals, &f)?;
            (Some(goals::rollup_filter(&chosen)?), Some(chosen))
        }
        other => (other, None),
    };
    Ok(Request {
        site,
        range,
        metrics,
        filter,
        goal_filter,
        goals,
        with_imported,
    })
}

/// Visitors in the last 5 minutes: a bare number.
#[utoipa::path(get, path = "/api/v1/stats/realtime/visitors", tag = "stats",
    params(RealtimeParams), responses((status = 200, description = "Distinct visitors in the last five minutes.", body = u64, content_type = "application/json"), OwnerRefusals))]
pub async fn realtime_visitors(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<RealtimeParams>,
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

fn percent_change(metric: Metric, old: &Value, new: &Value) -> i64 {
    let (old, new) = (old.as_f64().unwrap_or(0.0), new.as_f64().unwrap_or(0.0));
    if matches!(metric, Metric::BounceRate | Metric::ConversionRate) {
        return (new - old).round() as i64;
    }
    if old == 0.0 {
        return if new > 0.0 { 100 } else { 0 };
    }
    ((new - old) / old * 100.0).round() as i64
}

/// Totals for the period, with `compare=previous_period` their change.
#[utoipa::path(get, path = "/api/v1/stats/aggregate", tag = "stats",
    params(StatsParams, CompareParams),
    responses((status = 200, description = "Each metric asked for, for the whole period.", body = AggregateAnswer), OwnerRefusals))]
pub async fn aggregate(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<StatsParams>,
    ApiQuery(compare): ApiQuery<CompareParams>,
) -> Result<Json<AggregateAnswer>, ApiError> {
    let req = resolve(&state, &owner, &params, false).await?;
    let compare = match compare.compare.as_deref() {
        None | Some("") => false,
        Some("previous_period") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "compare '{other}' is not supported; use compare=previous_period"
            )));
        }
    };
    req.check_conversion_rate_has_goal()?;
    let key = format!("aggregate|{}|{compare}", req.cache_key());
    let counted = req.counted_metrics();
    let value = cached(&state, &req.site.domain, &key, || async {
        let mut client = state.pool.get().await.map_err(ApiError::unavailable)?;
        let snapshot = beacon_store::postgres::read_snapshot(&mut client)
            .await
            .map_err(ApiError::unavailable)?;
        let totals = |from, to| {
            let (client, req, counted) = (&*snapshot, &req, &counted);
            async move {
                let scope = Scope {
                    site: &req.site.domain,
                    tz: req.site.timezone,
                    from,
                    to,
                    filter: req.filter.as_ref(),
                };
                let mut groups =
                    compute(client, scope, None, Grouping::None, counted, None).await?;
                let imports = req
                    .add_imports(client, scope, None, Grouping::None, &mut groups)
                    .await?;
                let total = req.filtered(groups.into_values().next().unwrap_or_default());
                // What a conversion rate is a share of: the same period without the goal.
                let base = req.base_total(client, scope).await?;
                Ok::<(Group, Group, Imports), ApiError>((total, base, imports))
            }
        };
        let (current, current_base, imports) = totals(req.range.from, req.range.to).await?;
        let previous = if compare {
            let length = req.range.to - req.range.from;
            let (group, base, _) = totals(req.range.from - length, req.range.from).await?;
            Some((group, base))
        } else {
            None
        };
        let results = req
            .metrics
            .iter()
            .map(|&metric| {
                let value = goals::metric_value(metric, &current, &current_base);
                let change = previous.as_ref().map(|(previous, base)| {
                    percent_change(metric, &goals::metric_value(metric, previous, base), &value)
                });
                (metric.name().to_string(), AggregateValue { value, change })
            })
            .collect();
        Ok(AggregateAnswer {
            results,
            imports: imports.note(),
        })
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

/// Metrics per interval; every interval of the period is present.
#[utoipa::path(get, path = "/api/v1/stats/timeseries", tag = "stats",
    params(StatsParams, IntervalParams),
    responses((status = 200, description = "One row per interval of the period.", body = TimeseriesAnswer), OwnerRefusals))]
pub async fn timeseries(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<StatsParams>,
    ApiQuery(interval): ApiQuery<IntervalParams>,
) -> Result<Json<TimeseriesAnswer>, ApiError> {
    let req = resolve(&state, &owner, &params, false).await?;
    let interval = parse_interval(interval.interval.as_deref(), req.range.interval)?;
    check_series_length(&req.range, interval).map_err(|e| ApiError::bad_request(e.0))?;
    req.check_conversion_rate_has_goal()?;
    let key = format!("timeseries|{}|{interval:?}", req.cache_key());
    let value = cached(&state, &req.site.domain, &key, || async {
        let mut client = state.pool.get().await.map_err(ApiError::unavailable)?;
        let snapshot = beacon_store::postgres::read_snapshot(&mut client)
            .await
            .map_err(ApiError::unavailable)?;
        let grouping = Grouping::Time(interval, req.site.timezone);
        let counted = req.counted_metrics();
        let mut groups = compute(&*snapshot, req.scope(), None, grouping, &counted, None).await?;
        let imports = req
            .add_imports(&*snapshot, req.scope(), None, grouping, &mut groups)
            .await?;
        // Each interval's visitors without the goal: what its conversion rate is a share of.
        let bases = if req.wants_conversion_rate() {
            req.base_visitors(&*snapshot, req.scope(), grouping).await?
        } else {
            BTreeMap::new()
        };
        let bases: BTreeMap<NaiveDateTime, Group> =
            series(&bases, &req.range, interval).into_iter().collect();
        let no_base = Group::default();
        let results = series(&groups, &req.range, interval)
            .into_iter()
            .map(|(t, group)| {
                let group = req.filtered(group);
                let base = bases.get(&t).unwrap_or(&no_base);
                let mut metrics = BTreeMap::new();
                for &metric in &req.metrics {
                    let empty = matches!(metric, Metric::BounceRate | Metric::VisitDuration)
                        && !group.has_visits();
                    let value = if empty {
                        Value::Null
                    } else {
                        goals::metric_value(metric, &group, base)
                    };
                    metrics.insert(metric.name().to_string(), value);
                }
                TimeseriesRow {
                    date: format_interval(t, interval),
                    metrics,
                }
            })
            .collect();
        Ok(TimeseriesAnswer {
            results,
            imports: imports.note(),
        })
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

/// Metrics per value of one property.
#[utoipa::path(get, path = "/api/v1/stats/breakdown", tag = "stats",
    params(StatsParams, BreakdownParams),
    responses((status = 200, description = "One row per value of the property, by visitors.", body = BreakdownAnswer), OwnerRefusals))]
pub async fn breakdown(
    owner: Owner,
    State(state): State<Arc<AppState>>,
    ApiQuery(params): ApiQuery<StatsParams>,
    ApiQuery(breakdown): ApiQuery<BreakdownParams>,
) -> Result<Json<BreakdownAnswer>, ApiError> {
    let asks_goals = breakdown.property.as_deref().map(str::trim) == Some(GOAL);
    let req = resolve(&state, &owner, &params, asks_goals).await?;
    let requested = breakdown.property.as_deref().ok_or_else(|| {
        ApiError::bad_request("The `property` parameter is required for breakdown")
    })?;
    let property = parse_property(requested)?;
    let limit = parse_positive("limit", breakdown.limit.as_deref(), 100, 1000)?;
    let page = parse_positive("page", breakdown.page.as_deref(), 1, usize::MAX)?;
    let by_goal = property == GOAL;
    if req.wants_conversion_rate() && !by_goal {
        return Err(ApiError::bad_request(
            "metrics: `conversion_rate` in a breakdown is given per goal: break down by \
             `event:goal`",
        ));
    }
    let key = format!("breakdown|{}|{property}|{limit}|{page}", req.cache_key());
    let counted = req.counted_metrics();
    let value = cached(&state, &req.site.domain, &key, || async {
        let mut client = state.pool.get().await.map_err(ApiError::unavailable)?;
        let snapshot = beacon_store::postgres::read_snapshot(&mut client)
            .await
            .map_err(ApiError::unavailable)?;
        let (groups, imports, base) = if by_goal {
            goal_groups(&*snapshot, &req, &counted).await?
        } else {
            // Imported rows can lift a value the native rows rank low: rank them all then.
            let top = (!req.with_imported).then(|| page.saturating_mul(limit));
            let mut groups = compute(
                &*snapshot,
                req.scope(),
                Some(&property),
                Grouping::Value,
                &counted,
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
            (groups, imports, Group::default())
        };
        let rank_by = match req.metrics[0] {
            Metric::ConversionRate => Metric::Visitors,
            metric => metric,
        };
        let rows = ranked(groups, rank_by);
        let key = result_key(requested);
        let results = rows
            .into_iter()
            .skip((page - 1).saturating_mul(limit))
            .take(limit)
            .map(|(value, group)| {
                let mut row = BTreeMap::new();
                row.insert(key.to_string(), json!(display_value(&property, &value)));
                for &metric in &req.metrics {
                    row.insert(
                        metric.name().to_string(),
                        goals::metric_value(metric, &group, &base),
                    );
                }
                row
            })
            .collect();
        Ok(BreakdownAnswer {
            results,
            imports: imports.note(),
        })
    })
    .await?;
    Ok(Json(value))
}

/// An `event:goal` breakdown: one group per configured goal (or per goal the filter names),
/// read from its rows, and the visitors of the whole period its conversion rate is a share of.
async fn goal_groups(
    client: &impl tokio_postgres::GenericClient,
    req: &Request,
    counted: &[Metric],
) -> Result<(BTreeMap<GroupKey, Group>, Imports, Group), ApiError> {
    let chosen = match (&req.filter, &req.goal_filter) {
        (_, Some(named)) => named,
        (None, None) => &req.goals,
        (Some(f), None) => {
            return Err(ApiError::bad_request(format!(
                "filtering by {} while breaking down by event:goal cannot be answered from the \
                 rollups; filter or break down by one property at a time",
                f.property
            )));
        }
    };
    let mut groups = BTreeMap::new();
    let mut imports = Imports::NotRequested;
    for goal in chosen {
        let filter = goals::filter_of(goal);
        let scope = Scope {
            filter: Some(&filter),
            ..req.scope()
        };
        let mut found = compute(client, scope, None, Grouping::None, counted, None).await?;
        imports = req
            .add_imports(client, scope, None, Grouping::None, &mut found)
            .await?;
        let group = found.into_values().next().unwrap_or_default();
        groups.insert(
            GroupKey::Value(goal.display_name()),
            goals::completions(goal, group),
        );
    }
    let base = req.base_total(client, req.scope()).await?;
    Ok((groups, imports, base))
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
