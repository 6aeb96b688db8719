//! The group-committing writer thread, retention and status.

#[path = "journal_support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::Arc;

use support::{all_records, assert_contiguous, open_memory, payload, small_config};
use vortex::actors::journal::io::MemoryFileSystem;
use vortex::actors::journal::{
    Durability, Journal, JournalConfig, JournalWriter, PendingRecord, RetentionPolicy,
};

#[test]
fn concurrent_appenders_get_unique_contiguous_seqs() {
    let directory = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(directory.path(), JournalConfig::default()).unwrap();
    let writer = JournalWriter::spawn(journal).unwrap();
    let seqs: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u8)
            .map(|thread| {
                let writer = &writer;
                scope.spawn(move || {
                    let tickets: Vec<_> = (0..100u8)
                        .map(|index| {
                            writer.append(
                                u16::from(thread),
                                vec![thread, index],
                                Durability::default(),
                            )
                        })
                        .collect();
                    tickets
                        .into_iter()
                        .map(|ticket| ticket.wait().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    });
    assert_eq!(seqs.iter().copied().collect::<HashSet<_>>().len(), 400);
    assert_eq!(writer.reader().last_seq(), 400);
    let status = writer.reader().status();
    assert!(status.fsync_latency.samples >= 1 && status.fsync_latency.samples <= 400);
    assert_eq!(status.durable_seq, 400);
    let journal = writer.shutdown().unwrap();
    let records = all_records(&journal);
    assert_contiguous(&records);
    for record in &records {
        assert_eq!(record.kind, u16::from(record.payload[0]));
    }
}

/// An acknowledged record is readable: `last_seq` is never behind an acknowledgement,
/// also for records that need no sync (acknowledged as soon as they are written). Many
/// appenders at once, so the writer groups their records into one write.
#[test]
fn an_acknowledged_record_is_visible_to_readers() {
    let (journal, _) = open_memory(&MemoryFileSystem::new(), small_config(64 * 1024));
    let writer = JournalWriter::spawn(journal).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4u8 {
            let writer = &writer;
            scope.spawn(move || {
                for index in 0..500u16 {
                    let seq = writer
                        .append(1, vec![thread, index as u8], Durability::None)
                        .wait()
                        .unwrap();
                    let visible = writer.reader().last_seq();
                    assert!(visible >= seq, "acknowledged {seq}, readers see {visible}");
                }
            });
        }
    });
    assert_eq!(writer.reader().last_seq(), 2000);
    writer.shutdown().unwrap();
}

#[test]
fn typed_appends_and_callbacks_are_acknowledged() {
    let fs = MemoryFileSystem::new();
    let (journal, _) = open_memory(&fs, small_config(4096));
    let writer = JournalWriter::spawn(journal).unwrap();
    let seq = writer
        .append_serialized(7, &("actor", 3u64), Durability::Each)
        .wait()
        .unwrap();
    let (sender, receiver) = mpsc::channel();
    writer.append_with(PendingRecord::raw(8, b"cb".to_vec()), move |result| {
        sender.send(result).unwrap();
    });
    assert_eq!(receiver.recv().unwrap().unwrap(), seq + 1);
    let record = writer.reader().replay(seq).next().unwrap().unwrap();
    assert_eq!(
        record.decode::<(String, u64)>().unwrap(),
        ("actor".into(), 3)
    );
    let oversized = writer.append(1, vec![0; 5000], Durability::None).wait();
    assert!(oversized.is_err());
}

#[test]
fn a_failed_fsync_poisons_the_writer_and_reads_go_on() {
    let fs = MemoryFileSystem::new();
    let (journal, _) = open_memory(&fs, small_config(4096));
    let writer = JournalWriter::spawn(journal).unwrap();
    for index in 0..5u8 {
        writer
            .append(1, vec![index], Durability::Each)
            .wait()
            .unwrap();
    }
    fs.fail_fsync_number(1);
    let error = writer
        .append(1, vec![9], Durability::Each)
        .wait()
        .unwrap_err();
    assert!(error.is_poisoned(), "{error}");
    for durability in [Durability::None, Durability::Each, Durability::default()] {
        let later = writer.append(1, vec![10], durability).wait();
        assert!(
            later.unwrap_err().is_poisoned(),
            "no acknowledgement after poisoning"
        );
    }
    let records: Vec<_> = writer.reader().replay(1).map(Result::unwrap).collect();
    assert_eq!(records.len(), 5);
    assert!(writer.reader().status().poisoned.is_some());
}

