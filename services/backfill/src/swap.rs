//! The one transaction that swaps a rebuilt range in, and settles the edge with live traffic.
//!
//! Under the site's aggregation lock (the lock every aggregator batch and the closing task take
//! before they touch the site's rows or sessions) the replay:
//! 1. reads from the stream what arrived after its first read (the tail), so that everything the
//!    live aggregator applied before the lock is among the events it rebuilds from;
//! 2. keeps only the events the live aggregator has applied: an id in `applied_events`, or an
//!    event received longer ago than `BEACON_DEDUP_WINDOW` (whose id was pruned from there). The
//!    others — not applied yet, or claimed by a batch now waiting for this lock — are left to the
//!    live aggregator, which applies them on top of the rebuilt state as it would any late event;
//! 3. deletes the range's 15-minute and day rows and the sessions that start in it, writes the
//!    rebuilt ones, and sums the week and month rows over them from the day rows;
//! 4. raises the site's generation (every aggregator's cached sessions of the site are read again).
//!
//! So every event counts once: the ones applied before the lock are in the rebuild and nowhere
//! else, the ones applied after it land on the rebuilt rows. A query sees the old range or the
//! new one, never a mix (one commit).

use std::collections::{BTreeMap, HashSet};

use beacon_jetstream::{ScanStart, Topology, async_nats::jetstream};
use beacon_pipeline::rollup::{Span, TOTAL, VISITS};
use beacon_pipeline::sketch::VisitorSketch;
use beacon_schemas::Event;
use beacon_store::zones::Zones;
use beacon_store::{Pool, StoreError, applied_events, calendar_rows, rollups, sessions};
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::GenericClient;

use crate::gather::Gathered;
use crate::range::DayRange;
use crate::rebuild::{Cutoffs, rebuild};

/// A day's headline numbers, as the API counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DayNumbers {
    pub visitors: u64,
    pub visits: i64,
    pub pageviews: i64,
}

/// What a swap did (or, on a dry run, would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct Swapped {
    pub before: BTreeMap<NaiveDate, DayNumbers>,
    pub after: BTreeMap<NaiveDate, DayNumbers>,
    /// Events the rebuild counted (in the range and around it).
    pub events: u64,
    /// Events read from the stream's tail under the lock.
    pub from_tail: u64,
    /// Events left to the live aggregator: not applied when the lock was taken.
    pub left_to_live: u64,
    pub rows_written: u64,
    pub sessions_written: u64,
    /// How long the site's lock was held: live batches of the site waited at most this long.
    pub locked_seconds: f64,
    /// Where the locked time went, step by step (`tail=0.01s applied=…`).
    pub locked_steps: String,
}

/// Settings of the swap.
#[derive(Debug, Clone, Copy)]
pub struct SwapSettings {
    pub cutoffs: Cutoffs,
    /// An event received at or after this (Unix ms) counts as applied only if its id is in
    /// `applied_events`; older ones were applied (their ids pruned after the dedup window).
    pub check_applied_from_ms: i64,
    pub dry_run: bool,
}

/// Why a swap failed (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("jetstream (reading the stream's tail): {0}")]
    Nats(String),
}

