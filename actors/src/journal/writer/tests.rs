//! The writer's failure watch, its non-blocking paths, and live retention, on the crash
//! double.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::journal::io::MemoryFileSystem;
use crate::journal::JournalConfig;

const DIRECTORY: &str = "/journal";
const DEADLINE: Duration = Duration::from_secs(10);

fn open(fs: &MemoryFileSystem, segment_bytes: u64) -> Journal {
    let config = JournalConfig {
        segment_bytes,
        max_record_bytes: 256,
        ..JournalConfig::default()
    };
    Journal::open_with(Arc::new(fs.clone()), DIRECTORY, config)
        .expect("open")
        .0
}

/// A writer whose thread is stuck in a callback until the returned sender is dropped
/// or sent to.
fn stalled_writer(capacity: usize) -> (JournalWriter, mpsc::Sender<()>) {
    let fs = MemoryFileSystem::new();
    let config = WriterConfig {
        queue_capacity: capacity,
        max_batch_records: 1,
    };
    let writer = JournalWriter::spawn_with(open(&fs, 4096), config).expect("spawn");
    let (release, released) = mpsc::channel::<()>();
    let (entered, inside) = mpsc::channel();
    writer.append_with(PendingRecord::raw(1, b"stall".to_vec()), move |_| {
        entered.send(()).expect("test waits");
        let _ = released.recv();
    });
    inside
        .recv_timeout(DEADLINE)
        .expect("the writer runs the callback");
    (writer, release)
}

#[test]
fn a_full_queue_is_handed_back_instead_of_blocking() {
    let (writer, release) = stalled_writer(1);
    let (acknowledged, acknowledgements) = mpsc::channel();
    let ack = acknowledged.clone();
    let queued = writer.try_append_with(PendingRecord::raw(1, b"a".to_vec()), move |seq| {
        ack.send(seq).expect("test waits");
    });
    assert!(queued.is_ok(), "one slot is free");
    let ack = acknowledged.clone();
    let full = writer
        .try_append_with(PendingRecord::raw(1, b"b".to_vec()), move |seq| {
            ack.send(seq).expect("test waits");
        })
        .expect_err("the queue is full");
    let sender = std::thread::spawn(move || full.send_blocking());
    drop(release);
    sender.join().expect("send_blocking");
    let mut seqs: Vec<u64> = (0..2)
        .map(|_| {
            acknowledgements
                .recv_timeout(DEADLINE)
                .expect("ack")
                .expect("seq")
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![2, 3]);
}

#[test]
fn dropping_a_writer_does_not_wait_for_its_thread() {
    let (writer, release) = stalled_writer(4);
    let (dropped, was_dropped) = mpsc::channel();
    std::thread::spawn(move || {
        drop(writer);
        dropped.send(()).expect("test waits");
    });
    // The thread is still stuck in the callback: a joining drop could not return.
    was_dropped
        .recv_timeout(DEADLINE)
        .expect("drop returned while the writer thread was busy");
    drop(release);
}

#[test]
fn a_failed_fsync_is_told_to_the_watcher() {
    let fs = MemoryFileSystem::new();
    let journal = open(&fs, 4096);
    let (told, failures) = mpsc::channel();
    let writer = JournalWriter::spawn_watched(journal, WriterConfig::default(), move |failure| {
        told.send(failure).expect("test waits");
    })
    .expect("spawn");
    fs.fail_fsync_number(1);
    let outcome = writer.append(1, b"x".to_vec(), Durability::Each).wait();
    assert!(
        matches!(outcome, Err(JournalError::Poisoned { .. })),
        "{outcome:?}"
    );
    let failure = failures.recv_timeout(DEADLINE).expect("watcher told");
    assert!(matches!(failure, WriterFailure::Poisoned(_)), "{failure:?}");
    // Told once only.
    let again = writer.append(1, b"y".to_vec(), Durability::Each).wait();
    assert!(again.is_err());
    assert!(failures.recv_timeout(Duration::from_millis(50)).is_err());
}

#[test]
fn a_dead_writer_thread_is_told_to_the_watcher() {
    let fs = MemoryFileSystem::new();
    let (told, failures) = mpsc::channel();
    let writer =
        JournalWriter::spawn_watched(open(&fs, 4096), WriterConfig::default(), move |failure| {
            told.send(failure).expect("test waits");
        })
        .expect("spawn");
    writer.append_with(PendingRecord::raw(1, b"x".to_vec()), |_| {
        panic!("callback panics on purpose")
    });
    let failure = failures.recv_timeout(DEADLINE).expect("watcher told");
    let WriterFailure::Panicked(text) = failure else {
        panic!("{failure:?}")
    };
    assert!(text.contains("on purpose"), "{text}");
    assert!(writer.wait_stopped().is_err(), "joining reports the panic");
    let refused = writer.append(1, b"y".to_vec(), Durability::None).wait();
    assert!(
        matches!(refused, Err(JournalError::WriterStopped)),
        "{refused:?}"
    );
}

#[test]
fn retention_keeps_what_a_replay_still_reads() {
    let fs = MemoryFileSystem::new();
    let writer = JournalWriter::spawn(open(&fs, 512)).expect("spawn");
    for n in 0..40u64 {
        // `Each`: acknowledged once synced and visible, so the replay below sees it.
        writer
            .append(1, vec![n as u8; 64], Durability::Each)
            .wait()
            .expect("append");
    }
    let segments = writer.reader().status().segments;
    assert!(segments >= 4, "{segments} segments");
    let mut replay = writer.reader().replay(1);
    assert_eq!(replay.next().expect("first").expect("read").seq, 1);
    let everything = RetentionPolicy {
        max_total_bytes: Some(0),
        max_age: None,
    };
    let report = writer.retain(everything).expect("retain");
    assert!(report.removed_segments.is_empty(), "{report:?}");
    assert_eq!(
        report.deferred,
        segments - 1,
        "every sealed segment is pinned"
    );
    let rest: Vec<u64> = replay
        .by_ref()
        .map(|record| record.expect("read").seq)
        .collect();
    assert_eq!(
        rest,
        (2..=40).collect::<Vec<_>>(),
        "the replay reads on, whole"
    );
    drop(replay);
    let report = writer.retain(everything).expect("retain");
    assert_eq!(report.removed_segments.len(), segments - 1, "{report:?}");
    assert_eq!(report.deferred, 0);
    assert_eq!(writer.reader().status().segments, 1);
}

#[test]
fn every_fsync_is_observed_once() {
    let fs = MemoryFileSystem::new();
    let mut journal = open(&fs, 4096);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    journal.observe_fsyncs(Arc::new(move |fsynced| {
        sink.lock().expect("lock").push(fsynced.clone());
    }));
    let writer = JournalWriter::spawn(journal).expect("spawn");
    for n in 0..5u8 {
        writer
            .append(1, vec![n; 10], Durability::Each)
            .wait()
            .expect("append");
    }
    let samples = writer.reader().status().fsync_latency.samples;
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), samples, "one observation per fdatasync");
    assert_eq!(seen.len(), 5, "Durability::Each syncs each record");
    assert!(seen
        .iter()
        .all(|fsynced| fsynced.bytes > 0 && fsynced.segment == 1));
}
