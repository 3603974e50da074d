//! Reading the rollups: sums of one property's rows over a time range, optionally restricted to
//! some of its values and grouped by value or by local time, with the visitor sketches merged.
//! Visit properties also count the visits still open (not in the rollups until they close),
//! folded with the pipeline's own rules so both halves agree.

use std::collections::BTreeMap;

use beacon_pipeline::rollup::{Delta, Rollup, VISITS};
use beacon_store::zones::Zones;
use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;
use tokio_postgres::types::ToSql;

use crate::error::ApiError;
use crate::grouping::Grouping;
use crate::period::Interval;
use crate::tiling::{Piece, tile};

/// Sums over a set of rollup rows: the same counters and sketch a batch adds to one row.
pub type Sums = Delta;

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

impl ValueMatch {
    /// The values listed (`None` for all), as the SQL parameter of [`ValueMatch::condition`].
    pub fn listed(&self) -> Option<Vec<&str>> {
        match self {
            ValueMatch::All => None,
            ValueMatch::In(v)
            | ValueMatch::NotIn(v)
            | ValueMatch::Like(v)
            | ValueMatch::NotLike(v) => Some(v.iter().map(String::as_str).collect()),
        }
    }

    /// `AND …` on the column `value`, with the listed values as parameter `$n`.
    pub fn condition(&self, n: usize) -> String {
        match self {
            ValueMatch::All => String::new(),
            ValueMatch::In(_) => format!("AND value = ANY(${n})"),
            ValueMatch::NotIn(_) => format!("AND NOT (value = ANY(${n}))"),
            ValueMatch::Like(_) => format!("AND value LIKE ANY(${n})"),
            ValueMatch::NotLike(_) => format!("AND NOT (value LIKE ANY(${n}))"),
        }
    }
}

/// What [`RollupQuery::fetch`] reads of the rows.
#[derive(Debug, Clone, Copy)]
pub enum Read<'a> {
    /// Counters only; the groups' sketches stay empty.
    Counters,
    /// Counters and merged sketches.
    WithSketches,
    /// Counters and merged sketches of these values only.
    SketchesOf(&'a Vec<&'a str>),
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
    /// The site's zone (where its day, week and month rows and open visits' days start).
    pub tz: Tz,
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
        let calendar = Zones::of(self.site, self.tz);
        let pieces = tile(&calendar, self.site, self.from, self.to, self.grouping);
        let mut groups = self.fetch(client, &pieces, Read::WithSketches).await?;
        if self.property.starts_with(VISITS) {
            self.add_open_visits(client, &calendar, &pieces, &mut groups)
                .await?;
        }
        Ok(groups)
    }

    /// The pieces' rows summed by group: with the visitor sketches merged, or (`Read::Counters`)
    /// only the counters, which reads no sketch at all.
    pub async fn fetch(
        &self,
        client: &impl tokio_postgres::GenericClient,
        pieces: &[Piece],
        read: Read<'_>,
    ) -> Result<BTreeMap<GroupKey, Sums>, ApiError> {
        let spans: Vec<&str> = pieces.iter().map(|p| p.span.as_str()).collect();
        let froms: Vec<DateTime<Utc>> = pieces.iter().map(|p| p.from).collect();
        let tos: Vec<DateTime<Utc>> = pieces.iter().map(|p| p.to).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&self.site, &self.property, &spans, &froms, &tos];
        let list = self.values.listed();
        let value_clause = match &list {
            Some(list) => {
                params.push(list);
                self.values.condition(params.len())
            }
            None => String::new(),
        };
        let sketches = match read {
            Read::Counters => "NULL::bytea[]",
            Read::WithSketches | Read::SketchesOf(_) => {
                "array_agg(visitors) FILTER (WHERE visitors IS NOT NULL)"
            }
        };
        let only_clause = match read {
            Read::SketchesOf(values) => {
                params.push(values);
                format!("AND value = ANY(${})", params.len())
            }
            Read::Counters | Read::WithSketches => String::new(),
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
                    sum(bounces)::int8, sum(duration_ms)::int8, {sketches}
             FROM unnest($3::text[], $4::timestamptz[], $5::timestamptz[]) AS p (span, lo, hi)
             JOIN rollups r ON r.site = $1 AND r.property = $2 AND r.span = p.span
                 AND r.bucket >= p.lo AND r.bucket < p.hi
             WHERE true {value_clause} {only_clause}
             GROUP BY g"
        );
        let rows = client
            .query(&sql, &params)
            .await
            .map_err(ApiError::unavailable)?;
        let mut groups: BTreeMap<GroupKey, Sums> = BTreeMap::new();
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
            // Borrowed from the row's buffer: a breakdown reads megabytes of sketches.
            let sketches: Option<Vec<&[u8]>> = row.get(6);
            for bytes in sketches.unwrap_or_default() {
                sums.visitors
                    .merge_stored(bytes)
                    .map_err(ApiError::unavailable)?;
            }
            groups.entry(key).or_default().add(&sums);
        }
        Ok(groups)
    }

    /// Adds the contributions of the open sessions that start in the range.
    pub async fn add_open_visits(
        &self,
        client: &impl tokio_postgres::GenericClient,
        calendar: &Zones,
        pieces: &[Piece],
        groups: &mut BTreeMap<GroupKey, Sums>,
    ) -> Result<(), ApiError> {
        let open = beacon_store::sessions::open_in_range(
            client,
            self.site,
            self.from.timestamp_millis(),
            self.to.timestamp_millis(),
        )
        .await
        .map_err(ApiError::unavailable)?;
        let rollup = Rollup::of_closed(&open, calendar);
        for (key, delta) in rollup.rows.iter().filter(|(k, _)| {
            k.property == self.property && pieces.iter().any(|p| p.holds(k.span, k.bucket_ms))
        }) {
            if !self.values.matches(&key.value) {
                continue;
            }
            let group = match self.grouping {
                Grouping::None => GroupKey::All,
                Grouping::Value => GroupKey::Value(key.value.clone()),
                Grouping::Time(interval, tz) => {
                    GroupKey::Time(local_start(key.bucket_ms, interval, tz))
                }
            };
            groups.entry(group).or_default().add(delta);
        }
        Ok(())
    }
}

