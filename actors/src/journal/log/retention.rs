//! Retention: [`Journal::retain`] removes whole sealed segments, oldest first, and never
//! one that a running [`Replay`](crate::journal::Replay) still has to read.

use std::path::PathBuf;
use std::time::Duration;

use super::{now_nanos, Journal};
use crate::journal::error::{JournalError, JournalResult};
use crate::journal::segment::SegmentInfo;

/// Which segments [`Journal::retain`] removes: the oldest sealed segments, while the
/// journal is over `max_total_bytes` or their newest record is older than `max_age`.
/// The segment being written is never removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep at most this many bytes of segment data.
    pub max_total_bytes: Option<u64>,
    /// Remove segments whose newest record is older than this.
    pub max_age: Option<Duration>,
}

/// What [`Journal::retain`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// The segment files removed, oldest first.
    pub removed_segments: Vec<PathBuf>,
    /// Records they held.
    pub removed_records: u64,
    /// Bytes of data they held.
    pub removed_bytes: u64,
    /// Segments the policy would have removed but a running replay still needs; a later
    /// pass removes them once the replay moved past them.
    pub deferred: usize,
}

impl Journal {
    /// Removes whole sealed segments as `policy` says, oldest first.
    pub fn retain(&mut self, policy: &RetentionPolicy) -> JournalResult<RetentionReport> {
        let (removed, deferred) = self.select_for_retention(policy, now_nanos());
        let mut report = RetentionReport {
            deferred,
            ..RetentionReport::default()
        };
        for segment in &removed {
            self.fs
                .remove(&segment.path)
                .map_err(|error| JournalError::io("removing", segment.path.clone(), error))?;
            // One directory sync per removal, oldest first: a crash can bring back a
            // suffix of the removed segments but never leave a gap in the log.
            self.sync_directory_or_poison()?;
            report.removed_segments.push(segment.path.clone());
            report.removed_records += segment.record_count();
            report.removed_bytes += segment.end_offset;
        }
        Ok(report)
    }

    /// Takes the segments to remove out of the shared view, so new replays skip them;
    /// also counts those a running replay keeps. Under the view's lock, so a replay
    /// starting now either pins a segment first or never sees it.
    fn select_for_retention(
        &self,
        policy: &RetentionPolicy,
        now: u64,
    ) -> (Vec<SegmentInfo>, usize) {
        let mut view = self.shared.view();
        let pinned = view.oldest_pinned().unwrap_or(u64::MAX);
        let mut deferred = 0;
        let mut total: u64 = view.segments.iter().map(|segment| segment.end_offset).sum();
        let oldest_kept = policy
            .max_age
            .map(|age| now.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)));
        let mut count = 0;
        for segment in &view.segments[..view.segments.len() - 1] {
            let too_big = policy.max_total_bytes.is_some_and(|limit| total > limit);
            let too_old = oldest_kept.is_some_and(|limit| segment.last_timestamp_nanos < limit);
            if !(too_big || too_old) {
                break;
            }
            total -= segment.end_offset;
            if segment.base_seq >= pinned {
                deferred += 1;
                continue;
            }
            count += 1;
        }
        (view.segments.drain(..count).collect(), deferred)
    }
}
