//! A mailbox ring that allocates only what it holds: a chain of fixed-size segments, each
//! one of the backend rings (mesocarp's or crossbeam's), grown and shrunk on demand.
//!
//! A mailbox starts with no segment at all (an actor that is never sent a message
//! allocates no ring), and its first push links a small one ([`INITIAL_SLOTS`], or the
//! capacity if that is smaller). When a push finds the current segment (the *tail*)
//! full, a successor of twice its size (at most the mailbox capacity) is linked behind it
//! and becomes the tail; the full one is *sealed*. A consumer drains a sealed segment,
//! then moves on to its successor, and the drained segment is freed once nobody refers to
//! it. When a consumer has parked [`QUIET_PARKS`] times in a row after stretches that each
//! used under a quarter of a large tail, it links a smaller successor the same way (as
//! large as the deepest of those stretches), so an actor that was busy once does not keep
//! a large ring, and one whose depth swings does not reallocate on every swing.
//!
//! The bound stays the mailbox's: [`super::Mailbox`] reserves a slot in its length counter
//! before every push, so the chain never holds more than `capacity` messages, and a segment
//! as large as the capacity can never be found full.
//!
//! Each segment counts its *claims* (slots reserved in it: queued messages plus pushes in
//! flight), with a high bit that seals it. A producer claims before it pushes (which is
//! what makes a push into a segment always fit: mesocarp drops a value pushed into a full
//! ring), and backs off if the segment is full or sealed. Sealing happens after the
//! successor is already the tail, so a producer that backs off from a sealed segment finds
//! the new tail on its next look. A consumer leaves a segment only when it is sealed and
//! its claim count is zero: nothing is queued in it and no push into it is in flight, and
//! none can begin. Messages therefore leave in the order they entered, per producer.

use std::sync::{
    atomic::{AtomicUsize, Ordering::SeqCst},
    Arc, Mutex, OnceLock,
};

use arc_swap::ArcSwapOption;

use super::ring;
pub(crate) use super::ring::Rejected;
use crate::sync::lock;

/// Slots of a mailbox's first segment (fewer if its capacity is smaller).
pub(crate) const INITIAL_SLOTS: usize = 4;

/// The claim word's seal bit; the bits below count claims.
const SEALED: usize = 1 << (usize::BITS - 1);

/// Consecutive quiet stretches (each using under a quarter of the tail) after which a
/// consumer shrinks the ring, to the smallest size that held all of them: a busy actor whose
/// depth swings is not made to reallocate on every swing.
pub(crate) const QUIET_PARKS: u32 = 64;

/// Pops a consumer takes before it subtracts them from its segment's claim count. Counting
/// each pop at once would bounce that counter's cache line between producer and consumer on
/// every message; late counts only make the count high, which can only make a producer
/// link a successor a little early (never overfill a segment), and a consumer flushes its
/// own count before it decides that a sealed segment is drained, before it parks, and when
/// it is dropped.
const FLUSH_EVERY: usize = 32;

/// Spins a consumer makes on a sealed segment whose last claims are in flight before it
/// reports "nothing now" (the producer in flight wakes it when its push lands).
const SEALED_SPINS: usize = 64;

/// One fixed-size ring of the chain.
struct Segment<M> {
    ring: ring::Ring<M>,
    slots: usize,
    /// `SEALED` | slots claimed (queued + pushes in flight).
    claims: AtomicUsize,
    /// The segment after this one, set before this one is sealed.
    next: OnceLock<Arc<Segment<M>>>,
}

impl<M: Send> Segment<M> {
    fn new(slots: usize) -> Arc<Self> {
        Arc::new(Segment {
            ring: ring::Ring::with_capacity(slots),
            slots,
            claims: AtomicUsize::new(0),
            next: OnceLock::new(),
        })
    }
}

/// The chain of segments of one mailbox.
pub(crate) struct Segments<M> {
    /// Where producers push: none before the first message (and after the ring was given
    /// back).
    tail: ArcSwapOption<Segment<M>>,
    /// The oldest segment a new consumer may still need (older ones are drained). A lock,
    /// not an `ArcSwap`: it is touched only when a consumer starts or changes segment, and
    /// an `ArcSwap` costs a walk over every thread's debt list when it is dropped.
    head: Mutex<Option<Arc<Segment<M>>>>,
    /// Serialises linking a successor (a cold path: once per growth or shrink).
    link: Mutex<()>,
    /// The largest segment: the mailbox capacity.
    max_slots: usize,
    initial_slots: usize,
}

