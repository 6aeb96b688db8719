//! Size-bucketed reuse of byte buffers.
//!
//! Idle buffers sit in power-of-two buckets: bucket `k` holds buffers whose capacity is in
//! `[2^k, 2^(k+1))`. [`BufferPool::get`] looks in the bucket of the requested size and in
//! up to [`BufferPoolConfig::max_oversize_buckets`] larger ones, and takes the first
//! buffer that fits with `swap_remove`; a buffer too small for the request stays where it
//! is. A miss allocates a fresh buffer whose capacity is the request rounded up to a whole
//! 4 KiB page (requests under a page: to a power of two), and no more: a consumer of a
//! 588 KiB image gets a 588 KiB buffer, not a 1 MiB one it could never shrink (a
//! `Vec` keeps its capacity, and [`PooledBuffer::into_vec`] hands it on). The bucket scan
//! checks each buffer's fit, so an exact-size buffer still serves the next request of the
//! same size; the price is that a slightly larger request misses where a power-of-two
//! buffer would have fitted, which a pipeline of one batch shape never makes.
//!
//! [`BufferPool::get`] hands out an empty buffer; [`BufferPool::get_for_overwrite`] one of a
//! given length with unspecified contents, which spares a transform that overwrites every
//! byte a zero-fill pass. Buffers come back two ways: a [`PooledBuffer`] returns itself
//! when dropped, and a plain `Vec<u8>` (say, a prepared batch's data after the launcher
//! copied it) comes back with [`BufferPool::put`]. [`PooledBuffer::into_vec`] detaches a
//! buffer from the pool.
//!
//! The pool is bounded: a put that would raise the idle bytes above
//! [`BufferPoolConfig::max_pooled_bytes`] drops the buffer and counts it, and
//! [`BufferPool::trim_idle`] frees buffers that stayed idle for too long, so the pool
//! shrinks again after a burst.
//!
//! ```
//! use vortex_runtime::buffer_pool::BufferPool;
//!
//! let pool = BufferPool::default();
//! let mut output = pool.get_for_overwrite(4096);
//! output.fill(7);
//! let address = output.as_ptr();
//! drop(output); // back to the pool
//! assert_eq!(pool.get_for_overwrite(4096).as_ptr(), address);
//! assert_eq!((pool.stats().hits, pool.stats().misses), (1, 1));
//! ```

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub use vortex_messages::resource::BufferPoolStats;

/// Allocations of at least a page are rounded up to whole pages.
const PAGE: usize = 4096;

/// What a miss allocates for a request of `min_capacity` bytes (see the module docs).
fn allocation_size(min_capacity: usize) -> usize {
    if min_capacity < PAGE {
        min_capacity.next_power_of_two()
    } else {
        min_capacity
            .checked_next_multiple_of(PAGE)
            .unwrap_or(min_capacity)
    }
}

/// One bucket per possible bit length of a capacity.
const BUCKETS: usize = usize::BITS as usize;

/// Limits of a [`BufferPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferPoolConfig {
    /// High watermark of idle bytes (sum of capacities) the pool keeps.
    pub max_pooled_bytes: usize,
    /// How many buckets above the requested size `get` may take a buffer from; `2` means
    /// a buffer may be up to 8× the request rounded up to a power of two. This keeps a
    /// small request from taking (and pinning) a much larger buffer.
    pub max_oversize_buckets: usize,
}

impl Default for BufferPoolConfig {
    fn default() -> Self {
        Self {
            max_pooled_bytes: 256 * 1024 * 1024,
            max_oversize_buckets: 2,
        }
    }
}

struct IdleBuffer {
    buffer: Vec<u8>,
    returned_at: Instant,
}

struct PoolInner {
    config: BufferPoolConfig,
    /// A std `Mutex` per bucket: requests of different sizes never contend, a critical
    /// section is a short scan plus a `swap_remove`/`push` with nothing awaited, and a
    /// lock-free queue could neither pick "the first buffer that fits" nor trim by age.
    buckets: Vec<Mutex<Vec<IdleBuffer>>>,
    pooled_bytes: AtomicUsize,
    pooled_buffers: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    dropped: AtomicU64,
    trimmed: AtomicU64,
}

/// A thread-safe, size-bucketed pool of `Vec<u8>` buffers. Cloning is cheap and shares
/// the pool.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BufferPool")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new(BufferPoolConfig::default())
    }
}

