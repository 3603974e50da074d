//! The ground truth computed from a dataset on its own, and the check of every number the API
//! gives against it: aggregates, time series, breakdowns, a filter, and the `/api/stats` summary.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, Days, Months, NaiveDate, TimeZone};
use serde_json::{Value, json};

use crate::dataset::{
    AGENTS, Dataset, ExpectedVisit, Hit, LANDINGS, NETWORKS, SITES, local_midnight, metrics,
    visits_of,
};

/// How one event property's breakdown value is read from a hit.
type ValueOf<'a> = &'a dyn Fn(&Hit) -> Option<String>;

/// What the test knows about the visit properties of a visit's first hit.
pub fn labeller(dataset: &Dataset) -> impl Fn(&Hit) -> BTreeMap<&'static str, String> + '_ {
    let countries: HashMap<&str, String> = dataset
        .visitors
        .iter()
        .map(|v| {
            let (_, country) = NETWORKS
                .iter()
                .find(|(prefix, _)| v.ip.starts_with(&format!("{prefix}.")))
                .expect("every visitor's address is in one of the dataset's networks");
            (v.ip.as_str(), country.to_string())
        })
        .collect();
    move |hit: &Hit| {
        let landing = &LANDINGS[hit.landing.unwrap_or(0)];
        let visitor = &dataset.visitors[hit.visitor];
        let agent = &AGENTS[visitor.agent];
        let mut props = BTreeMap::from([
            ("visit:source", landing.source.to_string()),
            ("visit:referrer", landing.referrer_label.to_string()),
            ("visit:browser", agent.browser.to_string()),
            ("visit:os", agent.os.to_string()),
            ("visit:device", agent.device.to_string()),
            ("visit:country", countries[visitor.ip.as_str()].clone()),
        ]);
        for (name, value) in [
            "visit:utm_medium",
            "visit:utm_source",
            "visit:utm_campaign",
            "visit:utm_content",
            "visit:utm_term",
        ]
        .into_iter()
        .zip(landing.utm)
        {
            props.insert(name, value.to_string());
        }
        props
    }
}

/// The expected world of one site: its counted hits and visits.
pub struct SiteTruth<'a> {
    pub hits: Vec<&'a Hit>,
    pub visits: Vec<ExpectedVisit>,
}

pub fn site_truth<'a>(
    dataset: &'a Dataset,
    site: &str,
    label: &dyn Fn(&Hit) -> BTreeMap<&'static str, String>,
) -> SiteTruth<'a> {
    let hits: Vec<&Hit> = dataset
        .hits
        .iter()
        .filter(|h| h.site == site && !h.bot)
        .collect();
    let visits = visits_of(&hits, label);
    SiteTruth { hits, visits }
}

impl SiteTruth<'_> {
    pub fn in_range(&self, from: i64, to: i64) -> (Vec<&Hit>, Vec<&ExpectedVisit>) {
        let hits = self
            .hits
            .iter()
            .copied()
            .filter(|h| (from..to).contains(&h.ts_ms))
            .collect();
        let visits = self
            .visits
            .iter()
            .filter(|v| (from..to).contains(&v.start_ms))
            .collect();
        (hits, visits)
    }
}

fn visit_metrics(visits: &[&ExpectedVisit]) -> BTreeMap<&'static str, Value> {
    let n = visits.len() as i64;
    let ratio = |x: i64| if n > 0 { x as f64 / n as f64 } else { 0.0 };
    let visitors: BTreeSet<usize> = visits.iter().map(|v| v.visitor).collect();
    let pageviews: i64 = visits.iter().map(|v| v.pageviews).sum();
    let events: i64 = visits.iter().map(|v| v.events).sum();
    let bounces = visits.iter().filter(|v| v.bounce).count() as i64;
    let duration: i64 = visits.iter().map(|v| v.end_ms - v.start_ms).sum();
    BTreeMap::from([
        ("visitors", json!(visitors.len())),
        ("visits", json!(n)),
        ("pageviews", json!(pageviews)),
        ("events", json!(pageviews + events)),
        (
            "bounce_rate",
            json!((ratio(bounces) * 100.0).round() as i64),
        ),
        (
            "visit_duration",
            json!((ratio(duration) / 1000.0).round() as i64),
        ),
        (
            "views_per_visit",
            json!((ratio(pageviews) * 100.0).round() / 100.0),
        ),
    ])
}

