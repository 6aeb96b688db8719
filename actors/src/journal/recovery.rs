//! Recovery on open: verify every segment header, scan every frame (sane length, CRC,
//! `seq == previous + 1`), and decide what a bad frame means.
//!
//! | where the bad frame is | what follows it | verdict |
//! |---|---|---|
//! | last segment | nothing but zeros | torn write: cut it, fsync, report the bytes cut |
//! | last segment | a frame with a valid CRC | corruption |
//! | sealed segment | anything | corruption |
//! | any | (the frame has a valid CRC but the wrong sequence number) | corruption |
//!
//! Corruption refuses to open with [`JournalError::Corruption`] naming the segment and
//! offset, unless [`RecoveryMode::Tolerant`] is chosen: then the log is cut at the bad
//! frame, later segments are removed, and the report says so. A last segment whose
//! header is torn (a crash during rotation) holds no records yet and is removed.

use std::path::{Path, PathBuf};

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::frame::{self, FRAME_ALIGNMENT};
use crate::journal::io::{read_prefix, FileSystem, StorageFile};
use crate::journal::segment::{
    decode_header, list_segments, sync_directory, sync_file, SegmentInfo, SEGMENT_HEADER_BYTES,
};

/// How recovery treats corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Refuse to open a corrupt journal (the default).
    #[default]
    Strict,
    /// Cut the log at the first corrupt frame, drop everything after it, and report.
    Tolerant,
}

/// One place where recovery cut the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The segment file that was cut.
    pub segment: PathBuf,
    /// Offset of the first byte removed.
    pub offset: u64,
    /// Non-zero bytes removed from that segment (the torn or corrupt region).
    pub bytes_cut: u64,
    /// Why the bytes at `offset` were not a valid frame.
    pub reason: &'static str,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments kept.
    pub segments: usize,
    /// Records kept.
    pub records: u64,
    /// Sequence number of the last record kept (0 when there is none).
    pub last_seq: u64,
    /// A torn write cut from the end of the last segment.
    pub torn_tail: Option<Cut>,
    /// Corruption cut away in [`RecoveryMode::Tolerant`].
    pub corruption_cut: Option<Cut>,
    /// Segment files removed: a torn last segment header, or (tolerant mode) segments
    /// after a corruption cut.
    pub removed_segments: Vec<PathBuf>,
}

/// The state a journal continues from.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) segments: Vec<SegmentInfo>,
    pub(crate) active: Option<Box<dyn StorageFile>>,
    pub(crate) report: RecoveryReport,
}

/// Settings recovery needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecoveryOptions {
    pub(crate) mode: RecoveryMode,
    pub(crate) max_payload: usize,
    pub(crate) segment_bytes: u64,
}

/// The result of scanning one segment's frames.
#[derive(Debug)]
struct Scan {
    end_offset: usize,
    last_seq: u64,
    last_timestamp_nanos: u64,
    problem: Option<&'static str>,
}

/// Recovers the journal in `directory`.
pub(crate) fn recover(
    fs: &dyn FileSystem,
    directory: &Path,
    options: RecoveryOptions,
) -> JournalResult<Recovered> {
    let listed = list_segments(fs, directory)?;
    let mut recovered = Recovered {
        segments: Vec::new(),
        active: None,
        report: RecoveryReport::default(),
    };
    for (index, (base_seq, path)) in listed.iter().enumerate() {
        let is_last = index + 1 == listed.len();
        let expected = recovered.segments.last().map(|info| info.last_seq + 1);
        let outcome = recover_segment(fs, path, *base_seq, expected, is_last, options)?;
        recovered.report.records += outcome.info.as_ref().map_or(0, |info| info.record_count());
        let stop = match outcome.verdict {
            Verdict::Clean => false,
            Verdict::TornTail(cut) => {
                recovered.report.torn_tail = Some(cut);
                false
            }
            Verdict::TornHeader => {
                remove_segments(fs, directory, &listed[index..], &mut recovered.report)?;
                true
            }
            Verdict::Gap(cut) => {
                recovered.report.corruption_cut = Some(cut);
                remove_segments(fs, directory, &listed[index..], &mut recovered.report)?;
                true
            }
            Verdict::Corrupt(cut) => {
                recovered.report.corruption_cut = Some(cut);
                remove_segments(fs, directory, &listed[index + 1..], &mut recovered.report)?;
                true
            }
        };
        if let Some(info) = outcome.info {
            recovered.segments.push(info);
            recovered.active = Some(outcome.file);
        }
        if stop {
            break;
        }
    }
    recovered.report.segments = recovered.segments.len();
    recovered.report.last_seq = recovered.segments.last().map_or(0, |info| info.last_seq);
    Ok(recovered)
}

