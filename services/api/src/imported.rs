//! Imported statistics in answers (`with_imported=true`, as Plausible's Stats API): another tool's
//! daily aggregates (`imported_daily`) added to the numbers counted from events — only when the
//! query can be answered from them whole (one property, filtered and broken down by itself; days
//! or months, not hours), otherwise left out with Plausible's warning, never applied in part.
//! Imported visitors are the other tool's daily unique visitors: over several days they can only
//! be summed, and every answer that includes them says so.

use std::collections::BTreeMap;

use beacon_store::imported_daily::{DailySums, PROPERTIES};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::grouping::Grouping;
use crate::period::Interval;
use crate::report::{Filter, Group};
use crate::rollup_query::{GroupKey, ValueMatch};

/// Plausible's words when the query's parameters cannot use imported data.
pub const UNSUPPORTED_QUERY: &str = "Imported stats are not included in the results because query \
     parameters are not supported. For more information, see: \
     https://plausible.io/docs/stats-api#filtering-imported-stats";
/// Plausible's words for an hourly series.
pub const UNSUPPORTED_INTERVAL: &str =
    "Imported stats are not included because the time dimension (i.e. the interval) is too short.";
/// What imported visitors are, said with every answer that includes them.
pub const SUMMED_VISITORS: &str = "Imported visitors are the daily unique visitors of the tool \
     they were imported from, summed over the days: a visitor who came on several days counts \
     once on each.";

/// Whether imported rows went into an answer, and if not, why (Plausible's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imports {
    NotRequested,
    Included,
    NoImportedData,
    UnsupportedQuery,
    UnsupportedInterval,
}

/// What an answer says about imported data (flattened into it): `meta` (as Plausible's v2 names
/// it) and, where Plausible's v1 gives one, `warning`. Empty unless `with_imported` was asked.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportsNote {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ImportsMeta>,
    /// Plausible's warning when imported data was requested but the query cannot use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Whether imported data is in the numbers, and if not why (Plausible's reasons).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportsMeta {
    pub imports_included: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imports_skip_reason: Option<SkipReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imports_warning: Option<String>,
    /// What imported visitors are: summed daily uniques.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imports_note: Option<String>,
}

/// Why imported data was left out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    NoImportedData,
    UnsupportedQuery,
    UnsupportedInterval,
}

impl Imports {
    /// What the answer says about them.
    pub fn note(self) -> ImportsNote {
        let (reason, warning) = match self {
            Imports::NotRequested => return ImportsNote::default(),
            Imports::Included => {
                return ImportsNote {
                    meta: Some(ImportsMeta {
                        imports_included: true,
                        imports_skip_reason: None,
                        imports_warning: None,
                        imports_note: Some(SUMMED_VISITORS.into()),
                    }),
                    warning: None,
                };
            }
            Imports::NoImportedData => (SkipReason::NoImportedData, None),
            Imports::UnsupportedQuery => (SkipReason::UnsupportedQuery, Some(UNSUPPORTED_QUERY)),
            Imports::UnsupportedInterval => {
                (SkipReason::UnsupportedInterval, Some(UNSUPPORTED_INTERVAL))
            }
        };
        ImportsNote {
            meta: Some(ImportsMeta {
                imports_included: false,
                imports_skip_reason: Some(reason),
                imports_warning: warning.map(Into::into),
                imports_note: None,
            }),
            warning: warning.map(Into::into),
        }
    }
}

/// What a report asks of the imported rows.
pub struct ImportedQuery<'a> {
    pub site: &'a str,
    pub tz: Tz,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub breakdown: Option<&'a str>,
    pub filter: Option<&'a Filter>,
    pub grouping: Grouping,
}

