//! Durable appends of 256-byte records: 8 appender threads group-committing through
//! `JournalWriter` with `Batch` durability (1 ms), against a baseline that does a write
//! and an `fdatasync` per record on the same disk (a temp directory; set `TMPDIR` to
//! move it).
//! Criterion reports time per record; divide to get records/s. For p99 ack latency and
//! the ratio as a table, run `cargo run --release --example journal_load`.
//!
//! Run: `cargo bench --bench journal`.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vortex_actors::journal::{Durability, Journal, JournalConfig, JournalWriter, PendingRecord};

const RECORD_BYTES: usize = 256;
const APPENDERS: u64 = 8;
const WINDOW: usize = 32;

fn group_commit(records: u64) -> Duration {
    let directory = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(directory.path(), JournalConfig::default()).unwrap();
    let writer = JournalWriter::spawn(journal).unwrap();
    let durability = Durability::Batch {
        max_delay: Duration::from_millis(1),
        max_bytes: 1 << 20,
    };
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..APPENDERS {
            let writer = &writer;
            let count = records / APPENDERS + u64::from(thread < records % APPENDERS);
            scope.spawn(move || {
                let (done, acknowledged) = mpsc::channel();
                let mut in_flight = 0;
                for _ in 0..count {
                    if in_flight == WINDOW {
                        acknowledged.recv().unwrap();
                        in_flight -= 1;
                    }
                    let done = done.clone();
                    let record = PendingRecord::raw(1, vec![7; RECORD_BYTES]);
                    writer.append_with(record.with_durability(durability), move |result| {
                        result.expect("durable append");
                        let _ = done.send(());
                    });
                    in_flight += 1;
                }
                for _ in 0..in_flight {
                    acknowledged.recv().unwrap();
                }
            });
        }
    });
    let elapsed = started.elapsed();
    writer.shutdown().unwrap();
    elapsed
}

fn fdatasync_per_record(records: u64) -> Duration {
    let directory = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(directory.path().join("baseline")).unwrap();
    let record = [7u8; RECORD_BYTES];
    let started = Instant::now();
    for index in 0..records {
        file.write_all_at(&record, index * RECORD_BYTES as u64)
            .unwrap();
        file.sync_data().unwrap();
    }
    started.elapsed()
}

fn durable_appends(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("durable_append_256B");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    group.bench_function("group_commit_8_threads_batch_1ms", |bencher| {
        bencher.iter_custom(group_commit)
    });
    group.bench_function("baseline_write_fdatasync_per_record", |bencher| {
        bencher.iter_custom(fdatasync_per_record)
    });
    group.finish();
}

criterion_group!(benches, durable_appends);
criterion_main!(benches);
