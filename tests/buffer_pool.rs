//! Buffer pool: reuse, no dropping on the way, high watermark, trimming.

use std::time::Duration;

use vortex::runtime::buffer_pool::{BufferPool, BufferPoolConfig, BufferPoolStats};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

#[test]
fn large_buffer_comes_back_and_small_one_stays_pooled() {
    let pool = BufferPool::default();
    let large = pool.get(MIB);
    let large_address = large.as_ptr();
    drop(large);
    let small = pool.get(64 * KIB);
    let small_address = small.as_ptr();
    assert_ne!(
        small_address, large_address,
        "a 64 KiB request must not take 1 MiB"
    );
    drop(small);

    let large_again = pool.get(MIB);
    assert_eq!(large_again.as_ptr(), large_address);
    assert!(large_again.is_empty() && large_again.capacity() >= MIB);
    let stats = pool.stats();
    assert_eq!((stats.pooled_buffers, stats.pooled_bytes), (1, 64 * KIB));
    assert_eq!((stats.hits, stats.misses), (1, 2));

    let small_again = pool.get(64 * KIB);
    assert_eq!(small_again.as_ptr(), small_address);
}

#[test]
fn a_too_small_buffer_is_skipped_not_dropped() {
    let pool = BufferPool::default();
    pool.put(Vec::with_capacity(3000));
    let buffer = pool.get(3500);
    assert!(buffer.capacity() >= 3500);
    let stats = pool.stats();
    assert_eq!(
        (stats.misses, stats.pooled_buffers, stats.pooled_bytes),
        (1, 1, 3000)
    );
    assert_eq!(pool.get(2000).capacity(), 3000);
}

#[test]
fn a_larger_bucket_serves_a_request_within_the_oversize_limit() {
    let pool = BufferPool::default();
    pool.put(Vec::with_capacity(4 * KIB));
    assert_eq!(pool.get(KIB).capacity(), 4 * KIB);
    assert_eq!(pool.stats().hits, 1);
}

#[test]
fn puts_above_the_high_watermark_are_dropped_and_counted() {
    let pool = BufferPool::new(BufferPoolConfig {
        max_pooled_bytes: MIB,
        ..Default::default()
    });
    pool.put(Vec::with_capacity(768 * KIB));
    pool.put(Vec::with_capacity(768 * KIB));
    pool.put(Vec::with_capacity(256 * KIB));
    let stats = pool.stats();
    assert_eq!(stats.dropped, 1);
    assert_eq!((stats.pooled_buffers, stats.pooled_bytes), (2, MIB));
}

#[test]
fn trim_idle_frees_only_buffers_idle_long_enough() {
    let pool = BufferPool::default();
    pool.put(Vec::with_capacity(KIB));
    pool.put(Vec::with_capacity(MIB));
    assert_eq!(pool.trim_idle(Duration::from_secs(3600)), 0);
    assert_eq!(pool.stats().pooled_buffers, 2);
    assert_eq!(pool.trim_idle(Duration::ZERO), 2);
    let stats = pool.stats();
    assert_eq!(
        (stats.pooled_buffers, stats.pooled_bytes, stats.trimmed),
        (0, 0, 2)
    );
    // The pool still works after shrinking.
    drop(pool.get(KIB));
    assert_eq!(pool.stats().pooled_buffers, 1);
}

#[test]
fn into_vec_detaches_and_put_returns() {
    let pool = BufferPool::default();
    let mut buffer = pool.get(100);
    buffer.extend_from_slice(b"payload");
    let detached = buffer.into_vec();
    assert_eq!(pool.stats().pooled_buffers, 0);
    pool.put(detached);
    assert_eq!(pool.get(100).len(), 0, "returned buffers are cleared");
}

#[test]
fn concurrent_use_keeps_counters_consistent() {
    let pool = BufferPool::new(BufferPoolConfig {
        max_pooled_bytes: 4 * MIB,
        ..Default::default()
    });
    std::thread::scope(|scope| {
        for worker in 0..4_usize {
            let pool = pool.clone();
            scope.spawn(move || {
                for round in 0..1000_usize {
                    let size = 1 << ((worker + round) % 16);
                    let mut buffer = pool.get(size);
                    buffer.resize(size, 1);
                }
            });
        }
    });
    let stats: BufferPoolStats = pool.stats();
    assert_eq!(stats.hits + stats.misses, 4000);
    assert!(stats.pooled_bytes <= 4 * MIB);
    pool.clear();
    assert_eq!(
        (pool.stats().pooled_bytes, pool.stats().pooled_buffers),
        (0, 0)
    );
}

#[test]
fn get_for_overwrite_has_the_requested_length_and_reuses_the_allocation() {
    let pool = BufferPool::default();
    let mut buffer = pool.get_for_overwrite(10);
    assert_eq!(buffer.as_slice(), [0; 10], "a fresh buffer is zero-filled");
    buffer.fill(7);
    let address = buffer.as_ptr();
    drop(buffer);
    let recycled = pool.get_for_overwrite(12);
    assert_eq!((recycled.as_ptr(), recycled.len()), (address, 12));
    assert_eq!(
        &recycled[10..],
        [0, 0],
        "only the grown tail is zero-filled"
    );
}

#[test]
fn a_588_kib_image_gets_a_buffer_of_its_size_not_a_power_of_two() {
    let pool = BufferPool::default();
    let image = 588 * 1024;
    let buffer = pool.get_for_overwrite(image);
    assert_eq!(buffer.len(), image);
    assert!(
        buffer.capacity() < image + 4096,
        "capacity {} carries more than a page of slack",
        buffer.capacity()
    );
    let address = buffer.as_ptr();
    drop(buffer);
    // The exact-size buffer still serves the next image of the same size.
    let again = pool.get_for_overwrite(image);
    assert_eq!(again.as_ptr(), address);
    assert_eq!((pool.stats().hits, pool.stats().misses), (1, 1));
    // A consumer that keeps the bytes keeps no hidden megabyte either.
    assert!(again.into_vec().capacity() < image + 4096);
}
