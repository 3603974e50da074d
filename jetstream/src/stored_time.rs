//! When JetStream stored a message: what lag in time and scans by time are measured in.

use async_nats::jetstream::stream::Stream;

/// A stored message's time as Unix milliseconds.
pub(crate) fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// When the first message stored at `sequence` or after it (up to `last`) was stored. A sequence
/// may be a gap (deleted), so the next stored one counts; at most 1,000 gaps are skipped.
pub(crate) async fn first_stored_from(stream: &Stream, sequence: u64, last: u64) -> Option<i64> {
    for sequence in sequence..=last.min(sequence.saturating_add(1_000)) {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            return Some(unix_ms(message.time));
        }
    }
    None
}
