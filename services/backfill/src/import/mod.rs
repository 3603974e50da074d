//! `beacon import`: history from files, through the stream like live traffic, so that the archive
//! and the rollups both get it — enriched by the collector's code, with the lines' own times.
//!
//! Safe to run again at any time: every event has an id (the line's, or one derived from the line
//! and its occurrence, [`ids`]), and the ids handed to the stream are recorded in PostgreSQL
//! (`imported_events`) once JetStream has stored them; a later run skips them. A run killed between
//! the publish and the record publishes those again, and the consumers drop them by id. Bad lines
//! never stop an import: they are counted and the first ones reported by file and line.

pub mod goatcounter;
pub mod ids;
pub mod line;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use beacon_jetstream::{Confirmations, PublishError, Publisher};
use beacon_pipeline::hit::{SenderFacts, VisitorIds};
use beacon_pipeline::user_agent::{BotKind, UserAgentInfo, classify};
use beacon_pipeline::visitor::{Salt, day_salt, opaque_visitor_id, visitor_id};
use beacon_runtime::retry::{RetryPolicy, retry_transient};
use beacon_schemas::{Event, EventId};
use beacon_store::{Pool, StoreError, imports, sites};

use crate::progress::Progress;
use crate::runs::Tracked;
use ids::LineIds;
use line::{Identity, ParsedLine, parse_line};

/// Longest line read; a longer one is rejected whole.
pub const MAX_LINE: usize = 64 * 1024;
/// Events published and recorded together.
const BATCH: usize = 1_000;
/// Rejections reported by line (all are counted).
const REPORTED: usize = 20;

/// What an import talks to.
pub struct ImportDeps {
    pub pool: Pool,
    pub publisher: Publisher,
    /// The country of an address (the collector's GeoIP database), if configured.
    pub country: Option<Arc<dyn Fn(IpAddr) -> Option<String> + Send + Sync>>,
}

/// How the files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventFormat {
    /// One JSON event a line ([`line`]).
    Ndjson,
    /// GoatCounter's CSV export, version 2 ([`goatcounter`]).
    GoatcounterCsv,
}

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub files: Vec<PathBuf>,
    pub site: String,
    pub format: EventFormat,
    pub progress: bool,
    /// At most this many events a second handed to the stream (none: as fast as it goes), so
    /// that a large backfill leaves the aggregator room for live traffic.
    pub max_rate: Option<std::num::NonZeroU32>,
}

/// One rejected line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejection {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportSummary {
    pub site: String,
    /// Lines read (blank ones aside).
    pub read: u64,
    /// Events handed to the stream by this run.
    pub imported: u64,
    /// Events imported before (by an earlier run, or earlier in this one).
    pub duplicates_skipped: u64,
    /// Lines whose user agent is a bot's, crawler's or tool's (as the collector drops them).
    pub bots_skipped: u64,
    pub rejected: u64,
    /// The first rejections, by file and line.
    pub rejections: Vec<Rejection>,
    pub seconds: f64,
}

/// Why an import could not run (bad lines are not errors: see [`ImportSummary::rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("--site: no site {0}; add it with `beacon site add`")]
    UnknownSite(String),
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing to the stream: {0} (run the import again: what was stored is skipped)")]
    Publish(#[from] PublishError),
}