impl<M: Send> Segments<M> {
    /// A chain for a mailbox of `capacity` messages (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let max_slots = capacity.max(1);
        let initial_slots = INITIAL_SLOTS.min(max_slots);
        Segments {
            tail: ArcSwapOption::empty(),
            head: Mutex::new(None),
            link: Mutex::new(()),
            max_slots,
            initial_slots,
        }
    }

    /// Pushes a message into a slot the caller reserved in the mailbox.
    pub(crate) fn push(&self, message: M) -> Result<(), Rejected> {
        loop {
            let guard = self.tail.load();
            let Some(tail) = guard.as_ref() else {
                self.link_first();
                continue;
            };
            let claimed = tail.claims.fetch_add(1, SeqCst);
            // A segment as large as the capacity cannot be full: the mailbox's reservation
            // bounds what is queued (its claim count may read high, see `FLUSH_EVERY`).
            if claimed & SEALED == 0 && (claimed < tail.slots || tail.slots >= self.max_slots) {
                return tail.ring.push(message);
            }
            tail.claims.fetch_sub(1, SeqCst);
            if claimed & SEALED == 0 {
                if tail.slots >= self.max_slots {
                    // Only possible if a caller pushed without a reservation.
                    return Err(Rejected);
                }
                self.link_after(tail, (tail.slots * 2).min(self.max_slots));
            }
            // Sealed (or just extended): the successor is the tail now; look again.
        }
    }

    /// The first push: links the first segment (head first, so a consumer that finds
    /// the message also finds its segment).
    fn link_first(&self) {
        let _linking = lock(&self.link);
        if self.tail.load().is_some() {
            return; // Somebody else linked it meanwhile.
        }
        let first = Segment::new(self.initial_slots);
        *lock(&self.head) = Some(Arc::clone(&first));
        self.tail.store(Some(first));
    }

    /// Links a successor of `slots` slots behind `segment` if it is still the tail, makes
    /// it the tail, then seals `segment`.
    fn link_after(&self, segment: &Arc<Segment<M>>, slots: usize) {
        let _linking = lock(&self.link);
        let still_tail = (self.tail.load().as_ref()).is_some_and(|tail| Arc::ptr_eq(tail, segment));
        if !still_tail {
            return; // Somebody else linked one meanwhile.
        }
        let next = Segment::new(slots);
        if segment.next.set(Arc::clone(&next)).is_err() {
            return; // Unreachable: only the tail gets a successor, under `link`.
        }
        self.tail.store(Some(next));
        segment.claims.fetch_or(SEALED, SeqCst);
    }

    /// A consumer handle, starting at the oldest segment that may hold messages.
    pub(crate) fn reader(&self) -> Reader<M> {
        let segment = lock(&self.head).clone();
        Reader {
            ring: segment.as_ref().map(|segment| segment.ring.reader()),
            segment,
            unflushed: 0,
            peak: 0,
            window_peak: 0,
            quiet_parks: 0,
        }
    }

    /// Called by a consumer about to park: after [`QUIET_PARKS`] stretches in a row that
    /// each used under a quarter of a large tail, links a smaller one, as large as the
    /// deepest of those stretches needed (see the module docs).
    pub(crate) fn parking(&self, reader: &mut Reader<M>) {
        let peak = std::mem::take(&mut reader.peak);
        let guard = self.tail.load();
        let current = |tail: &&Arc<Segment<M>>| {
            tail.slots > self.initial_slots
                && reader
                    .segment
                    .as_ref()
                    .is_some_and(|segment| Arc::ptr_eq(tail, segment))
        };
        let Some(tail) = guard.as_ref().filter(current) else {
            reader.quiet_parks = 0;
            reader.window_peak = 0;
            return;
        };
        let fits = |depth: usize| depth.max(1).next_power_of_two().max(self.initial_slots);
        if fits(peak) * 4 > tail.slots {
            reader.quiet_parks = 0;
            reader.window_peak = 0;
            return;
        }
        reader.quiet_parks += 1;
        reader.window_peak = reader.window_peak.max(peak);
        if reader.quiet_parks >= QUIET_PARKS {
            let wanted = fits(reader.window_peak);
            reader.quiet_parks = 0;
            reader.window_peak = 0;
            let tail = Arc::clone(tail);
            self.link_after(&tail, wanted);
        }
    }

    /// Gives the memory of a closed, emptied mailbox back: the chain is dropped (a
    /// consumer still holding a segment frees it as it drops).
    pub(crate) fn release(&self) {
        let _linking = lock(&self.link);
        // A store walks every thread's debt list (`arc-swap`): skip it when there is
        // nothing to give back (a mailbox that never got a message).
        if self.tail.load().is_some() {
            self.tail.store(None);
        }
        *lock(&self.head) = None;
    }

    /// Slots allocated now, over every segment from the head to the tail.
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        let mut total = 0;
        let mut segment = lock(&self.head).clone();
        while let Some(current) = segment {
            total += current.slots;
            segment = current.next.get().cloned();
        }
        total
    }
}

