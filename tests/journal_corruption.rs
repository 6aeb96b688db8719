//! Corruption classes on real files: what recovery keeps, cuts or refuses.

#[path = "journal_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::{all_records, payload, raw_records, small_config};
use vortex::actors::journal::segment::{segment_path, SEGMENT_HEADER_BYTES};
use vortex::actors::journal::{frame, Journal, JournalConfig, JournalError, RecoveryMode};

/// Writes `count` records with the given payload size bound and returns the journal
/// directory (inside `root`) and the frame start offsets of the first segment.
fn write_journal(root: &Path, count: u64, max_filler: usize, segment_bytes: u64) -> PathBuf {
    let directory = root.join("journal");
    let (mut journal, _) = Journal::open(&directory, small_config(segment_bytes)).unwrap();
    let mut rng = fastrand::Rng::with_seed(count);
    let payloads: Vec<Vec<u8>> = (1..=count)
        .map(|tag| payload(tag, &mut rng, max_filler))
        .collect();
    journal.append_batch(&raw_records(&payloads)).unwrap();
    directory
}

/// `(start, end)` of every frame in a segment file.
fn frames(segment: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(segment).unwrap();
    let mut spans = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while let Ok(view) = frame::decode(&bytes[offset..], 1 << 20) {
        spans.push((offset, offset + view.encoded_len()));
        offset += view.encoded_len();
    }
    spans
}

fn damage(segment: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(segment).unwrap();
    change(&mut bytes);
    std::fs::write(segment, bytes).unwrap();
}

fn config(mode: RecoveryMode) -> JournalConfig {
    JournalConfig {
        recovery: mode,
        ..small_config(64 << 10)
    }
}

#[test]
fn a_flipped_byte_in_the_last_record_is_a_torn_write() {
    for position in [0, 5, 13, 30, 40] {
        let root = tempfile::tempdir().unwrap();
        let directory = write_journal(root.path(), 20, 200, 64 << 10);
        let segment = segment_path(&directory, 1);
        let spans = frames(&segment);
        let (start, end) = spans[19];
        damage(&segment, |bytes| {
            bytes[(start + position).min(end - 1)] ^= 0x10
        });
        let (journal, report) = Journal::open(&directory, config(RecoveryMode::Strict)).unwrap();
        assert_eq!(all_records(&journal).len(), 19);
        let torn = report.torn_tail.expect("torn tail reported");
        assert_eq!(torn.offset as usize, start);
        assert!(torn.bytes_cut > 0);
        drop(journal);
        let (again, report) = Journal::open(&directory, config(RecoveryMode::Strict)).unwrap();
        assert!(report.torn_tail.is_none(), "the cut was made durable");
        assert_eq!(all_records(&again).len(), 19);
    }
}

#[test]
fn a_flipped_byte_in_a_middle_record_refuses_to_open() {
    let root = tempfile::tempdir().unwrap();
    let directory = write_journal(root.path(), 20, 200, 64 << 10);
    let segment = segment_path(&directory, 1);
    let (start, _) = frames(&segment)[10];
    damage(&segment, |bytes| bytes[start + 30] ^= 0x01);
    match Journal::open(&directory, config(RecoveryMode::Strict)) {
        Err(JournalError::Corruption {
            segment: named,
            offset,
            ..
        }) => {
            assert_eq!(named, segment);
            assert_eq!(offset as usize, start);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let (journal, report) = Journal::open(&directory, config(RecoveryMode::Tolerant)).unwrap();
    assert_eq!(all_records(&journal).len(), 10);
    assert_eq!(
        report.corruption_cut.expect("cut reported").offset as usize,
        start
    );
}

#[test]
fn a_flipped_length_in_a_middle_record_refuses_to_open() {
    let root = tempfile::tempdir().unwrap();
    let directory = write_journal(root.path(), 20, 200, 64 << 10);
    let segment = segment_path(&directory, 1);
    let (start, _) = frames(&segment)[3];
    damage(&segment, |bytes| bytes[start] ^= 0x08);
    assert!(matches!(
        Journal::open(&directory, config(RecoveryMode::Strict)),
        Err(JournalError::Corruption { offset, .. }) if offset as usize == start
    ));
}

#[test]
fn a_zeroed_sector_in_the_last_record_is_a_torn_write() {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("journal");
    let (mut journal, _) = Journal::open(&directory, small_config(64 << 10)).unwrap();
    let mut records = raw_records(&[vec![1; 100], vec![2; 100]]);
    records.extend(raw_records(&[vec![3; 1000]]));
    journal.append_batch(&records).unwrap();
    drop(journal);
    let segment = segment_path(&directory, 1);
    let (start, end) = frames(&segment)[2];
    let sector = start.div_ceil(512) * 512;
    assert!(sector + 512 <= end, "a whole sector inside the last record");
    damage(&segment, |bytes| bytes[sector..sector + 512].fill(0));
    let (journal, report) = Journal::open(&directory, config(RecoveryMode::Strict)).unwrap();
    assert_eq!(all_records(&journal).len(), 2);
    assert_eq!(report.torn_tail.unwrap().offset as usize, start);
}

#[test]
fn damage_in_a_sealed_segment_is_corruption_even_at_its_end() {
    let root = tempfile::tempdir().unwrap();
    let directory = write_journal(root.path(), 40, 200, 2048);
    let first = segment_path(&directory, 1);
    let spans = frames(&first);
    let (start, _) = *spans.last().unwrap();
    damage(&first, |bytes| bytes[start + 29] ^= 0x80);
    assert!(matches!(
        Journal::open(&directory, config(RecoveryMode::Strict)),
        Err(JournalError::Corruption { segment, offset, .. })
            if segment == first && offset as usize == start
    ));
    let (journal, report) = Journal::open(&directory, config(RecoveryMode::Tolerant)).unwrap();
    assert_eq!(all_records(&journal).len(), spans.len() - 1);
    assert!(
        !report.removed_segments.is_empty(),
        "later segments removed"
    );
}

#[test]
fn a_bad_header_on_a_sealed_segment_refuses_to_open() {
    let root = tempfile::tempdir().unwrap();
    let directory = write_journal(root.path(), 40, 200, 2048);
    damage(&segment_path(&directory, 1), |bytes| bytes[3] ^= 1);
    assert!(matches!(
        Journal::open(&directory, config(RecoveryMode::Strict)),
        Err(JournalError::BadSegmentHeader { .. })
    ));
}

#[test]
fn a_missing_sealed_segment_is_a_gap() {
    let root = tempfile::tempdir().unwrap();
    let directory = write_journal(root.path(), 60, 200, 2048);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    segments.sort();
    assert!(segments.len() >= 3);
    std::fs::remove_file(&segments[1]).unwrap();
    assert!(matches!(
        Journal::open(&directory, config(RecoveryMode::Strict)),
        Err(JournalError::Corruption { offset: 0, .. })
    ));
}