/// Runs the import.
pub async fn import(
    deps: &ImportDeps,
    request: &ImportRequest,
) -> Result<ImportSummary, ImportError> {
    let started = std::time::Instant::now();
    let unknown = || ImportError::UnknownSite(printable(&request.site));
    let domain = beacon_pipeline::domain::normalize_domain(&request.site).map_err(|_| unknown())?;
    let site = sites::find(&deps.pool, &domain)
        .await?
        .ok_or_else(unknown)?;
    let key = {
        let client = deps.pool.get().await.map_err(StoreError::from)?;
        imports::import_key(&**client, site.id).await?
    };
    let total: u64 = request
        .files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let progress = Arc::new(Progress::new(
        &format!("import {domain}: bytes read"),
        Some(total),
        !request.progress,
    ));
    let tracked = Tracked::start(&deps.pool, "import", &domain, "bytes", progress.clone()).await;
    let outcome = import_files(deps, request, site.id, domain, key, &progress).await;
    tracked.finish().await;
    let mut summary = outcome?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Reads every file of the request, importing its lines.
async fn import_files(
    deps: &ImportDeps,
    request: &ImportRequest,
    site_id: i64,
    domain: String,
    key: Salt,
    progress: &Progress,
) -> Result<ImportSummary, ImportError> {
    let mut run = Run {
        deps,
        site_id,
        site: domain.clone(),
        key,
        ids: LineIds::default(),
        seen: HashSet::new(),
        pending: Vec::with_capacity(BATCH),
        pace: request.max_rate.map(Pace::new),
        user_agents: UserAgents::default(),
        summary: ImportSummary {
            site: domain,
            ..ImportSummary::default()
        },
    };
    for path in &request.files {
        let shown = path.display().to_string();
        let file_error = |source| ImportError::File {
            path: shown.clone(),
            source,
        };
        let (reader, bytes_read) = open(path).map_err(file_error)?;
        let mut counted = 0;
        let mut count_progress = || {
            let now = bytes_read.load(Ordering::Relaxed);
            progress.inc(now.saturating_sub(counted));
            counted = now;
        };
        match request.format {
            EventFormat::Ndjson => {
                let mut reader = reader;
                let mut number = 0u64;
                while let Some((bytes, whole)) = next_line(&mut reader).map_err(file_error)? {
                    number += 1;
                    count_progress();
                    run.line(&shown, number, &bytes, whole).await?;
                }
            }
            EventFormat::GoatcounterCsv => {
                let mut csv = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(reader);
                let mut record = csv::ByteRecord::new();
                let mut header = true;
                while csv
                    .read_byte_record(&mut record)
                    .map_err(|e| file_error(csv_error(e)))?
                {
                    count_progress();
                    let number = record.position().map_or(0, |p| p.line());
                    if std::mem::take(&mut header) {
                        let fields: Vec<&str> = record
                            .iter()
                            .map(|f| std::str::from_utf8(f).unwrap_or(""))
                            .collect();
                        goatcounter::check_header(&fields).map_err(|e| {
                            file_error(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!("line {number}: {e}"),
                            ))
                        })?;
                        continue;
                    }
                    run.row(&shown, number, &record).await?;
                }
            }
        }
    }
    run.flush().await?;
    progress.finish();
    Ok(run.summary)
}

/// Opens a file for reading, unpacking it when it is gzip (GoatCounter's exports are `.csv.gz`),
/// with a count of the bytes read from the file itself (for progress).
fn open(path: &Path) -> std::io::Result<(Box<dyn BufRead>, Arc<AtomicU64>)> {
    let bytes_read = Arc::new(AtomicU64::new(0));
    let file = CountingReader {
        inner: std::fs::File::open(path)?,
        count: bytes_read.clone(),
    };
    let mut buffered = BufReader::new(file);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(
            buffered,
        )))
    } else {
        Box::new(buffered)
    };
    Ok((reader, bytes_read))
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A CSV reader's error as a file error (reading raw byte records, only I/O can fail).
pub(crate) fn csv_error(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{other:?}")),
    }
}

/// Reads up to and including the next newline, keeping at most [`MAX_LINE`] bytes; `whole` is
/// false when the line was longer. `None` at the end of the file.
fn next_line(reader: &mut impl BufRead) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    let whole = line.ends_with(b"\n") || line.len() <= MAX_LINE;
    if !whole {
        // Skip the rest of the long line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let n = reader
                .by_ref()
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut rest)?;
            if n == 0 || rest.ends_with(b"\n") {
                break;
            }
        }
        line.truncate(MAX_LINE);
    }
    Ok(Some((line, whole)))
}

/// The state of one import run.
struct Run<'a> {
    deps: &'a ImportDeps,
    site_id: i64,
    site: String,
    key: Salt,
    ids: LineIds,
    /// Ids seen in this run (an explicit id repeated in the files is one event).
    seen: HashSet<EventId>,
    pending: Vec<Event>,
    pace: Option<Pace>,
    user_agents: UserAgents,
    summary: ImportSummary,
}

/// Holds an import to a number of events a second, on average since it started.
struct Pace {
    per_second: std::num::NonZeroU32,
    started: tokio::time::Instant,
}

impl Pace {
    fn new(per_second: std::num::NonZeroU32) -> Self {
        Self {
            per_second,
            started: tokio::time::Instant::now(),
        }
    }

