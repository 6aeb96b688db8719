//! Crashes simulated with `MemoryFileSystem`: un-synced writes are lost or torn, fsyncs
//! fail, the disk fills up. Every acknowledged durable record must survive, nothing that
//! was never written may appear, and sequence numbers stay contiguous.

#[path = "journal_support/mod.rs"]
mod support;

use std::collections::HashMap;

use support::{all_records, assert_contiguous, open_memory, payload, small_config};
use vortex::actors::journal::io::MemoryFileSystem;
use vortex::actors::journal::segment::{segment_path, SEGMENT_HEADER_BYTES};
use vortex::actors::journal::{Durability, Journal, JournalConfig, JournalError, PendingRecord};

/// What the test knows about the records it appended.
#[derive(Default)]
struct Ledger {
    /// Every payload ever handed to the journal, by the seq it was given (when known).
    written: HashMap<u64, Vec<u8>>,
    /// Every payload attempted, known seq or not.
    attempted: Vec<Vec<u8>>,
    /// The highest seq acknowledged as durable.
    durable: u64,
}

impl Ledger {
    fn check(&self, fs: &MemoryFileSystem, seed: u64) {
        let (journal, _) = open_memory(&fs.crash(seed), small_config(1024));
        let records = all_records(&journal);
        assert_contiguous(&records);
        assert!(
            records.len() as u64 >= self.durable,
            "seed {seed}: durable seq {} lost ({} recovered)",
            self.durable,
            records.len()
        );
        for record in &records {
            match self.written.get(&record.seq) {
                Some(payload) => assert_eq!(&record.payload, payload, "seed {seed}"),
                None => assert!(self.attempted.contains(&record.payload), "seed {seed}"),
            }
        }
    }
}

fn random_durability(rng: &mut fastrand::Rng) -> Durability {
    match rng.u8(0..3) {
        0 => Durability::None,
        1 => Durability::Each,
        _ => Durability::default(),
    }
}

/// Runs random batches against `journal`, recording outcomes, until `steps` are done or
/// the journal fails.
fn run_batches(journal: &mut Journal, ledger: &mut Ledger, rng: &mut fastrand::Rng, steps: usize) {
    for _ in 0..steps {
        let batch: Vec<PendingRecord> = (0..rng.usize(1..6))
            .map(|_| {
                let tag = ledger.attempted.len() as u64;
                let bytes = payload(tag, rng, 200);
                ledger.attempted.push(bytes.clone());
                PendingRecord::raw(1, bytes).with_durability(random_durability(rng))
            })
            .collect();
        let durable = batch.iter().any(|record| record.durability.needs_sync());
        match journal.append_batch(&batch) {
            Ok(seqs) => {
                for (seq, record) in seqs.iter().zip(&batch) {
                    ledger.written.insert(*seq, record.payload.clone());
                }
                if durable {
                    ledger.durable = *seqs.last().unwrap();
                }
            }
            Err(_) => return,
        }
        if rng.u8(0..10) == 0 && journal.sync().is_ok() {
            ledger.durable = journal.last_seq();
        }
    }
}

#[test]
fn acknowledged_durable_records_survive_crashes() {
    for seed in 0..150 {
        let fs = MemoryFileSystem::new();
        let (mut journal, _) = open_memory(&fs, small_config(1024));
        let mut ledger = Ledger::default();
        let mut rng = fastrand::Rng::with_seed(seed);
        let steps = rng.usize(1..40);
        run_batches(&mut journal, &mut ledger, &mut rng, steps);
        ledger.check(&fs, seed);
    }
}

#[test]
fn an_fsync_failure_at_any_point_loses_no_acknowledged_record() {
    // Fail the n-th fsync for every n up to past the last one: this crashes at every
    // rotation step (old segment sealed, new header synced, directory synced).
    for failing in 1..60 {
        let fs = MemoryFileSystem::new();
        let (mut journal, _) = open_memory(&fs, small_config(1024));
        fs.fail_fsync_number(failing);
        let mut ledger = Ledger::default();
        let mut rng = fastrand::Rng::with_seed(failing);
        run_batches(&mut journal, &mut ledger, &mut rng, 40);
        for seed in 0..5 {
            ledger.check(&fs, failing * 100 + seed);
        }
    }
}

#[test]
fn one_failed_fsync_poisons_appends_but_not_reads() {
    let fs = MemoryFileSystem::new();
    let (mut journal, _) = open_memory(&fs, small_config(4096));
    let first = PendingRecord::raw(1, b"kept".to_vec()).with_durability(Durability::Each);
    assert_eq!(journal.append(first.clone()).unwrap(), 1);
    fs.fail_fsync_number(1);
    let error = journal.append(first.clone()).unwrap_err();
    assert!(error.is_poisoned(), "{error}");
    // Never retry a failed fsync: every later append fails too, even non-durable ones.
    assert!(journal.append(first.clone()).unwrap_err().is_poisoned());
    let quick = PendingRecord::raw(1, b"x".to_vec()).with_durability(Durability::None);
    assert!(journal.write_batch(&[quick]).unwrap_err().is_poisoned());
    assert!(journal.sync().unwrap_err().is_poisoned());
    let records = all_records(&journal);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].payload, b"kept");
    assert!(journal.status().poisoned.is_some());
}

