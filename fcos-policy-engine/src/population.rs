//! Counting distinct node UUIDs in fixed memory: a Bloom filter, so that
//! `fcos_cincinnati_pe_v1_graph_unique_uuids_total` grows once per new node
//! (give or take false positives) without remembering UUIDs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits in the filter: 2^23 (1 MiB), about 0.8% false positives at one
/// million nodes with 7 probes.
const BITS: u64 = 1 << 23;
const PROBES: u64 = 7;

/// A lock-free Bloom filter over 64-bit hashes.
#[derive(Debug)]
pub struct Population {
    words: Vec<AtomicU64>,
}

impl Default for Population {
    fn default() -> Self {
        Population {
            words: (0..BITS / 64).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Population {
    /// Inserts a node; true when it was (probably) not seen before.
    pub fn insert(&self, hash: u64) -> bool {
        // Double hashing: probe i is h1 + i * h2.
        let h1 = hash;
        let h2 = hash.rotate_left(32) | 1;
        let mut new = false;
        for i in 0..PROBES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % BITS;
            let mask = 1u64 << (bit % 64);
            let word = &self.words[(bit / 64) as usize];
            // Most polls are of nodes seen before: a load finds the bit
            // set and leaves the word's cache line shared between the
            // workers, where a read-modify-write would take it over.
            if word.load(Ordering::Relaxed) & mask != 0 {
                continue;
            }
            let previous = word.fetch_or(mask, Ordering::Relaxed);
            new |= previous & mask == 0;
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_node_once() {
        let population = Population::default();
        let hash = |i: u64| {
            use std::hash::Hasher;
            let mut h = siphasher::sip::SipHasher13::new();
            h.write_u64(i);
            h.finish()
        };
        let new = (0..10_000u64)
            .filter(|&i| population.insert(hash(i)))
            .count();
        assert!(new >= 9_990, "{new}");
        assert_eq!(
            (0..10_000u64)
                .filter(|&i| population.insert(hash(i)))
                .count(),
            0
        );
    }
}
