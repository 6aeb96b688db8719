//! The preprocessor's pure parts: timing one transform, the per-batch counters
//! ([`PreprocessorStats`]) and what a failed batch carries ([`FailedBatch`]).
//!
//! No async and no actor here: the actor (`actor.rs`) only moves batches between its
//! mailbox, the resource group and the next stage, and records what these functions
//! measured.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use vortex_messages::pipeline::{PreparedBatch, RawBatch};
use vortex_runtime::buffer_pool::BufferPool;

use crate::preprocessor::{
    error::{PreprocessorError, TransformError},
    transform::{prepare, Transform},
};

/// What one transform run produced: the raw batch back (so a failure can hand it on),
/// the outcome, and the time the transform took.
pub(crate) struct Transformed {
    pub(crate) raw: RawBatch,
    pub(crate) outcome: Result<PreparedBatch, TransformError>,
    pub(crate) took: Duration,
}

/// Runs `transform` on `raw` into a pooled buffer and times it. Meant to run on a
/// resource group's thread.
pub(crate) fn transform_timed(
    transform: &dyn Transform,
    raw: RawBatch,
    pool: &BufferPool,
) -> Transformed {
    let start = Instant::now();
    let outcome = prepare(transform, &raw, pool);
    Transformed {
        raw,
        outcome,
        took: start.elapsed(),
    }
}

/// Microseconds since the Unix epoch (the clock of `RawBatch::created_at_micros`).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, saturating_micros)
}

fn saturating_micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A batch the preprocessor could not deliver, as handed to the failure sink
/// (`PreprocessorConfig::on_failure`).
#[derive(Debug, Clone)]
pub struct FailedBatch {
    /// The raw batch's id.
    pub id: u64,
    /// The raw batch's creation time (microseconds since the Unix epoch).
    pub created_at_micros: u64,
    /// Why it failed: the transform refused it, the resource group could not run it
    /// (the transform panicked), or the next stage was closed.
    pub error: PreprocessorError,
    /// The raw batch itself, for a retry or an inspection; `None` only when the
    /// transform panicked (the batch was moved into the panicking task).
    pub batch: Option<RawBatch>,
}

/// Per-batch counters of one preprocessor (all workers together). Lock-free: every
/// worker adds to the same atomics; read a consistent-enough copy with
/// [`snapshot`](PreprocessorStats::snapshot).
#[derive(Debug, Default)]
pub struct PreprocessorStats {
    prepared: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    items: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    queue_wait_micros: AtomicU64,
    queue_wait_max_micros: AtomicU64,
    transform_micros: AtomicU64,
    transform_max_micros: AtomicU64,
}

impl PreprocessorStats {
    /// Counts one successful transform: its queue wait (creation to start of handling),
    /// its transform time, and its sizes.
    pub(crate) fn record_prepared(
        &self,
        queue_wait_micros: u64,
        took: Duration,
        raw: &RawBatch,
        prepared: &PreparedBatch,
    ) {
        let took = saturating_micros(took);
        self.prepared.fetch_add(1, Relaxed);
        self.items.fetch_add(u64::from(raw.items), Relaxed);
        self.bytes_in.fetch_add(raw.data.len() as u64, Relaxed);
        self.bytes_out
            .fetch_add(prepared.data.len() as u64, Relaxed);
        self.queue_wait_micros.fetch_add(queue_wait_micros, Relaxed);
        self.queue_wait_max_micros
            .fetch_max(queue_wait_micros, Relaxed);
        self.transform_micros.fetch_add(took, Relaxed);
        self.transform_max_micros.fetch_max(took, Relaxed);
    }

    /// Counts one batch the next stage accepted.
    pub(crate) fn record_delivered(&self) {
        self.delivered.fetch_add(1, Relaxed);
    }

    /// Counts one batch that failed (transform, resource group or next stage).
    pub(crate) fn record_failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }

    /// Batches the next stage accepted so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Relaxed)
    }

    /// Batches that failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> PreprocessorSnapshot {
        PreprocessorSnapshot {
            prepared: self.prepared.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            failed: self.failed.load(Relaxed),
            items: self.items.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            queue_wait_micros: self.queue_wait_micros.load(Relaxed),
            queue_wait_max_micros: self.queue_wait_max_micros.load(Relaxed),
            transform_micros: self.transform_micros.load(Relaxed),
            transform_max_micros: self.transform_max_micros.load(Relaxed),
        }
    }
}

