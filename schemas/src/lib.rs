//! The event envelope every Beacon service exchanges, and its MessagePack codec.
//!
//! This crate is synchronous and imports nothing of ours: it is the contract between the collector
//! (which encodes) and the consumers (which decode), versioned so that an event written today still
//! decodes after any later release. Golden fixtures in `tests/fixtures` pin the wire format.

#[cfg(feature = "arbitrary")]
pub mod arbitrary;
mod codec;
mod event;
pub mod text;

pub use codec::{CodecError, decode, encode};
pub use event::{
    Enrichment, Event, EventId, InvalidEvent, MAX_ENGAGEMENT_MS, Revenue, SCHEMA_VERSION,
};
pub use text::{MAX_NAME_LEN, MAX_SITE_LEN, MAX_URL_LEN};
