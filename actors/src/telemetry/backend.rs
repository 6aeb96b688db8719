//! The per-subscriber bounded queue under the fan-out, in one place per licence.
//!
//! Both implementations expose the same crate-private API:
//!
//! * [`queue`]`(capacity) -> (Feeder<T>, Tap<T>)`: one bounded single-subscriber queue;
//! * `Feeder::push_evicting(&self, T) -> u64`: push, and when the queue is full
//!   evict the *oldest* element first; returns how many elements were evicted;
//! * `Tap::pop(&mut self) -> Option<T>`: the subscriber's side.
//!
//! With the `mesocarp` feature (default, LGPL-2.1) each queue is a mesocarp
//! [`Broadcaster`](mesocarp::comms::mt::Broadcaster) with exactly **one** feeder.
//! One feeder per subscriber is what lets the hub (a) add and remove subscribers at
//! run time, which mesocarp's fixed-at-construction broadcaster cannot, and (b)
//! evict per subscriber instead of inheriting `Broadcaster::push`'s
//! stop-at-the-first-full-subscriber behaviour. Without the feature, a crossbeam
//! `ArrayQueue` with `force_push` does the same job under MIT/Apache-2.0.

pub(crate) use imp::{queue, Feeder, Tap};

#[cfg(feature = "mesocarp")]
mod imp {
    use std::cell::Cell;

    use mesocarp::comms::mt::{Broadcaster, Subscriber};

    /// mesocarp clones a value once per feeder on `push`. With exactly one feeder
    /// that single clone can be a move: `clone` takes the value out of the cell.
    /// Valid only because every broadcaster here has one feeder; `Envelope` never
    /// leaves this module.
    struct Envelope<T>(Cell<Option<T>>);

    impl<T> Clone for Envelope<T> {
        fn clone(&self) -> Self {
            Self(Cell::new(self.0.take()))
        }
    }

    /// The publisher's end of one subscriber queue.
    pub(crate) struct Feeder<T> {
        broadcaster: Broadcaster<Envelope<T>>,
    }

    /// The subscriber's end of one queue.
    pub(crate) struct Tap<T> {
        subscriber: Subscriber<Envelope<T>>,
    }

    /// One bounded queue holding at most `capacity` (≥ 1) values.
    pub(crate) fn queue<T>(capacity: usize) -> (Feeder<T>, Tap<T>) {
        let broadcaster = Broadcaster::new(1, capacity);
        let subscriber = broadcaster.subscribe(0);
        (Feeder { broadcaster }, Tap { subscriber })
    }

    impl<T: Clone> Feeder<T> {
        /// Pushes `value`, evicting the oldest values while the queue is full.
        pub(crate) fn push_evicting(&self, value: T) -> u64 {
            let mut evicted = 0;
            loop {
                // A failed mesocarp push drops what it was given, so each attempt
                // gets its own clone; `value` is kept for a retry.
                if self
                    .broadcaster
                    .push(Envelope(Cell::new(Some(value.clone()))))
                    .is_ok()
                {
                    return evicted;
                }
                // Full: drop the oldest for this subscriber only, then retry. A
                // `None` means the subscriber (or another publisher) made room first.
                if self.broadcaster.subscribe(0).pop().is_some() {
                    evicted += 1;
                }
            }
        }
    }

    impl<T> Tap<T> {
        /// Takes the oldest value, if any.
        pub(crate) fn pop(&mut self) -> Option<T> {
            // An envelope in the queue always holds its value (see `Envelope`);
            // the `and_then` keeps that an invariant instead of a panic.
            self.subscriber
                .pop()
                .and_then(|envelope| envelope.0.into_inner())
        }
    }
}

#[cfg(not(feature = "mesocarp"))]
mod imp {
    use std::sync::Arc;

    use crossbeam_queue::ArrayQueue;

    /// The publisher's end of one subscriber queue.
    pub(crate) struct Feeder<T> {
        queue: Arc<ArrayQueue<T>>,
    }

    /// The subscriber's end of one queue.
    pub(crate) struct Tap<T> {
        queue: Arc<ArrayQueue<T>>,
    }

    /// One bounded queue holding at most `capacity` (≥ 1) values.
    pub(crate) fn queue<T>(capacity: usize) -> (Feeder<T>, Tap<T>) {
        let queue = Arc::new(ArrayQueue::new(capacity));
        (
            Feeder {
                queue: Arc::clone(&queue),
            },
            Tap { queue },
        )
    }

    impl<T: Clone> Feeder<T> {
        /// Pushes `value`, evicting the oldest value if the queue is full.
        pub(crate) fn push_evicting(&self, value: T) -> u64 {
            u64::from(self.queue.force_push(value).is_some())
        }
    }

    impl<T> Tap<T> {
        /// Takes the oldest value, if any.
        pub(crate) fn pop(&mut self) -> Option<T> {
            self.queue.pop()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::queue;

    #[test]
    fn full_queue_evicts_oldest_and_counts_it() {
        let (feeder, mut tap) = queue::<u32>(3);
        let evicted: u64 = (0..10).map(|n| feeder.push_evicting(n)).sum();
        assert_eq!(evicted, 7);
        let left: Vec<u32> = std::iter::from_fn(|| tap.pop()).collect();
        assert_eq!(left, vec![7, 8, 9]);
    }

    #[test]
    fn values_arrive_in_order_without_eviction_below_capacity() {
        let (feeder, mut tap) = queue::<String>(4);
        for word in ["a", "b", "c"] {
            assert_eq!(feeder.push_evicting(word.to_owned()), 0);
        }
        assert_eq!(tap.pop().as_deref(), Some("a"));
        assert_eq!(tap.pop().as_deref(), Some("b"));
        assert_eq!(tap.pop().as_deref(), Some("c"));
        assert_eq!(tap.pop(), None);
    }
}
