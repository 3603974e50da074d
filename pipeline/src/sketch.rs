//! Distinct-visitor sketches: how "visitors" stays honest over any range without storing ids.
//!
//! Every rollup row carries a sketch of the visitor ids seen in it. Sketches merge, so the visitors
//! of a range are the merge of its rows' sketches — never a sum of per-bucket uniques. A sketch
//! keeps the exact ids up to [`EXACT_LIMIT`] (so small sites and quiet rows are counted exactly),
//! then turns into a HyperLogLog of 2^14 one-byte registers (standard error 0.81%), estimated
//! with LogLog-Beta by the `hyperloglockless` crate.
//!
//! A query merges hundreds of sketches (one per row), so the stored form is cheap to decode: the
//! registers packed two to a byte (8 KiB), with the rare register past 14 listed after them.
//! Decoding is an unpacking loop, a merge a byte-wise maximum; half the bytes of one byte per
//! register is half of what PostgreSQL reads and sends, and what the aggregator rewrites.

use std::hash::{BuildHasher, Hasher};

use hyperloglockless::HyperLogLog;

/// Up to this many distinct visitors a sketch is an exact set.
pub const EXACT_LIMIT: usize = 512;
const PRECISION: u32 = 14;
const REGISTERS: usize = 1 << PRECISION;
/// The largest register value: one plus the trailing zeros of a 64-bit hash.
const MAX_RANK: u8 = 65;

/// Stored form: a tag byte, then
/// - `TAG_EXACT`: the ids, 8 bytes little-endian each, ascending;
/// - `TAG_PACKED`: the registers two to a byte (register `2i` in the low half of byte `i`),
///   [`NIBBLE_MAX`] standing for "listed after": then (index u16 LE, rank u8) for each such
///   register, by ascending index;
/// - `TAG_REGISTERS` (read only, written before packing): one byte per register.
const TAG_EXACT: u8 = 0xE1;
const TAG_REGISTERS: u8 = 0xE2;
const TAG_PACKED: u8 = 0xE3;
/// The largest rank a half byte holds; higher ranks are listed after the packed registers.
const NIBBLE_MAX: u8 = 15;
const PACKED_LEN: usize = REGISTERS / 2;

/// Visitor ids are keyed SipHash outputs, but imported or synthetic ids need not be spread over
/// 64 bits: every id goes through a bijective 64-bit finalizer (SplitMix64's), so the registers
/// see uniform bits whatever the ids look like.
#[derive(Debug, Clone, Copy, Default)]
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
        self.0 = mix(value);
    }
}

impl BuildHasher for VisitorIdHash {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough::default()
    }
}

fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// Sorted, deduplicated ids.
    Exact(Vec<u64>),
    /// HyperLogLog registers, as `hyperloglockless` fills them.
    Registers(Box<[u8]>),
}

/// A mergeable set of visitor ids that answers "how many distinct".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorSketch(Repr);

