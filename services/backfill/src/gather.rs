//! The events a replay rebuilds from: from the JetStream stream while it still holds them, from
//! the MongoDB archive before that, each event once.
//!
//! The stream is read by the time messages were stored, the archive by event time. An event is
//! stored after it happened (the collector refuses times more than a little in the future), so the
//! stream read from an hour before a time holds every event whose time is after it. What the
//! archiver has not written yet is always read from the stream, and so is, later and under the
//! site's lock, what arrived after this read ([`Gathered::stream_mark`]).

use std::collections::HashMap;

use beacon_jetstream::{ScanStart, StreamExtent, Topology, async_nats::jetstream};
use beacon_schemas::{Event, EventId};
use beacon_store::Archive;
use chrono::NaiveDate;

use crate::progress::Progress;
use crate::range::DayRange;

/// Slack between an event's time and the time the stream stored it.
pub const STORED_SLACK_MS: i64 = 3_600_000;

/// Where a replay reads events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The stream only; refused when it no longer holds the whole range.
    Stream,
    /// The archive (and the stream for what the archiver has not written yet).
    Archive,
    /// Per day: the stream for the days it still holds, the archive for older ones.
    #[default]
    Auto,
}

/// Why events could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(
        "the stream no longer holds every event of {first_day}: its oldest message is from {oldest}; \
         replay with --from archive or --from auto"
    )]
    StreamIncomplete {
        first_day: NaiveDate,
        oldest: String,
    },
    #[error("jetstream: {0}")]
    Nats(String),
    #[error("archive: {0}")]
    Archive(#[from] beacon_store::archive::ArchiveReadError),
}

fn nats(e: impl std::fmt::Display) -> GatherError {
    GatherError::Nats(e.to_string())
}

/// Which source each day of the range came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DayOrigin {
    Stream,
    Archive,
}

/// The events gathered for a range, each once.
#[derive(Debug, Default)]
pub struct Gathered {
    pub events: HashMap<EventId, Event>,
    /// The stream was read up to this sequence; what came after is read under the site's lock.
    pub stream_mark: u64,
    pub from_stream: u64,
    pub from_archive: u64,
    /// Events that fail `Event::validate` (the consumers dead-letter them too).
    pub invalid: u64,
    pub undecodable: u64,
    /// Events with times before this came from the archive.
    pub archive_until_ms: i64,
}

impl Gathered {
    /// Keeps `event` if it is one of the range's site and times (and valid).
    pub fn add(&mut self, range: &DayRange, event: Event) -> bool {
        if event.site != range.site
            || !(range.read_from_ms()..range.read_to_ms()).contains(&event.timestamp_ms)
        {
            return false;
        }
        if event.validate().is_err() {
            self.invalid += 1;
            return false;
        }
        self.events.entry(event.id).or_insert(event);
        true
    }

    /// Decodes a stream message and keeps its event as [`Gathered::add`] does.
    pub fn add_payload(&mut self, range: &DayRange, payload: &[u8]) -> bool {
        match beacon_schemas::decode(payload) {
            Ok(event) => self.add(range, event),
            Err(_) => {
                self.undecodable += 1;
                false
            }
        }
    }

    /// The source of each local day of the range.
    pub fn day_origins(&self, range: &DayRange) -> Vec<(NaiveDate, DayOrigin)> {
        range
            .days()
            .map(|day| {
                let origin = if range.day_start(day) < self.archive_until_ms {
                    DayOrigin::Archive
                } else {
                    DayOrigin::Stream
                };
                (day, origin)
            })
            .collect()
    }
}

/// What gathering needs.
pub struct GatherDeps<'a> {
    pub js: &'a jetstream::Context,
    pub topology: &'a Topology,
    pub archive: &'a Archive,
}

