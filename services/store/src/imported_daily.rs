//! The imported layer (migration V13): another tool's daily aggregates, per Beacon property,
//! local day and value, kept apart from the rollups. An import replaces what it covers, so
//! importing the same export again leaves the same rows.

use chrono::NaiveDate;
use tokio_postgres::GenericClient;

use crate::error::StoreError;

/// The properties imported rows are kept under ('' is the site's totals): what an import can
/// fill and what a query may read them for.
pub const PROPERTIES: [&str; 21] = [
    "",
    "visit:source",
    "visit:referrer",
    "visit:utm_source",
    "visit:utm_medium",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "event:page",
    "event:hostname",
    "visit:entry_page",
    "visit:exit_page",
    "event:name",
    "event:props:url",
    "event:props:path",
    "visit:country",
    "visit:device",
    "visit:browser",
    "visit:browser_version",
    "visit:os",
    "visit:os_version",
];

/// Imported counters: of one day and property value, or summed over several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DailySums {
    pub visitors: i64,
    pub pageviews: i64,
    pub events: i64,
    pub visits: i64,
    pub bounces: i64,
    pub duration_s: i64,
}

impl DailySums {
    /// Adds `other`, saturating: the numbers are another tool's, and must not overflow.
    pub fn add(&mut self, other: &DailySums) {
        self.visitors = self.visitors.saturating_add(other.visitors);
        self.pageviews = self.pageviews.saturating_add(other.pageviews);
        self.events = self.events.saturating_add(other.events);
        self.visits = self.visits.saturating_add(other.visits);
        self.bounces = self.bounces.saturating_add(other.bounces);
        self.duration_s = self.duration_s.saturating_add(other.duration_s);
    }
}

/// One imported day of one property value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedRow {
    pub property: String,
    pub value: String,
    pub day: NaiveDate,
    pub sums: DailySums,
}

/// Replaces `site`'s imported rows of `properties` on the days `[first, last]` by `rows` (the
/// caller's transaction makes a whole import one change). Returns the rows deleted.
pub async fn replace(
    client: &impl GenericClient,
    site: &str,
    properties: &[&str],
    (first, last): (NaiveDate, NaiveDate),
    rows: &[ImportedRow],
) -> Result<u64, StoreError> {
    let deleted = client
        .execute(
            "DELETE FROM imported_daily WHERE site = $1 AND property = ANY($2)
             AND day >= $3 AND day <= $4",
            &[&site, &properties, &first, &last],
        )
        .await?;
    for chunk in rows.chunks(5_000) {
        let column = |f: fn(&ImportedRow) -> i64| chunk.iter().map(f).collect::<Vec<i64>>();
        let property: Vec<&str> = chunk.iter().map(|r| r.property.as_str()).collect();
        let value: Vec<&str> = chunk.iter().map(|r| r.value.as_str()).collect();
        let day: Vec<NaiveDate> = chunk.iter().map(|r| r.day).collect();
        client
            .execute(
                "INSERT INTO imported_daily
                     (site, property, value, day, visitors, pageviews, events, visits, bounces,
                      duration_s)
                 SELECT $1, * FROM unnest($2::text[], $3::text[], $4::date[], $5::int8[],
                     $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])",
                &[
                    &site,
                    &property,
                    &value,
                    &day,
                    &column(|r| r.sums.visitors),
                    &column(|r| r.sums.pageviews),
                    &column(|r| r.sums.events),
                    &column(|r| r.sums.visits),
                    &column(|r| r.sums.bounces),
                    &column(|r| r.sums.duration_s),
                ],
            )
            .await?;
    }
    Ok(deleted)
}

/// Whether `site` has imported rows on any day of `[first, last]`.
pub async fn any_in(
    client: &impl GenericClient,
    site: &str,
    (first, last): (NaiveDate, NaiveDate),
) -> Result<bool, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM imported_daily WHERE site = $1
                            AND day >= $2 AND day <= $3)",
            &[&site, &first, &last],
        )
        .await?;
    Ok(row.get(0))
}
