//! Distinct-visitor sketches: how "visitors" stays honest over any range without storing ids.
//!
//! Every rollup row carries a sketch of the visitor ids seen in it. Sketches merge, so the visitors
//! of a range are the merge of its rows' sketches — never a sum of per-bucket uniques. A sketch
//! keeps the exact ids up to [`EXACT_LIMIT`] (so small sites and quiet rows are counted exactly),
//! then turns into a HyperLogLog++ of precision 14 (standard error 0.81%).

use std::hash::{BuildHasher, Hasher};

use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use serde::{Deserialize, Serialize};

/// Up to this many distinct visitors a sketch is an exact set.
pub const EXACT_LIMIT: usize = 512;
const PRECISION: u8 = 14;

/// Visitor ids are keyed SipHash outputs, but imported or synthetic ids need not be spread over
/// 64 bits: every id goes through a bijective 64-bit finalizer (SplitMix64's), so HyperLogLog's
/// registers see uniform bits whatever the ids look like.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct VisitorIdHash;

#[derive(Debug, Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, value: u64) {
        let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

impl BuildHasher for VisitorIdHash {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough::default()
    }
}

type Hll = HyperLogLogPlus<u64, VisitorIdHash>;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Repr {
    /// Sorted, deduplicated ids.
    Exact(Vec<u64>),
    Approximate(Box<Hll>),
}

/// A mergeable set of visitor ids that answers "how many distinct".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VisitorSketch(Repr);

#[derive(Debug, thiserror::Error)]
#[error("unreadable visitor sketch: {0}")]
pub struct SketchError(String);

impl Default for VisitorSketch {
    fn default() -> Self {
        Self(Repr::Exact(Vec::new()))
    }
}

impl VisitorSketch {
    pub fn insert(&mut self, visitor_id: u64) {
        match &mut self.0 {
            Repr::Exact(ids) => {
                if let Err(at) = ids.binary_search(&visitor_id) {
                    ids.insert(at, visitor_id);
                    if ids.len() > EXACT_LIMIT {
                        self.promote();
                    }
                }
            }
            Repr::Approximate(hll) => hll.insert(&visitor_id),
        }
    }

    pub fn merge(&mut self, other: &VisitorSketch) {
        match (&mut self.0, &other.0) {
            (_, Repr::Exact(ids)) => {
                for &id in ids {
                    self.insert(id);
                }
            }
            (Repr::Approximate(mine), Repr::Approximate(theirs)) => merge_hll(mine, theirs),
            (Repr::Exact(_), Repr::Approximate(theirs)) => {
                let mut merged = theirs.clone();
                if let Repr::Exact(ids) = &self.0 {
                    for id in ids {
                        merged.insert(id);
                    }
                }
                self.0 = Repr::Approximate(merged);
            }
        }
    }

    /// Distinct visitors: exact while the set is small, else the HyperLogLog++ estimate.
    pub fn count(&self) -> u64 {
        match &self.0 {
            Repr::Exact(ids) => ids.len() as u64,
            Repr::Approximate(hll) => {
                // `count` needs `&mut` only to flush its insert buffer; work on a copy.
                let mut hll = hll.clone();
                hll.count().round() as u64
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(&self.0, Repr::Exact(ids) if ids.is_empty())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data to a Vec cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        rmp_serde::from_slice(bytes).map_err(|e| SketchError(e.to_string()))
    }

    fn promote(&mut self) {
        if let Repr::Exact(ids) = &self.0 {
            let mut hll = new_hll();
            for id in ids {
                hll.insert(id);
            }
            self.0 = Repr::Approximate(Box::new(hll));
        }
    }
}

fn new_hll() -> Hll {
    // PRECISION is within the crate's 4..=18 range, so this cannot fail.
    HyperLogLogPlus::new(PRECISION, VisitorIdHash).unwrap_or_else(|_| unreachable!())
}

fn merge_hll(into: &mut Hll, other: &Hll) {
    // Both sides always have PRECISION; a mismatch cannot happen.
    let _ = into.merge(other);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn spread(i: u64) -> u64 {
        // A SipHash-like spread of small integers, as real visitor ids are.
        let mut h = siphasher::sip::SipHasher13::new_with_keys(7, 11);
        h.write_u64(i);
        h.finish()
    }

    fn sketch_of(ids: impl IntoIterator<Item = u64>) -> VisitorSketch {
        let mut s = VisitorSketch::default();
        for id in ids {
            s.insert(spread(id));
        }
        s
    }

    #[test]
    fn exact_up_to_the_limit() {
        for n in [0u64, 1, 2, 100, 300, EXACT_LIMIT as u64] {
            let s = sketch_of((0..n).chain(0..n));
            assert_eq!(s.count(), n);
        }
    }

    #[test]
    fn within_two_percent_on_large_counts() {
        for n in [1_000u64, 10_000, 100_000, 1_000_000] {
            let s = sketch_of(0..n);
            let error = (s.count() as f64 - n as f64).abs() / n as f64;
            assert!(error < 0.02, "{n} distinct estimated as {}", s.count());
        }
    }

    #[test]
    fn small_consecutive_ids_are_counted_as_well_as_hashed_ones() {
        for n in [10_000u64, 200_000] {
            let mut s = VisitorSketch::default();
            for id in 0..n {
                s.insert(id ^ (3 << 40));
            }
            let error = (s.count() as f64 - n as f64).abs() / n as f64;
            assert!(
                error < 0.02,
                "{n} consecutive ids estimated as {}",
                s.count()
            );
        }
    }

    #[test]
    fn merging_is_a_union_not_a_sum() {
        // Two days of 30k visitors each, 10k of them on both days: 50k distinct, not 60k.
        let mut a = sketch_of(0..30_000);
        let b = sketch_of(20_000..50_000);
        a.merge(&b);
        let error = (a.count() as f64 - 50_000.0).abs() / 50_000.0;
        assert!(error < 0.02, "estimated {}", a.count());
    }

    #[test]
    fn survives_a_round_trip_through_bytes() {
        for n in [10u64, 5_000] {
            let s = sketch_of(0..n);
            let back = VisitorSketch::from_bytes(&s.to_bytes()).expect("decodes");
            assert_eq!(back.count(), s.count());
        }
        assert!(VisitorSketch::from_bytes(b"\x01garbage").is_err());
    }

    proptest! {
        #[test]
        fn merge_order_and_split_do_not_matter(
            ids in proptest::collection::vec(0u64..3_000, 0..2_000),
            split in 0usize..2_000,
        ) {
            let split = split.min(ids.len());
            let whole = sketch_of(ids.iter().copied());
            let mut left = sketch_of(ids[..split].iter().copied());
            let right = sketch_of(ids[split..].iter().copied());
            let mut right_first = right.clone();
            right_first.merge(&left);
            left.merge(&right);
            prop_assert_eq!(left.count(), whole.count());
            prop_assert_eq!(right_first.count(), whole.count());
            let distinct = ids.iter().collect::<std::collections::BTreeSet<_>>().len() as u64;
            if distinct <= EXACT_LIMIT as u64 {
                prop_assert_eq!(whole.count(), distinct);
            }
        }
    }
}
