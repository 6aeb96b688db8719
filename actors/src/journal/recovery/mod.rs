//! Recovery on open: verify every segment header, scan every frame (sane length, CRC,
//! `seq == previous + 1`, whole batches), decide what a bad frame means, and make what
//! was kept durable before the journal accepts appends.
//!
//! | where the first bad frame is | mode | verdict |
//! |---|---|---|
//! | last (active) segment | point-in-time (default), tolerant | cut there: point-in-time recovery |
//! | last segment, well-formed frames after it | strict | corruption: refuse to open |
//! | last segment, only zeros after it | strict | cut there |
//! | sealed segment | point-in-time, strict | corruption: refuse to open |
//! | sealed segment | tolerant | cut there; later segments leave the log |
//!
//! A zeroed tail (preallocated, never written) is simply the end of the log. A cut keeps
//! whole batches only: it lands at the end of the last batch whose committing frame is
//! intact. Nothing is destroyed: the cut bytes are copied to a quarantine file beside the
//! segment (made durable) before they are zeroed in the segment, and segment files that
//! leave the log are renamed into quarantine (see [`quarantine`]). A refusal is
//! [`JournalError::Corruption`] naming the segment and the offset of the first bad frame.
//!
//! Why the active segment is cut by default: after a power loss its un-synced pages may
//! each persist or not, so a hole followed by well-formed frames is what an ordinary
//! crash leaves there, and none of those frames were acknowledged as durable. A sealed
//! segment was synced before the next one was created, so damage there is real
//! corruption and recovery refuses to guess.
//!
//! Finally recovery rewrites the kept part of the active segment and fsyncs it and the
//! directory: bytes that only lived in the page cache (an earlier process died before its
//! sync, or its sync failed and the kernel marked the pages clean without writing them —
//! PostgreSQL's fsync lesson) are not built upon until they are durable, and a write-back
//! error surfaces here, at open, instead of after new appends were acknowledged on top.

pub mod quarantine;
mod scan;

use std::path::{Path, PathBuf};

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::io::{read_prefix, FileSystem, StorageFile};
use crate::journal::segment::{
    decode_header, list_segments, sync_directory, sync_file, SegmentInfo, PREPARING_SUFFIX,
    SEGMENT_EXTENSION,
};
use quarantine::{quarantine_bytes, quarantine_segments};
use scan::{frames_between, scan_frames, Scan, BATCH_PROBLEM, SEQUENCE_PROBLEM};

/// How recovery treats a bad frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Point-in-time recovery (the default, as in RocksDB): in the active segment, cut at
    /// the first bad frame, whatever follows it; in a sealed segment, refuse to open.
    #[default]
    PointInTime,
    /// Like [`RecoveryMode::PointInTime`], but also refuse to open when well-formed
    /// frames follow the first bad frame of the active segment. A power loss can leave
    /// exactly that, so a strict journal may need an operator after one.
    Strict,
    /// Cut the log at the first bad frame wherever it is; segments after a cut in a
    /// sealed segment leave the log (into quarantine). Opens whatever the damage.
    Tolerant,
}

/// One place where recovery cut the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The segment file that was cut.
    pub segment: PathBuf,
    /// Offset of the first byte removed: the end of the last whole batch kept.
    pub offset: u64,
    /// Bytes removed from that segment, up to its last non-zero byte.
    pub bytes_cut: u64,
    /// Well-formed frames (valid checksum) that lay in the removed bytes.
    pub frames_after: u64,
    /// Why the bytes at the first bad frame were not kept.
    pub reason: &'static str,
    /// The file that holds the removed bytes.
    pub quarantine: PathBuf,
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
    /// The cut at the end of the active segment (point-in-time recovery).
    pub torn_tail: Option<Cut>,
    /// A cut inside a sealed segment ([`RecoveryMode::Tolerant`] only).
    pub corruption_cut: Option<Cut>,
    /// Segment files taken out of the log and renamed into quarantine: a last segment
    /// whose header is damaged, or (tolerant mode) the segments after a cut.
    pub removed_segments: Vec<PathBuf>,
    /// Half-prepared segment files (`*.new`, a crash during rotation) removed; they
    /// never held a record.
    pub abandoned_segments: Vec<PathBuf>,
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

