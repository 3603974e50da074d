//! `beacon import --format plausible-csv`: Plausible's export (the zip, or its CSV files) into the
//! imported layer. Each file is one table over the days its name gives; its rows are summed per
//! (day, property, value) and replace, in one transaction for the whole run, what earlier imports
//! left on those days of those properties — so importing the same export again changes nothing.
//! Columns are found by header name (as Plausible's importer does); a missing one counts 0.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use beacon_store::imported_daily::{self, DailySums, ImportedRow};
use beacon_store::{Pool, StoreError, sites};
use chrono::NaiveDate;

use super::{TOTALS, Table};
use crate::import::{ImportError, Rejection};
use crate::progress::Progress;
use crate::runs::Tracked;

/// Most zip entries read from one archive.
const MAX_ENTRIES: usize = 1_000;
/// Most bytes read from one CSV file (unpacked).
const MAX_FILE_BYTES: u64 = 4 << 30;
/// Most distinct (day, property, value) rows one run keeps (the whole run is held in memory).
const MAX_ROWS: usize = 5_000_000;
/// Longest dimension value kept.
const MAX_VALUE: usize = 2_048;
/// Rejections reported by line (all are counted).
const REPORTED: usize = 20;

/// What to import.
#[derive(Debug, Clone)]
pub struct AggregateImportRequest {
    pub files: Vec<PathBuf>,
    pub site: String,
    pub progress: bool,
}

/// One table file imported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableImported {
    pub file: String,
    pub table: &'static str,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub rows: u64,
}

/// What an aggregate import did.
#[derive(Debug, Default, serde::Serialize)]
pub struct AggregateImportSummary {
    pub site: String,
    pub tables: Vec<TableImported>,
    /// Rows read, over all tables.
    pub read: u64,
    /// Imported rows of earlier imports these days replaced.
    pub replaced: u64,
    pub rejected: u64,
    pub rejections: Vec<Rejection>,
    pub seconds: f64,
}

/// The days a table's files cover.
type Covered = Vec<(NaiveDate, NaiveDate)>;