impl ImportedQuery<'_> {
    /// The property the imported rows answer this query from, or why they cannot (Plausible's
    /// rule: the filter and the breakdown must be one property the imports keep).
    fn property(&self) -> Result<(&str, ValueMatch), Imports> {
        if let Grouping::Time(Interval::Hour, _) = self.grouping {
            return Err(Imports::UnsupportedInterval);
        }
        let (property, values) = match (self.breakdown, self.filter) {
            (None, None) => ("", ValueMatch::All),
            (Some(b), None) => (b, ValueMatch::All),
            (None, Some(f)) => (f.property.as_str(), f.values.clone()),
            (Some(b), Some(f)) if b == f.property => (b, f.values.clone()),
            (Some(_), Some(_)) => return Err(Imports::UnsupportedQuery),
        };
        if !PROPERTIES.contains(&property) {
            return Err(Imports::UnsupportedQuery);
        }
        Ok((property, values))
    }

    /// Local first and last day of the UTC range.
    fn days(&self) -> (NaiveDate, NaiveDate) {
        let local = |t: DateTime<Utc>| t.with_timezone(&self.tz).date_naive();
        (
            local(self.from),
            local(self.to - TimeDelta::milliseconds(1)),
        )
    }

    /// Adds the imported rows to `groups` when the query allows; says what happened.
    pub async fn add_to(
        &self,
        client: &impl tokio_postgres::GenericClient,
        groups: &mut BTreeMap<GroupKey, Group>,
    ) -> Result<Imports, ApiError> {
        let days = self.days();
        let any = beacon_store::imported_daily::any_in(client, self.site, days)
            .await
            .map_err(ApiError::unavailable)?;
        if !any {
            return Ok(Imports::NoImportedData);
        }
        let (property, values) = match self.property() {
            Ok(found) => found,
            Err(skipped) => return Ok(skipped),
        };
        for (key, sums) in self.fetch(client, property, &values, days).await? {
            groups.entry(key).or_default().add_imported(&sums);
        }
        Ok(Imports::Included)
    }

    async fn fetch(
        &self,
        client: &impl tokio_postgres::GenericClient,
        property: &str,
        values: &ValueMatch,
        (first, last): (NaiveDate, NaiveDate),
    ) -> Result<Vec<(GroupKey, DailySums)>, ApiError> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.site, &property, &first, &last];
        let list = values.listed();
        let value_clause = match &list {
            Some(list) => {
                params.push(list);
                values.condition(params.len())
            }
            None => String::new(),
        };
        let group = match self.grouping {
            Grouping::None => "NULL::text",
            Grouping::Value => "value",
            Grouping::Time(Interval::Month, _) => "to_char(date_trunc('month', day), 'YYYY-MM-DD')",
            Grouping::Time(..) => "to_char(day, 'YYYY-MM-DD')",
        };
        // Imported numbers are another tool's: their sums may pass int8, so they saturate (as
        // adding them to a group does) instead of failing the query.
        let sum = |column: &str| format!("LEAST(sum({column}), {})::int8", i64::MAX);
        let sql = format!(
            "SELECT {group} AS g, {}, {}, {}, {}, {}, {}
             FROM imported_daily
             WHERE site = $1 AND property = $2 AND day >= $3 AND day <= $4 {value_clause}
             GROUP BY g",
            sum("visitors"),
            sum("pageviews"),
            sum("events"),
            sum("visits"),
            sum("bounces"),
            sum("duration_s"),
        );
        let rows = client
            .query(&sql, &params)
            .await
            .map_err(ApiError::unavailable)?;
        rows.iter()
            .map(|row| {
                let key = match (self.grouping, row.get::<_, Option<String>>(0)) {
                    (Grouping::None, _) | (_, None) => GroupKey::All,
                    (Grouping::Value, Some(v)) => GroupKey::Value(v),
                    (Grouping::Time(..), Some(day)) => {
                        let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                            .map_err(ApiError::unavailable)?;
                        GroupKey::Time(day.and_hms_opt(0, 0, 0).unwrap_or_default())
                    }
                };
                let sums = DailySums {
                    visitors: row.get(1),
                    pageviews: row.get(2),
                    events: row.get(3),
                    visits: row.get(4),
                    bounces: row.get(5),
                    duration_s: row.get(6),
                };
                Ok((key, sums))
            })
            .collect()
    }
}

/// `with_imported`: `true` or `false` (absent: false).
pub fn parse_with_imported(value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request("with_imported must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(
        breakdown: Option<&'static str>,
        filter: Option<&'static Filter>,
    ) -> ImportedQuery<'static> {
        ImportedQuery {
            site: "a.example",
            tz: Tz::UTC,
            from: DateTime::<Utc>::MIN_UTC,
            to: DateTime::<Utc>::MAX_UTC,
            breakdown,
            filter,
            grouping: Grouping::Value,
        }
    }

    #[test]
    fn imported_rows_answer_one_kept_property_at_a_time() {
        assert_eq!(query(None, None).property().map(|p| p.0), Ok(""));
        assert_eq!(
            query(Some("visit:source"), None).property().map(|p| p.0),
            Ok("visit:source")
        );
        assert_eq!(
            query(Some("event:props:plan"), None).property().err(),
            Some(Imports::UnsupportedQuery)
        );
        let filter: &'static Filter = Box::leak(Box::new(Filter {
            property: "visit:country".into(),
            values: ValueMatch::In(vec!["DE".into()]),
        }));
        assert_eq!(
            query(Some("visit:country"), Some(filter))
                .property()
                .map(|p| p.0),
            Ok("visit:country")
        );
        assert_eq!(
            query(Some("visit:source"), Some(filter)).property().err(),
            Some(Imports::UnsupportedQuery)
        );
        let mut hourly = query(None, None);
        hourly.grouping = Grouping::Time(Interval::Hour, Tz::UTC);
        assert_eq!(hourly.property().err(), Some(Imports::UnsupportedInterval));
    }

    #[test]
    fn with_imported_is_true_or_false() {
        assert_eq!(parse_with_imported(None).ok(), Some(false));
        assert_eq!(parse_with_imported(Some("true")).ok(), Some(true));
        assert!(parse_with_imported(Some("yes")).is_err());
    }
}
