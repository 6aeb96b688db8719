//! The mailbox ring without mesocarp (`--no-default-features`): a crossbeam `ArrayQueue`,
//! MIT/Apache-2.0. Same API and the same reservation contract as the mesocarp ring.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// The ring refused a reserved push. Unlike mesocarp, crossbeam hands the message back,
/// but the mailbox treats both rings alike: a reserved push never observes a full ring.
#[derive(Debug)]
pub(crate) struct Rejected;

/// The producer side: a bounded crossbeam queue.
pub(crate) struct Ring<M> {
    queue: Arc<ArrayQueue<M>>,
}

impl<M: Send> Ring<M> {
    /// A ring of `capacity` slots, allocated up front.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Ring {
            queue: Arc::new(ArrayQueue::new(capacity)),
        }
    }

    /// Pushes a message into a slot the caller has reserved.
    pub(crate) fn push(&self, message: M) -> Result<(), Rejected> {
        self.queue.push(message).map_err(|_| Rejected)
    }

    /// A consumer handle. Every handle pops from the same queue (MPMC for pools).
    pub(crate) fn reader(&self) -> Reader<M> {
        Reader {
            queue: Arc::clone(&self.queue),
        }
    }
}

/// The consumer side of a [`Ring`].
pub(crate) struct Reader<M> {
    queue: Arc<ArrayQueue<M>>,
}

impl<M> Reader<M> {
    /// Takes the oldest message, if any.
    pub(crate) fn pop(&mut self) -> Option<M> {
        self.queue.pop()
    }
}
