//! What a fired timer does: deliver its message, at once or through its target's backlog.
//!
//! A timer's payload is a `Box<dyn Fire>` that knows its target's type. Delivery never
//! blocks the scheduler and never runs under the timer table's lock:
//!
//! - the message is handed over with `try_tell`;
//! - if the target's mailbox is full, it waits in that target's [`Backlog`]: one ordered
//!   queue per target, drained by one flusher task per target while it is non-empty (no
//!   task per delivery). Later deliveries to a target with a backlog queue behind it, so
//!   order is kept. A backlog holds at most `limit` messages; past that the *newest*
//!   delivery is dropped and counted (`Scheduler::overflowed`);
//! - a closed target counts as gone (`Scheduler::dropped_targets`), and an interval to it
//!   ends.
//!
//! Lateness (hand-over time minus the deadline's tick) is recorded in the scheduler's
//! lag histogram, which feeds `vortex_timer_lag_seconds`.

use std::{
    any::Any,
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex, MutexGuard, PoisonError,
    },
};

use tokio::time::Instant;
use vortex_messages::Control;
use vortex_runtime::{Actor, Addr, RuntimeObserver, TrySendError};

use crate::telemetry::LatencyHistogram;

/// The scheduler's counters and lag histogram, shared by every incarnation and flusher.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) armed: AtomicUsize,
    pub(crate) fired: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) ticks: AtomicU64,
    pub(crate) lag: LatencyHistogram,
}

/// How a delivery went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Handed over, or queued in the target's backlog.
    Sent,
    /// The target's backlog was full: dropped and counted (`Scheduler::overflowed`).
    Overflowed,
    /// The target's mailbox is closed.
    TargetGone,
}

/// A timer's payload: its target and message, type-erased.
pub(crate) trait Fire: Send {
    /// Delivers the message (a one-shot's own, or one period's copy).
    fn deliver(self: Box<Self>, post: &mut Post<'_>) -> Delivered;

    /// One period of an interval: a copy to deliver (user `Clone` code runs here).
    /// `None` for one-shots.
    fn period(&mut self) -> Option<Box<dyn Fire>>;
}

/// A message delivered once.
pub(crate) struct Once<A: Actor> {
    pub(crate) target: Addr<A>,
    pub(crate) message: A::Message,
}

impl<A: Actor> Fire for Once<A> {
    fn deliver(self: Box<Self>, post: &mut Post<'_>) -> Delivered {
        let Once { target, message } = *self;
        post.send(&target, message)
    }

    fn period(&mut self) -> Option<Box<dyn Fire>> {
        None
    }
}

/// A message delivered, as a clone, every period.
pub(crate) struct Every<A: Actor> {
    pub(crate) target: Addr<A>,
    pub(crate) message: A::Message,
}

impl<A: Actor> Fire for Every<A>
where
    A::Message: Clone,
{
    fn deliver(self: Box<Self>, post: &mut Post<'_>) -> Delivered {
        let Every { target, message } = *self;
        post.send(&target, message)
    }

    fn period(&mut self) -> Option<Box<dyn Fire>> {
        Some(Box::new(Once {
            target: self.target.clone(),
            message: self.message.clone(),
        }))
    }
}

/// A control command sent by name.
pub(crate) struct ControlCommand {
    pub(crate) observer: RuntimeObserver,
    pub(crate) name: String,
    pub(crate) command: Control,
}

impl Fire for ControlCommand {
    fn deliver(self: Box<Self>, post: &mut Post<'_>) -> Delivered {
        // Control travels on the target's control lane, which answers asynchronously;
        // one short task per command (control timers are rare, not a data path).
        let ControlCommand {
            observer,
            name,
            command,
        } = *self;
        let stats = Arc::clone(post.stats);
        let (due, lag) = (post.due, post.stats.lag.clone());
        tokio::spawn(async move {
            match observer.control(&name, command).await {
                Ok(_) => lag.observe(Instant::now().saturating_duration_since(due)),
                Err(_) => {
                    stats.dropped.fetch_add(1, Relaxed);
                }
            }
        });
        Delivered::Sent
    }

