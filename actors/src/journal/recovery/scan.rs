//! Scanning one segment's frames: the pure part of recovery (bytes in, verdict out).
//!
//! The scan walks frames from the header on, checking length, CRC, padding,
//! `seq == previous + 1` and the batch countdown (`batch_rest` must fall by one inside a
//! batch). Only whole batches count: the kept end of a segment is the end of the last
//! frame whose `batch_rest` is 0, so a batch whose committing frame is missing or bad is
//! cut as a whole.

use crate::journal::frame::{self, FRAME_ALIGNMENT};
use crate::journal::segment::SEGMENT_HEADER_BYTES;

/// A frame with a valid CRC whose sequence number does not follow the previous one.
pub(crate) const SEQUENCE_PROBLEM: &str = "sequence number does not follow the previous record";
/// A frame with a valid CRC whose batch countdown does not follow the previous frame.
pub(crate) const BATCH_PROBLEM: &str = "batch countdown does not follow the previous frame";
/// Well-formed frames of a batch whose committing frame never made it.
pub(crate) const UNCOMMITTED_PROBLEM: &str = "batch cut before its committing frame";

/// The result of scanning one segment's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// End of the last committed batch: everything before it is kept.
    pub(crate) end_offset: usize,
    /// Sequence number of the last kept record (`base_seq - 1` when none).
    pub(crate) last_seq: u64,
    /// Timestamp of the last kept record (0 when none).
    pub(crate) last_timestamp_nanos: u64,
    /// Why the scan stopped before the end of the bytes, if it did.
    pub(crate) problem: Option<&'static str>,
    /// Where the scan stopped: the first bad frame (or the first zero header).
    pub(crate) stop_offset: usize,
    /// End of the last non-zero byte at or after `end_offset`, rounded up to the frame
    /// alignment (`end_offset` when the rest is zeros): the region a cut removes is
    /// `end_offset..garbage_end`.
    pub(crate) garbage_end: usize,
}

impl Scan {
    /// True when non-zero bytes follow the kept frames.
    pub(crate) fn has_garbage(&self) -> bool {
        self.garbage_end > self.end_offset
    }
}

/// Scans the frames of a segment whose first record is `base_seq`.
pub(crate) fn scan_frames(bytes: &[u8], base_seq: u64, max_payload: usize) -> Scan {
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut seq = base_seq - 1;
    let mut committed = (offset, seq, 0);
    let mut expected_rest: Option<u32> = None;
    let mut problem = None;
    while offset < bytes.len() {
        match frame::decode(&bytes[offset..], max_payload) {
            Ok(view) if view.seq != seq + 1 => {
                problem = Some(SEQUENCE_PROBLEM);
                break;
            }
            Ok(view) if expected_rest.is_some_and(|rest| rest != view.batch_rest) => {
                problem = Some(BATCH_PROBLEM);
                break;
            }
            Ok(view) => {
                offset += view.encoded_len();
                seq = view.seq;
                if view.batch_rest == 0 {
                    committed = (offset, seq, view.timestamp_nanos);
                    expected_rest = None;
                } else {
                    expected_rest = Some(view.batch_rest - 1);
                }
            }
            // Zeros are the end of the log, or a hole: `garbage_end` tells which.
            Err(frame::FrameProblem::Empty) if expected_rest.is_none() => break,
            Err(frame::FrameProblem::Empty) => {
                problem = Some(UNCOMMITTED_PROBLEM);
                break;
            }
            Err(error) => {
                problem = Some(error.describe());
                break;
            }
        }
    }
    let (end_offset, last_seq, last_timestamp_nanos) = committed;
    if problem.is_none() && expected_rest.is_some() {
        problem = Some(UNCOMMITTED_PROBLEM);
    }
    let garbage_end = bytes
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |at| frame::align_up(at + 1).min(bytes.len()))
        .max(end_offset);
    if garbage_end > end_offset && problem.is_none() {
        problem = Some(frame::FrameProblem::Empty.describe());
    }
    Scan {
        end_offset,
        last_seq,
        last_timestamp_nanos,
        problem,
        stop_offset: offset,
        garbage_end,
    }
}