#[test]
fn writer_crashes_lose_no_acknowledged_durable_record() {
    for seed in 0..20u64 {
        let fs = MemoryFileSystem::new();
        let (journal, _) = open_memory(&fs, small_config(2048));
        let writer = Arc::new(JournalWriter::spawn(journal).unwrap());
        let (acks, acknowledged) = mpsc::channel::<(u64, Vec<u8>, bool)>();
        let appenders: Vec<_> = (0..3u64)
            .map(|thread| {
                let writer = Arc::clone(&writer);
                let acks = acks.clone();
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(seed * 10 + thread);
                    for index in 0..120 {
                        let bytes = payload(thread * 1000 + index, &mut rng, 150);
                        let durability = match rng.u8(0..3) {
                            0 => Durability::None,
                            1 => Durability::Each,
                            _ => Durability::default(),
                        };
                        let ticket = writer.append(1, bytes.clone(), durability);
                        let Ok(seq) = ticket.wait() else { return };
                        let durable = durability.needs_sync();
                        if acks.send((seq, bytes, durable)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        drop(acks);
        let crash_after = fastrand::Rng::with_seed(seed).usize(1..300);
        let mut known = std::collections::HashMap::new();
        let mut durable = Vec::new();
        for (seq, bytes, is_durable) in acknowledged.iter().take(crash_after) {
            if is_durable {
                durable.push(seq);
            }
            known.insert(seq, bytes);
        }
        let image = fs.crash(seed);
        drop(acknowledged);
        for appender in appenders {
            appender.join().unwrap();
        }
        let (recovered, _) = open_memory(&image, small_config(2048));
        let records = all_records(&recovered);
        assert_contiguous(&records);
        let present: HashSet<u64> = records.iter().map(|record| record.seq).collect();
        for seq in durable {
            assert!(
                present.contains(&seq),
                "seed {seed}: durable seq {seq} lost"
            );
        }
        for record in &records {
            if let Some(bytes) = known.get(&record.seq) {
                assert_eq!(&record.payload, bytes, "seed {seed}");
            }
            assert!(
                record.payload.starts_with(b"record-"),
                "seed {seed}: garbage record"
            );
        }
    }
}

#[test]
fn retention_removes_whole_old_segments() {
    let fs = MemoryFileSystem::new();
    let (mut journal, _) = open_memory(&fs, small_config(1024));
    let mut rng = fastrand::Rng::with_seed(3);
    for tag in 0..60 {
        journal
            .append(PendingRecord::raw(1, payload(tag, &mut rng, 100)))
            .unwrap();
    }
    let before = journal.status();
    assert!(before.segments > 4);
    let report = journal
        .retain(&RetentionPolicy {
            max_total_bytes: Some(2048),
            max_age: None,
        })
        .unwrap();
    let after = journal.status();
    assert!(after.bytes <= 2048 && after.segments >= 1);
    assert_eq!(
        before.segments - after.segments,
        report.removed_segments.len()
    );
    assert_eq!(after.first_seq, report.removed_records + 1);
    let replayed: Vec<u64> = journal
        .replay(1)
        .map(|record| record.unwrap().seq)
        .collect();
    assert_eq!(replayed.first(), Some(&after.first_seq));
    assert_eq!(replayed.last(), Some(&60));
    drop(journal);
    let (reopened, report) = open_memory(&fs, small_config(1024));
    assert_eq!(report.records, 60 - (after.first_seq - 1));
    assert_eq!(reopened.status().first_seq, after.first_seq);
    let mut journal = reopened;
    let aged = journal
        .retain(&RetentionPolicy {
            max_total_bytes: None,
            max_age: Some(std::time::Duration::ZERO),
        })
        .unwrap();
    assert_eq!(
        journal.status().segments,
        1,
        "all sealed segments are old: {aged:?}"
    );
}

#[test]
fn writer_batches_are_atomic_and_durable_when_acknowledged() {
    for seed in 0..20u64 {
        let fs = MemoryFileSystem::new();
        let config = small_config(4096);
        let (journal, _) = open_memory(&fs, config.clone());
        let writer = Arc::new(JournalWriter::spawn(journal).unwrap());
        // A second thread appends single records meanwhile, so batches share group
        // commits with them.
        let singles = {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                for index in 0..60 {
                    let _ = writer.append(2, vec![index; 40], Durability::None).wait();
                }
            })
        };
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut acknowledged: Vec<(Vec<u64>, Vec<Vec<u8>>)> = Vec::new();
        for batch in 0..15u64 {
            let payloads: Vec<Vec<u8>> = (0..rng.u64(1..6))
                .map(|index| payload(batch * 10 + index, &mut rng, 300))
                .collect();
            let records = payloads
                .iter()
                .map(|bytes| PendingRecord::raw(1, bytes.clone()))
                .collect();
            let seqs = writer.append_batch(records).wait().unwrap();
            assert_eq!(seqs.len(), payloads.len());
            assert!(seqs.windows(2).all(|pair| pair[1] == pair[0] + 1));
            acknowledged.push((seqs, payloads));
        }
        singles.join().unwrap();
        let image = fs.crash(seed);
        let (recovered, _) = open_memory(&image, config.clone());
        let records = all_records(&recovered);
        assert_contiguous(&records);
        for (seqs, payloads) in &acknowledged {
            for (seq, bytes) in seqs.iter().zip(payloads) {
                let record = &records[*seq as usize - 1];
                assert_eq!(&record.payload, bytes, "seed {seed}: batch seq {seq}");
            }
        }
    }
}

#[test]
fn a_writer_batch_too_large_fails_whole() {
    let fs = MemoryFileSystem::new();
    let (journal, _) = open_memory(&fs, small_config(1024));
    let writer = JournalWriter::spawn(journal).unwrap();
    let records = (0..10)
        .map(|_| PendingRecord::raw(1, vec![1; 200]))
        .collect();
    let error = writer.append_batch(records).wait().unwrap_err();
    assert!(
        matches!(
            error,
            vortex::actors::journal::JournalError::BatchTooLarge { .. }
        ),
        "{error}"
    );
    assert_eq!(
        writer
            .append(1, b"next".to_vec(), Durability::Each)
            .wait()
            .unwrap(),
        1
    );
    assert!(writer.append_batch(Vec::new()).wait().unwrap().is_empty());
}
