//! Load test: durable appends of 256-byte records, printed as a table of records/s and
//! ack latency (p50/p99/max), for 8 appender threads group-committing with `Batch`
//! durability (1 ms) against `write` + `fdatasync` per record on the same disk.
//!
//! Run: `cargo run --release --example journal_load [seconds-per-row]` (default 3).
//! The journal lives in a temp directory; set `TMPDIR` to test another disk.

use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vortex_actors::journal::{Durability, Journal, JournalConfig, JournalWriter, PendingRecord};

const RECORD_BYTES: usize = 256;

struct Row {
    name: String,
    records: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let rank = |fraction: f64| {
            let index = ((fraction * sorted.len() as f64).ceil() as usize).max(1) - 1;
            sorted[index.min(sorted.len() - 1)]
        };
        println!(
            "| {:<48} | {:>9} | {:>11.0} | {:>9.3} | {:>9.3} | {:>9.3} |",
            self.name,
            self.records,
            self.rate(),
            rank(0.50).as_secs_f64() * 1e3,
            rank(0.99).as_secs_f64() * 1e3,
            sorted[sorted.len() - 1].as_secs_f64() * 1e3,
        );
    }
}

/// One appender thread: keeps up to `window` appends in flight for `duration`,
/// measuring each ack latency on the writer thread's callback.
fn appender(writer: &JournalWriter, window: usize, duration: Duration) -> Vec<Duration> {
    let durability = Durability::Batch {
        max_delay: Duration::from_millis(1),
        max_bytes: 1 << 20,
    };
    let (done, acknowledged) = mpsc::channel();
    let mut latencies = Vec::new();
    let mut in_flight = 0;
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        if in_flight == window {
            latencies.push(acknowledged.recv().unwrap());
            in_flight -= 1;
        }
        let done = done.clone();
        let submitted = Instant::now();
        let record = PendingRecord::raw(1, vec![7; RECORD_BYTES]).with_durability(durability);
        writer.append_with(record, move |result| {
            result.expect("durable append");
            let _ = done.send(submitted.elapsed());
        });
        in_flight += 1;
    }
    latencies.extend(acknowledged.iter().take(in_flight));
    latencies
}

fn group_commit(threads: usize, window: usize, duration: Duration) -> Row {
    let directory = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(directory.path(), JournalConfig::default()).unwrap();
    let writer = JournalWriter::spawn(journal).unwrap();
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| appender(&writer, window, duration)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    let status = writer.reader().status();
    writer.shutdown().unwrap();
    eprintln!(
        "  group commit {threads}x{window}: {} fsyncs in window, fsync p50 {:?} p99 {:?}",
        status.fsync_latency.samples, status.fsync_latency.p50, status.fsync_latency.p99
    );
    Row {
        name: format!("journal, {threads} threads x {window} in flight, Batch(1 ms)"),
        records: latencies.len(),
        elapsed,
        latencies,
    }
}

fn baseline(duration: Duration) -> Row {
    let directory = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(directory.path().join("baseline")).unwrap();
    let record = [7u8; RECORD_BYTES];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        let submitted = Instant::now();
        let offset = latencies.len() as u64 * RECORD_BYTES as u64;
        file.write_all_at(&record, offset).unwrap();
        file.sync_data().unwrap();
        latencies.push(submitted.elapsed());
    }
    Row {
        name: "baseline: write + fdatasync per record".into(),
        records: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map_or(3.0, |arg| arg.parse().expect("seconds per row"));
    let duration = Duration::from_secs_f64(seconds);
    println!(
        "| {:<48} | {:>9} | {:>11} | {:>9} | {:>9} | {:>9} |",
        "mode (256 B records, durable)", "records", "records/s", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "|{:-<50}|{:->11}|{:->13}|{:->11}|{:->11}|{:->11}|",
        "", "", "", "", "", ""
    );
    let base = baseline(duration);
    base.print();
    let synchronous = group_commit(8, 1, duration);
    synchronous.print();
    let windowed = group_commit(8, 32, duration);
    windowed.print();
    println!();
    println!(
        "ratio vs baseline: 8x1 {:.1}x, 8x32 {:.1}x",
        synchronous.rate() / base.rate(),
        windowed.rate() / base.rate()
    );
}