/// Reads the range's events from `source`.
pub async fn gather(
    deps: &GatherDeps<'_>,
    range: &DayRange,
    source: Source,
    progress: &Progress,
) -> Result<Gathered, GatherError> {
    let stream = deps.topology.events_stream();
    let extent = beacon_jetstream::stream_extent(deps.js, &stream)
        .await
        .map_err(nats)?;
    let archive_until_ms = archive_until(range, source, &extent)?;
    let mut gathered = Gathered {
        archive_until_ms,
        ..Gathered::default()
    };

    // The stream from an hour before the first event time it must supply, and from the first
    // message the archiver has not acknowledged (not in the archive yet) if that is earlier.
    let archiver = deps
        .topology
        .consumer_name(beacon_jetstream::ConsumerKind::Archiver);
    let unarchived = beacon_jetstream::first_unacked_ms(deps.js, &stream, &archiver)
        .await
        .map_err(nats)?;
    // The earlier of the two starts there are (each may be absent).
    let needed =
        (archive_until_ms < range.read_to_ms()).then(|| archive_until_ms - STORED_SLACK_MS);
    let stream_from = [needed, unarchived].into_iter().flatten().min();

    if archive_until_ms > range.read_from_ms() {
        let until = archive_until_ms.min(range.read_to_ms());
        deps.archive
            .site_events(&range.site, range.read_from_ms(), until, |event| {
                progress.inc(1);
                if gathered.add(range, event) {
                    gathered.from_archive += 1;
                }
            })
            .await?;
    }
    gathered.stream_mark = extent.last_sequence;
    if let Some(from) = stream_from {
        let subject = deps.topology.events_subject(&range.site);
        let scanned = beacon_jetstream::scan_subject(
            deps.js,
            &stream,
            &subject,
            ScanStart::Time(from),
            |message| {
                progress.inc(1);
                if gathered.add_payload(range, &message.payload) {
                    gathered.from_stream += 1;
                }
            },
        )
        .await
        .map_err(nats)?;
        gathered.stream_mark = scanned.last_sequence;
    }
    Ok(gathered)
}

/// Events with times before the returned instant come from the archive, the others from the
/// stream.
fn archive_until(
    range: &DayRange,
    source: Source,
    extent: &StreamExtent,
) -> Result<i64, GatherError> {
    let stream_has = |from_ms: i64| extent.complete_since(from_ms - STORED_SLACK_MS);
    match source {
        Source::Archive => Ok(range.read_to_ms()),
        Source::Stream if stream_has(range.read_from_ms()) => Ok(range.read_from_ms()),
        Source::Stream => Err(GatherError::StreamIncomplete {
            first_day: range.first_day,
            oldest: extent
                .first_stored_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(|| "none (it is empty)".into(), |t| t.to_rfc3339()),
        }),
        Source::Auto if stream_has(range.read_from_ms()) => Ok(range.read_from_ms()),
        Source::Auto => {
            // The first day the stream holds whole; the archive supplies everything before it.
            let first_whole = range
                .days()
                .map(|day| range.day_start(day))
                .find(|start| stream_has(*start));
            Ok(first_whole.unwrap_or(range.read_to_ms()))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::Tz;

    use super::*;

    const DAY: i64 = 24 * 3_600_000;

    fn range() -> DayRange {
        let first = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        let last = NaiveDate::from_ymd_opt(2026, 3, 5).expect("date");
        DayRange::new("a.example", Tz::UTC, first, last).expect("range")
    }

    fn extent(first_stored_ms: Option<i64>, first_sequence: u64) -> StreamExtent {
        StreamExtent {
            messages: 10,
            first_stored_ms,
            first_sequence,
            last_sequence: first_sequence + 9,
        }
    }

    #[test]
    fn auto_reads_the_days_the_stream_no_longer_holds_from_the_archive() {
        let range = range();
        // The stream holds everything since the middle of the third day.
        let stream = extent(Some(range.from_ms + 2 * DAY + DAY / 2), 500);
        let until = archive_until(&range, Source::Auto, &stream).expect("auto");
        let gathered = Gathered {
            archive_until_ms: until,
            ..Gathered::default()
        };
        let origins: Vec<DayOrigin> = gathered
            .day_origins(&range)
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        use DayOrigin::{Archive, Stream};
        assert_eq!(origins, [Archive, Archive, Archive, Stream, Stream]);
        assert!(matches!(
            archive_until(&range, Source::Stream, &stream),
            Err(GatherError::StreamIncomplete { .. })
        ));
        assert_eq!(
            archive_until(&range, Source::Archive, &stream).expect("archive"),
            range.read_to_ms()
        );
    }

    #[test]
    fn a_stream_that_never_lost_a_message_holds_everything() {
        let range = range();
        let whole = extent(Some(range.to_ms), 1);
        assert_eq!(
            archive_until(&range, Source::Stream, &whole).expect("stream"),
            range.read_from_ms()
        );
        let emptied = StreamExtent {
            messages: 0,
            first_stored_ms: None,
            first_sequence: 41,
            last_sequence: 40,
        };
        assert!(archive_until(&range, Source::Stream, &emptied).is_err());
        assert_eq!(
            archive_until(&range, Source::Auto, &emptied).expect("auto"),
            range.read_to_ms()
        );
    }
}