const ALL_METRICS: &str =
    "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";
const VISIT_PROPERTIES: &[&str] = &[
    "visit:source",
    "visit:referrer",
    "visit:utm_medium",
    "visit:utm_source",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:country",
    "visit:browser",
    "visit:os",
    "visit:device",
    "visit:entry_page",
    "visit:exit_page",
];

/// `{"results": {"visitors": {"value": 3}}}` as `{"visitors": 3}`.
fn aggregate_values(body: &Value) -> Value {
    let values: serde_json::Map<String, Value> = body["results"]
        .as_object()
        .expect("results")
        .iter()
        .map(|(k, v)| (k.clone(), v["value"].clone()))
        .collect();
    Value::Object(values)
}

/// The goal a hit completes among those the ground-truth pipeline configures: the event
/// `Signup`, and page views of `/blog/*` (named `Visit /blog/*`).
pub(crate) fn goal_of(h: &Hit) -> Option<String> {
    match h.name.as_str() {
        "Signup" => Some("Signup".into()),
        "pageview" if h.path.starts_with("/blog/") => Some("Visit /blog/*".into()),
        _ => None,
    }
}

/// Whether a hit counts its visitor for `goal`: as [`goal_of`], except that a page goal counts the
/// visitors of every event on its pages, as Beacon reads them from the page rows (ARCHITECTURE.md,
/// "what is approximate": a custom event on a blog page in another hour than its page view).
pub(crate) fn reaches(h: &Hit, goal: &str) -> bool {
    match goal {
        "Visit /blog/*" => h.name != "engagement" && h.path.starts_with("/blog/"),
        _ => goal_of(h).as_deref() == Some(goal),
    }
}

/// Distinct visitors among hits, engagement pings aside (they make no visitor of a row).
pub(crate) fn distinct_visitors<'a>(hits: impl Iterator<Item = &'a Hit>) -> usize {
    hits.filter(|h| h.name != "engagement")
        .map(|h| h.visitor)
        .collect::<BTreeSet<_>>()
        .len()
}

/// Plausible's conversion rate: a percentage with two decimals, 0 without visitors.
pub(crate) fn conversion_rate(converted: usize, visitors: usize) -> Value {
    if visitors == 0 {
        return json!(0.0);
    }
    json!(((converted as f64 * 100.0 / visitors as f64) * 100.0).round() / 100.0)
}

fn shown(property: &str, value: &str) -> String {
    match (property, value) {
        ("visit:source", "") => "Direct / None".into(),
        (_, "") => "(none)".into(),
        (_, v) => v.into(),
    }
}

struct Checker<'a> {
    http: &'a reqwest::Client,
    api: &'a str,
    key: &'a str,
    mismatches: Vec<String>,
    checked: usize,
}

