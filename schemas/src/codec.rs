//! MessagePack encoding of [`Event`]: named fields (maps), so the format survives added fields.

use crate::event::{Event, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode event: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("cannot decode event: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("event schema version {found} is newer than this build understands ({known})")]
    UnsupportedVersion { found: u16, known: u16 },
}

/// Encodes an event as a MessagePack map.
pub fn encode(event: &Event) -> Result<Vec<u8>, CodecError> {
    // A typical event takes 300-400 bytes: one allocation instead of a vector doubling from empty.
    let mut bytes = Vec::with_capacity(512);
    rmp_serde::encode::write_named(&mut bytes, event)?;
    Ok(bytes)
}

/// Decodes an event written by this or any earlier version. Unknown fields are skipped.
pub fn decode(bytes: &[u8]) -> Result<Event, CodecError> {
    let event: Event = rmp_serde::from_slice(bytes)?;
    if event.v > SCHEMA_VERSION {
        return Err(CodecError::UnsupportedVersion {
            found: event.v,
            known: SCHEMA_VERSION,
        });
    }
    Ok(event)
}
