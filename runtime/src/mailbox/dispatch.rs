//! Who drains a mailbox, and how producers wake them without lost wake-ups or locks.
//!
//! Every consumer of a mailbox (the one cell of a single actor, or worker `i` of a pool)
//! owns a *slot*: an [`AtomicWaker`] its cell registers before it parks. An *idle bitmap*
//! says which consumers are parked and want to be woken. The hand-off:
//!
//! - **Producer**: push the message into the ring, then [`Dispatch::notify`]: if any idle
//!   bit is set, clear one bit with an atomic `fetch_and` and wake that slot's waker. Only the
//!   producer that clears a bit wakes it, so a parked consumer is woken once per park, and a
//!   busy consumer (no bit set) costs a producer one shared load and no wake-up at all.
//! - **Consumer** going idle ([`Dispatch::park`]): register the waker, set its idle bit, then
//!   try to pop once more. If that pop finds a message, the consumer runs it (and clears
//!   its bit again); otherwise it parks.
//!
//! Both sides use sequentially consistent operations, so in every interleaving either the
//! producer's bitmap load sees the consumer's bit (and wakes it), or the consumer's pop
//! sees the producer's message. Whether there is work is decided by popping what is really
//! queued, never by a counter that still includes messages another worker took, so an
//! idle pool worker sleeps while its siblings are busy. The module's tests check the
//! protocol exhaustively on a model and under contention on the real mailbox.
//!
//! Waking takes no lock: [`AtomicWaker`] is a lock-free cell, and the bitmap is plain
//! atomics. A consumer that stops (halt, restart, scale-down) clears its bit and hands a
//! wake-up it may have swallowed on to a sibling ([`Dispatch::detach`]).

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
    task::Waker,
};

use futures::task::AtomicWaker;

/// The wake-up state of one mailbox: a waker slot per consumer and the idle bitmap.
pub(crate) struct Dispatch {
    slots: FirstInline<Slot>,
    idle: FirstInline<AtomicU64>,
}

/// One consumer's slot: its waker, and whether its supervisor halted the incarnation that
/// runs there (cleared before the next incarnation of that consumer starts).
#[derive(Default)]
struct Slot {
    waker: AtomicWaker,
    halted: AtomicBool,
}

/// One entry per consumer (or per 64 consumers): the first inline, the others (pools
/// only) in one boxed slice, so a single actor's dispatch allocates nothing.
struct FirstInline<T> {
    first: T,
    rest: Box<[T]>,
}

impl<T> FirstInline<T> {
    fn new(len: usize, make: impl Fn() -> T) -> Self {
        let rest: Box<[T]> = match len {
            0 | 1 => Box::new([]),
            _ => (1..len).map(|_| make()).collect(),
        };
        FirstInline {
            first: make(),
            rest,
        }
    }

    fn len(&self) -> usize {
        1 + self.rest.len()
    }

    #[inline]
    fn get(&self, index: usize) -> Option<&T> {
        match index {
            0 => Some(&self.first),
            _ => self.rest.get(index - 1),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }
}

impl<T> std::ops::Index<usize> for FirstInline<T> {
    type Output = T;

    #[inline]
    fn index(&self, index: usize) -> &T {
        self.get(index)
            .expect("a consumer index below the dispatch's size")
    }
}

impl Dispatch {
    /// Dispatch for a single actor: one consumer.
    pub(crate) fn single() -> Self {
        Dispatch::pool(1)
    }

    /// Dispatch for a pool of at most `max_workers` consumers, indexed `0..max_workers`.
    pub(crate) fn pool(max_workers: usize) -> Self {
        let max_workers = max_workers.max(1);
        Dispatch {
            slots: FirstInline::new(max_workers, Slot::default),
            idle: FirstInline::new(max_workers.div_ceil(64), || AtomicU64::new(0)),
        }
    }

    /// The number of consumer slots.
    pub(crate) fn max_workers(&self) -> usize {
        self.slots.len()
    }

    /// After a push: wakes one parked consumer, if any. Returns whether it woke one.
    #[inline]
    pub(crate) fn notify(&self) -> bool {
        if self.wake_one_of(0, &self.idle.first) {
            return true;
        }
        self.idle
            .rest
            .iter()
            .enumerate()
            .any(|(word_index, word)| self.wake_one_of(word_index + 1, word))
    }

    /// Clears one idle bit of `word` (idle word `word_index`) and wakes that consumer.
    #[inline]
    fn wake_one_of(&self, word_index: usize, word: &AtomicU64) -> bool {
        let mut bits = word.load(SeqCst);
        while bits != 0 {
            let bit = bits & bits.wrapping_neg();
            let before = word.fetch_and(!bit, SeqCst);
            if before & bit != 0 {
                let index = word_index * 64 + bit.trailing_zeros() as usize;
                self.slots[index].waker.wake();
                return true;
            }
            bits = before & !bit;
        }
        false
    }

    /// Consumer `index` is about to park: registers its waker and marks it idle. The caller
    /// must then look for work once more (pop) before it returns `Pending`, and call
    /// [`Dispatch::busy`] if it found some.
    #[inline]
    pub(crate) fn park(&self, index: usize, waker: &Waker) {
        self.slots[index].waker.register(waker);
        let (word, bit) = locate(index);
        self.idle[word].fetch_or(bit, SeqCst);
    }

    /// Registers consumer `index`'s waker without marking it idle: it wants to hear about
    /// `Resume`, `Stop` and halts, not about new messages (a paused consumer).
    pub(crate) fn listen(&self, index: usize, waker: &Waker) {
        self.slots[index].waker.register(waker);
    }

    /// Consumer `index` found work: producers need not wake it any more.
    #[inline]
    pub(crate) fn busy(&self, index: usize) {
        let (word, bit) = locate(index);
        if self.idle[word].load(SeqCst) & bit != 0 {
            self.idle[word].fetch_and(!bit, SeqCst);
        }
    }

    /// Whether consumer `index` is marked idle (tests and status only).
    #[cfg(test)]
    pub(crate) fn is_idle(&self, index: usize) -> bool {
        let (word, bit) = locate(index);
        self.idle[word].load(SeqCst) & bit != 0
    }

    /// Wakes every consumer (after `Resume`, `Stop` or shutdown).
    pub(crate) fn wake_all(&self) {
        for slot in self.slots.iter() {
            slot.waker.wake();
        }
    }

    /// Halts the incarnation running as consumer `index` (it finishes its current message)
    /// and wakes it.
    pub(crate) fn halt(&self, index: usize) {
        if let Some(slot) = self.slots.get(index) {
            slot.halted.store(true, SeqCst);
            slot.waker.wake();
        }
    }

    /// Whether the incarnation running as consumer `index` was halted.
    #[inline]
    pub(crate) fn is_halted(&self, index: usize) -> bool {
        self.slots[index].halted.load(SeqCst)
    }

    /// A new incarnation is about to run as consumer `index` (its predecessor has ended).
    pub(crate) fn clear_halt(&self, index: usize) {
        if let Some(slot) = self.slots.get(index) {
            slot.halted.store(false, SeqCst);
        }
    }

    /// Consumer `index` stopped: it is not idle any more, and if a producer cleared its bit
    /// just before (a wake-up nobody will act on), a sibling gets the wake-up instead when
    /// `has_queued` says messages wait.
    pub(crate) fn detach(&self, index: usize, has_queued: bool) {
        let (word, bit) = locate(index);
        self.idle[word].fetch_and(!bit, SeqCst);
        if has_queued {
            self.notify();
        }
    }
}

fn locate(index: usize) -> (usize, u64) {
    (index / 64, 1u64 << (index % 64))
}
