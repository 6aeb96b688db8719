//! The telemetry fan-out: one [`TelemetryHub`] (publisher side, cheap to clone)
//! to any number of [`Subscription`]s, added and removed at run time.
//!
//! # Contract
//!
//! * **The publisher never waits.** [`TelemetryHub::publish`] is wait-free with
//!   respect to subscribers: it clones the event into each subscriber's bounded
//!   queue and returns.
//! * **Lossy per subscriber, drop-oldest.** When one subscriber's queue is full the
//!   publisher evicts that subscriber's *oldest* event and pushes the new one. The
//!   eviction is counted on that subscription ([`Subscription::dropped`]); no other
//!   subscriber is affected. (mesocarp's own `Broadcaster::push` stops at the first
//!   full subscriber; this hub never calls it across subscribers — see
//!   `backend.rs`.)
//! * **Order.** Events from one publishing thread arrive at each subscriber in
//!   publish order, minus evicted ones. Events from concurrent publishers interleave
//!   in some order, which may differ between subscribers.
//! * **Late subscribers** see only events published after `subscribe` returned.
//! * **Close.** When the last `TelemetryHub` clone is dropped, every subscription
//!   drains what it holds and then reports closed (`recv` → `None`).
//!
//! # Design
//!
//! The subscriber list is copy-on-write: an [`ArcSwap`] of an immutable
//! `Vec<Arc<Slot>>`. `publish` loads it without a lock (one atomic load plus a
//! thread-local hazard slot); `subscribe` and unsubscribe (dropping a
//! [`Subscription`]) build a new list with `rcu`. Subscriber churn is rare and
//! publishing is hot, so the copy is paid on the rare side.
//!
//! Each slot owns one single-subscriber queue from `backend`, a
//! [`tokio::sync::Notify`] and a `parked` flag. Waking is a Dekker handshake, so
//! that a publisher pays for `notify_one` only when the subscriber is asleep:
//!
//! * subscriber: `parked = true`; SeqCst fence; pop again; if still empty, await
//!   `notified()`;
//! * publisher: push; SeqCst fence; if `parked` was true, clear it and `notify_one`.
//!
//! The two fences guarantee that either the subscriber's second pop sees the event
//! or the publisher sees `parked`. `Notify` keeps a permit when the subscriber has
//! not reached its `.await` yet, so no wake-up is lost in between either.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::telemetry::backend::{self, Feeder, Tap};
use crate::telemetry::error::TelemetryError;
use vortex_messages::telemetry::TelemetryEvent;

/// One subscriber's state as the publisher sees it.
struct Slot<E> {
    id: u64,
    feeder: Feeder<E>,
    notify: Notify,
    /// The subscriber is about to sleep or asleep; see the module docs.
    parked: AtomicBool,
    dropped: AtomicU64,
}

impl<E: Clone> Slot<E> {
    fn deliver(&self, event: E) {
        let evicted = self.feeder.push_evicting(event);
        if evicted > 0 {
            self.dropped.fetch_add(evicted, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::Relaxed) {
            self.notify.notify_one();
        }
    }
}

struct Shared<E> {
    slots: ArcSwap<Vec<Arc<Slot<E>>>>,
    capacity: usize,
    next_id: AtomicU64,
    publishers: AtomicUsize,
    closed: AtomicBool,
}

impl<E> Shared<E> {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for slot in self.slots.load().iter() {
            slot.notify.notify_one();
        }
    }
}

/// The publisher side of the telemetry fan-out. Clone it freely: every clone
/// publishes to the same subscribers, and the hub closes when the last clone drops.
///
/// `E` defaults to [`TelemetryEvent`]; any `Clone + Send` type works, and its
/// `Clone` should be cheap because it runs once per subscriber per event.
pub struct TelemetryHub<E = TelemetryEvent> {
    shared: Arc<Shared<E>>,
}

