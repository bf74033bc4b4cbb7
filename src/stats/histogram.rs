//! A fixed-bucket latency histogram of atomics: recording is a short scan over constant
//! bounds and three relaxed adds; no lock, no allocation, bounded memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (100µs .. 30s); past the last is `+Inf`.
pub const BOUNDS_MICROS: [u64; 17] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Counts of durations by bucket, plus their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A copy of a [`Histogram`] for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, cumulative count)`; the `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    #[inline]
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_MICROS
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BOUNDS_MICROS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(us, Ordering::Relaxed);
    }

    /// `record(Duration::ZERO)`, for the common zero (a checkout that did not wait):
    /// nothing to add to the sum.
    #[inline]
    pub fn record_zero(&self) {
        self.buckets[0].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = BOUNDS_MICROS
            .iter()
            .zip(&self.buckets)
            .map(|(&b, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (micros_to_secs(b), cumulative)
            })
            .collect();
        let inf = cumulative + self.buckets[BOUNDS_MICROS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            // Read separately from the buckets; keep `+Inf >= every bucket` for Prometheus.
            count: inf.max(self.count.load(Ordering::Relaxed)),
            sum_seconds: micros_to_secs(self.sum_micros.load(Ordering::Relaxed)),
        }
    }
}

impl HistogramSnapshot {
    /// An estimate of quantile `q` (0..1): the upper bound of the bucket it falls in.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]
        let rank = (q * self.count as f64).ceil() as u64;
        Some(
            self.buckets
                .iter()
                .find(|(_, c)| *c >= rank.max(1))
                .map_or(f64::INFINITY, |(b, _)| *b),
        )
    }
}

#[allow(clippy::cast_precision_loss)]
fn micros_to_secs(us: u64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_recorded_as_such_counts_as_any_zero() {
        let (a, b) = (Histogram::default(), Histogram::default());
        a.record(Duration::ZERO);
        b.record_zero();
        b.record(Duration::from_micros(300));
        a.record(Duration::from_micros(300));
        assert_eq!(a.snapshot(), b.snapshot());
        assert_eq!(b.snapshot().count, 2);
    }

    #[test]
    fn buckets_are_cumulative_and_sum_adds_up() {
        let h = Histogram::default();
        h.record(Duration::from_micros(50));
        h.record(Duration::from_micros(100));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.0001, 2));
        // 3ms lands in the 5ms bucket.
        assert_eq!(s.buckets[5], (0.005, 3));
        assert_eq!(s.buckets.last().map(|b| b.1), Some(3));
        assert!((s.sum_seconds - 60.00315).abs() < 1e-9);
        assert_eq!(s.quantile(0.5), Some(0.0001));
        assert_eq!(s.quantile(0.75), Some(0.005));
        assert_eq!(s.quantile(1.0), Some(f64::INFINITY));
    }
}
