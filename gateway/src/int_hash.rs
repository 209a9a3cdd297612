//! Hash maps and sets keyed by small integers (packet ids, buffer row ids, metric codes).
//!
//! The sinks look up every message and row several times on its way out and back (in flight,
//! queued, acknowledged), and the normalizer looks up every reading's metric: with the standard
//! SipHash that hashing was a measurable share of the per-observation cost at full speed
//! (issue 20). Keys here are local counters, or a device's metric codes in a map bounded by
//! its nomenclature, not input chosen to collide, so a multiplicative hash (no HashDoS
//! protection needed) is enough.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplies the key by a 64-bit odd constant (Fibonacci hashing), which spreads consecutive
/// integers over the high bits as well: hashbrown takes its control byte from the top 7 bits.
/// Each write is folded into what came before (for a single integer, from the zero state, that
/// is the key times the constant): tuple keys such as `(metric, Option<vendor code>)` write
/// several values, and a hash of the last one alone would put every mapped metric (the `None`
/// written last) in one bucket.
#[derive(Default)]
pub struct IntHasher(u64);

const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Strings (vendor codes, device names): byte by byte, less evenly than SipHash but enough.
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        // Pointer keys (the buffer's context cache) are 16-byte aligned: their low bits, which
        // pick the bucket, would be zero after the multiplication; rotated away first.
        self.write_u64((n as u64).rotate_right(4));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(8) ^ n).wrapping_mul(SPREAD);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;
pub type IntSet<K> = HashSet<K, BuildHasherDefault<IntHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    #[test]
    fn consecutive_keys_differ_in_the_top_bits_and_sets_behave_as_sets() {
        let b = BuildHasherDefault::<IntHasher>::default();
        let top7: std::collections::BTreeSet<u64> = (0i64..128).map(|k| b.hash_one(k) >> 57).collect();
        assert!(top7.len() > 64, "control bytes of 128 consecutive row ids: {} distinct", top7.len());
        let mut s: IntSet<i64> = IntSet::default();
        for k in (0..10_000).step_by(3) {
            assert!(s.insert(k));
        }
        assert!(!s.insert(9));
        assert!(s.contains(&9_999) && !s.contains(&10));
        let mut h = IntHasher::default();
        7u16.hash(&mut h);
        assert_ne!(h.finish(), 0);
    }

    #[test]
    fn every_part_of_a_tuple_key_counts() {
        use medgw_protocols::observation::VendorCode;
        use medgw_protocols::MdcCode;
        let b = BuildHasherDefault::<IntHasher>::default();
        // The normalizer's and the device runner's keys: mapped metrics (no vendor code) and
        // unmapped ones told apart by their vendor code.
        let mapped: std::collections::BTreeSet<u64> =
            (0..64u32).map(|i| b.hash_one((MdcCode(0x0002_4BB8 + i), None::<VendorCode>)) >> 57).collect();
        assert!(mapped.len() > 32, "control bytes of 64 mapped metrics: {} distinct", mapped.len());
        let vendor: std::collections::BTreeSet<u64> = (0..64)
            .map(|i| b.hash_one((MdcCode::UNMAPPED, Some(VendorCode { namespace: "masimo".into(), code: format!("C{i}").into() }))))
            .collect();
        assert_eq!(vendor.len(), 64, "unmapped metrics differ by their vendor code");
        // A single integer still hashes to itself times the constant (the packet ids and rows).
        assert_eq!(b.hash_one(7u16), 7u64.wrapping_mul(SPREAD));
        assert_eq!(b.hash_one(7i64), 7u64.wrapping_mul(SPREAD));
    }

    #[test]
    fn aligned_pointers_spread_over_the_low_bits_that_pick_a_bucket() {
        let b = BuildHasherDefault::<IntHasher>::default();
        // 64 pointers 16 bytes apart: their hashes' low 6 bits (the bucket in a table of 64)
        // must not all coincide.
        let low: std::collections::BTreeSet<u64> = (0..64usize).map(|i| b.hash_one(0x5555_0000_0000usize + 16 * i) & 63).collect();
        assert!(low.len() > 32, "buckets of 64 aligned pointers: {} distinct", low.len());
    }
}
