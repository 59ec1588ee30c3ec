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

/// The shape of the sketch, not its registers (thousands of bytes).
impl std::fmt::Debug for WindowedSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedSketch")
            .field("precision", &self.precision)
            .field("period_secs", &self.period_secs)
            .field("buckets", &self.ring.len())
            .finish_non_exhaustive()
    }
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
        let register = &bucket.registers[index];
        // Most inserts raise nothing (a node polls again, or a lower
        // rank): a load leaves the register's cache line shared between
        // the workers, where a read-modify-write would take it over.
        if register.load(Ordering::Relaxed) < rank {
            register.fetch_max(rank, Ordering::Relaxed);
        }
    }

    /// Whether nothing was inserted in the window ending at `now` (no
    /// bucket holds a period of it): the estimate is then 0. Cheap: reads
    /// no register.
    pub fn is_idle(&self, now: i64) -> bool {
        let current = now.div_euclid(self.period_secs);
        let oldest = current - self.ring.len() as i64 + 1;
        self.ring.iter().all(|bucket| {
            let period = bucket.period.load(Ordering::Acquire);
            period < oldest || period > current
        })
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

/// The cardinality estimate of a HyperLogLog register array: Otmar Ertl's
/// improved estimator ("New cardinality estimation algorithms for
/// HyperLogLog sketches", 2017, section 3). It reads only the histogram of
/// register values and is nearly unbiased at every cardinality, so it needs
/// neither linear counting for small ones nor empirical bias correction
/// where the classic estimator switches between the two (about 2.5 × m,
/// where the classic one is some 2% high). An empty array estimates 0.
fn hyperloglog_estimate(registers: &[u8]) -> f64 {
    let m = registers.len() as f64;
    let p = registers.len().trailing_zeros();
    // Register values run from 0 to q + 1, q the hash bits left for the rank.
    let q = (64 - p) as usize;
    let mut histogram = [0u32; 66];
    for &r in registers {
        histogram[usize::from(r)] += 1;
    }
    let mut z = m * tau(1.0 - f64::from(histogram[q + 1]) / m);
    for &count in histogram[1..=q].iter().rev() {
        z = 0.5 * (z + f64::from(count));
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    // alpha_inf = 1 / (2 ln 2), the bias constant as m grows.
    m * m / (2.0 * std::f64::consts::LN_2 * z)
}

/// σ(x) = x + Σ_{k≥1} x^(2^k) · 2^(k-1), for the registers still at 0
/// (x their share); infinite at x = 1.
fn sigma(x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut power = x;
    let mut weight = 1.0;
    let mut sum = x;
    loop {
        power *= power;
        let previous = sum;
        sum += power * weight;
        weight += weight;
        if sum == previous {
            return sum;
        }
    }
}

/// τ(x) = (1 - x - Σ_{k≥1} (1 - x^(2^-k))² · 2^-k) / 3, for the registers
/// at the largest value (1 - x their share); 0 at x = 0 and x = 1.
fn tau(x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut root = x;
    let mut weight = 1.0;
    let mut sum = 1.0 - x;
    loop {
        root = root.sqrt();
        let previous = sum;
        weight *= 0.5;
        sum -= (1.0 - root) * (1.0 - root) * weight;
        if sum == previous {
            return sum / 3.0;
        }
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
    fn idle_once_the_window_has_passed() {
        let sketch = WindowedSketch::new(4, 4, 100);
        assert!(sketch.is_idle(1_000));
        sketch.insert(hash(1), 1_000);
        assert!(!sketch.is_idle(1_000));
        assert!(!sketch.is_idle(1_399));
        assert!(sketch.is_idle(1_400));
        assert_eq!(sketch.estimate(1_400), 0.0);
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

    /// SplitMix64: a cheap generator whose outputs are distinct for
    /// distinct states (the output function is a bijection), so `n` draws
    /// are `n` distinct uniformly distributed hashes.
    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The mean relative error over several seeds stays within 2% at every
    /// size, including 2.5 × 2^precision, where the classic estimator
    /// switches from linear counting to the raw estimate and was about
    /// 2.4% high.
    #[test]
    fn unbiased_from_a_thousand_to_a_million() {
        for (precision, seeds) in [(10u8, 16u64), (14, 8)] {
            let m = 1u64 << precision;
            let mut sizes = [1_000, 5 * m / 2, 10_000, 100_000, 1_000_000];
            sizes.sort_unstable();
            let mut error_sums = [0.0; 5];
            for seed in 0..seeds {
                let sketch = WindowedSketch::new(precision, 1, 3600);
                let mut state = seed << 32 | u64::from(precision);
                let mut inserted = 0;
                for (size, error_sum) in sizes.iter().zip(error_sums.iter_mut()) {
                    while inserted < *size {
                        sketch.insert(splitmix64(&mut state), 0);
                        inserted += 1;
                    }
                    *error_sum += sketch.estimate(0) / *size as f64 - 1.0;
                }
            }
            for (size, error_sum) in sizes.iter().zip(error_sums) {
                let mean_error = error_sum / seeds as f64;
                assert!(
                    mean_error.abs() < 0.02,
                    "precision {precision}, {size} distinct values: mean error {:+.2}%",
                    mean_error * 100.0
                );
            }
        }
    }

    #[test]
    fn empty_sketch_estimates_zero() {
        assert_eq!(WindowedSketch::new(14, 4, 3600).estimate(0), 0.0);
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
