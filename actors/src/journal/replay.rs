//! The read side: the state a writer shares with readers, [`JournalReader`],
//! [`Replay`] and [`JournalStatus`].
//!
//! Readers never touch the writer's file handle: a replay snapshots the segment list and
//! the last visible sequence number under a short lock and then reads the files itself,
//! so a long replay never stalls appends, and reads go on after the journal is poisoned.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::journal::error::{JournalError, JournalResult};
use crate::journal::frame;
use crate::journal::io::FileSystem;
use crate::journal::record::Record;
use crate::journal::segment::{SegmentInfo, SEGMENT_HEADER_BYTES};

/// Latency summary over a bounded window of recent samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Samples in the window.
    pub samples: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample in the window.
    pub max: Duration,
}

/// The most recent latency samples, up to a fixed count.
#[derive(Debug, Clone)]
pub(crate) struct LatencyWindow {
    samples: VecDeque<Duration>,
    capacity: usize,
}

impl LatencyWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn record(&mut self, sample: Duration) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let mut sorted: Vec<Duration> = self.samples.iter().copied().collect();
        sorted.sort_unstable();
        let rank = |fraction: f64| {
            let index = (fraction * sorted.len() as f64).ceil() as usize;
            sorted[index.saturating_sub(1).min(sorted.len() - 1)]
        };
        if sorted.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            samples: sorted.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: sorted[sorted.len() - 1],
        }
    }
}

/// What the writer publishes for readers.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) segments: Vec<SegmentInfo>,
    /// Highest sequence number readers may see: every record up to it is acknowledged.
    pub(crate) visible_seq: u64,
    /// Highest sequence number known to be on disk.
    pub(crate) durable_seq: u64,
    pub(crate) poison: Option<JournalError>,
    pub(crate) fsync_latency: LatencyWindow,
    /// Replays in progress: pin id → base seq of the oldest segment it still needs.
    /// Retention keeps that segment and every later one.
    pub(crate) pins: BTreeMap<u64, u64>,
    pub(crate) next_pin: u64,
}

impl View {
    /// Base seq of the oldest segment a replay still needs, if any replay runs.
    pub(crate) fn oldest_pinned(&self) -> Option<u64> {
        self.pins.values().min().copied()
    }
}

/// A replay's claim on the segments from `base_seq` on; released on drop.
#[derive(Debug)]
struct ReplayPin {
    shared: Arc<Shared>,
    id: u64,
}

impl ReplayPin {
    fn new(shared: &Arc<Shared>, view: &mut View, base_seq: u64) -> Self {
        let id = view.next_pin;
        view.next_pin += 1;
        view.pins.insert(id, base_seq);
        Self {
            shared: Arc::clone(shared),
            id,
        }
    }

    /// The replay moved on to the segment starting at `base_seq`.
    fn advance(&self, base_seq: u64) {
        if let Some(pinned) = self.shared.view().pins.get_mut(&self.id) {
            *pinned = base_seq;
        }
    }
}

impl Drop for ReplayPin {
    fn drop(&mut self) {
        self.shared.view().pins.remove(&self.id);
    }
}

/// State shared between the writer and its readers.
#[derive(Debug)]
pub(crate) struct Shared {
    view: Mutex<View>,
}

impl Shared {
    pub(crate) fn new(view: View) -> Self {
        Self {
            view: Mutex::new(view),
        }
    }

    pub(crate) fn view(&self) -> MutexGuard<'_, View> {
        // Every update to the view is a plain assignment or push, so a panic elsewhere
        // cannot leave it half-changed; a poisoned lock is safe to keep using.
        self.view
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A snapshot of the journal's state.
#[derive(Debug, Clone)]
pub struct JournalStatus {
    /// Segment files.
    pub segments: usize,
    /// Bytes of data in the segments (headers and frames, not preallocated space).
    pub bytes: u64,
    /// Sequence number of the oldest record kept (`last_seq + 1` when empty).
    pub first_seq: u64,
    /// Sequence number of the last acknowledged record (0 when none).
    pub last_seq: u64,
    /// Sequence number of the last record known to be on disk.
    pub durable_seq: u64,
    /// The error that poisoned the journal, if one did.
    pub poisoned: Option<JournalError>,
    /// `fdatasync` latency over the last few hundred syncs.
    pub fsync_latency: LatencySummary,
}

/// A cheap, cloneable handle for reading a journal while it is being written.
#[derive(Debug, Clone)]
pub struct JournalReader {
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) shared: Arc<Shared>,
}

