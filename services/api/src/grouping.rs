//! How summed rollup rows are grouped: the one choice both the query and the tiling of its time
//! range depend on.

use chrono_tz::Tz;

use crate::period::Interval;

/// How to group the summed rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One total.
    None,
    /// One group per value of the property.
    Value,
    /// One group per local time interval of this zone.
    Time(Interval, Tz),
}
