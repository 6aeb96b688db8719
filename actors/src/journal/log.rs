//! [`Journal`], the synchronous core: one owner appends in batches, readers go through
//! [`JournalReader`].
//!
//! The core has no threads and no clocks of its own beyond record timestamps: an async
//! actor (or [`crate::journal::writer::JournalWriter`]) drives group commit by calling
//! [`Journal::append_batch`], or [`Journal::write_batch`] and [`Journal::sync`] separately.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::frame::{self, FrameView, FRAME_HEADER_BYTES};
use crate::journal::io::{FileSystem, RealFileSystem, StorageFile};
use crate::journal::record::PendingRecord;
use crate::journal::recovery::{recover, RecoveryMode, RecoveryOptions, RecoveryReport};
use crate::journal::replay::{JournalReader, JournalStatus, LatencyWindow, Replay, Shared, View};
use crate::journal::segment::{
    create_segment, sync_directory, sync_file, SegmentInfo, SEGMENT_HEADER_BYTES,
};
use crate::journal::staging::StagingBuffer;

/// How a journal is laid out and opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// Size each segment file is preallocated to; a segment is sealed when the next
    /// frame does not fit. Default 64 MiB.
    pub segment_bytes: u64,
    /// Largest payload accepted. Default 1 MiB; lowered automatically so that one frame
    /// always fits in an empty segment.
    pub max_record_bytes: usize,
    /// What recovery does with a bad frame. Default point-in-time: cut the active
    /// segment at its first bad frame, refuse a bad sealed segment.
    pub recovery: RecoveryMode,
    /// Bytes the staging arena holds before it grows. Default 256 KiB.
    pub staging_bytes: usize,
    /// `fdatasync` latencies kept for [`JournalStatus::fsync_latency`]. Default 1024.
    pub latency_window: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            max_record_bytes: 1 << 20,
            recovery: RecoveryMode::PointInTime,
            staging_bytes: 256 << 10,
            latency_window: 1024,
        }
    }
}

/// The smallest segment accepted.
const MINIMUM_SEGMENT_BYTES: u64 = 256;

impl JournalConfig {
    /// The largest payload that is accepted and fits in an empty segment.
    pub fn max_payload(&self) -> JournalResult<usize> {
        if self.segment_bytes < MINIMUM_SEGMENT_BYTES {
            return Err(JournalError::InvalidConfig("segment_bytes is below 256"));
        }
        let room = self.segment_bytes - (SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES) as u64;
        let fits = usize::try_from(room & !7).unwrap_or(usize::MAX);
        Ok(self.max_record_bytes.min(fits).min(u32::MAX as usize & !7))
    }
}

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
}

/// How [`Journal::write_unpublished`] frames a group of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// One atomic batch: one segment, committed by its last frame.
    Atomic,
    /// Independent records (a writer's group commit): each commits itself, and the
    /// group may span segments.
    Independent,
}

/// A durable, append-only, CRC-framed log in a directory of segment files.
#[derive(Debug)]
pub struct Journal {
    fs: Arc<dyn FileSystem>,
    directory: PathBuf,
    config: JournalConfig,
    max_payload: usize,
    shared: Arc<Shared>,
    active: Box<dyn StorageFile>,
    active_path: PathBuf,
    active_capacity: u64,
    write_offset: u64,
    next_seq: u64,
    unsynced: bool,
    staging: StagingBuffer,
    write_buffer: Vec<u8>,
    frame_buffer: Vec<u8>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

impl Journal {
    /// Opens (recovering) or creates the journal in `directory` on the real file system.
    pub fn open(
        directory: impl AsRef<Path>,
        config: JournalConfig,
    ) -> JournalResult<(Self, RecoveryReport)> {
        Self::open_with(Arc::new(RealFileSystem), directory, config)
    }

    /// Opens (recovering) or creates the journal in `directory` on `fs`.
    pub fn open_with(
        fs: Arc<dyn FileSystem>,
        directory: impl AsRef<Path>,
        config: JournalConfig,
    ) -> JournalResult<(Self, RecoveryReport)> {
        let directory = directory.as_ref().to_path_buf();
        let max_payload = config.max_payload()?;
        fs.create_dir_all(&directory)
            .map_err(|error| JournalError::io("creating", directory.clone(), error))?;
        let options = RecoveryOptions {
            mode: config.recovery,
            max_payload: u32::MAX as usize,
            segment_bytes: config.segment_bytes,
        };
        let recovered = recover(fs.as_ref(), &directory, options)?;
        let (segments, active) = match recovered.active {
            Some(active) => (recovered.segments, active),
            None => Self::create_first_segment(fs.as_ref(), &directory, &config)?,
        };
        let last = segments.last().expect("at least one segment").clone();
        let active_capacity = active
            .size()
            .map_err(|error| JournalError::io("measuring", last.path.clone(), error))?
            .max(config.segment_bytes);
        let view = View {
            segments,
            visible_seq: last.last_seq,
            durable_seq: last.last_seq,
            poison: None,
            fsync_latency: LatencyWindow::new(config.latency_window),
        };
        let journal = Self {
            shared: Arc::new(Shared::new(view)),
            staging: StagingBuffer::with_capacity(config.staging_bytes),
            fs,
            directory,
            max_payload,
            active,
            active_path: last.path,
            active_capacity,
            write_offset: last.end_offset,
            next_seq: last.last_seq + 1,
            unsynced: false,
            write_buffer: Vec::new(),
            frame_buffer: Vec::new(),
            config,
        };
        Ok((journal, recovered.report))
    }