impl Checker<'_> {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(self.key)
            .send()
            .await
            .expect("api answers");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Fetches a breakdown and checks its set of values and every expected row.
    async fn breakdown(
        &mut self,
        what: &str,
        path: &str,
        key: &str,
        expected: BTreeMap<String, BTreeMap<&'static str, Value>>,
    ) {
        let body = self.get(path).await;
        let actual: BTreeMap<String, Value> = body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|row| {
                (
                    row[key].as_str().unwrap_or_default().to_string(),
                    row.clone(),
                )
            })
            .collect();
        let names: BTreeSet<&String> = actual.keys().collect();
        if names != expected.keys().collect() {
            self.mismatches.push(format!(
                "{what}: values {names:?}, expected {:?}",
                expected.keys().collect::<Vec<_>>()
            ));
        }
        for (value, metrics) in &expected {
            let row = actual.get(value).cloned().unwrap_or_default();
            self.compare(&format!("{what}={value}"), &row, metrics);
        }
    }

    /// Fetches one page of a breakdown and checks its values in order and their metrics.
    async fn ranked_page(
        &mut self,
        what: &str,
        path: &str,
        key: &str,
        expected: &[(String, BTreeMap<&'static str, Value>)],
    ) {
        let body = self.get(path).await;
        let rows = body["results"].as_array().cloned().unwrap_or_default();
        let order: Vec<&str> = rows
            .iter()
            .map(|row| row[key].as_str().unwrap_or_default())
            .collect();
        let expected_order: Vec<&str> = expected.iter().map(|(v, _)| v.as_str()).collect();
        if order != expected_order {
            self.mismatches.push(format!(
                "{what}: values {order:?}, expected {expected_order:?}"
            ));
        }
        for ((value, metrics), row) in expected.iter().zip(&rows) {
            self.compare(&format!("{what}={value}"), row, metrics);
        }
    }

    fn compare(&mut self, what: &str, actual: &Value, expected: &BTreeMap<&'static str, Value>) {
        for (metric, value) in expected {
            self.checked += 1;
            if actual.get(*metric) != Some(value) {
                self.mismatches.push(format!(
                    "{what} {metric}: API {:?}, expected {value}",
                    actual.get(*metric)
                ));
            }
        }
    }
}

/// Rows per page in the checks of breakdown pages.
const TOP_PAGE: usize = 2;

/// Checks every metric, series and breakdown of every dataset site against the ground truth.
/// `hourly`: also check hourly series of single days (not after compaction, which keeps days only).
/// Returns how many numbers it compared.
pub async fn verify(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    dataset: &Dataset,
    when: &str,
    hourly: bool,
) -> usize {
    verify_days(http, api, key, dataset, when, hourly, |_| true).await
}

/// [`verify`] checking the single days `day_checked` picks (by index from the first day) —
/// every range spanning days is checked whatever it says.
pub async fn verify_days(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    dataset: &Dataset,
    when: &str,
    hourly: bool,
    day_checked: impl Fn(u32) -> bool,
) -> usize {
    let first_day = dataset.first_day;
    let label = labeller(dataset);
    let mut checker = Checker {
        http,
        api,
        key,
        mismatches: Vec::new(),
        checked: 0,
    };
    let last_day = first_day + Days::new(u64::from(dataset.days));
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    for &(site, tz) in SITES {
        let truth = site_truth(dataset, site, &label);
        assert!(
            truth.visits.iter().any(|v| {
                let start = tz
                    .timestamp_millis_opt(v.start_ms)
                    .earliest()
                    .map(|t| t.date_naive());
                tz.timestamp_millis_opt(v.end_ms)
                    .earliest()
                    .map(|t| t.date_naive())
                    != start
            }),
            "{site}: some visit crosses local midnight"
        );
        let mut ranges: Vec<(String, NaiveDate, NaiveDate, &str)> = (0..=dataset.days)
            .filter(|i| day_checked(*i))
            .map(|i| {
                let d = first_day + Days::new(u64::from(i));
                (
                    format!("period=day&date={}", day(d)),
                    d,
                    d,
                    if hourly { "hour" } else { "date" },
                )
            })
            .collect();
        ranges.push((
            format!("period=custom&date={},{}", day(first_day), day(last_day)),
            first_day,
            last_day,
            "date",
        ));
        let week_end = first_day + Days::new(4);
        ranges.push((
            format!("period=7d&date={}", day(week_end)),
            week_end - Days::new(6),
            week_end,
            "date",
        ));
        ranges.push((
            format!("period=30d&date={}", day(last_day)),
            last_day - Days::new(29),
            last_day,
            "date",
        ));
        let month_start = last_day.with_day(1).expect("a first day");
        ranges.push((
            format!("period=month&date={}", day(last_day)),
            month_start,
            month_start + Months::new(1) - Days::new(1),
            "date",
        ));
        ranges.push((
            format!("period=6mo&date={}", day(last_day)),
            month_start - Months::new(5),
            last_day,
            "month",
        ));

        for (period, first, last, interval) in &ranges {
            let from = local_midnight(tz, *first).timestamp_millis();
            let to = local_midnight(tz, *last + Days::new(1)).timestamp_millis();
            let (hits, visits) = truth.in_range(from, to);
            let what = format!("{site} {period}");

            let aggregate = checker
                .get(&format!(
                    "/api/v1/stats/aggregate?site_id={site}&{period}&metrics={ALL_METRICS}"
                ))
                .await;
            let values = aggregate_values(&aggregate);
            checker.compare(
                &format!("{what} aggregate"),
                &values,
                &metrics(&hits, &visits),
            );

            // Time series: every local interval of the range.
            let series = checker
                .get(&format!(
                    "/api/v1/stats/timeseries?site_id={site}&{period}&interval={interval}&metrics=visitors,pageviews,visits,bounce_rate"
                ))
                .await;
            let points = series["results"].as_array().expect("results").clone();
            let mut starts = Vec::new();
            let mut d = *first;
            while d <= *last {
                if *interval == "month" {
                    if d.day() == 1 {
                        starts.push((day(d), local_midnight(tz, d).timestamp_millis()));
                    }
                } else if *interval == "hour" {
                    for h in 0..24 {
                        let t = tz
                            .from_local_datetime(&d.and_hms_opt(h, 0, 0).expect("an hour"))
                            .earliest()
                            .expect("the hour exists");
                        starts.push((
                            t.format("%Y-%m-%d %H:%M:%S").to_string(),
                            t.timestamp_millis(),
                        ));
                    }
                } else {
                    starts.push((day(d), local_midnight(tz, d).timestamp_millis()));
                }
                d = d + Days::new(1);
            }
            if points.len() != starts.len() {
                checker.mismatches.push(format!(
                    "{what} timeseries has {} points, expected {}",
                    points.len(),
                    starts.len()
                ));
            }
            for (i, (label, start)) in starts.iter().enumerate() {
                let end = starts.get(i + 1).map_or(to, |s| s.1);
                let (h, v) = truth.in_range(*start, end);
                let mut expected = metrics(&h, &v);
                expected
                    .retain(|k, _| ["visitors", "pageviews", "visits", "bounce_rate"].contains(k));
                expected.insert("date", json!(label));
                if v.is_empty() {
                    // Plausible's series leave the bounce rate of an interval without visits empty.
                    expected.insert("bounce_rate", Value::Null);
                }
                let point = points.get(i).cloned().unwrap_or_default();
                checker.compare(&format!("{what} timeseries {label}"), &point, &expected);
            }

            // A goal's series: its visitors, conversions and conversion rate in every interval.
            let goal_series = checker
                .get(&format!(
                    "/api/v1/stats/timeseries?site_id={site}&{period}&interval={interval}&metrics=visitors,events,conversion_rate&filters=event:goal%3D%3DVisit%20%2Fblog%2F%2A"
                ))
                .await;
            let goal_points = goal_series["results"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (i, (label, start)) in starts.iter().enumerate() {
                let end = starts.get(i + 1).map_or(to, |s| s.1);
                let (h, _) = truth.in_range(*start, end);
                let goal = Some("Visit /blog/*");
                let converted = h.iter().filter(|h| goal_of(h).as_deref() == goal).count();
                let visitors =
                    distinct_visitors(h.iter().copied().filter(|h| reaches(h, "Visit /blog/*")));
                let expected = BTreeMap::from([
                    ("date", json!(label)),
                    ("visitors", json!(visitors)),
                    ("events", json!(converted)),
                    (
                        "conversion_rate",
                        conversion_rate(visitors, distinct_visitors(h.iter().copied())),
                    ),
                ]);
                let point = goal_points.get(i).cloned().unwrap_or_default();
                checker.compare(
                    &format!("{what} goal timeseries {label}"),
                    &point,
                    &expected,
                );
            }

            // Breakdowns by every visit property.
            for property in VISIT_PROPERTIES {
                let mut groups: BTreeMap<String, Vec<&ExpectedVisit>> = BTreeMap::new();
                for v in &visits {
                    groups
                        .entry(shown(property, &v.props[property]))
                        .or_default()
                        .push(v);
                }
                let expected = groups
                    .into_iter()
                    .map(|(value, group)| (value, visit_metrics(&group)))
                    .collect();
                checker
                    .breakdown(
                        &format!("{what} breakdown {property}"),
                        &format!("/api/v1/stats/breakdown?site_id={site}&{period}&property={property}&metrics={ALL_METRICS}&limit=1000"),
                        property.trim_start_matches("visit:"),
                        expected,
                    )
                    .await;
            }

            // Breakdowns by event properties.
            // (`event:goal` is checked with the conversion rates below.)
            let event_properties: [(&str, &str, ValueOf); 2] = [
                ("event:page", "page", &|h: &Hit| Some(h.path.clone())),
                ("event:props:plan", "plan", &|h: &Hit| {
                    h.props.get("plan").cloned()
                }),
            ];
            for (property, key, value_of) in event_properties {
                let mut groups: BTreeMap<String, Vec<&Hit>> = BTreeMap::new();
                for h in hits.iter().copied().filter(|h| h.name != "engagement") {
                    if let Some(v) = value_of(h) {
                        groups.entry(v).or_default().push(h);
                    }
                }
                let expected: BTreeMap<String, BTreeMap<&'static str, Value>> = groups
                    .into_iter()
                    .map(|(value, group)| {
                        let mut m = metrics(&group, &[]);
                        m.retain(|k, _| ["visitors", "pageviews", "events"].contains(k));
                        (value, m)
                    })
                    .collect();
                // Pages of a short list ranked by visitors rank exactly as the full list. (With
                // this dataset's few values the API reads every sketch in one round; skipping
                // values that cannot rank is tested in services/api/src/top_values.rs.)
                let mut ranking: Vec<(&String, i64)> = expected
                    .iter()
                    .map(|(value, m)| (value, m["visitors"].as_i64().unwrap_or(0)))
                    .collect();
                ranking.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                for page in 1..=2 {
                    let from = (page - 1) * TOP_PAGE;
                    let rows: Vec<(String, BTreeMap<&'static str, Value>)> = ranking
                        .iter()
                        .skip(from)
                        .take(TOP_PAGE)
                        .map(|(value, _)| {
                            let mut m = expected[*value].clone();
                            m.remove("events");
                            ((*value).clone(), m)
                        })
                        .collect();
                    checker
                        .ranked_page(
                            &format!("{what} breakdown {property} page {page} of {TOP_PAGE}"),
                            &format!("/api/v1/stats/breakdown?site_id={site}&{period}&property={property}&metrics=visitors,pageviews&limit={TOP_PAGE}&page={page}"),
                            key,
                            &rows,
                        )
                        .await;
                }
                checker
                    .breakdown(
                        &format!("{what} breakdown {property}"),
                        &format!("/api/v1/stats/breakdown?site_id={site}&{period}&property={property}&metrics=visitors,pageviews,events&limit=1000"),
                        key,
                        expected,
                    )
                    .await;
            }

            // Conversion rates: a goal's visitors over the period's, per goal and with a filter.
            let site_visitors = distinct_visitors(hits.iter().copied());
            let mut by_goal: BTreeMap<String, Vec<&Hit>> = BTreeMap::new();
            for h in hits.iter().copied() {
                if let Some(goal) = goal_of(h) {
                    by_goal.entry(goal).or_default().push(h);
                }
            }
            let expected: BTreeMap<String, BTreeMap<&'static str, Value>> = by_goal
                .iter()
                .map(|(goal, group)| {
                    let visitors =
                        distinct_visitors(hits.iter().copied().filter(|h| reaches(h, goal)));
                    let m = BTreeMap::from([
                        ("visitors", json!(visitors)),
                        ("events", json!(group.len())),
                        ("conversion_rate", conversion_rate(visitors, site_visitors)),
                    ]);
                    (goal.clone(), m)
                })
                .collect();
            for (goal, metrics) in &expected {
                let body = checker
                    .get(&format!(
                        "/api/v1/stats/aggregate?site_id={site}&{period}&metrics=visitors,events,conversion_rate&filters=event:goal%3D%3D{}",
                        goal.replace(' ', "%20").replace('/', "%2F").replace('*', "%2A")
                    ))
                    .await;
                checker.compare(
                    &format!("{what} aggregate event:goal=={goal}"),
                    &aggregate_values(&body),
                    metrics,
                );
            }
            checker
                .breakdown(
                    &format!("{what} breakdown event:goal conversion_rate"),
                    &format!("/api/v1/stats/breakdown?site_id={site}&{period}&property=event:goal&metrics=visitors,events,conversion_rate"),
                    "goal",
                    expected,
                )
                .await;

            // Filters: `==`, `!=`, `|` on a visit property; a `*` wildcard on pages.
            type VisitTest<'a> = &'a dyn Fn(&ExpectedVisit) -> bool;
            let visit_filters: [(&str, VisitTest); 3] = [
                ("visit:source%3D%3DGoogle", &|v| {
                    v.props["visit:source"] == "Google"
                }),
                ("visit:source!%3DGoogle", &|v| {
                    v.props["visit:source"] != "Google"
                }),
                ("visit:source%3D%3DGoogle%7CHacker%20News", &|v| {
                    ["Google", "Hacker News"].contains(&v.props["visit:source"].as_str())
                }),
            ];
            for (filter, keep) in visit_filters {
                let filtered = checker
                    .get(&format!("/api/v1/stats/aggregate?site_id={site}&{period}&metrics=visitors,visits,bounce_rate,pageviews&filters={filter}"))
                    .await;
                let kept: Vec<&ExpectedVisit> =
                    visits.iter().copied().filter(|v| keep(v)).collect();
                let mut expected = visit_metrics(&kept);
                expected
                    .retain(|k, _| ["visitors", "visits", "bounce_rate", "pageviews"].contains(k));
                let values = aggregate_values(&filtered);
                checker.compare(&format!("{what} filtered by {filter}"), &values, &expected);
            }
            let blog = checker
                .get(&format!("/api/v1/stats/aggregate?site_id={site}&{period}&metrics=visitors,pageviews&filters=event:page%3D%3D/blog/**"))
                .await;
            let blog_hits: Vec<&Hit> = hits
                .iter()
                .copied()
                .filter(|h| h.path.starts_with("/blog/"))
                .collect();
            let mut expected = metrics(&blog_hits, &[]);
            expected.retain(|k, _| ["visitors", "pageviews"].contains(k));
            checker.compare(
                &format!("{what} filtered by /blog/**"),
                &aggregate_values(&blog),
                &expected,
            );
        }

        // The dashboard's summary agrees too.
        let (period, first, last, _) = &ranges[ranges.len() - 2];
        let from = local_midnight(tz, *first).timestamp_millis();
        let to = local_midnight(tz, *last + Days::new(1)).timestamp_millis();
        let (hits, visits) = truth.in_range(from, to);
        let summary = checker
            .get(&format!("/api/stats?site={site}&{period}"))
            .await;
        let mut expected = metrics(&hits, &visits);
        expected.remove("events");
        checker.compare(&format!("{site} /api/stats"), &summary, &expected);
        let top_source = &summary["top_sources"][0];
        let mut by_source: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for v in &visits {
            by_source
                .entry(shown("visit:source", &v.props["visit:source"]))
                .or_default()
                .insert(v.visitor);
        }
        let best = by_source.values().map(BTreeSet::len).max().unwrap_or(0);
        if visits.is_empty() {
            // A range without visits (the month of a dataset's last day, when that day is the
            // 1st) has no top source at all.
            checker.checked += 1;
            if !summary["top_sources"].as_array().is_some_and(Vec::is_empty) {
                checker.mismatches.push(format!(
                    "{site} /api/stats top sources of a range without visits: {}",
                    summary["top_sources"]
                ));
            }
        } else {
            checker.compare(
                &format!("{site} /api/stats top source"),
                top_source,
                &BTreeMap::from([("visitors", json!(best))]),
            );
        }
    }

    assert!(
        checker.checked > 1000,
        "only {} numbers checked",
        checker.checked
    );
    assert!(
        checker.mismatches.is_empty(),
        "{when}: {} of {} numbers differ from the ground truth, e.g.:\n{}",
        checker.mismatches.len(),
        checker.checked,
        checker
            .mismatches
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    checker.checked
}
