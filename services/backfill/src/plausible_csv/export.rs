//! `beacon export --format plausible-csv`: the site's statistics as Plausible's export zip, for
//! Plausible (or Beacon's own `import --format plausible-csv`) to import. Written from the day rows
//! of the rollups: each row's visitors are that day's unique visitors of that value, as Plausible
//! computes them. A table pairs dimensions Beacon keeps apart (a source with its referrer and UTM
//! tags, a browser with its version), so each row names one dimension and leaves the others empty;
//! visits still open are not in the day rows yet.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};

use beacon_pipeline::rollup::{TOTAL, VISITS};
use beacon_store::Pool;
use beacon_store::rollups::{DayRow, day_rows};
use chrono::NaiveDate;

use super::{TABLES, Table};
use crate::export::{ExportError, ExportRequest, resolve};
use crate::range::DayRange;

/// What an aggregate export wrote.
#[derive(Debug, Default, serde::Serialize)]
pub struct AggregateExportSummary {
    pub site: String,
    pub first_day: String,
    pub last_day: String,
    /// Rows written, over all tables.
    pub rows: u64,
    pub seconds: f64,
}

/// Writes the zip of the range's tables to `out`.
pub async fn export(
    pool: &Pool,
    request: &ExportRequest,
    out: &mut impl Write,
) -> Result<AggregateExportSummary, ExportError> {
    let started = std::time::Instant::now();
    let range = resolve(pool, request).await?;
    let mut properties = vec![TOTAL, VISITS];
    properties.extend(
        TABLES
            .iter()
            .filter_map(|t| t.dimensions.first().map(|d| d.1)),
    );
    let client = pool.get().await.map_err(beacon_store::StoreError::from)?;
    let rows = day_rows(
        &**client,
        &range.site,
        &properties,
        range.from_ms,
        range.to_ms,
    )
    .await?;
    let mut by_property: BTreeMap<&str, Vec<&DayRow>> = BTreeMap::new();
    for row in &rows {
        by_property
            .entry(row.property.as_str())
            .or_default()
            .push(row);
    }
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // Plausible writes its entries stored, not compressed.
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let mut written = 0u64;
    for table in &TABLES {
        let csv = table_csv(table, &range, &by_property, &mut written)?;
        zip.start_file(table.file_name(range.first_day, range.last_day), options)
            .map_err(zip_write_error)?;
        zip.write_all(&csv)?;
    }
    let bytes = zip.finish().map_err(zip_write_error)?.into_inner();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(AggregateExportSummary {
        site: range.site.clone(),
        first_day: range.first_day.to_string(),
        last_day: range.last_day.to_string(),
        rows: written,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One table's CSV: its header, then a line per day row of its first dimension (the site's
/// totals for `imported_visitors`).
fn table_csv(
    table: &Table,
    range: &DayRange,
    by_property: &BTreeMap<&str, Vec<&DayRow>>,
    written: &mut u64,
) -> Result<Vec<u8>, ExportError> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(table.columns).map_err(csv_write_error)?;
    let day = |row: &DayRow| range.day_of(row.day_start_ms);
    let lines: Vec<(NaiveDate, DayRow)> = match table.dimensions.first() {
        None => totals(by_property, &day),
        Some(&(_, property)) => by_property
            .get(property)
            .into_iter()
            .flatten()
            .filter(|row| kept(property, row))
            .map(|row| (day(row), (*row).clone()))
            .collect(),
    };
    for (date, row) in lines {
        let fields: Vec<String> = table
            .columns
            .iter()
            .map(|&column| match column {
                "date" => date.to_string(),
                "hostname" => range.site.clone(),
                "city" => "0".into(),
                _ if table.dimensions.first().map(|d| d.0) == Some(column) => row.value.clone(),
                // The table's other dimensions (a source's referrer, a browser's version).
                _ if table.dimensions.iter().any(|d| d.0 == column) => String::new(),
                _ => counter(&row, column),
            })
            .collect();
        csv.write_record(&fields).map_err(csv_write_error)?;
        *written += 1;
    }
    csv.into_inner()
        .map_err(|e| ExportError::Write(e.into_error()))
}

/// Whether a day row belongs in its table: pages that had page views, custom events (not page
/// views), known countries (Plausible's export leaves unknown ones out).
fn kept(property: &str, row: &DayRow) -> bool {
    match property {
        "event:page" => row.pageviews > 0,
        "event:name" => row.value != "pageview" && row.events > 0,
        "visit:country" => !row.value.is_empty(),
        _ => true,
    }
}

/// A counter column's value: visits under each table's name for them, durations in whole
/// seconds (Plausible's `visit_duration` is a sum of seconds), what Beacon does not keep as 0.
fn counter(row: &DayRow, column: &str) -> String {
    match column {
        "visitors" => row.visitors.to_string(),
        "pageviews" => row.pageviews.to_string(),
        "events" => row.events.to_string(),
        "visits" | "entrances" | "exits" => row.visits.to_string(),
        "bounces" => row.bounces.to_string(),
        "visit_duration" => ((row.duration_ms + 500) / 1000).to_string(),
        _ => "0".into(),
    }
}

/// `imported_visitors`: visitors and page views from the site's event rows, visits, bounces and
/// durations from its visit rows, per day.
fn totals(
    by_property: &BTreeMap<&str, Vec<&DayRow>>,
    day: &dyn Fn(&DayRow) -> NaiveDate,
) -> Vec<(NaiveDate, DayRow)> {
    let mut days: BTreeMap<NaiveDate, DayRow> = BTreeMap::new();
    for row in by_property.get(TOTAL).into_iter().flatten() {
        let total = days.entry(day(row)).or_default();
        total.visitors = row.visitors;
        total.pageviews = row.pageviews;
    }
    for row in by_property.get(VISITS).into_iter().flatten() {
        let total = days.entry(day(row)).or_default();
        total.visits = row.visits;
        total.bounces = row.bounces;
        total.duration_ms = row.duration_ms;
    }
    days.into_iter().collect()
}

fn csv_write_error(e: csv::Error) -> ExportError {
    ExportError::Write(crate::import::csv_error(e))
}

fn zip_write_error(e: zip::result::ZipError) -> ExportError {
    ExportError::Write(match e {
        zip::result::ZipError::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    })
}
