//! Helpers shared by the journal integration tests.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use vortex::actors::journal::io::MemoryFileSystem;
use vortex::actors::journal::{Journal, JournalConfig, PendingRecord, Record, RecoveryReport};

/// Small segments so that tests rotate often.
pub(crate) fn small_config(segment_bytes: u64) -> JournalConfig {
    JournalConfig {
        segment_bytes,
        max_record_bytes: 1024,
        latency_window: 64,
        ..JournalConfig::default()
    }
}

/// A payload that names its record and has a varied length.
pub(crate) fn payload(tag: u64, rng: &mut fastrand::Rng, max_filler: usize) -> Vec<u8> {
    let mut bytes = format!("record-{tag}:").into_bytes();
    let filler = rng.usize(0..=max_filler);
    bytes.extend((0..filler).map(|index| (tag as usize + index) as u8));
    bytes
}

/// Every visible record, panicking on a read error.
pub(crate) fn all_records(journal: &Journal) -> Vec<Record> {
    journal
        .replay(1)
        .collect::<Result<Vec<_>, _>>()
        .expect("replay")
}

/// Opens a journal on the in-memory file system.
pub(crate) fn open_memory(
    fs: &MemoryFileSystem,
    config: JournalConfig,
) -> (Journal, RecoveryReport) {
    Journal::open_with(Arc::new(fs.clone()), Path::new("/journal"), config).expect("open")
}

/// Raw records from payloads.
pub(crate) fn raw_records(payloads: &[Vec<u8>]) -> Vec<PendingRecord> {
    payloads
        .iter()
        .map(|payload| PendingRecord::raw(1, payload.clone()))
        .collect()
}

/// Asserts sequence numbers run 1, 2, 3, ...
pub(crate) fn assert_contiguous(records: &[Record]) {
    for (index, record) in records.iter().enumerate() {
        assert_eq!(
            record.seq,
            index as u64 + 1,
            "sequence numbers must be contiguous"
        );
    }
}