    /// Waits until `events` handed over so far are within the rate.
    async fn after(&self, events: u64) {
        let due = Duration::from_secs_f64(events as f64 / f64::from(self.per_second.get()));
        tokio::time::sleep_until(self.started + due).await;
    }
}

/// User agents already classified in this run: history repeats a few thousand of them, and
/// classifying one is the costliest step of a line.
#[derive(Default)]
struct UserAgents(std::collections::HashMap<String, Result<UserAgentInfo, BotKind>>);

impl UserAgents {
    /// Distinct user agents remembered; past it, each is classified every time.
    const CAPACITY: usize = 20_000;

    fn classify(&mut self, user_agent: &str) -> Result<UserAgentInfo, BotKind> {
        if let Some(known) = self.0.get(user_agent) {
            return known.clone();
        }
        let answer = classify(user_agent);
        if self.0.len() < Self::CAPACITY {
            self.0.insert(user_agent.to_string(), answer.clone());
        }
        answer
    }
}

impl Run<'_> {
    async fn line(
        &mut self,
        file: &str,
        number: u64,
        bytes: &[u8],
        whole: bool,
    ) -> Result<(), ImportError> {
        if !whole {
            self.summary.read += 1;
            self.reject(file, number, format!("is longer than {MAX_LINE} bytes"));
            return Ok(());
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.summary.read += 1;
            self.reject(file, number, "is not UTF-8".into());
            return Ok(());
        };
        if text.trim().is_empty() {
            return Ok(());
        }
        self.summary.read += 1;
        let now_ms = chrono::Utc::now().timestamp_millis();
        match parse_line(text, &self.site, now_ms) {
            Ok(parsed) => self.accept((file, number), parsed, text, now_ms).await,
            Err(e) => {
                self.reject(file, number, e.to_string());
                Ok(())
            }
        }
    }

    /// One row of a GoatCounter export (after its header).
    async fn row(
        &mut self,
        file: &str,
        number: u64,
        record: &csv::ByteRecord,
    ) -> Result<(), ImportError> {
        self.summary.read += 1;
        if record.as_slice().len() > MAX_LINE {
            self.reject(file, number, format!("is longer than {MAX_LINE} bytes"));
            return Ok(());
        }
        let Ok(fields) = record
            .iter()
            .map(std::str::from_utf8)
            .collect::<Result<Vec<&str>, _>>()
        else {
            self.reject(file, number, "is not UTF-8".into());
            return Ok(());
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        match goatcounter::parse_row(&fields, &self.site, now_ms) {
            Ok(goatcounter::Row::Hit(parsed)) => {
                // The fields joined by a separator no field holds: the row's identity.
                let text = fields.join("\u{1f}");
                self.accept((file, number), *parsed, &text, now_ms).await
            }
            Ok(goatcounter::Row::Bot) => {
                self.summary.bots_skipped += 1;
                Ok(())
            }
            Err(e) => {
                self.reject(file, number, e.to_string());
                Ok(())
            }
        }
    }

    /// A checked record: enriched, validated, and queued unless seen before. `text` is the
    /// record as read, from which an event id is derived when it brings none.
    async fn accept(
        &mut self,
        (file, number): (&str, u64),
        mut parsed: ParsedLine,
        text: &str,
        now_ms: i64,
    ) -> Result<(), ImportError> {
        if parsed.hit.id.is_none() {
            parsed.hit.id = Some(self.ids.id_for(&self.site, text));
        }
        let Some(event) = self.enrich(parsed, now_ms) else {
            self.summary.bots_skipped += 1;
            return Ok(());
        };
        if let Err(invalid) = event.validate() {
            self.reject(file, number, invalid.to_string());
            return Ok(());
        }
        if !self.seen.insert(event.id) {
            self.summary.duplicates_skipped += 1;
            return Ok(());
        }
        self.pending.push(event);
        if self.pending.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// The event of a checked line; `None` for a bot's.
    fn enrich(&mut self, parsed: ParsedLine, now_ms: i64) -> Option<Event> {
        let ParsedLine {
            hit,
            identity,
            agent,
            country,
            source,
        } = parsed;
        let client = hit.client.clone();
        let agent = match (agent, &client) {
            (Some(given), _) => given,
            (None, Some(client)) if !client.user_agent.is_empty() => {
                self.user_agents.classify(&client.user_agent).ok()?
            }
            (None, _) => UserAgentInfo::default(),
        };
        let timestamp_ms = hit.timestamp_ms.unwrap_or(now_ms);
        let visitor = match (&identity, &client) {
            (Identity::Opaque { visitor, previous }, _) => VisitorIds {
                today: opaque_visitor_id(&self.key, &self.site, visitor),
                previous: previous
                    .as_deref()
                    .map(|p| opaque_visitor_id(&self.key, &self.site, p)),
            },
            (Identity::Client, Some(client)) => {
                let day = chrono::DateTime::from_timestamp_millis(timestamp_ms)
                    .unwrap_or_default()
                    .date_naive();
                let hash = |day| {
                    visitor_id(
                        &day_salt(&self.key, day),
                        &self.site,
                        client.ip,
                        &client.user_agent,
                    )
                };
                VisitorIds {
                    today: hash(day),
                    previous: day.pred_opt().map(hash),
                }
            }
            (Identity::Client, None) => return None,
        };
        let country = country.or_else(|| {
            let lookup = self.deps.country.as_ref()?;
            client.as_ref().and_then(|c| lookup(c.ip))
        });
        let mut event = hit.into_event(visitor, SenderFacts { agent, country }, now_ms);
        if source.is_some() {
            event.enrichment.source = source;
        }
        Some(event)
    }

    fn reject(&mut self, file: &str, line: u64, reason: String) {
        self.summary.rejected += 1;
        if self.summary.rejections.len() < REPORTED {
            self.summary.rejections.push(Rejection {
                file: file.to_string(),
                line,
                reason: printable(&reason),
            });
        }
    }

    /// Publishes the pending events not imported before, then records them.
    async fn flush(&mut self) -> Result<(), ImportError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending);
        let client = self.deps.pool.get().await.map_err(StoreError::from)?;
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.as_uuid()).collect();
        let before = imports::already_imported(&**client, &ids).await?;
        let fresh: Vec<Event> = events
            .into_iter()
            .filter(|e| !before.contains(&e.id.as_uuid()))
            .collect();
        self.summary.duplicates_skipped += before.len() as u64;
        if fresh.is_empty() {
            return Ok(());
        }
        let batch = Confirmations::new(&fresh);
        let policy = RetryPolicy {
            initial: Duration::from_millis(200),
            max_interval: Duration::from_secs(5),
            max_elapsed: Some(Duration::from_secs(120)),
        };
        retry_transient(
            "publishing imported events",
            policy,
            PublishError::is_retryable,
            || self.deps.publisher.confirm(&batch),
        )
        .await?;
        let stored: Vec<uuid::Uuid> = fresh.iter().map(|e| e.id.as_uuid()).collect();
        imports::record_imported(&**client, self.site_id, &stored).await?;
        self.summary.imported += stored.len() as u64;
        if let Some(pace) = &self.pace {
            pace.after(self.summary.imported).await;
        }
        Ok(())
    }
}

fn printable(text: &str) -> String {
    beacon_schemas::text::without_controls(text)
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pace_waits_until_the_events_are_within_the_rate() {
        let pace = Pace::new(std::num::NonZeroU32::new(10_000).expect("non-zero"));
        pace.after(1_000).await;
        assert!(
            pace.started.elapsed() >= Duration::from_millis(100),
            "1,000 events at 10,000 a second take 100 ms at least"
        );
    }

    #[test]
    fn long_lines_are_cut_and_the_next_line_reads_whole() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.push(b'\n');
        input.extend_from_slice(b"{\"short\":1}\n");
        input.extend_from_slice(b"last");
        let mut reader = BufReader::new(input.as_slice());
        let (first, whole) = next_line(&mut reader).expect("read").expect("a line");
        assert!(!whole);
        assert_eq!(first.len(), MAX_LINE);
        let (second, whole) = next_line(&mut reader).expect("read").expect("a line");
        assert!(whole);
        assert_eq!(second, b"{\"short\":1}\n");
        let (last, whole) = next_line(&mut reader).expect("read").expect("a line");
        assert!(whole);
        assert_eq!(last, b"last");
        assert!(next_line(&mut reader).expect("read").is_none());
    }
}
