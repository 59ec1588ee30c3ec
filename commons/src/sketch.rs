//! Counting distinct nodes over a sliding window in fixed memory: a
//! HyperLogLog per time bucket, in a ring that covers the window. Inserts
//! are lock-free; the estimate is the HyperLogLog of the union of the
//! buckets still in the window.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

/// One HyperLogLog: 2^precision one-byte registers.
struct Registers {
    /// Which bucket period these registers hold (period number since the
    /// epoch); another value means they are stale.
    period: AtomicI64,
    registers: Box<[AtomicU8]>,
}

impl Registers {
    fn new(precision: u8) -> Self {
        Registers {
            period: AtomicI64::new(i64::MIN),
            registers: (0..1usize << precision).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    fn clear(&self) {
        for register in self.registers.iter() {
            register.store(0, Ordering::Relaxed);
        }
    }
}

/// Distinct values seen within a sliding window of `buckets` periods of
/// `period_secs` seconds (the window covers between `buckets - 1` and
/// `buckets` periods).
pub struct WindowedSketch {
    precision: u8,
    period_secs: i64,
    ring: Box<[Registers]>,
}

impl WindowedSketch {
    /// A sketch of `2^precision` registers per bucket (relative standard
    /// error `1.04 / sqrt(2^precision)`); memory is `buckets << precision`
    /// bytes.
    pub fn new(precision: u8, buckets: usize, period_secs: i64) -> Self {
        assert!((4..=18).contains(&precision) && buckets > 0 && period_secs > 0);
        WindowedSketch {
            precision,
            period_secs,
            ring: (0..buckets).map(|_| Registers::new(precision)).collect(),
        }
    }

    /// Memory held by the registers, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.ring.len() << self.precision
    }

    fn bucket(&self, now: i64) -> (&Registers, i64) {
        let period = now.div_euclid(self.period_secs);
        let slot = period.rem_euclid(self.ring.len() as i64) as usize;
        (&self.ring[slot], period)
    }

    /// Records `hash` (a uniformly distributed 64-bit hash of the value) at
    /// `now` (seconds since the Unix epoch).
    pub fn insert(&self, hash: u64, now: i64) {
        let (bucket, period) = self.bucket(now);
        let seen = bucket.period.load(Ordering::Acquire);
        if seen > period {
            // The slot already holds a later period (the clock went back):
            // this insert belongs to a period that has left the window.
            return;
        }
        if seen != period {
            // First insert of a new period into this slot: it held a period
            // that has left the window. An insert of the new period racing
            // with this clear can be lost: a negligible undercount once per
            // period, for lock-free inserts.
            if bucket
                .period
                .compare_exchange(seen, period, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                bucket.clear();
            }
        }
        let p = u32::from(self.precision);
        let index = (hash >> (64 - p)) as usize;
        // Rank: position of the first 1 bit in the remaining bits (a
        // sentinel bit bounds it).
        let rest = (hash << p) | (1u64 << (p - 1));
        let rank = (rest.leading_zeros() + 1) as u8;
        bucket.registers[index].fetch_max(rank, Ordering::Relaxed);
    }

    /// Estimated number of distinct values seen in the window ending at
    /// `now`.
    pub fn estimate(&self, now: i64) -> f64 {
        let current = now.div_euclid(self.period_secs);
        let oldest = current - self.ring.len() as i64 + 1;
        let m = 1usize << self.precision;
        let mut union = vec![0u8; m];
        for bucket in self.ring.iter() {
            let period = bucket.period.load(Ordering::Acquire);
            if period < oldest || period > current {
                continue;
            }
            for (u, r) in union.iter_mut().zip(bucket.registers.iter()) {
                *u = (*u).max(r.load(Ordering::Relaxed));
            }
        }
        hyperloglog_estimate(&union)
    }
}

/// The HyperLogLog estimate of a register array, with linear counting for
/// small cardinalities. 64-bit hashes need no large-range correction.
fn hyperloglog_estimate(registers: &[u8]) -> f64 {
    let m = registers.len() as f64;
    let alpha = match registers.len() {
        16 => 0.673,
        32 => 0.697,
        64 => 0.709,
        _ => 0.7213 / (1.0 + 1.079 / m),
    };
    let sum: f64 = registers.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
    let raw = alpha * m * m / sum;
    let zeros = registers.iter().filter(|&&r| r == 0).count();
    if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> u64 {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher13::new_with_keys(7, 11);
        h.write_u64(i);
        h.finish()
    }

    #[test]
    fn estimates_within_three_percent() {
        for n in [1_000u64, 10_000, 100_000, 1_000_000] {
            let sketch = WindowedSketch::new(14, 4, 6 * 3600);
            for i in 0..n {
                sketch.insert(hash(i), 1_000);
                // Repeats do not count.
                sketch.insert(hash(i / 2), 1_000);
            }
            let estimate = sketch.estimate(1_000);
            let error = (estimate - n as f64).abs() / n as f64;
            assert!(error < 0.03, "n={n} estimate={estimate}");
        }
    }

    #[test]
    fn old_buckets_age_out() {
        let period = 6 * 3600;
        let sketch = WindowedSketch::new(12, 4, period);
        for i in 0..1_000 {
            sketch.insert(hash(i), 0);
        }
        for i in 1_000..1_500 {
            sketch.insert(hash(i), 3 * period);
        }
        // Both periods are in the window at 3 periods.
        let both = sketch.estimate(3 * period);
        assert!((both - 1_500.0).abs() < 45.0, "{both}");
        // At 4 periods the first one has left the window.
        let later = sketch.estimate(4 * period);
        assert!((later - 500.0).abs() < 15.0, "{later}");
        // An insert for a period that has left the window (a clock stepped
        // back) does not wipe the newer data of its slot.
        sketch.insert(hash(77_777), 3 * period - 4 * period);
        assert!((sketch.estimate(3 * period) - 1_500.0).abs() < 45.0);
        // Inserting into its slot again starts it afresh.
        sketch.insert(hash(9_999), 4 * period);
        let fresh = sketch.estimate(4 * period);
        assert!((fresh - 501.0).abs() < 15.0, "{fresh}");
        assert_eq!(sketch.size_bytes(), 4 * 4096);
    }
}
