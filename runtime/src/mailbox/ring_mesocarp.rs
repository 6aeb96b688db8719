//! The mailbox ring on mesocarp's broadcast queue (LGPL-2.1, cargo feature `mesocarp`).
//!
//! mesocarp's `Broadcaster` clones a value once per subscriber on `push`. A mailbox has
//! exactly one feeder queue, so [`Envelope`]'s `Clone` *moves* the message out of the
//! original instead of copying it: the hot path never clones a message.
//!
//! `Broadcaster::push` drops the value when the queue is full. The mailbox therefore
//! reserves a slot (its length counter, never above the capacity) before it pushes, and a
//! reserved push cannot find the queue full: the ring holds at most as many messages as
//! there are reservations, and a reservation is released only after its message was
//! popped. Should that invariant ever break, [`Ring::push`] reports [`Rejected`] and the
//! mailbox counts it as a dead letter, so even then no message disappears silently.

use std::cell::Cell;

use mesocarp::comms::mt::{Broadcaster, Subscriber};

/// A message in transit. Its `Clone` takes the message out of the original, which is
/// only sound with exactly one subscriber queue: [`Ring`] creates exactly one.
struct Envelope<M>(Cell<Option<M>>);

impl<M> Clone for Envelope<M> {
    fn clone(&self) -> Self {
        Envelope(Cell::new(self.0.take()))
    }
}

/// The ring refused a reserved push; mesocarp dropped the message.
#[derive(Debug)]
pub(crate) struct Rejected;

/// The producer side: one mesocarp broadcaster with a single feeder queue.
pub(crate) struct Ring<M> {
    broadcaster: Broadcaster<Envelope<M>>,
}

impl<M: Send> Ring<M> {
    /// A ring of `capacity` slots, allocated up front.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Ring {
            broadcaster: Broadcaster::new(1, capacity),
        }
    }

    /// Pushes a message into a slot the caller has reserved.
    pub(crate) fn push(&self, message: M) -> Result<(), Rejected> {
        self.broadcaster
            .push(Envelope(Cell::new(Some(message))))
            .map_err(|_| Rejected)
    }

    /// A consumer handle. Every handle pops from the same queue (MPMC for pools).
    pub(crate) fn reader(&self) -> Reader<M> {
        Reader {
            subscriber: self.broadcaster.subscribe(0),
        }
    }
}

/// The consumer side of a [`Ring`].
pub(crate) struct Reader<M> {
    subscriber: Subscriber<Envelope<M>>,
}

impl<M> Reader<M> {
    /// Takes the oldest message, if any.
    pub(crate) fn pop(&mut self) -> Option<M> {
        self.subscriber.pop().and_then(|envelope| envelope.0.take())
    }
}