/// A consumer's position in the chain.
pub(crate) struct Reader<M> {
    /// `None` until the mailbox's first segment exists.
    segment: Option<Arc<Segment<M>>>,
    ring: Option<ring::Reader<M>>,
    /// Pops not yet subtracted from `segment`'s claim count (see [`FLUSH_EVERY`]).
    unflushed: usize,
    /// The deepest the mailbox was, seen by this consumer's pops since it last parked.
    peak: usize,
    /// The deepest of the current run of quiet stretches.
    window_peak: usize,
    /// Quiet stretches in a row (see [`QUIET_PARKS`]).
    quiet_parks: u32,
}

impl<M: Send> Reader<M> {
    /// Notes the mailbox depth seen by a pop (for the shrink decision when parking).
    #[inline]
    pub(crate) fn saw_depth(&mut self, depth: usize) {
        self.peak = self.peak.max(depth);
    }

    /// Subtracts this consumer's pops from its segment's claim count.
    #[inline]
    pub(crate) fn flush(&mut self) {
        if let Some(segment) = &self.segment {
            settle(segment, &mut self.unflushed);
        }
    }

    /// Takes the oldest message, if any. `None` may also mean that a push is in flight
    /// (its producer wakes the consumer when it lands).
    #[inline]
    pub(crate) fn pop(&mut self, segments: &Segments<M>) -> Option<M> {
        // The hot path: a message in the current ring.
        self.pop_in_place()
            .or_else(|| self.pop_after_empty(segments))
    }

    /// The current ring looked empty: find the first segment, or move past a drained one.
    #[inline(never)]
    fn pop_after_empty(&mut self, segments: &Segments<M>) -> Option<M> {
        let mut spins = 0;
        loop {
            let Some(segment) = &self.segment else {
                // No segment when this consumer started: the first push links one (and
                // sets the head before it pushes).
                let first = lock(&segments.head).clone()?;
                self.ring = Some(first.ring.reader());
                self.segment = Some(first);
                if let Some(message) = self.pop_in_place() {
                    return Some(message);
                }
                continue;
            };
            settle(segment, &mut self.unflushed);
            let claims = segment.claims.load(SeqCst);
            if claims & SEALED == 0 {
                return None;
            }
            if claims & !SEALED != 0 {
                // A push claimed before the seal is still landing, or a sibling popped
                // and has not counted it yet: both take nanoseconds.
                spins += 1;
                if spins > SEALED_SPINS {
                    return None;
                }
                std::hint::spin_loop();
                if let Some(message) = self.pop_in_place() {
                    return Some(message);
                }
                continue;
            }
            // Sealed and drained for good: move on (the successor was set before the seal).
            let next = segment.next.get().map(Arc::clone)?;
            {
                let mut head = lock(&segments.head);
                if head.as_ref().is_some_and(|head| Arc::ptr_eq(head, segment)) {
                    *head = Some(Arc::clone(&next));
                }
            }
            self.ring = Some(next.ring.reader());
            self.segment = Some(next);
            if let Some(message) = self.pop_in_place() {
                return Some(message);
            }
        }
    }

    /// A pop from the current ring, counted.
    #[inline]
    fn pop_in_place(&mut self) -> Option<M> {
        let message = self.ring.as_mut().and_then(ring::Reader::pop)?;
        self.unflushed += 1;
        if self.unflushed >= FLUSH_EVERY {
            self.flush();
        }
        Some(message)
    }
}

impl<M> Drop for Reader<M> {
    fn drop(&mut self) {
        // A consumer that leaves (a worker scaled down, an incarnation that ended) must not
        // leave its pops uncounted: siblings move past a sealed segment only at zero.
        if let Some(segment) = &self.segment {
            settle(segment, &mut self.unflushed);
        }
    }
}

/// Subtracts `unflushed` pops from `segment`'s claim count (see [`FLUSH_EVERY`]).
#[inline]
fn settle<M>(segment: &Segment<M>, unflushed: &mut usize) {
    if *unflushed > 0 {
        segment.claims.fetch_sub(*unflushed, SeqCst);
        *unflushed = 0;
    }
}