    /// Starts an empty journal: its first segment, and a durable directory entry.
    fn create_first_segment(
        fs: &dyn FileSystem,
        directory: &Path,
        config: &JournalConfig,
    ) -> JournalResult<(Vec<SegmentInfo>, Box<dyn StorageFile>)> {
        if let Some(parent) = directory.parent().filter(|p| !p.as_os_str().is_empty()) {
            // A new journal directory must itself survive a crash.
            sync_directory(fs, parent)?;
        }
        let file = create_segment(fs, directory, 1, config.segment_bytes)?;
        Ok((vec![SegmentInfo::empty(directory, 1)], file))
    }

    /// Appends one record, honouring its durability; returns its sequence number.
    pub fn append(&mut self, record: PendingRecord) -> JournalResult<u64> {
        self.append_batch(std::slice::from_ref(&record))
            .map(|seqs| seqs[0])
    }

    /// Appends `records` as one atomic batch with one write and, unless every record
    /// says [`Durability::None`](crate::journal::Durability::None), one `fdatasync`;
    /// returns their sequence numbers once the whole batch is durable.
    ///
    /// Atomic across a crash: after reopening, either every record of the batch is
    /// there or none is. A batch never straddles a segment boundary (the journal rotates
    /// first when the batch does not fit in what is left of the active segment), and its
    /// last frame commits it (see [`crate::journal::frame`]). This is the shape a raft
    /// log storage needs: entries and hard state appended as one batch, so that a crash
    /// never keeps one without the other.
    ///
    /// Fails as a whole: on error nothing of the batch is acknowledged or visible, and
    /// a batch larger than an empty segment fails with [`JournalError::BatchTooLarge`]
    /// before anything is written.
    pub fn append_batch(&mut self, records: &[PendingRecord]) -> JournalResult<Vec<u64>> {
        let seqs = self.write_unpublished(records, Framing::Atomic)?;
        if records.iter().any(|record| record.durability.needs_sync()) {
            self.sync()?;
        }
        self.publish(seqs.end.saturating_sub(1));
        Ok(seqs.collect())
    }

    /// Writes `records` as one atomic batch (as [`Journal::append_batch`] does) without
    /// syncing, whatever their durability, and makes them visible to readers. Pair with
    /// [`Journal::sync`] to build your own group commit.
    pub fn write_batch(&mut self, records: &[PendingRecord]) -> JournalResult<Vec<u64>> {
        let seqs = self.write_unpublished(records, Framing::Atomic)?;
        self.publish(seqs.end.saturating_sub(1));
        Ok(seqs.collect())
    }

    /// Makes everything written so far durable. A failure poisons the journal.
    pub fn sync(&mut self) -> JournalResult<()> {
        self.check_poison()?;
        if !self.unsynced {
            return Ok(());
        }
        let started = Instant::now();
        let result = sync_file(self.active.as_mut(), &self.active_path);
        let elapsed = started.elapsed();
        let mut view = self.shared.view();
        match result {
            Ok(()) => {
                view.fsync_latency.record(elapsed);
                view.durable_seq = self.next_seq - 1;
                self.unsynced = false;
                Ok(())
            }
            Err(error) => {
                view.poison.get_or_insert_with(|| error.clone());
                Err(error)
            }
        }
    }

    /// A handle for reading while this journal is written.
    pub fn reader(&self) -> JournalReader {
        JournalReader {
            fs: Arc::clone(&self.fs),
            shared: Arc::clone(&self.shared),
        }
    }

    /// The visible records with `seq >= from_seq`, in order.
    pub fn replay(&self, from_seq: u64) -> Replay {
        self.reader().replay(from_seq)
    }

    /// The journal's state now.
    pub fn status(&self) -> JournalStatus {
        self.reader().status()
    }

    /// Sequence number of the last record written (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The largest payload accepted.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The journal directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Removes whole sealed segments as `policy` says, oldest first.
    pub fn retain(&mut self, policy: &RetentionPolicy) -> JournalResult<RetentionReport> {
        let removed = self.select_for_retention(policy, now_nanos());
        let mut report = RetentionReport::default();
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

    /// Takes the segments to remove out of the shared view, so new replays skip them.
    fn select_for_retention(&self, policy: &RetentionPolicy, now: u64) -> Vec<SegmentInfo> {
        let mut view = self.shared.view();
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
            count += 1;
        }
        view.segments.drain(..count).collect()
    }

    fn sync_directory_or_poison(&self) -> JournalResult<()> {
        sync_directory(self.fs.as_ref(), &self.directory).inspect_err(|error| {
            self.shared
                .view()
                .poison
                .get_or_insert_with(|| error.clone());
        })
    }