impl JournalReader {
    /// The records with `seq >= from_seq` that are visible now, in order. Records before
    /// the oldest kept segment are gone (retention); replay then starts at the oldest.
    ///
    /// While the replay runs, retention keeps the segments it has yet to read (and the
    /// one it reads); they are released as it moves on, and all at its end or drop.
    pub fn replay(&self, from_seq: u64) -> Replay {
        let mut view = self.shared.view();
        let segments: VecDeque<SegmentInfo> = view
            .segments
            .iter()
            .filter(|segment| segment.last_seq >= from_seq.max(segment.base_seq))
            .cloned()
            .collect();
        let pin = segments
            .front()
            .map(|first| ReplayPin::new(&self.shared, &mut view, first.base_seq));
        Replay {
            fs: Arc::clone(&self.fs),
            segments,
            next_seq: from_seq,
            end_seq: view.visible_seq,
            current: None,
            pin,
        }
    }

    /// The journal's state now.
    pub fn status(&self) -> JournalStatus {
        let view = self.shared.view();
        let first_seq = view
            .segments
            .first()
            .map_or(view.visible_seq + 1, |segment| segment.base_seq);
        JournalStatus {
            segments: view.segments.len(),
            bytes: view.segments.iter().map(|segment| segment.end_offset).sum(),
            first_seq,
            last_seq: view.visible_seq,
            durable_seq: view.durable_seq,
            poisoned: view.poison.clone(),
            fsync_latency: view.fsync_latency.summary(),
        }
    }

    /// Sequence number of the last acknowledged record (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.shared.view().visible_seq
    }

    /// The error that poisoned the journal, if one did.
    pub fn poisoned(&self) -> Option<JournalError> {
        self.shared.view().poison.clone()
    }
}

/// An iterator over records in sequence order; see [`JournalReader::replay`].
///
/// It reads one segment at a time into memory. Retention does not remove a segment the
/// replay has yet to read: it pins them until it moves past them.
#[derive(Debug)]
pub struct Replay {
    fs: Arc<dyn FileSystem>,
    segments: VecDeque<SegmentInfo>,
    next_seq: u64,
    end_seq: u64,
    current: Option<LoadedSegment>,
    pin: Option<ReplayPin>,
}

#[derive(Debug)]
struct LoadedSegment {
    path: PathBuf,
    bytes: Vec<u8>,
    offset: usize,
}

impl Replay {
    fn load_next_segment(&mut self) -> Option<JournalResult<()>> {
        let Some(segment) = self.segments.pop_front() else {
            self.pin = None;
            return None;
        };
        if let Some(pin) = &self.pin {
            pin.advance(segment.base_seq);
        }
        let loaded = self.fs.open(&segment.path).and_then(|file| {
            let mut bytes = vec![0; segment.end_offset as usize];
            let read = file.read_at(0, &mut bytes)?;
            bytes.truncate(read);
            Ok(bytes)
        });
        Some(match loaded {
            Ok(bytes) => {
                self.current = Some(LoadedSegment {
                    path: segment.path,
                    bytes,
                    offset: SEGMENT_HEADER_BYTES,
                });
                Ok(())
            }
            Err(error) => Err(JournalError::io("replaying", segment.path, error)),
        })
    }

    fn stop(&mut self, result: JournalResult<Record>) -> Option<JournalResult<Record>> {
        self.segments.clear();
        self.current = None;
        self.end_seq = 0;
        self.pin = None;
        Some(result)
    }
}

impl Iterator for Replay {
    type Item = JournalResult<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next_seq <= self.end_seq {
            let Some(current) = self.current.as_mut() else {
                match self.load_next_segment()? {
                    Ok(()) => continue,
                    Err(error) => return self.stop(Err(error)),
                }
            };
            if current.offset >= current.bytes.len() {
                self.current = None;
                continue;
            }
            let view = match frame::decode(&current.bytes[current.offset..], u32::MAX as usize) {
                Ok(view) => view,
                Err(problem) => {
                    let error = JournalError::Corruption {
                        segment: current.path.clone(),
                        offset: current.offset as u64,
                        reason: problem.describe(),
                    };
                    return self.stop(Err(error));
                }
            };
            current.offset += view.encoded_len();
            if view.seq < self.next_seq {
                continue;
            }
            if view.seq > self.end_seq {
                break;
            }
            self.next_seq = view.seq + 1;
            return Some(Ok(Record {
                seq: view.seq,
                timestamp_nanos: view.timestamp_nanos,
                kind: view.kind,
                flags: view.flags,
                payload: view.payload.to_vec(),
            }));
        }
        // Done: release the segments at once, not only when the iterator is dropped.
        self.pin = None;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_window_is_bounded_and_ranks() {
        let mut window = LatencyWindow::new(100);
        assert_eq!(window.summary(), LatencySummary::default());
        for micros in 1..=300 {
            window.record(Duration::from_micros(micros));
        }
        let summary = window.summary();
        assert_eq!(summary.samples, 100);
        assert_eq!(summary.p50, Duration::from_micros(250));
        assert_eq!(summary.p99, Duration::from_micros(299));
        assert_eq!(summary.max, Duration::from_micros(300));
    }
}