    fn period(&mut self) -> Option<Box<dyn Fire>> {
        None
    }
}

/// One target's messages waiting for mailbox space, in fire order.
struct Backlog<M> {
    waiting: VecDeque<(M, Instant)>,
    /// A flusher task is running (it may hold the message it is sending).
    flushing: bool,
}

type Shared<M> = Arc<Mutex<Backlog<M>>>;

fn lock<M>(backlog: &Mutex<Backlog<M>>) -> MutexGuard<'_, Backlog<M>> {
    backlog.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The backlogs of every target that was ever full, by name. Owned by the scheduler
/// actor (its lock is taken only by the actor, once per tick); each backlog is shared
/// with its flusher. At most one entry per target name.
#[derive(Default)]
pub(crate) struct Backlogs {
    by_target: HashMap<String, Box<dyn Any + Send>>,
}

/// What one tick's deliveries share: when it is, the backlogs, the counters.
pub(crate) struct Post<'a> {
    pub(crate) now: Instant,
    /// The instant the timer being delivered was due (its deadline's tick).
    pub(crate) due: Instant,
    pub(crate) backlogs: &'a mut Backlogs,
    pub(crate) limit: usize,
    pub(crate) stats: &'a Arc<Stats>,
}

impl Post<'_> {
    fn send<A: Actor>(&mut self, target: &Addr<A>, message: A::Message) -> Delivered {
        let backlog = if self.backlogs.by_target.is_empty() {
            None
        } else {
            self.backlogs
                .by_target
                .get(target.name())
                .and_then(|any| any.downcast_ref::<Shared<A::Message>>())
                .cloned()
        };
        if let Some(backlog) = &backlog {
            let mut waiting = lock(backlog);
            if waiting.flushing {
                return self.queue(&mut waiting, message);
            }
        }
        match target.try_tell(message) {
            Ok(()) => {
                self.stats
                    .lag
                    .observe(self.now.saturating_duration_since(self.due));
                Delivered::Sent
            }
            Err(TrySendError::Full(message)) => {
                let backlog = backlog.unwrap_or_else(|| {
                    let fresh: Shared<A::Message> = Arc::new(Mutex::new(Backlog {
                        waiting: VecDeque::new(),
                        flushing: false,
                    }));
                    self.backlogs
                        .by_target
                        .insert(target.name().to_owned(), Box::new(Arc::clone(&fresh)));
                    fresh
                });
                let mut waiting = lock(&backlog);
                let queued = self.queue(&mut waiting, message);
                waiting.flushing = true;
                drop(waiting);
                tokio::spawn(flush(backlog, target.clone(), Arc::clone(self.stats)));
                queued
            }
            Err(TrySendError::Closed(_)) => Delivered::TargetGone,
        }
    }

    /// Queues behind the target's backlog; past the limit the newest (this one) is
    /// dropped: it keeps the order of what waits and the memory bounded.
    fn queue<M>(&self, backlog: &mut Backlog<M>, message: M) -> Delivered {
        if backlog.waiting.len() >= self.limit {
            self.stats.overflowed.fetch_add(1, Relaxed);
            Delivered::Overflowed
        } else {
            backlog.waiting.push_back((message, self.due));
            Delivered::Sent
        }
    }
}

/// Sends one target's backlog in order, waiting for space; ends when it is empty.
async fn flush<A: Actor>(backlog: Shared<A::Message>, target: Addr<A>, stats: Arc<Stats>) {
    loop {
        let next = {
            let mut waiting = lock(&backlog);
            match waiting.waiting.pop_front() {
                Some(next) => next,
                None => {
                    waiting.flushing = false;
                    return;
                }
            }
        };
        let (message, due) = next;
        if target.tell(message).await.is_ok() {
            stats
                .lag
                .observe(Instant::now().saturating_duration_since(due));
        } else {
            let mut waiting = lock(&backlog);
            let lost = std::mem::take(&mut waiting.waiting);
            waiting.flushing = false;
            drop(waiting);
            stats.dropped.fetch_add(1 + lost.len() as u64, Relaxed);
            return; // `lost` is dropped here, outside the lock
        }
    }
}