/// A copy of [`PreprocessorStats`]. Totals are sums over all prepared batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreprocessorSnapshot {
    /// Batches the transform turned into prepared batches.
    pub prepared: u64,
    /// Prepared batches the next stage accepted.
    pub delivered: u64,
    /// Batches that failed (transform error, panic, closed next stage).
    pub failed: u64,
    /// Items (images, lines) in the prepared batches.
    pub items: u64,
    /// Raw bytes transformed.
    pub bytes_in: u64,
    /// Prepared bytes produced.
    pub bytes_out: u64,
    /// Total time prepared batches waited between creation and the start of handling.
    pub queue_wait_micros: u64,
    /// The longest such wait.
    pub queue_wait_max_micros: u64,
    /// Total time spent in the transform.
    pub transform_micros: u64,
    /// The longest transform.
    pub transform_max_micros: u64,
}

impl PreprocessorSnapshot {
    /// Mean queue wait per prepared batch (zero before the first).
    pub fn mean_queue_wait(&self) -> Duration {
        mean(self.queue_wait_micros, self.prepared)
    }

    /// Mean transform time per prepared batch (zero before the first).
    pub fn mean_transform(&self) -> Duration {
        mean(self.transform_micros, self.prepared)
    }
}

fn mean(total_micros: u64, count: u64) -> Duration {
    Duration::from_micros(total_micros.checked_div(count).unwrap_or(0))
}

impl fmt::Display for PreprocessorSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "prepared={} delivered={} failed={} items={} bytes_in={} bytes_out={} \
             queue_wait_mean_us={} queue_wait_max_us={} transform_mean_us={} transform_max_us={}",
            self.prepared,
            self.delivered,
            self.failed,
            self.items,
            self.bytes_in,
            self.bytes_out,
            self.mean_queue_wait().as_micros(),
            self.queue_wait_max_micros,
            self.mean_transform().as_micros(),
            self.transform_max_micros,
        )
    }
}

#[cfg(test)]
mod tests {
    use vortex_messages::pipeline::{BatchKind, DType};

    use super::*;

    fn raw(items: u32, bytes: usize) -> RawBatch {
        RawBatch {
            id: 1,
            kind: BatchKind::Text,
            items,
            data: vec![b'a'; bytes],
            created_at_micros: 0,
        }
    }

    fn prepared(bytes: usize) -> PreparedBatch {
        PreparedBatch {
            id: 1,
            items: 1,
            dtype: DType::U8,
            shape: vec![bytes as u32],
            data: vec![0; bytes],
            created_at_micros: 0,
        }
    }

    #[test]
    fn counters_sum_and_keep_the_maximum() {
        let stats = PreprocessorStats::default();
        let table = [(10, 100, 2, 8, 32), (30, 300, 3, 4, 16), (20, 200, 1, 2, 8)];
        for (wait, took, items, bytes_in, bytes_out) in table {
            stats.record_prepared(
                wait,
                Duration::from_micros(took),
                &raw(items, bytes_in),
                &prepared(bytes_out),
            );
            stats.record_delivered();
        }
        stats.record_failed();
        let snapshot = stats.snapshot();
        assert_eq!(
            snapshot,
            PreprocessorSnapshot {
                prepared: 3,
                delivered: 3,
                failed: 1,
                items: 6,
                bytes_in: 14,
                bytes_out: 56,
                queue_wait_micros: 60,
                queue_wait_max_micros: 30,
                transform_micros: 600,
                transform_max_micros: 300,
            }
        );
        assert_eq!(snapshot.mean_queue_wait(), Duration::from_micros(20));
        assert_eq!(snapshot.mean_transform(), Duration::from_micros(200));
        assert!(snapshot.to_string().contains("transform_mean_us=200"));
    }

    #[test]
    fn means_are_zero_before_the_first_batch() {
        let snapshot = PreprocessorStats::default().snapshot();
        assert_eq!(snapshot.mean_queue_wait(), Duration::ZERO);
        assert_eq!(snapshot.mean_transform(), Duration::ZERO);
    }
}