impl<E: Clone + Send + 'static> TelemetryHub<E> {
    /// A hub whose subscriptions each buffer up to `capacity` events by default.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a telemetry subscription needs capacity >= 1");
        Self {
            shared: Arc::new(Shared {
                slots: ArcSwap::from_pointee(Vec::new()),
                capacity,
                next_id: AtomicU64::new(0),
                publishers: AtomicUsize::new(1),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `event` to every current subscriber and returns how many there were.
    /// Never waits: a full subscriber loses its oldest event instead.
    pub fn publish(&self, event: E) -> usize {
        let slots = self.shared.slots.load();
        let Some((last, rest)) = slots.split_last() else {
            return 0;
        };
        for slot in rest {
            slot.deliver(event.clone());
        }
        last.deliver(event);
        slots.len()
    }

    /// A new subscription with the hub's default capacity.
    pub fn subscribe(&self) -> Subscription<E> {
        self.subscribe_with_capacity(self.shared.capacity)
    }

    /// A new subscription buffering up to `capacity` events, for a consumer that
    /// needs more (or less) slack than the default.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn subscribe_with_capacity(&self, capacity: usize) -> Subscription<E> {
        assert!(capacity > 0, "a telemetry subscription needs capacity >= 1");
        let (feeder, tap) = backend::queue(capacity);
        let slot = Arc::new(Slot {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            feeder,
            notify: Notify::new(),
            parked: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        self.shared.slots.rcu(|current| {
            let mut next = Vec::with_capacity(current.len() + 1);
            next.extend(current.iter().cloned());
            next.push(Arc::clone(&slot));
            next
        });
        Subscription {
            slot,
            tap,
            capacity,
            shared: Arc::clone(&self.shared),
        }
    }

    /// How many subscriptions are live right now.
    pub fn subscriber_count(&self) -> usize {
        self.shared.slots.load().len()
    }

    /// The default per-subscription capacity.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }
}

impl<E> Clone for TelemetryHub<E> {
    fn clone(&self) -> Self {
        self.shared.publishers.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E> Drop for TelemetryHub<E> {
    fn drop(&mut self) {
        if self.shared.publishers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.close();
        }
    }
}

impl<E> std::fmt::Debug for TelemetryHub<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryHub")
            .field("subscribers", &self.shared.slots.load().len())
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

/// One subscriber's end of the fan-out. Dropping it unsubscribes.
///
/// It has a single consumer (`recv` takes `&mut self`); for several consumers,
/// subscribe several times.
pub struct Subscription<E = TelemetryEvent> {
    slot: Arc<Slot<E>>,
    tap: Tap<E>,
    capacity: usize,
    shared: Arc<Shared<E>>,
}

impl<E> Subscription<E> {
    /// The next event, waiting for one if none is buffered. `None` once every
    /// publisher is gone and the buffer is drained.
    ///
    /// Cancel-safe: dropping the future loses no event.
    pub async fn recv(&mut self) -> Option<E> {
        loop {
            if let Some(event) = self.tap.pop() {
                return Some(event);
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                // A publish that raced with the close may have landed after the pop.
                return self.tap.pop();
            }
            self.slot.parked.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if let Some(event) = self.tap.pop() {
                // A publisher may still notify; the stale permit only costs one
                // extra loop on a later `recv`.
                self.slot.parked.store(false, Ordering::Relaxed);
                return Some(event);
            }
            // `close` notifies unconditionally, and a publisher that saw `parked`
            // notifies; `Notify` keeps the permit if that happens before this await.
            self.slot.notify.notified().await;
        }
    }

    /// The next buffered event without waiting: [`TelemetryError::Empty`] when none
    /// is buffered, [`TelemetryError::Closed`] when the hub is closed and drained.
    pub fn try_recv(&mut self) -> Result<E, TelemetryError> {
        if let Some(event) = self.tap.pop() {
            return Ok(event);
        }
        if self.shared.closed.load(Ordering::SeqCst) {
            return self.tap.pop().ok_or(TelemetryError::Closed);
        }
        Err(TelemetryError::Empty)
    }

    /// Events this subscription lost because its buffer was full (oldest first).
    pub fn dropped(&self) -> u64 {
        self.slot.dropped.load(Ordering::Relaxed)
    }

    /// The most events this subscription buffers.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether every publisher is gone (buffered events may remain).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Stops receiving; the same as dropping the subscription.
    pub fn unsubscribe(self) {}
}

impl<E> Drop for Subscription<E> {
    fn drop(&mut self) {
        let id = self.slot.id;
        self.shared.slots.rcu(|current| {
            current
                .iter()
                .filter(|slot| slot.id != id)
                .cloned()
                .collect::<Vec<_>>()
        });
    }
}

impl<E> std::fmt::Debug for Subscription<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.slot.id)
            .field("capacity", &self.capacity)
            .field("dropped", &self.dropped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn publish_without_subscribers_reaches_nobody() {
        let hub = TelemetryHub::<u32>::new(4);
        assert_eq!(hub.publish(1), 0);
    }

    #[test]
    fn subscribers_join_and_leave_at_run_time() {
        let hub = TelemetryHub::<u32>::new(4);
        let mut first = hub.subscribe();
        assert_eq!(hub.publish(1), 1);
        let mut second = hub.subscribe();
        assert_eq!(hub.publish(2), 2);
        assert_eq!(hub.subscriber_count(), 2);
        first.try_recv().expect("first event");
        assert_eq!(first.try_recv().expect("second event"), 2);
        assert_eq!(second.try_recv().expect("late subscriber"), 2);
        first.unsubscribe();
        assert_eq!(hub.subscriber_count(), 1);
        assert_eq!(hub.publish(3), 1);
        assert_eq!(second.try_recv().expect("third"), 3);
        assert!(matches!(second.try_recv(), Err(TelemetryError::Empty)));
    }

    #[test]
    fn overflow_drops_oldest_for_that_subscriber_only() {
        let hub = TelemetryHub::<u32>::new(2);
        let mut small = hub.subscribe();
        let mut large = hub.subscribe_with_capacity(8);
        for n in 0..5 {
            hub.publish(n);
        }
        assert_eq!(small.dropped(), 3);
        assert_eq!(large.dropped(), 0);
        assert_eq!(small.try_recv().ok(), Some(3));
        assert_eq!(small.try_recv().ok(), Some(4));
        let all: Vec<u32> = std::iter::from_fn(|| large.try_recv().ok()).collect();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn dropping_every_publisher_closes_after_drain() {
        let hub = TelemetryHub::<u32>::new(4);
        let second_publisher = hub.clone();
        let mut sub = hub.subscribe();
        hub.publish(1);
        drop(hub);
        assert!(!sub.is_closed());
        second_publisher.publish(2);
        drop(second_publisher);
        assert_eq!(sub.recv().await, Some(1));
        assert_eq!(sub.recv().await, Some(2));
        assert_eq!(sub.recv().await, None);
        assert!(matches!(sub.try_recv(), Err(TelemetryError::Closed)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ping_pong_never_loses_a_wake_up() {
        // Each round waits for the other side, so a single lost wake-up hangs the
        // test until the deadline.
        let hub = TelemetryHub::<u32>::new(1);
        let replies = TelemetryHub::<u32>::new(1);
        let mut requests = hub.subscribe();
        let mut answers = replies.subscribe();
        let echo = tokio::spawn(async move {
            while let Some(n) = requests.recv().await {
                replies.publish(n);
            }
        });
        for n in 0..10_000 {
            hub.publish(n);
            let got = timeout(DEADLINE, answers.recv()).await.expect("deadline");
            assert_eq!(got, Some(n));
        }
        drop(hub);
        timeout(DEADLINE, echo)
            .await
            .expect("deadline")
            .expect("echo task");
        assert_eq!(answers.recv().await, None);
    }
}