    fn check_poison(&self) -> JournalResult<()> {
        match &self.shared.view().poison {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Lets readers see records up to `seq` (never past what is written).
    pub(crate) fn publish(&self, seq: u64) {
        let mut view = self.shared.view();
        view.visible_seq = view.visible_seq.max(seq.min(self.next_seq - 1));
    }

    /// Writes `records`, rotating as needed, without syncing or publishing.
    pub(crate) fn write_unpublished(
        &mut self,
        records: &[PendingRecord],
        framing: Framing,
    ) -> JournalResult<Range<u64>> {
        self.check_poison()?;
        if let Some(record) = records.iter().find(|r| r.payload.len() > self.max_payload) {
            return Err(JournalError::RecordTooLarge {
                length: record.payload.len(),
                maximum: self.max_payload,
            });
        }
        let first = self.next_seq;
        let timestamp_nanos = now_nanos();
        if framing == Framing::Atomic {
            let bytes: u64 = records
                .iter()
                .map(|record| frame::encoded_len(record.payload.len()) as u64)
                .sum();
            let maximum = self.config.segment_bytes - SEGMENT_HEADER_BYTES as u64;
            if bytes > maximum {
                return Err(JournalError::BatchTooLarge { bytes, maximum });
            }
            if self.write_offset + bytes > self.active_capacity {
                self.rotate()?;
            }
            for (index, record) in records.iter().enumerate() {
                let rest = u32::try_from(records.len() - 1 - index).unwrap_or(u32::MAX);
                self.stage(record, timestamp_nanos, rest);
            }
        } else {
            for record in records {
                let length = frame::encoded_len(record.payload.len()) as u64;
                let staged = self.staging.staged_bytes() as u64;
                if self.write_offset + staged + length > self.active_capacity {
                    self.flush_staged()?;
                    self.rotate()?;
                }
                self.stage(record, timestamp_nanos, 0);
            }
        }
        self.flush_staged()?;
        Ok(first..self.next_seq)
    }

    fn stage(&mut self, record: &PendingRecord, timestamp_nanos: u64, batch_rest: u32) {
        let view = FrameView {
            seq: self.next_seq,
            timestamp_nanos,
            kind: record.kind,
            flags: record.flags,
            batch_rest,
            payload: &record.payload,
        };
        self.frame_buffer.clear();
        frame::encode_into(&mut self.frame_buffer, &view);
        self.staging.stage(self.next_seq, &self.frame_buffer);
        self.next_seq += 1;
    }

    /// Writes the staged frames in one call. On failure the sequence numbers are taken
    /// back and any partly written bytes are cut, so the next batch starts clean.
    fn flush_staged(&mut self) -> JournalResult<()> {
        if self.staging.is_empty() {
            return Ok(());
        }
        let first_staged = self.next_seq - self.staging.staged_records() as u64;
        self.write_buffer.clear();
        self.staging.drain_into(&mut self.write_buffer);
        if let Err(error) = self.active.write_at(self.write_offset, &self.write_buffer) {
            self.next_seq = first_staged;
            self.discard_partial_write()?;
            return Err(JournalError::from_write(
                "writing",
                self.active_path.clone(),
                error,
            ));
        }
        self.write_offset += self.write_buffer.len() as u64;
        self.unsynced = true;
        let mut view = self.shared.view();
        let segment = view.segments.last_mut().expect("an active segment");
        segment.end_offset = self.write_offset;
        segment.last_seq = self.next_seq - 1;
        segment.last_timestamp_nanos = now_nanos();
        Ok(())
    }

    /// Zeroes whatever a failed write left past `write_offset` and syncs that, so a crash
    /// cannot bring back frames that were never acknowledged. If even that fails, the
    /// file's state is unknown and the journal is poisoned.
    /// Zeros are written (not a truncate and extend), so the preallocated blocks stay.
    fn discard_partial_write(&mut self) -> JournalResult<()> {
        let zeros = vec![0; self.write_buffer.len()];
        let cut = self
            .active
            .write_at(self.write_offset, &zeros)
            .map_err(|error| JournalError::Poisoned {
                path: self.active_path.clone(),
                source: Arc::new(error),
            })
            .and_then(|()| sync_file(self.active.as_mut(), &self.active_path));
        cut.inspect_err(|error| {
            self.shared
                .view()
                .poison
                .get_or_insert_with(|| error.clone());
        })
    }

    /// Seals the active segment (sync) and starts the next one at `next_seq`.
    fn rotate(&mut self) -> JournalResult<()> {
        self.sync()?;
        let base_seq = self.next_seq;
        let created = create_segment(
            self.fs.as_ref(),
            &self.directory,
            base_seq,
            self.config.segment_bytes,
        );
        let file = created.inspect_err(|error| {
            if error.is_poisoned() {
                self.shared
                    .view()
                    .poison
                    .get_or_insert_with(|| error.clone());
            }
        })?;
        let info = SegmentInfo::empty(&self.directory, base_seq);
        self.active = file;
        self.active_path = info.path.clone();
        self.active_capacity = self.config.segment_bytes;
        self.write_offset = info.end_offset;
        self.unsynced = false;
        self.shared.view().segments.push(info);
        Ok(())
    }
}
