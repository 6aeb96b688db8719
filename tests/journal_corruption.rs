//! Corruption classes on real files: what recovery keeps, cuts (into quarantine) or
//! refuses, per recovery mode.

#[path = "journal_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::{all_records, payload, raw_records, small_config};
use vortex::actors::journal::segment::{segment_path, SEGMENT_HEADER_BYTES};
use vortex::actors::journal::{frame, Journal, JournalConfig, JournalError, RecoveryMode};

const ALL_MODES: [RecoveryMode; 3] = [
    RecoveryMode::PointInTime,
    RecoveryMode::Strict,
    RecoveryMode::Tolerant,
];

/// Writes `count` records with the given payload size bound and returns the journal
/// directory (inside `root`) and the frame start offsets of the first segment.
fn write_journal(root: &Path, count: u64, max_filler: usize, segment_bytes: u64) -> PathBuf {
    let directory = root.join("journal");
    let (mut journal, _) = Journal::open(&directory, small_config(segment_bytes)).unwrap();
    let mut rng = fastrand::Rng::with_seed(count);
    let payloads: Vec<Vec<u8>> = (1..=count)
        .map(|tag| payload(tag, &mut rng, max_filler))
        .collect();
    // One record per batch, so that every frame commits itself.
    for record in raw_records(&payloads) {
        journal.append(record).unwrap();
    }
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
    for (position, mode) in [0, 5, 13, 30, 40].into_iter().zip(ALL_MODES.iter().cycle()) {
        let root = tempfile::tempdir().unwrap();
        let directory = write_journal(root.path(), 20, 200, 64 << 10);
        let segment = segment_path(&directory, 1);
        let spans = frames(&segment);
        let (start, end) = spans[19];
        let original = std::fs::read(&segment).unwrap();
        damage(&segment, |bytes| {
            bytes[(start + position).min(end - 1)] ^= 0x10
        });
        let (journal, report) = Journal::open(&directory, config(*mode)).unwrap();
        assert_eq!(all_records(&journal).len(), 19);
        let torn = report.torn_tail.expect("torn tail reported");
        assert_eq!(torn.offset as usize, start);
        assert_eq!(torn.frames_after, 0);
        assert_eq!(torn.bytes_cut as usize, end - start);
        // Nothing destroyed: the cut bytes sit in quarantine, damage and all.
        let kept = std::fs::read(&torn.quarantine).unwrap();
        assert_eq!(kept.len(), end - start);
        let differing = (0..kept.len()).filter(|&i| kept[i] != original[start + i]);
        assert_eq!(differing.count(), 1);
        drop(journal);
        let (again, report) = Journal::open(&directory, config(*mode)).unwrap();
        assert!(report.torn_tail.is_none(), "the cut was made durable");
        assert_eq!(all_records(&again).len(), 19);
    }
}

#[test]
fn a_flipped_byte_in_a_middle_record_of_the_active_segment_cuts_there() {
    let root = tempfile::tempdir().unwrap();
    let directory = write_journal(root.path(), 20, 200, 64 << 10);
    let segment = segment_path(&directory, 1);
    let spans = frames(&segment);
    let (start, _) = spans[10];
    let end = spans[19].1;
    damage(&segment, |bytes| bytes[start + 30] ^= 0x01);
    // Strict refuses: well-formed frames follow the bad one.
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
    // Point-in-time (the default) cuts at the bad frame and says what lay after it.
    let (journal, report) = Journal::open(&directory, JournalConfig::default()).unwrap();
    assert_eq!(all_records(&journal).len(), 10);
    let cut = report.torn_tail.expect("cut reported");
    assert_eq!(cut.offset as usize, start);
    assert_eq!(
        cut.frames_after, 9,
        "the nine intact frames after the bad one"
    );
    assert_eq!(cut.bytes_cut as usize, end - start);
    assert_eq!(std::fs::read(&cut.quarantine).unwrap().len(), end - start);
    assert!(cut.quarantine.starts_with(&directory));
}

#[test]
fn a_flipped_length_in_a_middle_record_refuses_to_open_in_strict_mode() {
    let root = tempfile::tempdir().unwrap();
    let directory = write_journal(root.path(), 20, 200, 64 << 10);
    let segment = segment_path(&directory, 1);
    let (start, _) = frames(&segment)[3];
    damage(&segment, |bytes| bytes[start] ^= 0x08);
    assert!(matches!(
        Journal::open(&directory, config(RecoveryMode::Strict)),
        Err(JournalError::Corruption { offset, .. }) if offset as usize == start
    ));
    let (journal, report) = Journal::open(&directory, config(RecoveryMode::PointInTime)).unwrap();
    assert_eq!(all_records(&journal).len(), 3);
    assert_eq!(report.torn_tail.unwrap().frames_after, 16);
}

#[test]
fn a_zeroed_sector_in_the_last_record_is_a_torn_write() {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("journal");
    let (mut journal, _) = Journal::open(&directory, small_config(64 << 10)).unwrap();
    for record in raw_records(&[vec![1; 100], vec![2; 100], vec![3; 1000]]) {
        journal.append(record).unwrap();
    }
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
    assert!(matches!(
        Journal::open(&directory, config(RecoveryMode::PointInTime)),
        Err(JournalError::Corruption { .. })
    ));
    let (journal, report) = Journal::open(&directory, config(RecoveryMode::Tolerant)).unwrap();
    assert_eq!(all_records(&journal).len(), spans.len() - 1);
    let cut = report.corruption_cut.expect("cut reported");
    assert!(std::fs::metadata(&cut.quarantine).is_ok());
    assert!(
        !report.removed_segments.is_empty(),
        "later segments leave the log"
    );
    for removed in &report.removed_segments {
        assert!(!removed.exists(), "{removed:?} left the log");
        let mut quarantined = removed.as_os_str().to_owned();
        quarantined.push(".quarantine");
        assert!(
            PathBuf::from(quarantined).exists(),
            "and went to quarantine"
        );
    }
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
