//! Time buckets of the rollups.
//!
//! Rollups are kept per 15 minutes of event time (UTC). Every time zone in use today is offset from
//! UTC by a whole number of quarter hours (+05:30 Kolkata, +05:45 Kathmandu, +12:45 Chatham), so
//! a day, hour or month in any site's zone is an exact union of buckets: no event is ever counted
//! in the wrong local day.

/// Width of one rollup bucket in milliseconds.
pub const BUCKET_MS: i64 = 15 * 60 * 1000;

/// Start (Unix ms, UTC) of the bucket holding `unix_ms`. Works for times before 1970 too.
pub fn bucket_start(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(BUCKET_MS) * BUCKET_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_quarter_hours() {
        assert_eq!(bucket_start(0), 0);
        assert_eq!(bucket_start(BUCKET_MS - 1), 0);
        assert_eq!(bucket_start(BUCKET_MS), BUCKET_MS);
        assert_eq!(bucket_start(-1), -BUCKET_MS);
        // 2024-01-01T05:44:59.999Z is in the 05:30 bucket.
        let t = 1_704_087_899_999;
        assert_eq!(bucket_start(t), 1_704_087_000_000);
    }
}