/// Well-formed frames (valid CRC, any sequence number) that start in `start..end`.
pub(crate) fn frames_between(bytes: &[u8], start: usize, end: usize, max_payload: usize) -> u64 {
    let mut count = 0;
    let mut offset = start;
    while offset < end {
        match frame::decode(&bytes[offset..], max_payload) {
            Ok(view) => {
                count += 1;
                offset += view.encoded_len();
            }
            Err(_) => offset += FRAME_ALIGNMENT,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::frame::FrameView;
    use crate::journal::segment::encode_header;

    /// A segment with one batch per entry of `batches` (its record count).
    fn segment(batches: &[u32]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = encode_header(1).to_vec();
        let mut ends = Vec::new();
        let mut seq = 1;
        for &count in batches {
            for rest in (0..count).rev() {
                let payload = [seq as u8; 13];
                let view = FrameView {
                    seq,
                    timestamp_nanos: seq * 10,
                    kind: 1,
                    flags: 0,
                    batch_rest: rest,
                    payload: &payload,
                };
                frame::encode_into(&mut bytes, &view);
                seq += 1;
            }
            ends.push(bytes.len());
        }
        bytes.resize(bytes.len() + 200, 0);
        (bytes, ends)
    }

    #[test]
    fn whole_batches_are_kept_and_zeros_end_the_log() {
        let (bytes, ends) = segment(&[1, 3, 2]);
        let scan = scan_frames(&bytes, 1, 1024);
        assert_eq!(scan.end_offset, ends[2]);
        assert_eq!((scan.last_seq, scan.last_timestamp_nanos), (6, 60));
        assert_eq!(scan.problem, None);
        assert!(!scan.has_garbage());
    }

    #[test]
    fn a_batch_without_its_committing_frame_is_cut_whole() {
        let (mut bytes, ends) = segment(&[1, 3]);
        // Lose the committing frame of the second batch: zeros where it was.
        let last_start = ends[1] - frame::encoded_len(13);
        bytes[last_start..ends[1]].fill(0);
        let scan = scan_frames(&bytes, 1, 1024);
        assert_eq!(scan.end_offset, ends[0]);
        assert_eq!(scan.last_seq, 1);
        assert_eq!(scan.problem, Some(UNCOMMITTED_PROBLEM));
        assert_eq!(scan.garbage_end, last_start);
        assert_eq!(
            frames_between(&bytes, scan.end_offset, scan.garbage_end, 1024),
            2
        );
    }

    #[test]
    fn a_hole_before_later_frames_is_garbage_to_cut() {
        let (mut bytes, ends) = segment(&[1, 1, 1]);
        bytes[ends[0]..ends[1]].fill(0);
        let scan = scan_frames(&bytes, 1, 1024);
        assert_eq!(scan.end_offset, ends[0]);
        assert_eq!(scan.garbage_end, ends[2]);
        assert!(scan.problem.is_some());
        assert_eq!(
            frames_between(&bytes, scan.end_offset, scan.garbage_end, 1024),
            1
        );
    }

    #[test]
    fn a_broken_countdown_stops_the_scan() {
        let (mut bytes, ends) = segment(&[1]);
        bytes.truncate(ends[0]);
        for (seq, rest) in [(2, 2), (3, 0)] {
            let view = FrameView {
                seq,
                timestamp_nanos: 0,
                kind: 1,
                flags: 0,
                batch_rest: rest,
                payload: b"x",
            };
            frame::encode_into(&mut bytes, &view);
        }
        let scan = scan_frames(&bytes, 1, 1024);
        assert_eq!(scan.end_offset, ends[0]);
        assert_eq!(scan.problem, Some(BATCH_PROBLEM));
    }
}
