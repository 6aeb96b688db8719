//! A lock-free latency histogram that `prometheus-client` can encode.
//!
//! `prometheus_client::metrics::histogram::Histogram` takes a mutex on every
//! `observe`; handler latency is observed once per message, so that would put a
//! lock on the actor hot path. This one is a fixed array of `AtomicU64` buckets
//! plus an atomic nanosecond sum: `observe` is two relaxed `fetch_add`s and a
//! short scan of the bounds.
//!
//! The count is derived from the buckets at scrape time, so `_count` always equals
//! the `+Inf` bucket. `_sum` is read separately and may include an observation
//! whose bucket increment the same scrape did not see — the usual, documented
//! skew of lock-free Prometheus histograms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds, in seconds, used for every latency histogram: 10 µs to 10 s.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A cumulative latency histogram with the [`LATENCY_BUCKETS_SECONDS`] bounds.
/// Cloning shares the same counts.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds in nanoseconds, ascending; one bucket per bound plus `+Inf`.
    bounds_nanos: Box<[u64]>,
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        let bounds_nanos: Box<[u64]> = LATENCY_BUCKETS_SECONDS
            .iter()
            .map(|seconds| Duration::from_secs_f64(*seconds).as_nanos() as u64)
            .collect();
        let buckets = (0..=bounds_nanos.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        Self {
            inner: Arc::new(Inner {
                bounds_nanos,
                buckets,
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.observe_nanos(nanos);
    }

    /// Records one observation given in microseconds (as telemetry events carry them).
    pub fn observe_micros(&self, micros: u64) {
        self.observe_nanos(micros.saturating_mul(1_000));
    }

    /// Records `count` observations of `latency` at once (used for sampled counters,
    /// where only the total time of `count` messages is known).
    pub fn observe_many(&self, latency: Duration, count: u64) {
        if count == 0 {
            return;
        }
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let inner = &*self.inner;
        let index = inner.bounds_nanos.partition_point(|bound| *bound < nanos);
        inner.buckets[index].fetch_add(count, Ordering::Relaxed);
        inner
            .sum_nanos
            .fetch_add(nanos.saturating_mul(count), Ordering::Relaxed);
    }

    /// Adds per-bucket counts taken with the same bounds (`counts[i]` observations in
    /// bucket `i`, not cumulative; one more than [`LATENCY_BUCKETS_SECONDS`], the last one
    /// `+Inf`) and their total: how sampled runtime distributions are carried over exactly.
    /// Extra entries are added to `+Inf`.
    pub fn add_buckets(&self, counts: &[u64], sum_nanos: u64) {
        let inner = &*self.inner;
        let last = inner.buckets.len() - 1;
        for (index, count) in counts.iter().enumerate() {
            if *count > 0 {
                inner.buckets[index.min(last)].fetch_add(*count, Ordering::Relaxed);
            }
        }
        inner.sum_nanos.fetch_add(sum_nanos, Ordering::Relaxed);
    }

    fn observe_nanos(&self, nanos: u64) {
        let inner = &*self.inner;
        // `le` is inclusive: a value equal to a bound belongs to that bucket.
        let index = inner.bounds_nanos.partition_point(|bound| *bound < nanos);
        inner.buckets[index].fetch_add(1, Ordering::Relaxed);
        inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations recorded so far.
    pub fn count(&self) -> u64 {
        self.inner
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of all observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_SECONDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.inner.buckets.iter())
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        (self.sum_seconds(), count, buckets)
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        // Bucket counts are per bucket here; the encoder makes them cumulative.
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_overflow_lands_in_inf() {
        let histogram = LatencyHistogram::default();
        histogram.observe_micros(10); // exactly the first bound
        histogram.observe_micros(11); // second bucket
        histogram.observe(Duration::from_secs(60)); // +Inf
        let (_, count, buckets) = histogram.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], (0.000_01, 1));
        assert_eq!(buckets[1], (0.000_025, 1));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((histogram.sum_seconds() - 60.000_021).abs() < 1e-9);
    }
}
