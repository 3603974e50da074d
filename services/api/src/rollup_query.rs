//! Reading the rollups: sums of one property's rows over a time range, optionally restricted to
//! some of its values and grouped by value or by local time, with the visitor sketches merged.

use std::collections::BTreeMap;

use beacon_pipeline::sketch::VisitorSketch;
use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use tokio_postgres::types::ToSql;

use crate::error::ApiError;
use crate::period::Interval;

/// Sums over a set of rollup rows.
#[derive(Debug, Clone, Default)]
pub struct Sums {
    pub visitors: VisitorSketch,
    pub pageviews: i64,
    pub events: i64,
    pub visits: i64,
    pub bounces: i64,
    pub duration_ms: i64,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        self.visitors.merge(&other.visitors);
        self.pageviews += other.pageviews;
        self.events += other.events;
        self.visits += other.visits;
        self.bounces += other.bounces;
        self.duration_ms += other.duration_ms;
    }
}

/// Which values of the property to include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    All,
    /// Any of these values (`==`, `|`).
    In(Vec<String>),
    /// None of these values (`!=`).
    NotIn(Vec<String>),
    /// Any of these `LIKE` patterns (`*` wildcards).
    Like(Vec<String>),
    NotLike(Vec<String>),
}

/// How to group the summed rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    None,
    Value,
    Time(Interval, Tz),
}

/// A group's key: the value, or the local start of the time interval.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupKey {
    All,
    Value(String),
    Time(NaiveDateTime),
}

pub struct RollupQuery<'a> {
    pub site: &'a str,
    pub property: &'a str,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub values: &'a ValueMatch,
    pub grouping: Grouping,
}

impl RollupQuery<'_> {
    pub async fn run(
        &self,
        client: &impl tokio_postgres::GenericClient,
    ) -> Result<BTreeMap<GroupKey, Sums>, ApiError> {
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&self.site, &self.property, &self.from, &self.to];
        let list: Vec<&str>;
        let value_clause = match self.values {
            ValueMatch::All => "",
            ValueMatch::In(v)
            | ValueMatch::NotIn(v)
            | ValueMatch::Like(v)
            | ValueMatch::NotLike(v) => {
                list = v.iter().map(String::as_str).collect();
                params.push(&list);
                match self.values {
                    ValueMatch::In(_) => "AND value = ANY($5)",
                    ValueMatch::NotIn(_) => "AND NOT (value = ANY($5))",
                    ValueMatch::Like(_) => "AND value LIKE ANY($5)",
                    _ => "AND NOT (value LIKE ANY($5))",
                }
            }
        };
        let tz_name;
        let group = match self.grouping {
            Grouping::None => "NULL::text".to_string(),
            Grouping::Value => "value".to_string(),
            Grouping::Time(interval, tz) => {
                tz_name = tz.name();
                params.push(&tz_name);
                let n = params.len();
                format!(
                    "date_trunc('{}', bucket AT TIME ZONE ${n})::text",
                    interval.as_sql()
                )
            }
        };
        let sql = format!(
            "SELECT {group} AS g, sum(pageviews)::int8, sum(events)::int8, sum(visits)::int8,
                    sum(bounces)::int8, sum(duration_ms)::int8,
                    array_agg(visitors) FILTER (WHERE visitors IS NOT NULL)
             FROM rollups
             WHERE site = $1 AND property = $2 AND bucket >= $3 AND bucket < $4 {value_clause}
             GROUP BY g"
        );
        let rows = client
            .query(&sql, &params)
            .await
            .map_err(ApiError::unavailable)?;
        let mut groups = BTreeMap::new();
        for row in rows {
            let key = match (self.grouping, row.get::<_, Option<String>>(0)) {
                (Grouping::None, _) | (_, None) => GroupKey::All,
                (Grouping::Value, Some(v)) => GroupKey::Value(v),
                (Grouping::Time(..), Some(t)) => GroupKey::Time(
                    NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S")
                        .map_err(ApiError::unavailable)?,
                ),
            };
            let mut sums = Sums {
                pageviews: row.get(1),
                events: row.get(2),
                visits: row.get(3),
                bounces: row.get(4),
                duration_ms: row.get(5),
                ..Sums::default()
            };
            let sketches: Option<Vec<Vec<u8>>> = row.get(6);
            for bytes in sketches.unwrap_or_default() {
                let sketch = VisitorSketch::from_bytes(&bytes).map_err(ApiError::unavailable)?;
                sums.visitors.merge(&sketch);
            }
            groups.entry(key).or_insert_with(Sums::default).add(&sums);
        }
        Ok(groups)
    }
}

/// A `*` wildcard pattern as a `LIKE` pattern (`**` and `*` both match any run of characters).
pub fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    let mut previous_star = false;
    for c in glob.chars() {
        match c {
            '*' if previous_star => continue,
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        previous_star = c == '*';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_like_patterns() {
        assert_eq!(glob_to_like("/blog/**"), "/blog/%");
        assert_eq!(glob_to_like("/a*b"), "/a%b");
        assert_eq!(glob_to_like("/100%_off"), "/100\\%\\_off");
    }
}
