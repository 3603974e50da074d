//! JetStream mechanics for Beacon: the stream/consumer topology, durable publishing, and the one
//! pull-consume loop every consumer runs.
//!
//! Pure mechanism: this crate decides nothing about events. A consumer hands the loop a
//! [`BatchHandler`]; the handler says what each message deserves ([`Decision`]) and the loop carries
//! it out (ack, nak with a growing delay, dead-letter with the reason).

mod consume;
mod dead_letter;
mod dead_letter_tools;
mod delivery;
mod lag;
mod policy;
mod publish;
mod purge;
mod scan;
mod stored_time;
mod topology;

pub use consume::{ConsumeError, run_consumer};
pub use dead_letter::{
    DEAD_LETTER_CONSUMER, DEAD_LETTER_REASON, DEAD_LETTER_STREAM_SEQ, DeadLetterer,
};
pub use dead_letter_tools::{DeadLetter, Retried, list_dead_letters, retry_dead_letters};
pub use delivery::{BatchHandler, Decision, Delivery};
pub use lag::{ConsumerLag, PipelineState, StreamLag, pipeline_state};
pub use policy::ConsumerPolicy;
pub use publish::{Confirmations, PublishError, Publisher};
pub use purge::purge_site;
pub use scan::{
    ScanStart, Scanned, ScannedMessage, StreamExtent, first_unacked_ms, scan_subject, stream_extent,
};
pub use topology::{
    ConsumerKind, DEAD_LETTER_DUPLICATE_WINDOW, StreamSettings, Topology, TopologyError,
    ensure_topology,
};

pub use async_nats;
