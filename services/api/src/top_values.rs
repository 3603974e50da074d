//! A breakdown ranked by visitors reads the visitor sketches only of the values that can rank in
//! the page asked for.
//!
//! In an event row, every visitor in the sketch sent at least one of the row's page views or
//! custom events, so a value's visitors never exceed its page views plus custom events. The
//! counters are read first (no sketch), then the sketches of the values with the highest such
//! bound; once `n` values are known to have more visitors than the bound of every value not read
//! yet, those values rank below all of them and their sketches are never read. On a site with
//! many pages a top 10 reads the sketches of a few dozen values instead of all of them.
//!
//! Not for visit properties: a visitor whose closed visit was reopened by a late event stays in
//! the visit row's sketch while the visit leaves its counters (see ARCHITECTURE.md), so there the
//! bound does not hold. The reads are separate statements: a value that gains more than the
//! margin below between them (milliseconds apart) could miss a page it has just entered; the next
//! request has it.

use std::collections::BTreeMap;

use beacon_store::zones::Zones;

use crate::error::ApiError;
use crate::grouping::Grouping;
use crate::rollup_query::{GroupKey, Read, RollupQuery, Sums};
use crate::tiling::tile;

/// Values whose sketches one round reads: half again the `n` asked for (visitors and events rank
/// values a little differently, and each round costs a round trip), at least 8. Each round
/// raises the `n`-th highest count known, which rules out more of the values not read yet.
fn round_size(n: usize) -> usize {
    n.saturating_add(n / 2).max(8)
}

impl RollupQuery<'_> {
    /// The groups of every value that can be among the `n` with the most visitors — each exactly
    /// as [`RollupQuery::run`] gives it — leaving out values that provably rank below them.
    /// Needs `Grouping::Value` and an event property.
    pub async fn run_top_visitors(
        &self,
        client: &impl tokio_postgres::GenericClient,
        n: usize,
    ) -> Result<BTreeMap<GroupKey, Sums>, ApiError> {
        debug_assert_eq!(self.grouping, Grouping::Value);
        let calendar = Zones::of(self.site, self.tz);
        let pieces = tile(&calendar, self.site, self.from, self.to, self.grouping);
        let counters = self.fetch(client, &pieces, Read::Counters).await?;
        let candidates = by_bound(&counters);

        let mut groups = BTreeMap::new();
        let mut read = 0;
        loop {
            let needed = match nth_most_visitors(&groups, n) {
                Some(nth) => still_needed(&candidates[read..], nth),
                // Fewer than n values with visitors so far: every value is still needed.
                None => candidates.len() - read,
            };
            if needed == 0 {
                break;
            }
            let end = read + needed.min(round_size(n));
            let values: Vec<&str> = candidates[read..end].iter().map(|(v, _)| *v).collect();
            read = end;
            groups.extend(
                self.fetch(client, &pieces, Read::SketchesOf(&values))
                    .await?,
            );
        }
        Ok(groups)
    }
}

/// Values with their bound (page views plus custom events), highest bound first.
fn by_bound(counters: &BTreeMap<GroupKey, Sums>) -> Vec<(&str, i64)> {
    let mut candidates: Vec<(&str, i64)> = counters
        .iter()
        .filter_map(|(key, sums)| match key {
            GroupKey::Value(v) => Some((v.as_str(), sums.pageviews + sums.events)),
            _ => None,
        })
        .collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    candidates
}

/// The `n`-th highest visitor count among the groups, if there are `n` groups with visitors.
fn nth_most_visitors(groups: &BTreeMap<GroupKey, Sums>, n: usize) -> Option<u64> {
    let mut counts: Vec<u64> = groups
        .values()
        .map(|sums| sums.visitors.count())
        .filter(|&c| c > 0)
        .collect();
    if n == 0 || counts.len() < n {
        return None;
    }
    counts.sort_unstable_by(|a, b| b.cmp(a));
    Some(counts[n - 1])
}

/// How many of the `rest` (highest bound first) could still reach `nth` visitors. A sketch's
/// estimate of a large count can exceed the true count by a few standard errors (0.8% each at
/// its precision); the 5% margin is far beyond that, so a value left out could not have ranked
/// even by its estimate.
fn still_needed(rest: &[(&str, i64)], nth: u64) -> usize {
    rest.iter()
        .take_while(|(_, bound)| *bound as f64 * 1.05 + 1.0 >= nth as f64)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(pageviews: i64, events: i64, visitors: std::ops::Range<u64>) -> Sums {
        let mut s = Sums {
            pageviews,
            events,
            ..Sums::default()
        };
        for id in visitors {
            s.visitors.insert(id);
        }
        s
    }

    fn groups(rows: &[(&str, Sums)]) -> BTreeMap<GroupKey, Sums> {
        rows.iter()
            .map(|(v, s)| (GroupKey::Value((*v).into()), s.clone()))
            .collect()
    }

    #[test]
    fn candidates_come_highest_bound_first_ties_by_value() {
        let counters = groups(&[
            ("/b", sums(5, 0, 0..0)),
            ("/a", sums(3, 2, 0..0)),
            ("/c", sums(9, 1, 0..0)),
        ]);
        assert_eq!(by_bound(&counters), vec![("/c", 10), ("/a", 5), ("/b", 5)]);
    }

    #[test]
    fn nth_counts_only_groups_with_visitors() {
        let read = groups(&[
            ("/a", sums(9, 0, 0..7)),
            ("/b", sums(4, 0, 0..3)),
            ("/c", sums(0, 0, 0..0)),
        ]);
        assert_eq!(nth_most_visitors(&read, 1), Some(7));
        assert_eq!(nth_most_visitors(&read, 2), Some(3));
        assert_eq!(nth_most_visitors(&read, 3), None);
        assert_eq!(nth_most_visitors(&read, 0), None);
    }

    #[test]
    fn values_whose_bound_cannot_reach_the_nth_are_not_needed() {
        let rest = [("/x", 100), ("/y", 95), ("/z", 90), ("/w", 10)];
        // 95 * 1.05 + 1 = 100.75 reaches 100; 90 * 1.05 + 1 = 95.5 does not.
        assert_eq!(still_needed(&rest, 100), 2);
        assert_eq!(still_needed(&rest, 1000), 0);
        assert_eq!(still_needed(&rest, 1), 4);
        // A value with no events left can still tie a value with one visitor (margin of one).
        assert_eq!(still_needed(&[("/q", 0)], 1), 1);
        assert_eq!(still_needed(&[("/q", 0)], 2), 0);
    }
}
