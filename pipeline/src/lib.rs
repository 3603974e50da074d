//! Beacon's pure logic: how a raw hit becomes an enriched event, and how events fold into rollups.
//!
//! No I/O and no async here; the clock and every secret are passed in, so all of it is unit tested.

pub mod bucket;
pub mod domain;
pub mod hit;
pub mod referrer;
pub mod rollup;
pub mod session;
pub mod sketch;
pub mod url_parts;
pub mod user_agent;
pub mod visitor;

#[cfg(any(test, feature = "test-support"))]
pub mod test_events;