/// A row read: its day, its dimensions' values (by property) and its sums.
struct TableRow {
    day: NaiveDate,
    values: Vec<(&'static str, String)>,
    sums: DailySums,
}

/// One run: the tables read so far, summed.
struct Run {
    summary: AggregateImportSummary,
    progress: Arc<Progress>,
    /// Per table: the days its files cover, and its rows.
    tables: HashMap<&'static str, (&'static Table, Covered)>,
    rows: BTreeMap<(&'static str, String, NaiveDate), DailySums>,
}

pub async fn import(
    pool: &Pool,
    redis: Option<&(fred::prelude::Client, beacon_store::live::LiveKeys)>,
    request: &AggregateImportRequest,
) -> Result<AggregateImportSummary, ImportError> {
    let started = std::time::Instant::now();
    let unknown = || ImportError::UnknownSite(request.site.chars().take(100).collect());
    let domain = beacon_pipeline::domain::normalize_domain(&request.site).map_err(|_| unknown())?;
    sites::find(pool, &domain).await?.ok_or_else(unknown)?;
    let progress = Arc::new(Progress::new(
        &format!("import {domain}: rows read"),
        None,
        !request.progress,
    ));
    let tracked = Tracked::start(pool, "import", &domain, "rows", progress.clone()).await;
    let mut run = Run {
        summary: AggregateImportSummary {
            site: domain.clone(),
            ..AggregateImportSummary::default()
        },
        progress: progress.clone(),
        tables: HashMap::new(),
        rows: BTreeMap::new(),
    };
    let outcome = run_import(pool, &domain, &mut run, &request.files).await;
    tracked.finish().await;
    progress.finish();
    outcome?;
    crate::replay::raise_data_version(redis, &domain).await;
    run.summary.seconds = started.elapsed().as_secs_f64();
    Ok(run.summary)
}

/// Reads every file, then replaces the days they cover in one transaction.
async fn run_import(
    pool: &Pool,
    domain: &str,
    run: &mut Run,
    files: &[PathBuf],
) -> Result<(), ImportError> {
    for path in files {
        run.read_path(path)?;
    }
    let mut client = pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    for (table, ranges) in run.tables.values() {
        let properties = table.properties();
        for &range in ranges {
            let rows: Vec<ImportedRow> = run
                .rows
                .iter()
                .filter(|((property, _, day), _)| {
                    properties.contains(property) && (range.0..=range.1).contains(day)
                })
                .map(|((property, value, day), sums)| ImportedRow {
                    property: (*property).to_string(),
                    value: value.clone(),
                    day: *day,
                    sums: *sums,
                })
                .collect();
            run.summary.replaced +=
                imported_daily::replace(&*tx, domain, &properties, range, &rows).await?;
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

impl Run {
    /// A zip of table files, or one table file.
    fn read_path(&mut self, path: &Path) -> Result<(), ImportError> {
        let shown = path.display().to_string();
        let file_error = |source| ImportError::File {
            path: shown.clone(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(file_error)?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(file_error)?;
        drop(file);
        if magic[..n] == *b"PK\x03\x04" {
            let file = std::fs::File::open(path).map_err(file_error)?;
            let mut zip = zip::ZipArchive::new(file).map_err(|e| file_error(zip_error(e)))?;
            if zip.len() > MAX_ENTRIES {
                return Err(file_error(invalid(format!(
                    "holds {} files; Plausible's export holds 10",
                    zip.len()
                ))));
            }
            for i in 0..zip.len() {
                let entry = zip.by_index(i).map_err(|e| file_error(zip_error(e)))?;
                if entry.is_dir() {
                    continue;
                }
                let name = entry
                    .name()
                    .map_err(|e| file_error(zip_error(e)))?
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let shown = format!("{shown}:{name}");
                self.read_table(&shown, &name, entry.take(MAX_FILE_BYTES))?;
            }
            Ok(())
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let file = std::fs::File::open(path).map_err(file_error)?;
            self.read_table(&shown, &name, file.take(MAX_FILE_BYTES))
        }
    }

    /// One table's CSV (`name` gives the table and its days).
    fn read_table(
        &mut self,
        shown: &str,
        name: &str,
        reader: impl Read,
    ) -> Result<(), ImportError> {
        let Some((table, first, last)) = Table::of_file_name(name) else {
            self.reject(
                shown,
                0,
                "is not named like a table of Plausible's export \
                 (imported_<table>_<YYYYMMDD>_<YYYYMMDD>.csv)"
                    .into(),
            );
            return Ok(());
        };
        let file_error = |source| ImportError::File {
            path: shown.to_string(),
            source,
        };
        if first > last {
            return Err(file_error(invalid(
                "its first day is after its last".into(),
            )));
        }
        let ranges = &mut self
            .tables
            .entry(table.name)
            .or_insert((table, Vec::new()))
            .1;
        if ranges.iter().any(|(a, b)| first <= *b && *a <= last) {
            return Err(file_error(invalid(format!(
                "{} is given twice for days between {first} and {last}; import one export at a time",
                table.name
            ))));
        }
        ranges.push((first, last));
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let header = csv
            .byte_headers()
            .map_err(|e| file_error(crate::import::csv_error(e)))?
            .clone();
        let column = |name: &str| header.iter().position(|h| h == name.as_bytes());
        let Some(date_column) = column("date") else {
            return Err(file_error(invalid("has no `date` column".into())));
        };
        let dimensions: Vec<(Option<usize>, &'static str)> = table
            .dimensions
            .iter()
            .map(|(name, property)| (column(name), *property))
            .collect();
        let metric = |name: &str| column(name);
        let metrics: [(Option<usize>, &str); 6] = [
            (metric("visitors"), "visitors"),
            (metric("pageviews"), "pageviews"),
            (metric("events"), "events"),
            (
                table.visits.and_then(metric),
                table.visits.unwrap_or("visits"),
            ),
            (table.visits.and(metric("bounces")), "bounces"),
            (table.visits.and(metric("visit_duration")), "visit_duration"),
        ];
        let mut record = csv::ByteRecord::new();
        let mut rows = 0;
        while csv
            .read_byte_record(&mut record)
            .map_err(|e| file_error(crate::import::csv_error(e)))?
        {
            self.summary.read += 1;
            self.progress.inc(1);
            let line = record.position().map_or(0, |p| p.line());
            match parse_row(&record, date_column, &dimensions, &metrics, (first, last)) {
                Ok(row) => {
                    rows += 1;
                    self.add(table, row).map_err(|e| file_error(invalid(e)))?;
                }
                Err(reason) => self.reject(shown, line, reason),
            }
        }
        self.summary.tables.push(TableImported {
            file: shown.to_string(),
            table: table.name,
            first_day: first,
            last_day: last,
            rows,
        });
        Ok(())
    }

    /// Adds a row's sums to each of its dimensions' values (or the totals).
    fn add(&mut self, table: &Table, row: TableRow) -> Result<(), String> {
        let TableRow { day, values, sums } = row;
        let keys: Vec<(&'static str, String)> = if table.dimensions.is_empty() {
            vec![(TOTALS, String::new())]
        } else {
            values
        };
        for (property, value) in keys {
            self.rows
                .entry((property, value, day))
                .or_default()
                .add(&sums);
        }
        if self.rows.len() > MAX_ROWS {
            return Err(format!(
                "more than {MAX_ROWS} distinct day rows in one run; import the tables one by one"
            ));
        }
        Ok(())
    }

    fn reject(&mut self, file: &str, line: u64, reason: String) {
        self.summary.rejected += 1;
        if self.summary.rejections.len() < REPORTED {
            self.summary.rejections.push(Rejection {
                file: file.to_string(),
                line,
                reason,
            });
        }
    }
}

/// One row of a table file.
fn parse_row(
    record: &csv::ByteRecord,
    date_column: usize,
    dimensions: &[(Option<usize>, &'static str)],
    metrics: &[(Option<usize>, &str); 6],
    (first, last): (NaiveDate, NaiveDate),
) -> Result<TableRow, String> {
    let text = |i: Option<usize>, name: &str| -> Result<String, String> {
        let Some(bytes) = i.and_then(|i| record.get(i)) else {
            return Ok(String::new());
        };
        let text = std::str::from_utf8(bytes).map_err(|_| format!("{name}: is not UTF-8"))?;
        if text.len() > MAX_VALUE {
            return Err(format!("{name}: is longer than {MAX_VALUE} bytes"));
        }
        if text.chars().any(char::is_control) {
            return Err(format!("{name}: holds control characters"));
        }
        Ok(text.trim().to_string())
    };
    let date = text(Some(date_column), "date")?;
    let day = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
        .map_err(|_| "date: is not YYYY-MM-DD".to_string())?;
    if day < first || day > last {
        return Err(format!(
            "date: {day} is outside the file's days ({first} to {last})"
        ));
    }
    let mut values = Vec::with_capacity(dimensions.len());
    for &(column, property) in dimensions {
        let value = text(column, property)?;
        // A custom event's link or path is only set for Plausible's special goals.
        if value.is_empty() && property.starts_with("event:props:") {
            continue;
        }
        values.push((property, value));
    }
    // In the order of `metrics`.
    let mut counts = [0i64; 6];
    for (slot, &(column, name)) in counts.iter_mut().zip(metrics) {
        let value = text(column, name)?;
        if value.is_empty() {
            continue;
        }
        *slot = value
            .parse::<u64>()
            .ok()
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| format!("{name}: is not a whole number ≥ 0"))?;
    }
    let [visitors, pageviews, events, visits, bounces, duration_s] = counts;
    let sums = DailySums {
        visitors,
        pageviews,
        events,
        visits,
        bounces,
        duration_s,
    };
    Ok(TableRow { day, values, sums })
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn zip_error(e: zip::result::ZipError) -> std::io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => invalid(format!("not a readable zip: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `line` as a row of `imported_sources` over 2024-01-01..02.
    fn row(line: &str) -> Result<TableRow, String> {
        let table = &super::super::TABLES[1];
        let header = table.columns.join(",");
        let text = format!("{header}\n{line}\n");
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut record = csv::ByteRecord::new();
        assert!(csv.read_byte_record(&mut record).expect("read"));
        let column = |name: &str| table.columns.iter().position(|c| *c == name);
        let dimensions: Vec<(Option<usize>, &'static str)> = table
            .dimensions
            .iter()
            .map(|(name, property)| (column(name), *property))
            .collect();
        let metrics = [
            (column("visitors"), "visitors"),
            (column("pageviews"), "pageviews"),
            (None, "events"),
            (column("visits"), "visits"),
            (column("bounces"), "bounces"),
            (column("visit_duration"), "visit_duration"),
        ];
        let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).expect("day");
        parse_row(&record, 0, &dimensions, &metrics, (day(1), day(2)))
    }

    #[test]
    fn a_row_reads_its_dimensions_and_sums() {
        let parsed =
            row("2024-01-01,Google,google.com,,email,,,,311,140,151,15020,84").expect("valid");
        assert_eq!(parsed.values[0], ("visit:source", "Google".to_string()));
        assert_eq!(parsed.values[3], ("visit:utm_medium", "email".to_string()));
        let sums = parsed.sums;
        assert_eq!(
            [
                sums.visitors,
                sums.pageviews,
                sums.events,
                sums.visits,
                sums.bounces,
                sums.duration_s
            ],
            [140, 311, 0, 151, 84, 15020]
        );
    }

    #[test]
    fn hostile_rows_are_refused_naming_the_column() {
        let reason = |line: &str| row(line).err().unwrap_or_default();
        assert!(reason("2024-01-01,G,,,,,,,-1,1,1,1,1").starts_with("pageviews:"));
        assert!(
            reason("2024-01-01,G,,,,,,,99999999999999999999,1,1,1,1").starts_with("pageviews:")
        );
        assert!(reason("2024-01-01,\"G\u{0}x\",,,,,,,1,1,1,1,1").starts_with("visit:source:"));
        let long = "x".repeat(MAX_VALUE + 1);
        assert!(reason(&format!("2024-01-01,{long},,,,,,,1,1,1,1,1")).starts_with("visit:source:"));
        assert!(reason("2024-13-01,G,,,,,,,1,1,1,1,1").starts_with("date:"));
        assert!(reason("2023-12-31,G,,,,,,,1,1,1,1,1").contains("outside"));
    }
}