#[test]
fn a_full_disk_is_reported_at_rollover_and_reads_go_on() {
    let fs = MemoryFileSystem::new();
    let (mut journal, _) = open_memory(&fs, small_config(4096));
    journal.append(PendingRecord::raw(1, vec![1; 100])).unwrap();
    // Too little space for the next segment, plenty for writes into this one: the
    // preallocated blocks are already reserved.
    fs.limit_space(Some(50));
    let mut appended = 1;
    let error = loop {
        match journal.append(PendingRecord::raw(1, vec![2; 300])) {
            Ok(_) => appended += 1,
            Err(error) => break error,
        }
    };
    assert!(appended > 5, "writes inside the segment need no space");
    assert!(
        matches!(
            &error,
            JournalError::DiskFull {
                operation: "preallocating",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(all_records(&journal).len(), appended);
    assert_eq!(
        journal.last_seq(),
        appended as u64,
        "the failed record's seq is reused"
    );
    fs.limit_space(None);
    let next = journal.append(PendingRecord::raw(1, vec![3; 300])).unwrap();
    assert_eq!(next, appended as u64 + 1);
    assert_eq!(journal.status().segments, 2);
    let (reopened, _) = open_memory(&fs.crash(1), small_config(4096));
    let payloads: Vec<u8> = all_records(&reopened)
        .iter()
        .map(|r| r.payload[0])
        .collect();
    assert_eq!(payloads.len(), appended + 1);
    assert_eq!(payloads.last(), Some(&3));
}

#[test]
fn an_oversized_record_writes_nothing() {
    let fs = MemoryFileSystem::new();
    let (mut journal, _) = open_memory(&fs, small_config(4096));
    let error = journal
        .append_batch(&[
            PendingRecord::raw(1, vec![0; 10]),
            PendingRecord::raw(1, vec![0; 1025]),
        ])
        .unwrap_err();
    assert!(matches!(
        error,
        JournalError::RecordTooLarge {
            length: 1025,
            maximum: 1024
        }
    ));
    assert_eq!(journal.last_seq(), 0);
    assert!(all_records(&journal).is_empty());
}

#[test]
fn a_torn_header_of_a_new_segment_is_removed() {
    for header_bytes in [0, 7, SEGMENT_HEADER_BYTES] {
        let fs = MemoryFileSystem::new();
        let (mut journal, _) = open_memory(&fs, small_config(1024));
        let mut rng = fastrand::Rng::with_seed(1);
        for tag in 0..8 {
            let record = PendingRecord::raw(1, payload(tag, &mut rng, 100));
            journal
                .append(record.with_durability(Durability::Each))
                .unwrap();
        }
        let next = journal.last_seq() + 1;
        drop(journal);
        // The directory entry of the next segment reached the disk; its header did not.
        let mut header = vortex::actors::journal::segment::encode_header(next).to_vec();
        header[header_bytes.min(31)..].fill(0);
        header[0] ^= u8::from(header_bytes == SEGMENT_HEADER_BYTES);
        let path = segment_path(std::path::Path::new("/journal"), next);
        fs.write_durable_file(&path, &header[..header_bytes]);
        let (mut journal, report) = open_memory(&fs, small_config(1024));
        assert_eq!(report.removed_segments, vec![path.clone()]);
        assert_eq!(all_records(&journal).len(), 8);
        let record = PendingRecord::raw(1, vec![5; 900]).with_durability(Durability::Each);
        assert_eq!(journal.append(record).unwrap(), 9);
        assert!(
            fs.read_file(&path).is_some(),
            "the segment is created again"
        );
    }
}

#[test]
fn an_atomic_batch_survives_whole_or_not_at_all() {
    let config = small_config(8192);
    let mut rotated = 0;
    for seed in 0..40 {
        let fs = MemoryFileSystem::new();
        let (mut journal, _) = open_memory(&fs, config.clone());
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut batches: Vec<(u64, Vec<Vec<u8>>)> = Vec::new();
        for _ in 0..rng.usize(1..12) {
            let payloads: Vec<Vec<u8>> = (0..rng.usize(1..8))
                .map(|_| payload(batches.len() as u64, &mut rng, 600))
                .collect();
            let records: Vec<PendingRecord> = payloads
                .iter()
                .map(|bytes| PendingRecord::raw(1, bytes.clone()).with_durability(Durability::None))
                .collect();
            let seqs = journal.append_batch(&records).unwrap();
            batches.push((seqs[0], payloads));
        }
        rotated += usize::from(journal.status().segments > 1);
        let (recovered, _) = open_memory(&fs.crash(seed), config.clone());
        let records = all_records(&recovered);
        assert_contiguous(&records);
        for (first, payloads) in &batches {
            let present = records
                .iter()
                .filter(|record| record.seq >= *first && record.seq < first + payloads.len() as u64)
                .count();
            assert!(
                present == 0 || present == payloads.len(),
                "seed {seed}: batch at {first} kept {present} of {}",
                payloads.len()
            );
            for record in records.iter().filter(|r| r.seq >= *first).take(present) {
                assert_eq!(record.payload, payloads[(record.seq - first) as usize]);
            }
        }
    }
    assert!(rotated > 5, "batches were placed across several segments");
}

#[test]
fn a_batch_larger_than_a_segment_fails_whole() {
    let fs = MemoryFileSystem::new();
    let (mut journal, _) = open_memory(&fs, small_config(1024));
    journal.append(PendingRecord::raw(1, vec![1; 100])).unwrap();
    let batch: Vec<PendingRecord> = (0..10)
        .map(|_| PendingRecord::raw(1, vec![2; 120]))
        .collect();
    let error = journal.append_batch(&batch).unwrap_err();
    assert!(
        matches!(error, JournalError::BatchTooLarge { .. }),
        "{error}"
    );
    assert_eq!(journal.last_seq(), 1);
    assert_eq!(all_records(&journal).len(), 1);
    // A batch that fits a segment but not what is left of this one rotates first.
    let batch: Vec<PendingRecord> = (0..6)
        .map(|_| PendingRecord::raw(1, vec![3; 120]))
        .collect();
    assert_eq!(
        journal.append_batch(&batch).unwrap(),
        (2..8).collect::<Vec<u64>>()
    );
    assert_eq!(journal.status().segments, 2);
}

#[test]
fn a_restart_after_a_failed_fsync_makes_the_kept_tail_durable_before_appending() {
    let config = JournalConfig {
        max_record_bytes: 8192,
        ..small_config(16 << 10)
    };
    let fs = MemoryFileSystem::new();
    let (mut journal, _) = open_memory(&fs, config.clone());
    let durable = PendingRecord::raw(1, b"synced".to_vec()).with_durability(Durability::Each);
    journal.append(durable).unwrap();
    // The cached record ends exactly at the first page boundary (header 32, first frame
    // 40, this frame 32 + 3992), so later appends never dirty its pages again.
    let mut cached_payload = b"cached".to_vec();
    cached_payload.resize(3992, b'c');
    let cached = PendingRecord::raw(1, cached_payload.clone()).with_durability(Durability::None);
    journal.append(cached).unwrap();
    // Write-back fails: the kernel drops the dirty page unwritten and marks it clean.
    fs.fail_fsync_number(1);
    assert!(journal.sync().unwrap_err().is_poisoned());
    drop(journal);
    // A new process on the same page cache sees (and keeps) the cached record ...
    let (mut journal, _) = open_memory(&fs, config.clone());
    assert_eq!(all_records(&journal).len(), 2);
    let after = PendingRecord::raw(1, b"after".to_vec()).with_durability(Durability::Each);
    assert_eq!(journal.append(after).unwrap(), 3);
    // ... and made it durable before building on it: no crash can take it away now.
    for seed in 0..20 {
        let (reopened, _) = open_memory(&fs.crash(seed), config.clone());
        let payloads: Vec<Vec<u8>> = all_records(&reopened)
            .into_iter()
            .map(|record| record.payload)
            .collect();
        assert_eq!(
            payloads,
            [
                b"synced".to_vec(),
                cached_payload.clone(),
                b"after".to_vec()
            ],
            "seed {seed}"
        );
    }
}

#[test]
fn a_half_prepared_segment_is_removed_and_reported() {
    let fs = MemoryFileSystem::new();
    let (mut journal, _) = open_memory(&fs, small_config(4096));
    journal
        .append(PendingRecord::raw(1, b"one".to_vec()))
        .unwrap();
    drop(journal);
    let leftover = std::path::PathBuf::from(format!(
        "{}.new",
        segment_path(std::path::Path::new("/journal"), 2).display()
    ));
    fs.write_durable_file(
        &leftover,
        &vortex::actors::journal::segment::encode_header(2),
    );
    let (journal, report) = open_memory(&fs, small_config(4096));
    assert_eq!(report.abandoned_segments, vec![leftover.clone()]);
    assert!(fs.read_file(&leftover).is_none());
    assert_eq!(all_records(&journal).len(), 1);
}