#[derive(Debug, thiserror::Error)]
#[error("unreadable visitor sketch: {0}")]
pub struct SketchError(&'static str);

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
            Repr::Registers(registers) => set_register(registers, visitor_id),
        }
    }

    pub fn merge(&mut self, other: &VisitorSketch) {
        match (&mut self.0, &other.0) {
            (_, Repr::Exact(ids)) => {
                for &id in ids {
                    self.insert(id);
                }
            }
            (Repr::Registers(mine), Repr::Registers(theirs)) => {
                for (mine, theirs) in mine.iter_mut().zip(theirs.iter()) {
                    *mine = (*mine).max(*theirs);
                }
            }
            (Repr::Exact(ids), Repr::Registers(theirs)) => {
                let mut registers = theirs.clone();
                for &id in ids.iter() {
                    set_register(&mut registers, id);
                }
                self.0 = Repr::Registers(registers);
            }
        }
    }

    /// Merges a stored sketch (as [`VisitorSketch::to_bytes`] wrote it). The same as decoding
    /// and merging, without the intermediate copy when this sketch already has registers: a
    /// query merges hundreds of stored sketches. On error this sketch is unchanged.
    pub fn merge_stored(&mut self, bytes: &[u8]) -> Result<(), SketchError> {
        if let (Repr::Registers(mine), Some((&TAG_PACKED, packed))) =
            (&mut self.0, bytes.split_first())
        {
            return merge_packed(mine, packed);
        }
        self.merge(&Self::from_bytes(bytes)?);
        Ok(())
    }

    /// Distinct visitors: exact while the set is small, else the HyperLogLog estimate.
    pub fn count(&self) -> u64 {
        match &self.0 {
            Repr::Exact(ids) => ids.len() as u64,
            Repr::Registers(registers) => {
                let zeros = registers.iter().filter(|&&r| r == 0).count();
                // 2^-r, exactly: r never exceeds MAX_RANK.
                let sum: f64 = registers
                    .iter()
                    .map(|&r| f64::from_bits((1023 - u64::from(r)) << 52))
                    .sum();
                HyperLogLog::from_parts(registers.clone(), VisitorIdHash, zeros, sum).count() as u64
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(&self.0, Repr::Exact(ids) if ids.is_empty())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.0 {
            Repr::Exact(ids) => {
                let mut bytes = Vec::with_capacity(1 + 8 * ids.len());
                bytes.push(TAG_EXACT);
                for id in ids {
                    bytes.extend_from_slice(&id.to_le_bytes());
                }
                bytes
            }
            Repr::Registers(registers) => pack(registers),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        match bytes.split_first() {
            Some((&TAG_EXACT, ids)) => {
                if ids.len() % 8 != 0 || ids.len() / 8 > EXACT_LIMIT {
                    return Err(SketchError("exact set of the wrong length"));
                }
                let ids: Vec<u64> = ids
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect();
                if !ids.is_sorted_by(|a, b| a < b) {
                    return Err(SketchError("exact set not sorted"));
                }
                Ok(Self(Repr::Exact(ids)))
            }
            Some((&TAG_PACKED, packed)) => Ok(Self(Repr::Registers(unpack(packed)?))),
            Some((&TAG_REGISTERS, registers)) => {
                if registers.len() != REGISTERS {
                    return Err(SketchError("wrong number of registers"));
                }
                if registers.iter().any(|&r| r > MAX_RANK) {
                    return Err(SketchError("register out of range"));
                }
                Ok(Self(Repr::Registers(registers.into())))
            }
            _ => Err(SketchError("unknown format")),
        }
    }

    fn promote(&mut self) {
        if let Repr::Exact(ids) = &self.0 {
            let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
            for &id in ids {
                set_register(&mut registers, id);
            }
            self.0 = Repr::Registers(registers);
        }
    }
}

fn pack(registers: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + PACKED_LEN);
    bytes.push(TAG_PACKED);
    bytes.extend(
        registers
            .chunks_exact(2)
            .map(|pair| pair[0].min(NIBBLE_MAX) | (pair[1].min(NIBBLE_MAX) << 4)),
    );
    for (index, &rank) in registers.iter().enumerate() {
        if rank >= NIBBLE_MAX {
            bytes.extend_from_slice(&(index as u16).to_le_bytes());
            bytes.push(rank);
        }
    }
    bytes
}

/// Splits packed registers into the half bytes and the listed registers, after checking that
/// every half byte saying "listed" has exactly one listed register, ascending, in range.
fn check_packed(packed: &[u8]) -> Result<(&[u8], &[u8]), SketchError> {
    let (nibbles, listed) = packed
        .split_at_checked(PACKED_LEN)
        .ok_or(SketchError("packed registers too short"))?;
    if listed.len() % 3 != 0 {
        return Err(SketchError("listed registers of the wrong length"));
    }
    let nibble_at = |index: usize| {
        let byte = nibbles[index / 2];
        if index.is_multiple_of(2) {
            byte & 0x0F
        } else {
            byte >> 4
        }
    };
    let mut previous = None;
    for entry in listed.chunks_exact(3) {
        let index = usize::from(u16::from_le_bytes([entry[0], entry[1]]));
        if previous.is_some_and(|p| p >= index) {
            return Err(SketchError("listed registers not in ascending order"));
        }
        previous = Some(index);
        if index >= REGISTERS
            || nibble_at(index) != NIBBLE_MAX
            || !(NIBBLE_MAX..=MAX_RANK).contains(&entry[2])
        {
            return Err(SketchError("listed register out of range"));
        }
    }
    let saying_listed = nibbles
        .iter()
        .map(|&b| usize::from(b & 0x0F == NIBBLE_MAX) + usize::from(b >> 4 == NIBBLE_MAX))
        .sum::<usize>();
    if saying_listed != listed.len() / 3 {
        return Err(SketchError("a register past 14 is not listed"));
    }
    Ok((nibbles, listed))
}

fn unpack(packed: &[u8]) -> Result<Box<[u8]>, SketchError> {
    let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
    merge_packed(&mut registers, packed)?;
    Ok(registers)
}

/// Raises `registers` to the packed ones (a register-wise maximum); checks first, so on error
/// `registers` is unchanged.
fn merge_packed(registers: &mut [u8], packed: &[u8]) -> Result<(), SketchError> {
    let (nibbles, listed) = check_packed(packed)?;
    for (pair, &byte) in registers.chunks_exact_mut(2).zip(nibbles) {
        pair[0] = pair[0].max(byte & 0x0F);
        pair[1] = pair[1].max(byte >> 4);
    }
    for entry in listed.chunks_exact(3) {
        let index = usize::from(u16::from_le_bytes([entry[0], entry[1]]));
        if let Some(register) = registers.get_mut(index) {
            *register = (*register).max(entry[2]);
        }
    }
    Ok(())
}

/// What `hyperloglockless::HyperLogLog::insert` does to its registers, on ours: the top
/// `PRECISION` bits of the mixed id pick the register, its trailing zeros give the rank.
fn set_register(registers: &mut [u8], visitor_id: u64) {
    let hash = mix(visitor_id);
    let index = (hash >> (64 - PRECISION)) as usize;
    let rank = 1 + hash.trailing_zeros() as u8;
    if let Some(register) = registers.get_mut(index) {
        *register = (*register).max(rank);
    }
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
    fn registers_are_those_hyperloglockless_fills() {
        let ids: Vec<u64> = (0..20_000).map(spread).collect();
        let mut theirs = HyperLogLog::with_hasher(PRECISION as u8, VisitorIdHash);
        let mut ours = VisitorSketch::default();
        for id in &ids {
            theirs.insert(id);
            ours.insert(*id);
        }
        let Repr::Registers(registers) = &ours.0 else {
            panic!("20,000 ids are past the exact limit")
        };
        assert_eq!(&registers[..], theirs.parts().0);
        assert_eq!(ours.count(), theirs.count() as u64);
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
        assert!(VisitorSketch::from_bytes(&[TAG_PACKED, 1, 2]).is_err());
        assert!(VisitorSketch::from_bytes(&[TAG_REGISTERS, 1, 2]).is_err());
        assert!(VisitorSketch::from_bytes(&[TAG_EXACT, 1, 2, 3]).is_err());
        assert!(VisitorSketch::from_bytes(&[]).is_err());
    }

    #[test]
    fn packing_keeps_every_register_including_high_ranks() {
        // 3 million ids put ranks of 15 and more in some registers.
        let s = sketch_of(0..3_000_000);
        let Repr::Registers(registers) = &s.0 else {
            panic!("past the exact limit")
        };
        assert!(registers.iter().any(|&r| r > NIBBLE_MAX));
        let bytes = s.to_bytes();
        // About 1% of the registers reach 15 at 3 million ids.
        assert!(
            bytes.len() < 1 + PACKED_LEN + 3 * 400,
            "{} bytes",
            bytes.len()
        );
        assert_eq!(VisitorSketch::from_bytes(&bytes).expect("decodes"), s);

        // Registers written one per byte (the previous stored form) still read.
        let mut unpacked = vec![TAG_REGISTERS];
        unpacked.extend_from_slice(registers);
        assert_eq!(VisitorSketch::from_bytes(&unpacked).expect("decodes"), s);
    }

    #[test]
    fn merging_stored_bytes_equals_decoding_then_merging() {
        let stored = [
            sketch_of(0..3_000_000),
            sketch_of(2_000_000..2_100_000),
            sketch_of(0..300),
            sketch_of(5_000_000..5_000_700),
        ];
        for start in [sketch_of(10..20), sketch_of(100_000..200_000)] {
            let mut direct = start.clone();
            let mut decoded = start;
            for s in &stored {
                direct.merge_stored(&s.to_bytes()).expect("merges");
                decoded.merge(&VisitorSketch::from_bytes(&s.to_bytes()).expect("decodes"));
            }
            assert_eq!(direct, decoded);
        }
        let mut unchanged = sketch_of(0..100_000);
        let before = unchanged.clone();
        let mut bad = sketch_of(0..3_000_000).to_bytes();
        bad.truncate(bad.len() - 3);
        assert!(unchanged.merge_stored(&bad).is_err());
        assert_eq!(unchanged, before);
    }

    #[test]
    fn malformed_packed_sketches_are_refused() {
        let s = sketch_of(0..3_000_000);
        let bytes = s.to_bytes();
        let listed = bytes.len() - 1 - PACKED_LEN;
        assert!(listed >= 6, "needs two listed registers");
        // A listed register dropped: its half byte says "listed" but nothing is.
        assert!(VisitorSketch::from_bytes(&bytes[..bytes.len() - 3]).is_err());
        // Listed registers swapped: not ascending.
        let mut swapped = bytes.clone();
        let first = 1 + PACKED_LEN;
        let (a, b) = (
            swapped[first..first + 3].to_vec(),
            swapped[first + 3..first + 6].to_vec(),
        );
        swapped[first..first + 3].copy_from_slice(&b);
        swapped[first + 3..first + 6].copy_from_slice(&a);
        assert!(VisitorSketch::from_bytes(&swapped).is_err());
        // A rank beyond what a 64-bit hash can give.
        let mut too_high = bytes.clone();
        too_high[first + 2] = MAX_RANK + 1;
        assert!(VisitorSketch::from_bytes(&too_high).is_err());
        // Truncated inside the packed registers.
        assert!(VisitorSketch::from_bytes(&bytes[..100]).is_err());
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
