//! The data mailbox: bounded, lock-free, multi-producer, moves messages.
//!
//! A mailbox belongs to an actor's address, not to the kameo cell that drains it, so a
//! restart keeps every queued message. Producers reserve a slot in `len` before they push,
//! wait on `space` when the mailbox is full, and wake a consumer only when one is parked
//! (see [`dispatch`]). A consumer gives the slot back as it pops the message, before the
//! handler runs: capacity counts what is queued, never the message being handled, so a
//! handler may `tell` its own actor even at capacity 1, and `len` is the depth `Status`
//! reports.
//!
//! The messages live in a chain of fixed-size rings that grows and shrinks with what is
//! queued (see [`segments`]): an idle actor holds a 4-slot ring, not its full capacity.
//! Each ring is mesocarp's queue (feature `mesocarp`) or a crossbeam `ArrayQueue`
//! (without it); both live in one small file each and share this wrapper.

pub(crate) mod dispatch;
#[cfg(not(feature = "mesocarp"))]
#[path = "ring_fallback.rs"]
mod ring;
#[cfg(feature = "mesocarp")]
#[path = "ring_mesocarp.rs"]
mod ring;
pub(crate) mod segments;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};

use tokio::sync::Notify;

use crate::error::{SendError, TrySendError};
pub(crate) use dispatch::Dispatch;
pub(crate) use segments::Reader;

/// Shared state of one data mailbox (one actor, or one pool of workers).
pub(crate) struct Mailbox<M> {
    ring: segments::Segments<M>,
    /// Reserved slots: messages queued plus pushes in flight. Never above `capacity` for
    /// long: a producer that overshoots gives its reservation back at once.
    len: Isolated<AtomicUsize>,
    capacity: usize,
    /// Free slots that wake producers parked in `send` (see [`Mailbox::release`]).
    slack: usize,
    closed: AtomicBool,
    /// Producers parked in `send` waiting for space; `space` is only notified when > 0.
    waiting: AtomicUsize,
    space: Notify,
    /// Pushes the ring refused despite a reservation (an invariant breach, never expected).
    rejected: AtomicU64,
    /// On cache lines of its own: producers read its idle word on every push, and the
    /// counters beside it in `Shared` change with every batch.
    pub(crate) dispatch: Isolated<Dispatch>,
}

impl<M: Send> Mailbox<M> {
    /// A mailbox of `capacity` slots (at least 1) woken through `dispatch`.
    pub(crate) fn new(capacity: usize, dispatch: Dispatch) -> Self {
        let capacity = capacity.max(1);
        Mailbox {
            ring: segments::Segments::new(capacity),
            len: Isolated::new(AtomicUsize::new(0)),
            capacity,
            slack: (capacity / 4).clamp(1, 64),
            closed: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            space: Notify::new(),
            rejected: AtomicU64::new(0),
            dispatch: Isolated::new(dispatch),
        }
    }

    /// Queues a message without waiting; hands it back when full or closed.
    pub(crate) fn try_send(&self, message: M) -> Result<(), TrySendError<M>> {
        // Reserve first, then look at `closed`: `close` reads `len` after setting `closed`,
        // so a push that saw the mailbox open is always visible to whoever drains it.
        if self.len.fetch_add(1, SeqCst) >= self.capacity {
            self.len.fetch_sub(1, SeqCst);
            if self.is_closed() {
                self.closed_reservation_returned();
                return Err(TrySendError::Closed(message));
            }
            return Err(TrySendError::Full(message));
        }
        if self.is_closed() {
            self.len.fetch_sub(1, SeqCst);
            self.closed_reservation_returned();
            return Err(TrySendError::Closed(message));
        }
        if self.ring.push(message).is_err() {
            self.len.fetch_sub(1, SeqCst);
            self.rejected.fetch_add(1, SeqCst);
            tracing::error!("mailbox ring rejected a reserved push; message counted as lost");
            return Ok(());
        }
        self.dispatch.notify();
        Ok(())
    }