impl From<tokio_postgres::Error> for SwapError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Swaps `range`'s rebuilt state in (see the module doc).
pub async fn swap(
    pool: &Pool,
    js: &jetstream::Context,
    topology: &Topology,
    range: &DayRange,
    gathered: &mut Gathered,
    settings: SwapSettings,
) -> Result<Swapped, SwapError> {
    let site = range.site.as_str();
    let zones = Zones::of(site, range.zone);
    let recent = |e: &Event| e.received_at_ms >= settings.check_applied_from_ms;
    let mut client = pool.get().await.map_err(StoreError::from)?;

    // Before the lock: which events are applied, and the rebuild from those — what the swap
    // writes unless, under the lock, more of them turn out applied.
    let checked: Vec<uuid::Uuid> = gathered
        .events
        .values()
        .filter(|e| recent(e))
        .map(|e| e.id.as_uuid())
        .collect();
    let applied = applied_events::applied_among(&**client, &checked).await?;
    let mut unapplied: HashSet<uuid::Uuid> = checked
        .into_iter()
        .filter(|id| !applied.contains(id))
        .collect();
    let usable = |gathered: &Gathered, unapplied: &HashSet<uuid::Uuid>| -> Vec<Event> {
        gathered
            .events
            .values()
            .filter(|e| !unapplied.contains(&e.id.as_uuid()))
            .cloned()
            .collect()
    };
    let early = usable(gathered, &unapplied);
    let prebuilt = rebuild(range, &early, &zones, settings.cutoffs);

    let tx = client.transaction().await?;
    sessions::lock_for_change(&*tx, &[site]).await?;
    let locked = std::time::Instant::now();
    let mut steps = Steps::new();

    let before_tail = gathered.events.len();
    let mut tail = Vec::new();
    beacon_jetstream::scan_subject(
        js,
        &topology.events_stream(),
        &topology.events_subject(site),
        ScanStart::After(gathered.stream_mark),
        |message| {
            if let Ok(event) = beacon_schemas::decode(&message.payload) {
                let (id, is_recent) = (event.id.as_uuid(), recent(&event));
                if gathered.add(range, event) && is_recent {
                    tail.push(id);
                }
            } else {
                gathered.undecodable += 1;
            }
        },
    )
    .await
    .map_err(|e| SwapError::Nats(e.to_string()))?;
    let from_tail = (gathered.events.len() - before_tail) as u64;
    steps.lap("tail");

    // Only events whose state can have changed are checked again: those not applied before the
    // lock, and the tail's. (An id applied stays applied: ids are pruned only after the dedup
    // window, and one pruned meanwhile was applied.)
    let again: Vec<uuid::Uuid> = unapplied.iter().copied().chain(tail).collect();
    let applied_now = applied_events::applied_among(&*tx, &again).await?;
    unapplied = again
        .into_iter()
        .filter(|id| !applied_now.contains(id))
        .collect();
    let counted = gathered.events.len() - unapplied.len();
    let left_to_live = unapplied.len() as u64;
    steps.lap("applied");

    // The usable events only grow under the lock: the same count is the same set.
    let rebuilt = if counted == early.len() {
        prebuilt
    } else {
        rebuild(
            range,
            &usable(gathered, &unapplied),
            &zones,
            settings.cutoffs,
        )
    };
    steps.lap("rebuild");
    let before = day_numbers(&*tx, range).await?;
    rollups::delete_fine_and_day_rows(&*tx, site, range.from_ms, range.to_ms).await?;
    steps.lap("delete");
    rollups::apply(&*tx, &rebuilt.rollup).await?;
    steps.lap("rows");
    let calendar = calendar_rows::rebuild_range(&*tx, site, range.from_ms, range.to_ms).await?;
    steps.lap("calendar");
    sessions::replace_range(&*tx, site, range.from_ms, range.to_ms, &rebuilt.sessions).await?;
    steps.lap("sessions");
    let after = day_numbers(&*tx, range).await?;
    if settings.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    steps.lap("commit");
    let locked_seconds = locked.elapsed().as_secs_f64();
    Ok(Swapped {
        before,
        after,
        events: counted as u64,
        from_tail,
        left_to_live,
        rows_written: rebuilt.rollup.rows.len() as u64 + calendar,
        sessions_written: rebuilt.sessions.len() as u64,
        locked_seconds,
        locked_steps: steps.text,
    })
}

/// Each day's visitors, visits and page views as the API would count them now: the day rows, and
/// the visits still open.
async fn day_numbers(
    client: &impl GenericClient,
    range: &DayRange,
) -> Result<BTreeMap<NaiveDate, DayNumbers>, StoreError> {
    let mut days: BTreeMap<NaiveDate, DayNumbers> =
        range.days().map(|d| (d, DayNumbers::default())).collect();
    let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    let rows = client
        .query(
            "SELECT property, bucket, pageviews, visits, visitors FROM rollups
             WHERE site = $1 AND span = $2 AND property IN ($3, $4) AND value = ''
               AND bucket >= $5 AND bucket < $6",
            &[
                &range.site,
                &Span::Day.as_str(),
                &TOTAL,
                &VISITS,
                &at(range.from_ms),
                &at(range.to_ms),
            ],
        )
        .await?;
    for row in rows {
        let property: &str = row.try_get(0)?;
        let bucket: DateTime<Utc> = row.try_get(1)?;
        let day = days
            .entry(range.day_of(bucket.timestamp_millis()))
            .or_default();
        if property == TOTAL {
            day.pageviews += row.try_get::<_, i64>(2)?;
            if let Some(bytes) = row.try_get::<_, Option<&[u8]>>(4)? {
                let sketch = VisitorSketch::from_bytes(bytes)
                    .map_err(|e| StoreError::corrupt("a stored rollup row", e))?;
                day.visitors = sketch.count();
            }
        } else {
            day.visits += row.try_get::<_, i64>(3)?;
        }
    }
    for open in sessions::open_in_range(client, &range.site, range.from_ms, range.to_ms).await? {
        if open.is_visit() {
            days.entry(range.day_of(open.start_ms)).or_default().visits += 1;
        }
    }
    Ok(days)
}

/// Time per step under the lock, as text.
struct Steps {
    last: std::time::Instant,
    text: String,
}

impl Steps {
    fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
            text: String::new(),
        }
    }

    fn lap(&mut self, step: &str) {
        let now = std::time::Instant::now();
        let sep = if self.text.is_empty() { "" } else { " " };
        self.text += &format!("{sep}{step}={:.2}s", (now - self.last).as_secs_f64());
        self.last = now;
    }
}