fn remove_segments(
    fs: &dyn FileSystem,
    directory: &Path,
    segments: &[(u64, PathBuf)],
    report: &mut RecoveryReport,
) -> JournalResult<()> {
    if segments.is_empty() {
        return Ok(());
    }
    for (_, path) in segments {
        fs.remove(path)
            .map_err(|error| JournalError::io("removing", path.clone(), error))?;
        report.removed_segments.push(path.clone());
    }
    sync_directory(fs, directory)
}

enum Verdict {
    Clean,
    TornTail(Cut),
    TornHeader,
    Gap(Cut),
    Corrupt(Cut),
}

struct SegmentOutcome {
    info: Option<SegmentInfo>,
    file: Box<dyn StorageFile>,
    verdict: Verdict,
}

fn recover_segment(
    fs: &dyn FileSystem,
    path: &Path,
    base_seq: u64,
    expected_base: Option<u64>,
    is_last: bool,
    options: RecoveryOptions,
) -> JournalResult<SegmentOutcome> {
    let mut file = fs
        .open(path)
        .map_err(|error| JournalError::io("opening", path.to_path_buf(), error))?;
    let bytes = read_prefix(file.as_ref(), u64::MAX)
        .map_err(|error| JournalError::io("reading", path.to_path_buf(), error))?;
    if let Err(reason) = check_header(&bytes, base_seq) {
        return header_verdict(path, file, is_last, options.mode, reason);
    }
    if expected_base.is_some_and(|expected| expected != base_seq) {
        return gap_verdict(path, file, options.mode);
    }
    let scan = scan_frames(&bytes, base_seq, options.max_payload);
    let mut verdict = Verdict::Clean;
    if let Some(reason) = scan.problem {
        let garbage_end = bytes
            .iter()
            .rposition(|&byte| byte != 0)
            .map_or(0, |at| at + 1);
        if garbage_end > scan.end_offset {
            let cut = Cut {
                segment: path.to_path_buf(),
                offset: scan.end_offset as u64,
                bytes_cut: (garbage_end - scan.end_offset) as u64,
                reason,
            };
            let corrupt = !is_last
                || reason == SEQUENCE_PROBLEM
                || valid_frame_between(&bytes, scan.end_offset, garbage_end, options);
            verdict = match (corrupt, options.mode) {
                (false, _) => Verdict::TornTail(cut),
                (true, RecoveryMode::Tolerant) => Verdict::Corrupt(cut),
                (true, RecoveryMode::Strict) => return Err(corruption(path, &scan, reason)),
            };
            cut_segment(file.as_mut(), path, scan.end_offset as u64, options)?;
        }
    }
    if is_last && matches!(verdict, Verdict::Clean) && (bytes.len() as u64) < options.segment_bytes
    {
        // The preallocation did not survive (or the file was cut): restore it.
        cut_segment(file.as_mut(), path, bytes.len() as u64, options)?;
    }
    let info = SegmentInfo {
        base_seq,
        path: path.to_path_buf(),
        end_offset: scan.end_offset as u64,
        last_seq: scan.last_seq,
        last_timestamp_nanos: scan.last_timestamp_nanos,
    };
    Ok(SegmentOutcome {
        info: Some(info),
        file,
        verdict,
    })
}

