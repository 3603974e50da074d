//! Statistics rebuilt outside the live pipeline: `beacon replay` recomputes a site's rollups,
//! visits and sessions for whole local days from the events the stream or the archive still hold,
//! and swaps them in under the site's lock while the live aggregator keeps running.
//!
//! The pieces, in the order a replay uses them: [`range`] (which days, as a UTC range),
//! [`gather`] (the events, from the stream and/or the archive), [`rebuild`] (pure: events →
//! rows and sessions, with the pipeline's own code), [`swap`] (the one transaction that replaces
//! the range and settles the edge with live traffic), [`replay`] (the command), [`progress`].

pub mod export;
pub mod gather;
pub mod import;
pub mod plausible_csv;
pub mod progress;
pub mod range;
pub mod rebuild;
pub mod replay;
pub mod runs;
pub mod swap;

pub use gather::Source;
pub use range::DayRange;
pub use replay::{ReplayDeps, ReplayError, ReplayReport, ReplayRequest, replay};