/// Recovers the journal in `directory`.
pub(crate) fn recover(
    fs: &dyn FileSystem,
    directory: &Path,
    options: RecoveryOptions,
) -> JournalResult<Recovered> {
    let mut recovered = Recovered {
        segments: Vec::new(),
        active: None,
        report: RecoveryReport::default(),
    };
    recovered.report.abandoned_segments = remove_preparing(fs, directory)?;
    let listed = list_segments(fs, directory)?;
    for (index, (base_seq, path)) in listed.iter().enumerate() {
        let is_last = index + 1 == listed.len();
        let expected = recovered.segments.last().map(|info| info.last_seq + 1);
        let outcome = recover_segment(fs, path, *base_seq, expected, is_last, options)?;
        let later: Vec<PathBuf> = listed[index + 1..]
            .iter()
            .map(|(_, path)| path.clone())
            .collect();
        let leave = match outcome.verdict {
            Verdict::Clean => None,
            Verdict::TornTail(cut) => {
                recovered.report.torn_tail = Some(cut);
                None
            }
            Verdict::Unusable => Some([vec![path.clone()], later].concat()),
            Verdict::Corrupt(cut) => {
                recovered.report.corruption_cut = Some(cut);
                Some(later)
            }
        };
        if let Some(info) = outcome.info {
            recovered.report.records += info.record_count();
            recovered.segments.push(info);
            recovered.active = outcome.file;
        }
        if let Some(leaving) = leave {
            quarantine_segments(fs, directory, &leaving)?;
            recovered.report.removed_segments.extend(leaving);
            break;
        }
    }
    if let (Some(active), Some(info)) = (recovered.active.as_mut(), recovered.segments.last()) {
        sync_file(active.as_mut(), &info.path)?;
    }
    sync_directory(fs, directory)?;
    recovered.report.segments = recovered.segments.len();
    recovered.report.last_seq = recovered.segments.last().map_or(0, |info| info.last_seq);
    Ok(recovered)
}

/// Removes `*.jrnl.new` leftovers of an interrupted rotation.
fn remove_preparing(fs: &dyn FileSystem, directory: &Path) -> JournalResult<Vec<PathBuf>> {
    let names = fs
        .list(directory)
        .map_err(|error| JournalError::io("listing", directory.to_path_buf(), error))?;
    let suffix = format!(".{SEGMENT_EXTENSION}{PREPARING_SUFFIX}");
    let mut removed = Vec::new();
    for name in names.iter().filter(|name| name.ends_with(&suffix)) {
        let path = directory.join(name);
        fs.remove(&path)
            .map_err(|error| JournalError::io("removing", path.clone(), error))?;
        removed.push(path);
    }
    if !removed.is_empty() {
        sync_directory(fs, directory)?;
    }
    Ok(removed)
}

enum Verdict {
    Clean,
    /// The active segment was cut.
    TornTail(Cut),
    /// This segment holds nothing usable: it and every later one leave the log.
    Unusable,
    /// A sealed segment was cut (tolerant mode): every later one leaves the log.
    Corrupt(Cut),
}

struct SegmentOutcome {
    info: Option<SegmentInfo>,
    file: Option<Box<dyn StorageFile>>,
    verdict: Verdict,
}

