//! The staging buffer: encoded frames wait here between encoding and the one write that
//! puts a whole batch on disk.
//!
//! With the `mesocarp` feature (default, LGPL-2.1) the frames live in mesocarp's
//! `logging::Journal` arena (`write_raw` to stage, `read_all_raw` to drain). Without it a
//! permissively licensed `Vec<u8>` does the same job behind the same API. Only this file
//! knows which one is in use.
//!
//! mesocarp's arena is sound only inside a narrow contract, which this wrapper keeps:
//! * the `horizon` argument of `write_raw` is always `None`: chopping the tail can free
//!   the active arena while the journal keeps writing into it (a use-after-free);
//! * entries are keyed by their `time` in a `BTreeSet` whose ordering looks at the time
//!   only, so two entries with the same time silently collapse into one: we pass the
//!   sequence number, which is unique and increasing;
//! * after `cleanup` the arena pointer is null and every later write becomes its own heap
//!   allocation (and a zero-length one would be undefined behaviour), so a drained arena
//!   is replaced by a fresh `Journal::init` instead of being cleaned up;
//! * `init(0)` would allocate zero bytes, so the capacity has a floor.

/// The smallest arena the staging buffer allocates.
const MINIMUM_CAPACITY: usize = 4096;

/// Frames staged for the next write, in sequence order.
#[derive(Debug)]
pub struct StagingBuffer {
    arena: backend::Arena,
    staged_bytes: usize,
    staged_records: usize,
    last_seq: Option<u64>,
}

impl StagingBuffer {
    /// A staging buffer whose arena holds `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            arena: backend::Arena::new(capacity.max(MINIMUM_CAPACITY)),
            staged_bytes: 0,
            staged_records: 0,
            last_seq: None,
        }
    }

    /// Stages one encoded frame. Sequence numbers must increase until the next drain.
    pub fn stage(&mut self, seq: u64, frame: &[u8]) {
        assert!(
            self.last_seq.is_none_or(|last| last < seq),
            "staged sequence numbers must increase"
        );
        self.arena.push(seq, frame);
        self.last_seq = Some(seq);
        self.staged_bytes += frame.len();
        self.staged_records += 1;
    }

    /// Bytes staged.
    pub fn staged_bytes(&self) -> usize {
        self.staged_bytes
    }

    /// Frames staged.
    pub fn staged_records(&self) -> usize {
        self.staged_records
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.staged_records == 0
    }

    /// Appends every staged frame, in order, to `out` and empties the buffer.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) {
        if !self.is_empty() {
            self.arena.drain_into(out);
        }
        self.staged_bytes = 0;
        self.staged_records = 0;
        // Each drain starts a fresh arena, so sequence numbers only need to increase
        // within one batch (a failed write takes its numbers back for the next one).
        self.last_seq = None;
    }
}

#[cfg(feature = "mesocarp")]
mod backend {
    use std::convert::Infallible;

    /// mesocarp's arena journal, used as a byte arena keyed by sequence number.
    pub(super) struct Arena {
        journal: mesocarp::logging::Journal,
        capacity: usize,
    }

    impl std::fmt::Debug for Arena {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter
                .debug_struct("MesocarpArena")
                .field("capacity", &self.capacity)
                .finish_non_exhaustive()
        }
    }

    impl Arena {
        pub(super) fn new(capacity: usize) -> Self {
            Self {
                journal: mesocarp::logging::Journal::init(capacity),
                capacity,
            }
        }

        pub(super) fn push(&mut self, seq: u64, frame: &[u8]) {
            // Frames are 8-aligned on disk; aligning them in the arena costs nothing.
            self.journal.write_raw(frame, 8, seq, None);
        }

        pub(super) fn drain_into(&mut self, out: &mut Vec<u8>) {
            let drained = self.journal.read_all_raw(|frame| {
                out.extend_from_slice(frame);
                Ok::<(), Infallible>(())
            });
            // The only error is a Pod entry among raw ones; only raw entries are written.
            drained.expect("the staging arena holds raw entries only");
            self.journal = mesocarp::logging::Journal::init(self.capacity);
        }
    }
}

#[cfg(not(feature = "mesocarp"))]
mod backend {
    /// The permissive fallback: one growable byte vector.
    #[derive(Debug)]
    pub(super) struct Arena {
        bytes: Vec<u8>,
    }

    impl Arena {
        pub(super) fn new(capacity: usize) -> Self {
            Self {
                bytes: Vec::with_capacity(capacity),
            }
        }

        pub(super) fn push(&mut self, _seq: u64, frame: &[u8]) {
            self.bytes.extend_from_slice(frame);
        }

        pub(super) fn drain_into(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.bytes);
            self.bytes.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_in_order_across_arena_growth_and_reuse() {
        let mut staging = StagingBuffer::with_capacity(64);
        for round in 0..3u64 {
            let mut expected = Vec::new();
            for index in 0..200u64 {
                let length = 8 * (1 + (index as usize * 7) % 700);
                let frame = vec![(index % 251) as u8 + 1; length];
                staging.stage(round * 1000 + index + 1, &frame);
                expected.extend_from_slice(&frame);
            }
            assert_eq!(staging.staged_bytes(), expected.len());
            assert_eq!(staging.staged_records(), 200);
            let mut out = vec![9];
            staging.drain_into(&mut out);
            assert_eq!(out[0], 9);
            assert_eq!(&out[1..], &expected[..]);
            assert!(staging.is_empty());
        }
    }

    #[test]
    #[should_panic(expected = "must increase")]
    fn rejects_repeated_sequence_numbers() {
        let mut staging = StagingBuffer::with_capacity(64);
        staging.stage(5, &[1; 8]);
        staging.stage(5, &[2; 8]);
    }
}
