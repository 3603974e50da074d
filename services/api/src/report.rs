//! Plausible's metrics computed from the rollups, for a range, an optional filter and an optional
//! breakdown or time grouping — and a clear refusal for what the rollups cannot answer exactly.

use std::collections::BTreeMap;

use beacon_pipeline::rollup::{TOTAL, VISITS};
use beacon_store::imported_daily::DailySums;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::grouping::Grouping;
use crate::rollup_query::{GroupKey, RollupQuery, Sums, ValueMatch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Events,
    /// Visitors who completed the goal of an `event:goal` filter or breakdown row, as a
    /// percentage of the visitors of the same period (computed against them in `goals.rs`).
    ConversionRate,
}

impl Metric {
    pub fn parse(name: &str) -> Result<Self, ApiError> {
        Ok(match name.trim() {
            "visitors" => Metric::Visitors,
            "visits" => Metric::Visits,
            "pageviews" => Metric::Pageviews,
            "views_per_visit" => Metric::ViewsPerVisit,
            "bounce_rate" => Metric::BounceRate,
            "visit_duration" => Metric::VisitDuration,
            "events" => Metric::Events,
            "conversion_rate" => Metric::ConversionRate,
            other => {
                return Err(ApiError::bad_request(format!(
                    "The metric `{other}` is not recognized. Find valid metrics from the \
                     documentation: visitors, visits, pageviews, views_per_visit, bounce_rate, \
                     visit_duration, events, conversion_rate"
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Visitors => "visitors",
            Metric::Visits => "visits",
            Metric::Pageviews => "pageviews",
            Metric::ViewsPerVisit => "views_per_visit",
            Metric::BounceRate => "bounce_rate",
            Metric::VisitDuration => "visit_duration",
            Metric::Events => "events",
            Metric::ConversionRate => "conversion_rate",
        }
    }

    /// Whether the metric is about visits (needs visit rows).
    fn needs_visits(self) -> bool {
        matches!(
            self,
            Metric::Visits | Metric::ViewsPerVisit | Metric::BounceRate | Metric::VisitDuration
        )
    }
}

/// One filter the rollups can answer: a single property with a value match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub property: String,
    pub values: ValueMatch,
}

/// The sums a group's metrics are computed from: event rows and visit rows, and the visitors of
/// imported rows (their counters are added to the sums).
#[derive(Debug, Clone, Default)]
pub struct Group {
    events: Sums,
    visits: Sums,
    imported_visitors: i64,
}

impl Group {
    /// Whether any visit is in the group (Plausible leaves bounce rate and visit duration empty in
    /// a time series interval without visits).
    pub fn has_visits(&self) -> bool {
        self.visits.visits > 0
    }

    /// Nothing counted (a row whose visits all moved elsewhere is empty too).
    pub fn is_empty(&self) -> bool {
        self.events.pageviews == 0
            && self.events.events == 0
            && self.visits.visits == 0
            && self.imported_visitors == 0
    }

    /// Adds imported rows: their counters to the sums, their (daily, summed) visitors apart.
    pub fn add_imported(&mut self, imported: &DailySums) {
        let add = |sum: &mut i64, n: i64| *sum = sum.saturating_add(n);
        add(&mut self.events.pageviews, imported.pageviews);
        add(&mut self.events.events, imported.events);
        add(&mut self.visits.visits, imported.visits);
        add(&mut self.visits.bounces, imported.bounces);
        add(
            &mut self.visits.duration_ms,
            imported.duration_s.saturating_mul(1000),
        );
        add(&mut self.visits.pageviews, imported.pageviews);
        add(&mut self.imported_visitors, imported.visitors);
    }

    pub fn value(&self, metric: Metric) -> Value {
        let visits = self.visits.visits;
        let ratio = |n: i64| {
            if visits > 0 {
                n as f64 / visits as f64
            } else {
                0.0
            }
        };
        match metric {
            Metric::Visitors => json!(self.visitors()),
            Metric::Pageviews => json!(self.events.pageviews),
            Metric::Events => json!(self.events.pageviews + self.events.events),
            Metric::Visits => json!(visits),
            Metric::BounceRate => json!((ratio(self.visits.bounces) * 100.0).round() as i64),
            Metric::VisitDuration => {
                json!((ratio(self.visits.duration_ms) / 1000.0).round() as i64)
            }
            Metric::ViewsPerVisit => {
                json!((ratio(self.visits.pageviews) * 100.0).round() / 100.0)
            }
            // A ratio of two groups: `conversion_rate` in goals.rs.
            Metric::ConversionRate => Value::Null,
        }
    }

    /// Distinct visitors (the native rows' sketch and the imported days' visitors).
    pub fn visitors(&self) -> i64 {
        (self.events.visitors.count() as i64).saturating_add(self.imported_visitors)
    }

    /// The group of a page goal: its conversions are the page views, not the custom events
    /// sent from the pages.
    pub fn page_views_only(mut self) -> Self {
        self.events.events = 0;
        self
    }
}

fn is_visit_property(property: &str) -> bool {
    property.starts_with("visit:")
}

/// Which rows a report reads: a site, a UTC range `[from, to)`, and an optional filter.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub site: &'a str,
    pub tz: chrono_tz::Tz,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub filter: Option<&'a Filter>,
}

/// Computes groups of sums for `metrics` in `scope`. `top`: the caller shows only the first
/// `top` groups ranked by `metrics[0]`, so groups that provably rank lower may be left out.
pub async fn compute(
    client: &impl tokio_postgres::GenericClient,
    scope: Scope<'_>,
    breakdown: Option<&str>,
    grouping: Grouping,
    metrics: &[Metric],
    top: Option<usize>,
) -> Result<BTreeMap<GroupKey, Group>, ApiError> {
    let Scope {
        site,
        tz,
        from,
        to,
        filter,
    } = scope;
    let all = ValueMatch::All;
    let (property, values) = match (breakdown, filter) {
        (None, None) => (None, &all),
        (Some(b), None) => (Some(b), &all),
        (None, Some(f)) => (Some(f.property.as_str()), &f.values),
        (Some(b), Some(f)) if b == f.property => (Some(b), &f.values),
        (Some(b), Some(f)) => {
            return Err(ApiError::bad_request(format!(
                "filtering by {} while breaking down by {b} cannot be answered from the \
                 rollups; filter or break down by one property at a time",
                f.property
            )));
        }
    };
    let query = |property, values| RollupQuery {
        site,
        tz,
        property,
        from,
        to,
        values,
        grouping,
    };
    match property {
        None => {
            let events = query(TOTAL, &all).run(client).await?;
            let visits = if metrics.iter().any(|m| m.needs_visits()) {
                query(VISITS, &all).run(client).await?
            } else {
                BTreeMap::new()
            };
            let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
            for (key, sums) in events {
                groups.entry(key).or_default().events = sums;
            }
            for (key, sums) in visits {
                groups.entry(key).or_default().visits = sums;
            }
            Ok(groups)
        }
        Some(property) if is_visit_property(property) => {
            let rows = query(property, values).run(client).await?;
            Ok(rows
                .into_iter()
                .map(|(key, mut sums)| {
                    // Visit rows answer both halves; only the event half's sketch is ever read.
                    let visitors = std::mem::take(&mut sums.visitors);
                    let events = Sums {
                        visitors,
                        ..sums.clone()
                    };
                    (
                        key,
                        Group {
                            events,
                            visits: sums,
                            imported_visitors: 0,
                        },
                    )
                })
                .collect())
        }
        Some(property) => {
            if let Some(m) = metrics.iter().find(|m| m.needs_visits()) {
                return Err(ApiError::bad_request(format!(
                    "Metric `{}` cannot be queried with the event property {property}: Beacon's \
                     rollups keep visit metrics per visit property only",
                    m.name()
                )));
            }
            let query = query(property, values);
            let rows = match top {
                Some(n)
                    if grouping == Grouping::Value
                        && metrics.first() == Some(&Metric::Visitors) =>
                {
                    query.run_top_visitors(client, n).await?
                }
                _ => query.run(client).await?,
            };
            Ok(rows
                .into_iter()
                .map(|(key, events)| {
                    let group = Group {
                        events,
                        visits: Sums::default(),
                        imported_visitors: 0,
                    };
                    (key, group)
                })
                .collect())
        }
    }
}
