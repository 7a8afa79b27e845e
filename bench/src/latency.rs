//! A latency histogram in microseconds with fixed memory: exact below 1,024 µs, then 512
//! buckets per power of two (HdrHistogram's layout, about 0.2 % precision). Millions of
//! samples cost one counter increment each, and percentiles never need the samples kept.

use serde::Serialize;

/// Values below this are counted exactly.
const EXACT: u64 = 1024;
/// Buckets per power of two above [`EXACT`].
const SUB_BUCKETS: u64 = 512;
/// `log2(SUB_BUCKETS)`.
const SUB_BITS: u32 = 9;
/// Values are capped here (about 12.7 days in µs): anything larger is a bug, not a latency.
const LARGEST: u64 = (1 << 40) - 1;
const BUCKETS: usize = (EXACT + (40 - 10) * SUB_BUCKETS) as usize;

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: vec![0; BUCKETS], total: 0, max: 0 }
    }
}

fn bucket_of(value: u64) -> usize {
    let value = value.min(LARGEST);
    if value < EXACT {
        return value as usize;
    }
    let power = 63 - value.leading_zeros(); // >= 10
    let sub = (value >> (power - SUB_BITS)) - SUB_BUCKETS;
    (EXACT + u64::from(power - 10) * SUB_BUCKETS + sub) as usize
}

/// The largest value that falls in `bucket` (so percentiles never flatter the server).
fn upper_bound_of(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < EXACT {
        return bucket;
    }
    let power = 10 + (bucket - EXACT) / SUB_BUCKETS;
    let sub = (bucket - EXACT) % SUB_BUCKETS + SUB_BUCKETS;
    ((sub + 1) << (power - u64::from(SUB_BITS))) - 1
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        self.counts[bucket_of(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at or below which a fraction `quantile` (0..=1) of the samples lie; 0 when
    /// empty.
    pub fn value_at(&self, quantile: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound_of(bucket).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            samples: self.total,
            p50_ms: ms(self.value_at(0.50)),
            p90_ms: ms(self.value_at(0.90)),
            p99_ms: ms(self.value_at(0.99)),
            max_ms: ms(self.max),
        }
    }
}

/// Percentiles as reported, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bounds_contain_their_values() {
        let mut previous = 0;
        for value in (0..5_000_000u64).step_by(7).chain([LARGEST, u64::MAX]) {
            let bucket = bucket_of(value);
            assert!(bucket >= previous, "bucket order at {value}");
            assert!(bucket < BUCKETS);
            assert!(upper_bound_of(bucket) >= value.min(LARGEST), "bound of {value}");
            previous = bucket;
        }
    }

    #[test]
    fn percentiles_are_within_a_fraction_of_a_percent() {
        let mut histogram = Histogram::default();
        for value in 1..=100_000u64 {
            histogram.record(value);
        }
        let p99 = histogram.value_at(0.99) as f64;
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.005, "p99 {p99}");
        assert_eq!(histogram.value_at(1.0), 100_000);
        assert_eq!(histogram.value_at(0.0), 1);
        assert_eq!(histogram.count(), 100_000);
    }

    #[test]
    fn merging_adds_counts() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(10);
        b.record(5_000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.value_at(1.0), 5_000);
        assert_eq!(a.value_at(0.5), 10);
    }
}