impl SegmentOutcome {
    fn unusable() -> Self {
        Self {
            info: None,
            file: None,
            verdict: Verdict::Unusable,
        }
    }
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
        // A bad last header holds no record we could read; a bad sealed one is
        // corruption unless the caller tolerates it.
        if !is_last && options.mode != RecoveryMode::Tolerant {
            return Err(JournalError::BadSegmentHeader {
                segment: path.to_path_buf(),
                reason,
            });
        }
        return Ok(SegmentOutcome::unusable());
    }
    if expected_base.is_some_and(|expected| expected != base_seq) {
        // Records are missing, which no crash of this journal can cause.
        if options.mode != RecoveryMode::Tolerant {
            return Err(JournalError::Corruption {
                segment: path.to_path_buf(),
                offset: 0,
                reason: GAP_PROBLEM,
            });
        }
        return Ok(SegmentOutcome::unusable());
    }
    let scan = scan_frames(&bytes, base_seq, options.max_payload);
    let mut verdict = Verdict::Clean;
    if scan.has_garbage() {
        let reason = scan.problem.unwrap_or("bytes after the last frame");
        if refuses(&bytes, &scan, reason, is_last, options) {
            return Err(JournalError::Corruption {
                segment: path.to_path_buf(),
                offset: scan.stop_offset as u64,
                reason,
            });
        }
        let cut = cut_segment(fs, file.as_mut(), path, &bytes, &scan, reason, options)?;
        verdict = if is_last {
            Verdict::TornTail(cut)
        } else {
            Verdict::Corrupt(cut)
        };
    }
    if is_last {
        // Rewrite what was kept, so that the final fsync really writes it: after a
        // failed fsync in an earlier process the kernel may hold these bytes as clean
        // pages the disk never got, and an fsync alone would not write them again. The
        // bytes are the ones already there, so a crash during the rewrite changes nothing.
        file.write_at(0, &bytes[..scan.end_offset])
            .map_err(|error| JournalError::from_write("rewriting", path.to_path_buf(), error))?;
    }
    if is_last && (bytes.len() as u64) < options.segment_bytes {
        // The preallocation did not survive: restore it (made durable with the tail).
        file.allocate(options.segment_bytes).map_err(|error| {
            JournalError::from_write("preallocating", path.to_path_buf(), error)
        })?;
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
        file: Some(file),
        verdict,
    })
}

/// True when the mode says a bad frame here must stop the journal from opening.
fn refuses(
    bytes: &[u8],
    scan: &Scan,
    reason: &'static str,
    is_last: bool,
    options: RecoveryOptions,
) -> bool {
    match options.mode {
        RecoveryMode::Tolerant => false,
        RecoveryMode::PointInTime => !is_last,
        RecoveryMode::Strict => {
            !is_last
                || reason == SEQUENCE_PROBLEM
                || reason == BATCH_PROBLEM
                || frames_between(
                    bytes,
                    scan.stop_offset + 8,
                    scan.garbage_end,
                    options.max_payload,
                ) > 0
        }
    }
}

fn check_header(bytes: &[u8], base_seq: u64) -> Result<(), &'static str> {
    if decode_header(bytes)? != base_seq {
        return Err("segment header does not match its file name");
    }
    Ok(())
}

const GAP_PROBLEM: &str = "segment does not continue the previous segment's sequence";

/// Moves the bytes after the kept frames into quarantine, then zeroes them in the
/// segment (writing zeros keeps the preallocated blocks) and syncs.
fn cut_segment(
    fs: &dyn FileSystem,
    file: &mut dyn StorageFile,
    path: &Path,
    bytes: &[u8],
    scan: &Scan,
    reason: &'static str,
    options: RecoveryOptions,
) -> JournalResult<Cut> {
    let removed = &bytes[scan.end_offset..scan.garbage_end];
    let quarantine = quarantine_bytes(fs, path, scan.end_offset as u64, removed)?;
    file.write_at(scan.end_offset as u64, &vec![0; removed.len()])
        .map_err(|error| JournalError::from_write("cutting", path.to_path_buf(), error))?;
    sync_file(file, path)?;
    Ok(Cut {
        segment: path.to_path_buf(),
        offset: scan.end_offset as u64,
        bytes_cut: removed.len() as u64,
        frames_after: frames_between(
            bytes,
            scan.end_offset,
            scan.garbage_end,
            options.max_payload,
        ),
        reason,
        quarantine,
    })
}