/// The local start of the interval holding `unix_ms` (as `date_trunc(unit, t AT TIME ZONE tz)`).
fn local_start(unix_ms: i64, interval: Interval, tz: Tz) -> NaiveDateTime {
    let local = DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .naive_local();
    let day = local.date();
    let start = match interval {
        Interval::Hour => day.and_hms_opt(local.hour(), 0, 0),
        Interval::Day => day.and_hms_opt(0, 0, 0),
        Interval::Month => day.with_day(1).and_then(|d| d.and_hms_opt(0, 0, 0)),
    };
    start.unwrap_or(local)
}

impl ValueMatch {
    /// The match in Rust, as the SQL clause does it.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::All => true,
            ValueMatch::In(v) => v.iter().any(|x| x == value),
            ValueMatch::NotIn(v) => !v.iter().any(|x| x == value),
            ValueMatch::Like(p) => p.iter().any(|p| like(p, value)),
            ValueMatch::NotLike(p) => !p.iter().any(|p| like(p, value)),
        }
    }
}

/// SQL `LIKE` with `%` wildcards and backslash escapes (the patterns [`glob_to_like`] makes).
fn like(pattern: &str, value: &str) -> bool {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), parts.last_mut()) {
                    last.push(next);
                }
            }
            '%' => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    let (first, rest) = parts
        .split_first()
        .map_or(("", &[][..]), |(f, r)| (f.as_str(), r));
    let Some(mut remaining) = value.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part.as_str()) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last.as_str())
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
    fn like_matches_as_sql_does() {
        for (glob, value, expected) in [
            ("/blog/**", "/blog/a/b", true),
            ("/blog/**", "/blog", false),
            ("/a*b", "/ab", true),
            ("/a*b", "/axxb", true),
            ("/a*b", "/axxbc", false),
            ("/100%_off", "/100%_off", true),
            ("/100%_off", "/100x_off", false),
            ("*", "", true),
            ("/x", "/x", true),
            ("/x", "/xy", false),
        ] {
            assert_eq!(like(&glob_to_like(glob), value), expected, "{glob} {value}");
        }
    }

    #[test]
    fn globs_become_like_patterns() {
        assert_eq!(glob_to_like("/blog/**"), "/blog/%");
        assert_eq!(glob_to_like("/a*b"), "/a%b");
        assert_eq!(glob_to_like("/100%_off"), "/100\\%\\_off");
    }
}