    /// Queues a message, waiting while the mailbox is full.
    pub(crate) async fn send(&self, message: M) -> Result<(), SendError<M>> {
        let message = match self.try_send(message) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(message)) => return Err(SendError(message)),
            Err(TrySendError::Full(message)) => message,
        };
        self.send_slow(message).await
    }

    async fn send_slow(&self, mut message: M) -> Result<(), SendError<M>> {
        self.waiting.fetch_add(1, SeqCst);
        let _waiting = WaitingGuard(&self.waiting);
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            // Register before retrying, so a pop between the retry and the await still
            // wakes this producer (`notify_waiters` only reaches registered waiters).
            notified.as_mut().enable();
            match self.try_send(message) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => message = back,
            }
            notified.await;
        }
    }

    /// Takes the oldest message and gives its slot back at once (see the module docs).
    #[inline]
    pub(crate) fn pop(&self, reader: &mut Reader<M>) -> Option<M> {
        let message = reader.pop(&self.ring)?;
        reader.saw_depth(self.release(1));
        Some(message)
    }

    /// Gives back `n` reservations after their messages were popped, and wakes producers
    /// waiting for space once `slack` slots are free (one slot at small capacities), so a
    /// full mailbox wakes its producers once per stretch of pops, not once per pop.
    /// Returns the depth before the release.
    #[inline]
    pub(crate) fn release(&self, n: usize) -> usize {
        let before = self.len.fetch_sub(n, SeqCst);
        if n > 0 && self.waiting.load(SeqCst) > 0 && before - n + self.slack <= self.capacity {
            self.space.notify_waiters();
        }
        before
    }

    /// A reservation made after `close` was given back. A stopping consumer may have seen
    /// it as a push in flight and parked to wait for it: wake every consumer to look again.
    #[cold]
    fn closed_reservation_returned(&self) {
        self.dispatch.wake_all();
    }

    /// Wakes producers parked on a full mailbox (the consumer is about to park, so every
    /// free slot is free for good until they push).
    #[inline]
    pub(crate) fn wake_senders(&self) {
        if self.waiting.load(SeqCst) > 0 {
            self.space.notify_waiters();
        }
    }

    /// A consumer is about to park: after a quiet stretch, the ring may shrink (see
    /// [`segments`]). Call once per park, not once per poll.
    pub(crate) fn parking(&self, reader: &mut Reader<M>) {
        reader.flush();
        if self.is_empty() {
            self.ring.parking(reader);
        }
    }

    /// Message slots allocated now.
    #[cfg(test)]
    pub(crate) fn allocated_slots(&self) -> usize {
        self.ring.allocated()
    }

    /// A consumer handle on the ring.
    pub(crate) fn reader(&self) -> Reader<M> {
        self.ring.reader()
    }

    /// Refuses every later send; wakes parked producers so they get `Closed`. A producer
    /// counts itself in `waiting` before it tries again (both sequentially consistent): it
    /// either is counted here, or sees `closed` on that try.
    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
        self.wake_senders();
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Messages queued (or being pushed) now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(SeqCst).min(self.capacity)
    }

    /// Whether nothing is queued or being pushed.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(SeqCst) == 0
    }

    /// The capacity in messages.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Pushes the ring rejected (see the ring's docs); expected to stay 0.
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(SeqCst)
    }

    /// Takes every queued message out, waiting for reserved pushes still in flight.
    /// Only meaningful after [`Mailbox::close`], when no new reservation can succeed.
    pub(crate) fn take_all(&self, reader: &mut Reader<M>) -> Vec<M> {
        let mut taken = Vec::new();
        while !self.is_empty() {
            match self.pop(reader) {
                Some(message) => taken.push(message),
                // A producer reserved before `close` and has not pushed yet.
                None => std::thread::yield_now(),
            }
        }
        self.release_ring();
        taken
    }

    /// Gives the ring's memory back once the mailbox is closed and emptied (nothing can
    /// be queued here again); does nothing while it is open.
    pub(crate) fn release_ring(&self) {
        if self.is_closed() {
            self.ring.release();
        }
    }
}

/// Keeps a hot counter off every cache line that other fields use, without raising the
/// alignment of its owner (as `CachePadded` would: an over-aligned allocation takes
/// glibc's slow `posix_memalign` path on every spawn).
#[repr(C)]
pub(crate) struct Isolated<T> {
    _front: [u8; 64],
    value: T,
    _back: [u8; 64],
}

impl<T> Isolated<T> {
    fn new(value: T) -> Self {
        Isolated {
            _front: [0; 64],
            value,
            _back: [0; 64],
        }
    }
}

impl<T> std::ops::Deref for Isolated<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