fn corruption(path: &Path, scan: &Scan, reason: &'static str) -> JournalError {
    JournalError::Corruption {
        segment: path.to_path_buf(),
        offset: scan.end_offset as u64,
        reason,
    }
}

fn check_header(bytes: &[u8], base_seq: u64) -> Result<(), &'static str> {
    if decode_header(bytes)? != base_seq {
        return Err("segment header does not match its file name");
    }
    Ok(())
}

const GAP_PROBLEM: &str = "segment does not continue the previous segment's sequence";

/// A segment whose first sequence number does not follow the previous segment: records
/// are missing, which no crash of this journal can cause.
fn gap_verdict(
    path: &Path,
    file: Box<dyn StorageFile>,
    mode: RecoveryMode,
) -> JournalResult<SegmentOutcome> {
    let cut = Cut {
        segment: path.to_path_buf(),
        offset: 0,
        bytes_cut: 0,
        reason: GAP_PROBLEM,
    };
    match mode {
        RecoveryMode::Strict => Err(JournalError::Corruption {
            segment: cut.segment,
            offset: 0,
            reason: GAP_PROBLEM,
        }),
        RecoveryMode::Tolerant => Ok(SegmentOutcome {
            info: None,
            file,
            verdict: Verdict::Gap(cut),
        }),
    }
}

fn header_verdict(
    path: &Path,
    file: Box<dyn StorageFile>,
    is_last: bool,
    mode: RecoveryMode,
    reason: &'static str,
) -> JournalResult<SegmentOutcome> {
    if !is_last && mode == RecoveryMode::Strict {
        return Err(JournalError::BadSegmentHeader {
            segment: path.to_path_buf(),
            reason,
        });
    }
    // A torn last header is a crash during rotation: the segment never held a record.
    // In tolerant mode a bad sealed header cuts the log there, which removes the same
    // files.
    Ok(SegmentOutcome {
        info: None,
        file,
        verdict: Verdict::TornHeader,
    })
}

/// Zeroes everything from `offset` on (truncate, then extend back to the preallocated
/// size) and makes that durable.
fn cut_segment(
    file: &mut dyn StorageFile,
    path: &Path,
    offset: u64,
    options: RecoveryOptions,
) -> JournalResult<()> {
    let size = file
        .size()
        .map_err(|error| JournalError::io("measuring", path.to_path_buf(), error))?;
    file.set_len(offset)
        .and_then(|()| file.set_len(size.max(options.segment_bytes)))
        .map_err(|error| JournalError::io("truncating", path.to_path_buf(), error))?;
    sync_file(file, path)
}

const SEQUENCE_PROBLEM: &str = "sequence number does not follow the previous record";

fn scan_frames(bytes: &[u8], base_seq: u64, max_payload: usize) -> Scan {
    let mut scan = Scan {
        end_offset: SEGMENT_HEADER_BYTES,
        last_seq: base_seq - 1,
        last_timestamp_nanos: 0,
        problem: None,
    };
    while scan.end_offset < bytes.len() {
        match frame::decode(&bytes[scan.end_offset..], max_payload) {
            Ok(view) if view.seq == scan.last_seq + 1 => {
                scan.end_offset += view.encoded_len();
                scan.last_seq = view.seq;
                scan.last_timestamp_nanos = view.timestamp_nanos;
            }
            Ok(_) => {
                scan.problem = Some(SEQUENCE_PROBLEM);
                break;
            }
            Err(problem) => {
                // `Empty` is either the end of data or a zeroed region; the caller checks
                // whether anything non-zero follows.
                scan.problem = Some(problem.describe());
                break;
            }
        }
    }
    scan
}

/// True when some frame with a valid CRC starts in `(start, end)`.
fn valid_frame_between(bytes: &[u8], start: usize, end: usize, options: RecoveryOptions) -> bool {
    (start + FRAME_ALIGNMENT..end)
        .step_by(FRAME_ALIGNMENT)
        .any(|offset| frame::decode(&bytes[offset..], options.max_payload).is_ok())
}
