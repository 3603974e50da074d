//! Where Beacon keeps things: the PostgreSQL schema and the records every service shares (sites,
//! salts), the MongoDB archive collection and its indexes, and the Redis key layout.
//!
//! Everything is scoped by the namespace: PostgreSQL schema, MongoDB database, Redis key prefix.

pub mod applied_events;
pub mod archive;
pub mod backfill_runs;
pub mod calendar_rows;
pub mod compaction;
pub mod error;
pub mod goals;
pub mod imported_daily;
pub mod imports;
pub mod ingest_tokens;
pub mod live;
pub mod login_sessions;
pub mod pipeline_samples;
pub mod postgres;
pub mod rollups;
pub mod salts;
pub mod sessions;
pub mod sites;
pub mod users;
pub mod zones;

pub use archive::Archive;
pub use error::{Failure, StoreError};
pub use live::LiveKeys;
pub use postgres::Pool;
