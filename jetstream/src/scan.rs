//! Reading a stream back: every message of one subject from a point in time (or after a sequence)
//! up to the stream's end as it was when the scan began. What `beacon replay` reads events from.
//!
//! An ephemeral pull consumer with no acks does the reading; it is deleted at the end (and expires
//! on its own if the reader dies). The end is fixed at the start, so a scan of a busy stream ends;
//! what arrives after it is read by a second scan starting after [`Scanned::last_sequence`].

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::StreamExt as _;

use crate::stored_time::{first_stored_from, unix_ms};

/// Where a scan starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStart {
    /// The first message stored at or after this time (Unix ms).
    Time(i64),
    /// The first message after this stream sequence.
    After(u64),
}

/// One message read by a scan.
#[derive(Debug, Clone)]
pub struct ScannedMessage {
    pub sequence: u64,
    /// When the stream stored it (Unix ms).
    pub stored_ms: i64,
    pub payload: Bytes,
}

/// How far a scan read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// The stream's last sequence when the scan began: every message of the subject up to it was
    /// read; the next scan starts after it.
    pub last_sequence: u64,
    pub messages: u64,
}

/// Messages asked for per pull.
const PULL: usize = 1_000;

/// Reads every message of `subject` in `stream` from `start` up to the stream's last sequence at
/// the time of the call, oldest first, handing each to `on_message`.
pub async fn scan_subject(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
    start: ScanStart,
    mut on_message: impl FnMut(ScannedMessage),
) -> Result<Scanned, async_nats::Error> {
    let mut stream = js.get_stream(stream).await?;
    let last_sequence = stream.info().await?.state.last_sequence;
    let mut scanned = Scanned {
        last_sequence,
        messages: 0,
    };
    let deliver_policy = match start {
        ScanStart::After(sequence) if sequence >= last_sequence => return Ok(scanned),
        ScanStart::After(sequence) => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: sequence + 1,
        },
        ScanStart::Time(ms) => consumer::DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map_err(|e| format!("scan start {ms} ms: {e}"))?,
        },
    };
    let mut reader = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: subject.to_string(),
            deliver_policy,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
    let name = reader.cached_info().name.clone();
    let outcome = async {
        if reader.info().await?.num_pending == 0 {
            return Ok::<_, async_nats::Error>(());
        }
        loop {
            let mut batch = reader
                .batch()
                .max_messages(PULL)
                .expires(Duration::from_secs(2))
                .messages()
                .await?;
            let mut got = 0;
            while let Some(message) = batch.next().await {
                let message = message?;
                let info = message.info()?;
                let (sequence, pending) = (info.stream_sequence, info.pending);
                let stored_ms = unix_ms(info.published);
                got += 1;
                if sequence > last_sequence {
                    return Ok(());
                }
                scanned.messages += 1;
                on_message(ScannedMessage {
                    sequence,
                    stored_ms,
                    payload: message.payload.clone(),
                });
                if sequence == last_sequence || pending == 0 {
                    return Ok(());
                }
            }
            if got == 0 && reader.info().await?.num_pending == 0 {
                return Ok(());
            }
        }
    }
    .await;
    // Best effort: the consumer expires on its own after its inactive threshold.
    let _ = stream.delete_consumer(&name).await;
    outcome.map(|()| scanned)
}

/// What a stream holds: how far back it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamExtent {
    pub messages: u64,
    /// When the oldest message it still holds was stored (Unix ms).
    pub first_stored_ms: Option<i64>,
    pub first_sequence: u64,
    pub last_sequence: u64,
}

impl StreamExtent {
    /// Whether the stream still holds every message stored since `since_ms`: nothing was ever
    /// removed from its front, or its oldest message is at least that old.
    pub fn complete_since(&self, since_ms: i64) -> bool {
        self.first_sequence <= 1 || self.first_stored_ms.is_some_and(|first| first <= since_ms)
    }
}

/// How far back `stream` reaches.
pub async fn stream_extent(
    js: &jetstream::Context,
    stream: &str,
) -> Result<StreamExtent, async_nats::Error> {
    let mut stream = js.get_stream(stream).await?;
    let state = &stream.info().await?.state;
    Ok(StreamExtent {
        messages: state.messages,
        first_stored_ms: (state.messages > 0).then(|| unix_ms(state.first_timestamp)),
        first_sequence: state.first_sequence,
        last_sequence: state.last_sequence,
    })
}

/// When the first message `consumer` has not acknowledged was stored (Unix ms); `None` when it
/// has acknowledged everything the stream holds.
pub async fn first_unacked_ms(
    js: &jetstream::Context,
    stream: &str,
    consumer: &str,
) -> Result<Option<i64>, async_nats::Error> {
    let mut stream = js.get_stream(stream).await?;
    let last = stream.info().await?.state.last_sequence;
    let first = stream
        .consumer_info(consumer)
        .await?
        .ack_floor
        .stream_sequence
        + 1;
    Ok(first_stored_from(&stream, first, last).await)
}
