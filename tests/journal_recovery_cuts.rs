//! Every-cut recovery: the journal's byte stream is cut at every offset, and recovery
//! must yield exactly the records of the batches wholly before the cut.

#[path = "journal_support/mod.rs"]
mod support;

use std::path::PathBuf;

use support::{all_records, assert_contiguous, open_memory, payload, raw_records, small_config};
use vortex::actors::journal::frame;
use vortex::actors::journal::io::MemoryFileSystem;
use vortex::actors::journal::segment::SEGMENT_HEADER_BYTES;
use vortex::actors::journal::{Durability, Journal, PendingRecord};

/// One segment of the original journal: its path, bytes, and where each frame ends.
struct SegmentImage {
    path: PathBuf,
    bytes: Vec<u8>,
    frame_ends: Vec<FrameEnd>,
}

/// Where a frame ends, and whether it commits its batch.
#[derive(Clone, Copy)]
struct FrameEnd {
    end: usize,
    commits: bool,
}

fn frame_ends(bytes: &[u8]) -> Vec<FrameEnd> {
    let mut ends = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while let Ok(view) = frame::decode(&bytes[offset..], usize::MAX >> 1) {
        offset += view.encoded_len();
        ends.push(FrameEnd {
            end: offset,
            commits: view.batch_rest == 0,
        });
    }
    ends
}

/// Records kept when the segment is cut at `cut`: those of whole batches before it.
fn kept_before(ends: &[FrameEnd], cut: usize) -> usize {
    ends.iter()
        .rposition(|frame| frame.commits && frame.end <= cut)
        .map_or(0, |index| index + 1)
}

/// Offset where the last whole batch before `cut` ends.
fn committed_end(ends: &[FrameEnd], cut: usize) -> usize {
    match kept_before(ends, cut) {
        0 => SEGMENT_HEADER_BYTES,
        kept => ends[kept - 1].end,
    }
}

fn build_original(seed: u64) -> (MemoryFileSystem, Vec<Vec<u8>>) {
    let fs = MemoryFileSystem::new();
    let (mut journal, _) = open_memory(&fs, small_config(1024));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut payloads = Vec::new();
    while payloads.len() < 40 {
        let batch: Vec<Vec<u8>> = (0..rng.usize(1..5))
            .map(|_| payload(payloads.len() as u64 + 1, &mut rng, 150))
            .collect();
        journal.write_batch(&raw_records(&batch)).unwrap();
        payloads.extend(batch);
    }
    journal.sync().unwrap();
    (fs, payloads)
}

#[test]
fn recovery_keeps_exactly_the_records_before_every_cut() {
    let (fs, payloads) = build_original(7);
    let images: Vec<SegmentImage> = fs
        .paths()
        .into_iter()
        .map(|path| {
            let bytes = fs.read_file(&path).unwrap();
            let frame_ends = frame_ends(&bytes);
            SegmentImage {
                path,
                bytes,
                frame_ends,
            }
        })
        .collect();
    assert!(images.len() >= 3, "the test needs several segments");
    let mut records_before = 0;
    let mut cuts = 0;
    for (index, image) in images.iter().enumerate() {
        let data_end = image
            .frame_ends
            .last()
            .map_or(SEGMENT_HEADER_BYTES, |frame| frame.end);
        for cut in 0..=data_end {
            let damaged = MemoryFileSystem::new();
            for earlier in &images[..index] {
                damaged.write_durable_file(&earlier.path, &earlier.bytes);
            }
            damaged.write_durable_file(&image.path, &image.bytes[..cut]);
            let (journal, _) = open_memory(&damaged, small_config(1024));
            let kept = kept_before(&image.frame_ends, cut);
            let records = all_records(&journal);
            assert_eq!(
                records.len(),
                records_before + kept,
                "segment {index}, cut {cut}"
            );
            assert_contiguous(&records);
            for record in &records {
                assert_eq!(record.payload, payloads[record.seq as usize - 1]);
            }
            cuts += 1;
        }
        records_before += image.frame_ends.len();
    }
    assert_eq!(records_before, payloads.len());
    assert!(cuts > 1000, "only {cuts} cuts");
}

#[test]
fn a_cut_journal_accepts_appends_after_recovery() {
    let (fs, payloads) = build_original(11);
    let last = fs.paths().pop().unwrap();
    let bytes = fs.read_file(&last).unwrap();
    let ends = frame_ends(&bytes);
    let cut = ends[ends.len() - 1].end - 5;
    fs.write_durable_file(&last, &bytes[..cut]);
    let (mut journal, report) = open_memory(&fs, small_config(1024));
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!(torn.offset as usize, committed_end(&ends, cut));
    assert!(torn.bytes_cut > 0);
    assert!(torn.offset + torn.bytes_cut <= cut.next_multiple_of(8) as u64);
    assert!(fs.read_file(&torn.quarantine).is_some(), "cut bytes kept");
    let seq = journal
        .append(PendingRecord::raw(9, b"after".to_vec()).with_durability(Durability::Each))
        .unwrap();
    let kept = all_records(&journal).len() as u64;
    assert_eq!(seq, kept);
    assert!(kept < payloads.len() as u64);
    let (reopened, report) = open_memory(&fs.crash(3), small_config(1024));
    assert!(report.torn_tail.is_none());
    assert_eq!(all_records(&reopened).last().unwrap().payload, b"after");
}

#[test]
fn random_cuts_on_real_files() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("journal");
    let mut rng = fastrand::Rng::with_seed(5);
    let (mut journal, _) = Journal::open(&path, small_config(64 << 10)).unwrap();
    let payloads: Vec<Vec<u8>> = (1..=30).map(|tag| payload(tag, &mut rng, 300)).collect();
    let mut rest = &payloads[..];
    while !rest.is_empty() {
        let (batch, later) = rest.split_at(rng.usize(1..=rest.len().min(4)));
        journal.append_batch(&raw_records(batch)).unwrap();
        rest = later;
    }
    drop(journal);
    let segment = vortex::actors::journal::segment::segment_path(&path, 1);
    let original = std::fs::read(&segment).unwrap();
    let ends = frame_ends(&original);
    for _ in 0..40 {
        let cut = rng.usize(SEGMENT_HEADER_BYTES..=ends.last().unwrap().end);
        std::fs::write(&segment, &original[..cut]).unwrap();
        let (journal, _) = Journal::open(&path, small_config(64 << 10)).unwrap();
        let kept = kept_before(&ends, cut);
        assert_eq!(all_records(&journal).len(), kept, "cut {cut}");
    }
}