impl BufferPool {
    /// An empty pool with these limits.
    pub fn new(config: BufferPoolConfig) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                config,
                buckets: (0..BUCKETS).map(|_| Mutex::default()).collect(),
                pooled_bytes: AtomicUsize::new(0),
                pooled_buffers: AtomicUsize::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                trimmed: AtomicU64::new(0),
            }),
        }
    }

    /// An empty buffer (length 0) with at least `min_capacity` bytes of capacity; it
    /// returns to this pool when dropped.
    pub fn get(&self, min_capacity: usize) -> PooledBuffer {
        let mut buffer = self.take_or_allocate(min_capacity);
        buffer.clear();
        buffer
    }

    fn take_or_allocate(&self, min_capacity: usize) -> PooledBuffer {
        let min_capacity = min_capacity.max(1);
        let buffer = match self.take(min_capacity) {
            Some(buffer) => {
                self.inner.hits.fetch_add(1, Ordering::Relaxed);
                buffer
            }
            None => {
                self.inner.misses.fetch_add(1, Ordering::Relaxed);
                Vec::with_capacity(allocation_size(min_capacity))
            }
        };
        PooledBuffer {
            buffer,
            pool: self.clone(),
        }
    }

    /// A buffer of exactly `len` bytes whose contents are unspecified: bytes left by its
    /// previous user, zeros where it never held data. For callers that overwrite every
    /// byte (transforms): a recycled buffer that already had this length costs no
    /// zero-filling, which a cleared buffer would (`resize` writes every byte again).
    pub fn get_for_overwrite(&self, len: usize) -> PooledBuffer {
        let mut buffer = self.take_or_allocate(len);
        buffer.resize(len, 0);
        buffer
    }

    /// Returns a buffer to the pool. Its length and bytes are kept for
    /// [`get_for_overwrite`](Self::get_for_overwrite); `get` clears it. When the pool is at its
    /// high watermark the buffer is dropped instead and counted in
    /// [`BufferPoolStats::dropped`]. Buffers without capacity are ignored.
    pub fn put(&self, buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity == 0 {
            return;
        }
        if !self.reserve(capacity) {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Counted before the push, so a concurrent `take` never decrements below zero.
        self.inner.pooled_buffers.fetch_add(1, Ordering::Relaxed);
        self.bucket(bucket_of(capacity)).push(IdleBuffer {
            buffer,
            returned_at: Instant::now(),
        });
    }

    /// Frees every buffer that has been idle for at least `older_than` and returns how
    /// many were freed. Call it periodically (say, from a timer) to shrink the pool.
    pub fn trim_idle(&self, older_than: Duration) -> usize {
        let now = Instant::now();
        let mut freed = 0;
        for index in 0..BUCKETS {
            let mut bucket = self.bucket(index);
            bucket.retain(|idle| {
                let keep = now.saturating_duration_since(idle.returned_at) < older_than;
                if !keep {
                    self.release(idle.buffer.capacity());
                    freed += 1;
                }
                keep
            });
        }
        self.inner
            .trimmed
            .fetch_add(freed as u64, Ordering::Relaxed);
        freed
    }

    /// Frees every idle buffer; returns how many were freed.
    pub fn clear(&self) -> usize {
        self.trim_idle(Duration::ZERO)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BufferPoolStats {
        let inner = &self.inner;
        BufferPoolStats {
            hits: inner.hits.load(Ordering::Relaxed),
            misses: inner.misses.load(Ordering::Relaxed),
            pooled_bytes: inner.pooled_bytes.load(Ordering::Relaxed),
            pooled_buffers: inner.pooled_buffers.load(Ordering::Relaxed),
            dropped: inner.dropped.load(Ordering::Relaxed),
            trimmed: inner.trimmed.load(Ordering::Relaxed),
        }
    }

    /// The pool's limits.
    pub fn config(&self) -> BufferPoolConfig {
        self.inner.config
    }

    fn take(&self, min_capacity: usize) -> Option<Vec<u8>> {
        let first = bucket_of(min_capacity);
        let last = (first + self.inner.config.max_oversize_buckets).min(BUCKETS - 1);
        for index in first..=last {
            let mut bucket = self.bucket(index);
            // Only the first bucket can hold buffers smaller than the request; in the
            // others the last buffer always fits. A misfit is skipped, never dropped.
            if let Some(position) = bucket
                .iter()
                .rposition(|idle| idle.buffer.capacity() >= min_capacity)
            {
                let idle = bucket.swap_remove(position);
                drop(bucket);
                self.release(idle.buffer.capacity());
                return Some(idle.buffer);
            }
        }
        None
    }

    /// Accounts `bytes` more idle bytes if that stays within the high watermark.
    fn reserve(&self, bytes: usize) -> bool {
        let limit = self.inner.config.max_pooled_bytes;
        self.inner
            .pooled_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                current.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.inner.pooled_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.inner.pooled_buffers.fetch_sub(1, Ordering::Relaxed);
    }

    fn bucket(&self, index: usize) -> MutexGuard<'_, Vec<IdleBuffer>> {
        // A panic cannot leave a bucket half-updated (push, retain and swap_remove are
        // atomic from our point of view), so a poisoned lock is safe to use.
        self.inner.buckets[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The bucket of a capacity: the index of its highest set bit.
fn bucket_of(capacity: usize) -> usize {
    debug_assert!(capacity > 0);
    (usize::BITS - 1 - capacity.leading_zeros()) as usize
}

/// A buffer borrowed from a [`BufferPool`]; it returns to the pool when dropped.
///
/// It dereferences to `Vec<u8>`, so it can be written and grown like one.
pub struct PooledBuffer {
    buffer: Vec<u8>,
    pool: BufferPool,
}

impl PooledBuffer {
    /// Detaches the buffer from the pool; hand it back later with [`BufferPool::put`].
    pub fn into_vec(mut self) -> Vec<u8> {
        // Dropping `self` afterwards puts an empty `Vec`, which the pool ignores.
        std::mem::take(&mut self.buffer)
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buffer));
    }
}

impl Deref for PooledBuffer {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.buffer
    }
}

impl DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }
}

impl std::fmt::Debug for PooledBuffer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PooledBuffer")
            .field("len", &self.buffer.len())
            .field("capacity", &self.buffer.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_of;

    #[test]
    fn bucket_is_highest_set_bit() {
        let table = [
            (1, 0),
            (2, 1),
            (3, 1),
            (4, 2),
            (1023, 9),
            (1024, 10),
            (1 << 20, 20),
        ];
        for (capacity, bucket) in table {
            assert_eq!(bucket_of(capacity), bucket, "capacity {capacity}");
        }
    }
}
